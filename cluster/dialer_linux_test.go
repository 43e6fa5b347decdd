package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// accept accepts one connection on ln within 5 s.
func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			ch <- c
		}
	}()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5s")
		return nil
	}
}

func TestDialerOfTellsTheDialingProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	// A child process dials and holds the connection.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	child := exec.CommandContext(ctx, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; sleep 30", port))
	require.NoError(t, child.Start())
	defer func() { cancel(); _ = child.Wait() }()
	fromChild := accept(t, ln)

	// This process dials another.
	mine, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer mine.Close()
	fromSelf := accept(t, ln)

	self, kid := os.Getpid(), child.Process.Pid
	// This process dials a third and closes it at once.
	gone, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_, _ = gone.Write([]byte("x"))
	fromGone := accept(t, ln)
	require.NoError(t, gone.Close())

	tests := []struct {
		name       string
		conn       net.Conn
		pids       map[int]string
		want       string
		wantOK     bool
		wantClosed bool
	}{
		{"the child's connection, among both", fromChild, map[int]string{self: "self", kid: "child"}, "child", true, false},
		{"this process's connection, among both", fromSelf, map[int]string{self: "self", kid: "child"}, "self", true, false},
		{"the child's connection, the child not among them", fromChild, map[int]string{self: "self"}, "", false, false},
		{"no process to look in", fromSelf, map[int]string{}, "", false, false},
		{"a connection its dialer closed", fromGone, map[int]string{self: "self"}, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, closed := dialerOf(tt.conn, tt.pids)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantClosed, closed)
			assert.Equal(t, tt.want, got)
		})
	}
}

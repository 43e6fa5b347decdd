package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// echoServer accepts on 127.0.0.1 and writes back what each connection
// sends. It stops, with its connections, when the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// testProxy is a fault proxy on a free 127.0.0.1 port in front of an echo
// server, closed when the test ends.
func testProxy(t *testing.T) *faultProxy {
	t.Helper()
	p, err := newFaultProxy(zap.NewNop(), "127.0.0.1:0", echoServer(t))
	require.NoError(t, err)
	p.addr = p.ln.Addr().String()
	t.Cleanup(func() { require.NoError(t, p.close()) })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg and reads as many bytes back, within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) ([]byte, time.Duration, error) {
	start := time.Now()
	if err := c.SetDeadline(start.Add(timeout)); err != nil {
		return nil, 0, err
	}
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return nil, 0, err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, time.Since(start), err
}

// TestFaultProxyFaults: each fault acts on a connection made before it
// was set, and the bytes arrive whole; with the fault gone, the
// connection is back on the fast path.
func TestFaultProxyFaults(t *testing.T) {
	tests := []struct {
		name string
		set  func(*faults)
		// min and max bound one round trip (two chunks through the proxy).
		min, max time.Duration
	}{
		{"none", func(*faults) {}, 0, time.Second},
		{"delay", func(f *faults) { f.latency, f.jitter = 50*time.Millisecond, 10*time.Millisecond }, 80 * time.Millisecond, 2 * time.Second},
		{"lose every chunk", func(f *faults) { f.lose, f.rto = func() bool { return true }, 60*time.Millisecond }, 120 * time.Millisecond, 2 * time.Second},
		{"lose none", func(f *faults) { f.lose, f.rto = func() bool { return false }, time.Second }, 0, 900 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testProxy(t)
			c := dial(t, p.addr)
			_, _, err := roundTrip(c, []byte("before"), 2*time.Second)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return fastCopies(p) == 2 }, 2*time.Second, time.Millisecond, "no fault: both directions on the fast path")

			p.set(tc.set)
			msg := bytes.Repeat([]byte(tc.name), 1000)
			got, took, err := roundTrip(c, msg, 5*time.Second)
			require.NoError(t, err)
			require.Equal(t, msg, got)
			require.GreaterOrEqual(t, took, tc.min)
			require.Less(t, took, tc.max)

			p.set(func(f *faults) { *f = faults{} })
			// A copy goes back to the fast path after its next chunk.
			_, _, err = roundTrip(c, []byte("after"), 2*time.Second)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return fastCopies(p) == 2 }, 2*time.Second, time.Millisecond, "healed: back on the fast path")
		})
	}
}

func fastCopies(p *faultProxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.fast)
}

// TestFaultProxyHold: a held link passes no byte, on an old connection or
// a new one; released it delivers what it held, and released with a reset
// it closes the connections instead.
func TestFaultProxyHold(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(map[bool]string{false: "release", true: "reset"}[reset], func(t *testing.T) {
			p := testProxy(t)
			old := dial(t, p.addr)
			_, _, err := roundTrip(old, []byte("x"), 2*time.Second)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return fastCopies(p) == 2 }, 2*time.Second, time.Millisecond)

			// Bytes sent once set has returned are held, also those of a
			// connection that was on the fast path.
			p.set(func(f *faults) { f.hold = true })
			require.True(t, p.held())
			fresh := dial(t, p.addr)
			for _, c := range []net.Conn{old, fresh} {
				_, _, err := roundTrip(c, []byte("held"), 300*time.Millisecond)
				require.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing passes a held link")
			}
			p.release(reset)
			require.False(t, p.held())
			for _, c := range []net.Conn{old, fresh} {
				require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
				got := make([]byte, 4)
				_, err := io.ReadFull(c, got)
				if reset {
					require.Error(t, err, "the connection was reset")
					require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, "held", string(got))
			}
			// A new connection passes either way.
			_, _, err = roundTrip(dial(t, p.addr), []byte("new"), 2*time.Second)
			require.NoError(t, err)
		})
	}
}

// TestFaultProxySwitchesWithoutLoss: bytes stream both ways through the
// proxy while faults are set and lifted over and over; every byte arrives
// once, in order.
func TestFaultProxySwitchesWithoutLoss(t *testing.T) {
	p := testProxy(t)
	c := dial(t, p.addr)
	const total = 4 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The sender writes counters in pieces of varied size, so chunks end
	// anywhere in a counter.
	sendErr := make(chan error, 1)
	go func() {
		var buf []byte
		for i := uint32(0); len(buf) < total; i++ {
			buf = binary.BigEndian.AppendUint32(buf, i)
		}
		for off, n := 0, 1; off < len(buf); n = n*7%65521 + 1 {
			end := min(off+n, len(buf))
			if _, err := c.Write(buf[off:end]); err != nil {
				sendErr <- err
				return
			}
			off = end
		}
		sendErr <- nil
	}()

	switches := make(chan struct{})
	go func() {
		defer close(switches)
		sets := []func(*faults){
			func(f *faults) { f.hold = true },
			func(f *faults) { *f = faults{} },
			func(f *faults) { f.latency = time.Millisecond },
			func(f *faults) { *f = faults{} },
			func(f *faults) { f.lose, f.rto = func() bool { return true }, time.Millisecond },
			func(f *faults) { f.lose = nil },
		}
		for i := 0; ctx.Err() == nil; i++ {
			p.set(sets[i%len(sets)])
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
		p.set(func(f *faults) { *f = faults{} })
	}()

	require.NoError(t, c.SetReadDeadline(time.Now().Add(25*time.Second)))
	got := make([]byte, 4)
	for i := uint32(0); i < total/4; i++ {
		_, err := io.ReadFull(c, got)
		require.NoError(t, err, "counter %d", i)
		require.Equal(t, i, binary.BigEndian.Uint32(got), "counter %d arrives in order, once", i)
	}
	cancel()
	<-switches
	require.NoError(t, <-sendErr)
}

// TestFaultProxyPrefix: what the demultiplexer read first reaches the
// target first, and is held like any other byte.
func TestFaultProxyPrefix(t *testing.T) {
	p := testProxy(t)
	a, b := tcpPair(t)
	p.set(func(f *faults) { f.hold = true })
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve(b, []byte("first "))
	}()
	_, err := a.Write([]byte("second"))
	require.NoError(t, err)
	require.NoError(t, a.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = a.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "held")
	p.release(false)
	require.NoError(t, a.SetReadDeadline(time.Now().Add(2*time.Second)))
	got := make([]byte, len("first second"))
	_, err = io.ReadFull(a, got)
	require.NoError(t, err)
	require.Equal(t, "first second", string(got))
	require.NoError(t, a.Close())
	<-done
}

// tcpPair is two ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	a := dial(t, ln.Addr().String())
	b, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

// TestFaultProxyCloseLeavesNothing: close ends every connection (a held
// one and one in a delay included) and every goroutine of the proxy, and
// frees its port.
func TestFaultProxyCloseLeavesNothing(t *testing.T) {
	target := echoServer(t)
	p, err := newFaultProxy(zap.NewNop(), "127.0.0.1:0", target)
	require.NoError(t, err)
	addr := p.ln.Addr().String()
	var conns []net.Conn
	for range 3 {
		c := dial(t, addr)
		_, _, err := roundTrip(c, []byte("x"), 2*time.Second)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	p.set(func(f *faults) { f.hold = true })
	_, err = conns[0].Write([]byte("held"))
	require.NoError(t, err)
	require.Greater(t, proxyGoroutines(), 0)

	begin := time.Now()
	require.NoError(t, p.close())
	require.Less(t, time.Since(begin), time.Second)
	require.Zero(t, proxyGoroutines(), "no goroutine of the proxy is left")
	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.Error(t, err)
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the connection was closed")
	}
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the listener is closed")
}

// proxyGoroutines counts the goroutines running faultProxy code.
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cluster.(*faultProxy)") {
			n++
		}
	}
	return n
}

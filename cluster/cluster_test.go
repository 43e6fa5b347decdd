package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

// etcdBinary returns the etcd binary under test (see package testetcd).
func etcdBinary(t *testing.T) string {
	t.Helper()
	return testetcd.Binaries(t).Etcd
}

func testConfig(t *testing.T, size int, etcdPaths ...string) Config {
	return Config{
		Size:      size,
		EtcdPaths: etcdPaths,
		Dir:       t.TempDir(),
		Logger:    zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
	}
}

func startCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg)
	require.NoError(t, err)
	return c
}

// client returns a client that talks to the given member only.
func client(t *testing.T, m *Member) *clientv3.Client {
	t.Helper()
	cfg := ClientConfig([]string{m.ClientURL()})
	cfg.DialTimeout = 5 * time.Second
	cli, err := clientv3.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func put(t *testing.T, m *Member, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client(t, m).Put(ctx, key, val)
	require.NoError(t, err, "put via %s", m.Name())
}

// putRetry is put for right after a failure: a proposal made while the
// cluster is electing a new leader can be dropped by etcd ("request timed
// out, possibly due to previous leader failure"), so retry for a while.
func putRetry(t *testing.T, m *Member, key, val string) {
	t.Helper()
	cli := client(t, m)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := cli.Put(ctx, key, val)
		cancel()
		if err == nil {
			return
		}
		require.True(t, time.Now().Before(deadline), "put via %s: %v", m.Name(), err)
		t.Logf("put via %s failed, retrying: %v", m.Name(), err)
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, m *Member, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client(t, m).Get(ctx, key) // linearizable
	require.NoError(t, err, "get via %s", m.Name())
	require.Len(t, resp.Kvs, 1, "get %q via %s", key, m.Name())
	return string(resp.Kvs[0].Value)
}

// requireGone asserts that pid no longer exists (not even as a zombie).
func requireGone(t *testing.T, pid int) {
	t.Helper()
	require.NotZero(t, pid)
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "pid %d still exists", pid)
}

// processesUsing returns the pids of live processes whose command line
// mentions dir.
func processesUsing(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Logf("cannot scan /proc: %v", err)
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestPutGetAcrossMembers(t *testing.T) {
	etcd := etcdBinary(t)
	c := startCluster(t, testConfig(t, 3, etcd))
	defer c.Close()

	ms := c.Members()
	require.Len(t, ms, 3)
	require.Len(t, c.Endpoints(), 3)
	for i, m := range ms {
		require.Equal(t, "member-"+strconv.Itoa(i), m.Name())
		require.Equal(t, m.ClientURL(), c.Endpoints()[i])
		require.True(t, m.Running())
		require.Equal(t, etcd, m.EtcdPath())
	}
	put(t, ms[0], "k", "v")
	require.Equal(t, "v", get(t, ms[2], "k"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	require.Contains(t, ms, leader)
}

func TestKillAndRestartMember(t *testing.T) {
	c := startCluster(t, testConfig(t, 3, etcdBinary(t)))
	defer c.Close()
	ms := c.Members()
	victim := ms[1]
	oldPID := victim.PID()

	require.NoError(t, victim.Kill())
	require.False(t, victim.Running())
	require.Error(t, victim.ExitErr())
	requireGone(t, oldPID)
	select {
	case <-victim.Exited():
	default:
		t.Fatal("Exited() not closed after Kill")
	}
	require.NoError(t, victim.Kill(), "Kill of a stopped member is a no-op")

	putRetry(t, ms[0], "after-kill", "v1")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, victim.Start(ctx))
	require.ErrorIs(t, victim.Start(ctx), ErrRunning)
	require.True(t, victim.Running())
	require.NoError(t, victim.ExitErr())
	require.NotEqual(t, oldPID, victim.PID())
	require.NoError(t, victim.WaitHealthy(ctx))
	require.Equal(t, "v1", get(t, victim, "after-kill"))
	require.NoError(t, c.WaitHealthy(ctx))

	logData, err := os.ReadFile(victim.LogPath())
	require.NoError(t, err)
	require.Contains(t, string(logData), "--initial-cluster-state existing")
	require.Equal(t, 2, strings.Count(string(logData), "=== start "))
}

func TestStopStartSingleMember(t *testing.T) {
	c := startCluster(t, testConfig(t, 1, etcdBinary(t)))
	defer c.Close()
	m := c.Members()[0]
	put(t, m, "k", "persisted")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pid := m.PID()
	require.NoError(t, m.Stop(ctx))
	require.False(t, m.Running())
	requireGone(t, pid)

	require.NoError(t, m.Start(ctx))
	require.NoError(t, m.WaitHealthy(ctx))
	require.Equal(t, "persisted", get(t, m, "k"))
}

func TestGofailPanic(t *testing.T) {
	c := startCluster(t, testConfig(t, 1, etcdBinary(t)))
	defer c.Close()
	m := c.Members()[0]

	resp, err := http.Get(m.GofailURL() + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "raftBeforeSave", "is %s built with gofail?", m.EtcdPath())

	req, err := http.NewRequest(http.MethodPut, m.GofailURL()+"/beforeCommit", strings.NewReader("panic"))
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "gofail PUT status")

	exited := m.Exited()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, _ = client(t, m).Put(ctx, "trigger", "commit") // may fail: the commit panics
	cancel()

	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("etcd did not exit after beforeCommit=panic")
	}
	require.False(t, m.Running())
	require.Error(t, m.ExitErr())
	t.Logf("exit: %v", m.ExitErr())

	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = m.WaitHealthy(wctx)
	wcancel()
	require.ErrorIs(t, err, ErrExited)
	require.ErrorContains(t, err, "member-0")

	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, m.Start(ctx))
	require.NoError(t, m.WaitHealthy(ctx))
}

func TestCloseLeavesNoProcess(t *testing.T) {
	cfg := testConfig(t, 3, etcdBinary(t))
	c := startCluster(t, cfg)
	defer c.Close()

	var pids []int
	for _, m := range c.Members() {
		pids = append(pids, m.PID())
	}
	// One member already dead before Close.
	require.NoError(t, c.Members()[2].Kill())

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { require.NoError(t, c.Close()) })
	}
	wg.Wait()
	require.NoError(t, c.Close())

	for _, pid := range pids {
		requireGone(t, pid)
	}
	require.Empty(t, processesUsing(t, cfg.Dir))
	for _, m := range c.Members() {
		require.False(t, m.Running())
		require.ErrorIs(t, m.Start(context.Background()), ErrClosed)
	}
}

func TestStartFailure(t *testing.T) {
	etcd := etcdBinary(t)
	for _, tc := range []struct {
		name   string
		size   int
		paths  []string
		member string
	}{
		{name: "all-false", size: 1, paths: []string{"/bin/false"}, member: "member-0"},
		{name: "one-false", size: 3, paths: []string{etcd, "/bin/false", etcd}, member: "member-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.size, tc.paths...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			begin := time.Now()
			c, err := Start(ctx, cfg)
			if c != nil {
				defer c.Close()
			}
			require.Error(t, err)
			require.Nil(t, c)
			require.Less(t, time.Since(begin), 15*time.Second, "start failure should be reported quickly")
			t.Logf("error: %v", err)
			require.ErrorIs(t, err, ErrExited)
			var exitErr *exec.ExitError
			require.ErrorAs(t, err, &exitErr)
			require.Equal(t, 1, exitErr.ExitCode())
			msg := err.Error()
			require.Contains(t, msg, tc.member)
			require.Contains(t, msg, "exit status 1")
			require.Contains(t, msg, filepath.Join(cfg.Dir, tc.member, "etcd.log"))
			require.Contains(t, msg, "=== start ", "error should quote the log tail")
			require.Empty(t, processesUsing(t, cfg.Dir))
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{Size: 0, EtcdPaths: []string{"etcd"}, Dir: t.TempDir()},
		{Size: 3, EtcdPaths: []string{"etcd", "etcd"}, Dir: t.TempDir()},
		{Size: 1, Dir: t.TempDir()},
		{Size: 1, EtcdPaths: []string{"etcd"}},
	} {
		c, err := Start(ctx, cfg)
		require.Error(t, err)
		require.Nil(t, c)
	}
}

// TestCloseLeavesNothing: Close ends everything a fault may have left:
// a paused process, a cut link, a LazyFS mount, the proxies' listeners.
func TestCloseLeavesNothing(t *testing.T) {
	cfg := testConfig(t, 3, etcdBinary(t))
	c := startCluster(t, cfg)
	defer c.Close()
	ms := c.Members()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	lazy := false
	if err := ms[2].Stop(ctx); err == nil {
		if _, err := ms[2].UseLazyFS(); err == nil {
			lazy = true
		} else {
			t.Logf("no LazyFS here: %v", err)
		}
		require.NoError(t, ms[2].Start(ctx))
		require.NoError(t, ms[2].WaitHealthy(ctx))
	}
	require.NoError(t, ms[0].Pause())
	require.Eventually(t, func() bool { return ms[0].ProcessState() == "T" }, 5*time.Second, 10*time.Millisecond, "stopped")
	require.NoError(t, c.Network().Blackhole(c.Network().Links(ms[1].Name())...))
	var pids []int
	for _, m := range ms {
		pids = append(pids, m.PID())
	}
	proxyAddr := hostPort(ms[1].ClientURL())

	begin := time.Now()
	require.NoError(t, c.Close())
	require.Less(t, time.Since(begin), 2*StopGracePeriod, "a paused member is SIGCONTed and stops at once")
	for _, pid := range pids {
		requireGone(t, pid)
	}
	require.Empty(t, processesUsing(t, cfg.Dir))
	mounts, err := os.ReadFile("/proc/mounts")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), cfg.Dir, "no LazyFS left mounted")
	if lazy {
		_, err := os.Stat(filepath.Join(ms[2].DataDir(), "member", "wal"))
		require.NoError(t, err, "the data is back in the data dir")
	}
	_, err = net.DialTimeout("tcp", proxyAddr, time.Second)
	require.Error(t, err, "the client proxy is closed")
}

func TestCloseAfter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n", "GET /raft/probing HTTP/1.1\r\nConnection: close\r\nHost: x\r\n\r\n"},
		{"no line end", "no line end"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, string(closeAfter([]byte(tc.in))))
	}
}

package etcdbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// extraVersionsEnv lists more versions (space separated) for
// TestProvisionFailpoints, e.g. ETCDBUILD_TEST_VERSIONS="v3.5.4 v3.4.12".
const extraVersionsEnv = "ETCDBUILD_TEST_VERSIONS"

// TestProvisionDefaultVersion builds DefaultVersion into the default cache
// dir (so the rest of the test suite reuses it) and checks a second call is
// a cache hit.
func TestProvisionDefaultVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd (about a minute cold)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	bins, err := Provision(ctx, DefaultVersion, Options{Logger: zaptestLogger(t)})
	require.NoError(t, err)
	require.Equal(t, DefaultVersion, bins.Version)
	for _, p := range []string{bins.Etcd, bins.Etcdctl, bins.Etcdutl} {
		require.True(t, filepath.IsAbs(p), p)
		require.NoError(t, checkExecutable(p))
	}
	out, err := exec.CommandContext(ctx, bins.Etcd, "--version").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "etcd Version: "+strings.TrimPrefix(DefaultVersion, "v"))

	entry := filepath.Dir(filepath.Dir(bins.Etcd))
	infoPath := filepath.Join(entry, buildInfoFile)
	before, err := os.Stat(infoPath)
	require.NoError(t, err)
	info := readBuildInfo(t, entry)
	require.Equal(t, DefaultVersion, info.Version)
	require.NotEmpty(t, info.FailpointDirs)
	require.Contains(t, info.Failpoints, "raftBeforeSave")
	require.Contains(t, info.FailpointDirs, "etcdserver/api/v3rpc", "watch failpoints must be enabled")
	require.Equal(t, DefaultVersion, info.Modules["go.etcd.io/etcd/server/v3"])

	// Second call: a cache hit, no build.
	core, logs := observer.New(zap.DebugLevel)
	start := time.Now()
	again, err := Provision(ctx, strings.TrimPrefix(DefaultVersion, "v"), Options{Logger: zap.New(core)})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, bins, again)
	require.Equal(t, 1, logs.FilterMessage("using cached etcd").Len())
	require.Zero(t, logs.FilterMessage("building etcd").Len())
	after, err := os.Stat(infoPath)
	require.NoError(t, err)
	require.Equal(t, before.ModTime(), after.ModTime())
}

// TestProvisionFailpoints starts each provisioned etcd with GOFAIL_HTTP and
// checks every failpoint the source declares is served.
func TestProvisionFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs etcd")
	}
	versions := append([]string{DefaultVersion}, strings.Fields(os.Getenv(extraVersionsEnv))...)
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			bins, err := Provision(ctx, v, Options{Logger: zaptestLogger(t)})
			require.NoError(t, err)
			info := readBuildInfo(t, filepath.Dir(filepath.Dir(bins.Etcd)))

			listed := map[string]bool{}
			for _, line := range strings.Split(runWithGofail(ctx, t, bins.Etcd), "\n") {
				if name, _, ok := strings.Cut(line, "="); ok {
					listed[name] = true
				}
			}
			require.True(t, listed["raftBeforeSave"], "failpoints served: %v", listed)
			require.Len(t, listed, len(info.Failpoints))
			for _, name := range info.Failpoints {
				require.True(t, listed[name], "failpoint %s not served", name)
			}
		})
	}
}

func TestProvisionNotServed(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the Go module proxy")
	}
	cache := t.TempDir()
	_, err := Provision(context.Background(), "v3.5.26", Options{CacheDir: cache, Logger: zaptestLogger(t)})
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrVersionNotServed), "err: %v", err)
	require.Equal(t, "etcd version v3.5.26 is not served by the Go module proxy (served: "+servedSummary+")", err.Error())
	requireNoTemps(t, cache)
	require.NoDirExists(t, filepath.Join(cache, "etcd", "v3.5.26"))
}

// TestProvisionCancel cancels a build into a fresh cache dir and checks it
// leaves neither a temp dir nor a cache entry.
func TestProvisionCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := Provision(ctx, DefaultVersion, Options{CacheDir: cache, Logger: zaptestLogger(t)})
	require.Error(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireNoTemps(t, cache)
	require.NoDirExists(t, filepath.Join(cache, "etcd", DefaultVersion))
}

// TestProvisionConcurrent provisions the same version into a fresh cache dir
// from two goroutines at once (each takes the flock through its own file
// descriptor, as two processes would): exactly one builds.
func TestProvisionConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := t.TempDir()
	core, logs := observer.New(zap.InfoLevel)
	results := make(chan error, 2)
	bins := make([]Binaries, 2)
	for i := range bins {
		go func() {
			var err error
			bins[i], err = Provision(ctx, DefaultVersion, Options{CacheDir: cache, Logger: zap.New(core)})
			results <- err
		}()
	}
	for range bins {
		require.NoError(t, <-results)
	}
	require.Equal(t, bins[0], bins[1])
	require.Equal(t, 1, logs.FilterMessage("building etcd").Len())
	require.Equal(t, 1, logs.FilterMessage("using cached etcd").Len())
	requireNoTemps(t, cache)
}

// TestLockWaitsAndHonorsContext holds a version's lock and checks a second
// locker waits for it and gives up when its context ends.
func TestLockWaitsAndHonorsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.lock")
	unlock, err := lockFile(context.Background(), path, zap.NewNop())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx, path, zap.NewNop())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() {
		unlock2, err := lockFile(context.Background(), path, zap.NewNop())
		if err == nil {
			unlock2()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	unlock()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("second locker did not get the lock after release")
	}
}

func requireNoTemps(t *testing.T, cache string) {
	t.Helper()
	temps, err := filepath.Glob(filepath.Join(cache, "etcd", ".tmp-*"))
	require.NoError(t, err)
	require.Empty(t, temps)
}

func zaptestLogger(t *testing.T) *zap.Logger {
	if !testing.Verbose() {
		return zap.NewNop()
	}
	l, err := zap.NewDevelopment()
	require.NoError(t, err)
	return l
}

func readBuildInfo(t *testing.T, entry string) buildInfo {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(entry, buildInfoFile))
	require.NoError(t, err)
	var info buildInfo
	require.NoError(t, json.Unmarshal(data, &info))
	return info
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runWithGofail starts a single-member etcd on loopback with GOFAIL_HTTP,
// waits until it is healthy and returns the failpoint list it serves. The
// process is killed when the test ends.
func runWithGofail(ctx context.Context, t *testing.T, etcd string) string {
	t.Helper()
	client, peer, gofail := freePort(t), freePort(t), freePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(etcd,
		"--name", "default",
		"--data-dir", filepath.Join(t.TempDir(), "data"), // v3.4 wants it absent or 0700
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL,
	)
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOFAIL_HTTP=127.0.0.1:%d", gofail))
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	get := func(url string) (string, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err == nil && resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if body, ok := get(clientURL + "/health"); ok && strings.Contains(body, "true") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not healthy after 30s; output:\n%s", logs.String())
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("etcd exited (%v); output:\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	list, ok := get(fmt.Sprintf("http://127.0.0.1:%d/", gofail))
	require.True(t, ok, "gofail endpoint; etcd output:\n%s", logs.String())
	return list
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// substituteEnv, set to a release whose etcdctl module the proxy does not
// serve (v3.5.3 here), runs TestProvisionSubstituteEtcdctl; it builds that
// release (about a minute cold), so make test leaves it out.
const substituteEnv = "ETCDBUILD_TEST_SUBSTITUTE_ETCDCTL"

// TestProvisionSubstituteEtcdctl builds a release whose etcdctl module the
// proxy refuses, with etcdctl of the nearest served patch release: the
// server is the release's own, with its failpoints, and build-info.json and
// Binaries say which etcdctl it is.
func TestProvisionSubstituteEtcdctl(t *testing.T) {
	v := os.Getenv(substituteEnv)
	if testing.Short() || v == "" {
		t.Skipf("set %s=v3.5.3 to build a release whose etcdctl the proxy does not serve", substituteEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins, err := Provision(ctx, v, Options{Logger: zaptestLogger(t)})
	require.NoError(t, err)
	require.NotEmpty(t, bins.EtcdctlVersion, "the proxy serves %s's etcdctl: nothing was substituted", v)
	require.NotEqual(t, v, bins.EtcdctlVersion)
	require.Contains(t, etcdctlCandidates(v, maxEtcdctlDistance), bins.EtcdctlVersion)

	info := readBuildInfo(t, filepath.Dir(filepath.Dir(bins.Etcd)))
	require.Equal(t, bins.EtcdctlVersion, info.EtcdctlVersion)
	require.Equal(t, v, info.Modules["go.etcd.io/etcd/server/v3"], "the server is the release's own")
	require.Contains(t, info.Failpoints, "raftBeforeSave")
	require.ElementsMatch(t, []string{"etcd", "etcdctl", "etcdutl"}, info.Binaries)

	out, err := exec.CommandContext(ctx, bins.Etcd, "--version").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "etcd Version: "+strings.TrimPrefix(v, "v"))
	out, err = exec.CommandContext(ctx, bins.Etcdctl, "version").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "etcdctl version: "+strings.TrimPrefix(bins.EtcdctlVersion, "v"))
	out, err = exec.CommandContext(ctx, bins.Etcdutl, "version").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "etcdutl version: "+strings.TrimPrefix(v, "v"))
}

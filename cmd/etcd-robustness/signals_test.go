package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

// buildCLI builds the command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "etcd-robustness")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// requireNothingLeft checks that no etcd process runs with a data dir
// under dir, and that dir is empty.
func requireNothingLeft(t *testing.T, dir string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "etcd pid %d survived", pid)
	}
	require.Empty(t, etcdPIDsUnder(t, dir), "etcd processes are left under %s", dir)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "left behind in %s", dir)
}

// exitCode is the command's exit status.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// Output cut short (`failpoints | head -2`, `run 2>&1 | head`) and a
// SIGHUP end a command as an interrupt does: every member is stopped and
// the cluster's directories are removed, in the system temp directory and
// in the results directory alike.
func TestOutputCutShortLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real clusters")
	}
	bins := testetcd.Binaries(t)
	bin := buildCLI(t)
	etcdDir := filepath.Dir(bins.Etcd)

	t.Run("failpoints | head -2", func(t *testing.T) {
		tmp := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "failpoints", "--etcd-bin", etcdDir)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		for i := 0; i < 2 && sc.Scan(); i++ {
		}
		pids := etcdPIDsUnder(t, tmp)
		require.NotEmpty(t, pids, "the cluster whose failpoints are listed is running")
		stdout.Close() // what head does after two lines
		code := exitCode(t, cmd.Wait())
		require.Equal(t, exitInterrupted, code, "a closed output stops the command as an interrupt does")
		requireNothingLeft(t, tmp, pids)
	})

	// started runs a scenario and returns once its traffic runs.
	started := func(t *testing.T, results string) (*exec.Cmd, io.ReadCloser, *bufio.Scanner, []int) {
		cmd := exec.Command(bin, "run", "--scenario", "basic", "--etcd-bin", etcdDir, "--results-dir", results, "--duration", "60s")
		cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
		stderr, err := cmd.StderrPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "traffic started") {
				break
			}
		}
		time.Sleep(time.Second)
		pids := etcdPIDsUnder(t, results)
		require.Len(t, pids, 3, "three members are running")
		return cmd, stderr, sc, pids
	}

	t.Run("run, SIGHUP", func(t *testing.T) {
		results := t.TempDir()
		cmd, _, sc, pids := started(t, results)
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
		go func() {
			for sc.Scan() {
			}
		}()
		require.Equal(t, exitInterrupted, exitCode(t, cmd.Wait()))
		requireNothingLeft(t, results, pids)
	})

	t.Run("run 2>&1 | head", func(t *testing.T) {
		results := t.TempDir()
		cmd, stderr, _, pids := started(t, results)
		// The reader goes away: the next log line the run writes fails.
		require.NoError(t, stderr.Close())
		require.Equal(t, exitInterrupted, exitCode(t, cmd.Wait()))
		requireNothingLeft(t, results, pids)
	})
}

package cluster

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// waitExit waits for the process behind exited to be reaped.
func waitExit(t *testing.T, exited <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the process did not exit within 30s", what)
	}
}

// crashStage runs the crash stage over the cluster's exits.
func crashStage(t *testing.T, exits []history.MemberExit) validate.Result {
	t.Helper()
	r := validate.Crash{}.Validate(context.Background(), &validate.Check{Input: validate.Input{FinalRead: -1, Exits: exits}})
	t.Logf("crash stage: %s: %s", r.Verdict, r.Message)
	return r
}

// TestExitsRecorded: every end of a member's process is recorded, with
// what the harness had in flight. A SIGABRT sent from outside the harness
// ends etcd as a panic would (exit status 2, Go's trace in its log), and
// the crash stage finds it; so does a restart on a data dir etcd refuses.
// The harness's own kill and its stop at Close are not findings.
func TestExitsRecorded(t *testing.T) {
	c := startCluster(t, testConfig(t, 1, etcdBinary(t)))
	t.Cleanup(func() { _ = c.Close() })
	clock := history.NewClock()
	c.SetClock(clock.Now)
	m := c.Members()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The harness's SIGKILL, then a restart.
	killed := m.PID()
	require.NoError(t, m.Kill())
	require.NoError(t, m.Start(ctx))
	require.NoError(t, c.WaitHealthy(ctx))
	put(t, m, "k", "v")

	// A SIGABRT from outside the harness.
	aborted := m.PID()
	exited := m.Exited()
	require.NoError(t, syscall.Kill(aborted, syscall.SIGABRT))
	waitExit(t, exited, "SIGABRT")

	exits := c.Exits()
	require.Len(t, exits, 2, "%+v", exits)
	kill, abort := exits[0], exits[1]
	require.Equal(t, history.MemberExit{Member: "member-0", PID: killed, Started: kill.Started, Time: kill.Time,
		Status: "signal: killed", Cause: "harness: SIGKILL (kill)"}, kill)
	require.Negative(t, kill.Started, "the process started before the run's clock")

	require.Equal(t, "member-0", abort.Member)
	require.Equal(t, aborted, abort.PID)
	require.Equal(t, "exit status 2", abort.Status)
	require.Empty(t, abort.Cause, "the harness did not end it")
	require.False(t, abort.Startup, "it served before it was aborted")
	require.True(t, abort.Exited())
	require.Equal(t, history.ExitSignal, abort.Kind())
	require.Equal(t, "SIGABRT: abort", abort.Log[0])
	require.True(t, slices.ContainsFunc(abort.Log, func(l string) bool { return strings.HasPrefix(l, "goroutine ") }), "Go's trace: %q", abort.Log)
	require.LessOrEqual(t, len(abort.Log), history.MaxTraceLines+1)
	require.Greater(t, abort.Time, kill.Time)
	require.Greater(t, abort.Time, abort.Started)
	require.LessOrEqual(t, abort.Time, clock.Now())

	r := crashStage(t, exits)
	require.Equal(t, validate.Illegal, r.Verdict)
	require.Contains(t, r.Message, "member-0 exited on its own at ")
	require.Contains(t, r.Message, "(exit status 2) while no fault was active: SIGABRT: abort")
	require.Contains(t, r.Explanation, "goroutine ")

	// A data dir etcd refuses: its WAL files overwritten with garbage.
	wals, err := filepath.Glob(filepath.Join(m.DataDir(), "member", "wal", "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, wals)
	for _, w := range wals {
		f, err := os.OpenFile(w, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte(strings.Repeat("garbage!", 512)), 0)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	require.NoError(t, m.Start(ctx))
	exited = m.Exited()
	waitExit(t, exited, "start on a corrupt WAL")
	exits = c.Exits()
	require.Len(t, exits, 3)
	refused := exits[2]
	require.True(t, refused.Startup, "it never served: %+v", refused)
	require.Empty(t, refused.Cause)
	require.NotEqual(t, "exit status 0", refused.Status)
	t.Logf("refused: %s: %q", refused.Status, refused.Log)
	r = crashStage(t, exits[2:])
	require.Equal(t, validate.Illegal, r.Verdict)
	require.Contains(t, r.Message, "member-0 could not start")
	require.Equal(t, validate.Illegal, r.Checks[2].Verdict, "the starts check: %s", r.Checks[2].Message)
}

// TestExitsByTheHarness: a gofail panic ends the member with status 2 and
// its log names the point; the harness's stop and Close are the harness's.
// The crash stage accounts for the panic only with the fault's
// declaration.
func TestExitsByTheHarness(t *testing.T) {
	c := startCluster(t, testConfig(t, 1, etcdBinary(t)))
	t.Cleanup(func() { _ = c.Close() })
	clock := history.NewClock()
	c.SetClock(clock.Now)
	m := c.Members()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A stop and a start, as a restart with new flags does.
	stopped := m.PID()
	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Start(ctx))
	require.NoError(t, c.WaitHealthy(ctx))

	// A gofail panic.
	armedAt := clock.Now()
	panicked := m.PID()
	gofailPut(t, m, "beforeCommit", "panic")
	exited := m.Exited()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	_, _ = client(t, m).Put(pctx, "trigger", "commit") // may fail: the commit panics
	pcancel()
	waitExit(t, exited, "beforeCommit=panic")
	require.NoError(t, m.Start(ctx))
	require.NoError(t, c.WaitHealthy(ctx))
	last := m.PID()
	require.NoError(t, c.Close())

	exits := c.Exits()
	require.Len(t, exits, 3, "%+v", exits)
	require.Equal(t, stopped, exits[0].PID)
	require.Equal(t, "harness: SIGTERM (stop)", exits[0].Cause)
	require.Equal(t, panicked, exits[1].PID)
	require.Equal(t, "exit status 2", exits[1].Status)
	require.Empty(t, exits[1].Cause)
	// gofail's panic action: "failpoint panic: " and the point's value, {}.
	require.Equal(t, "panic: failpoint panic: {}", exits[1].Log[0])
	require.Contains(t, strings.Join(exits[1].Log, "\n"), "go.etcd.io/gofail/runtime.actPanic")
	require.Equal(t, last, exits[2].PID)
	require.Equal(t, "harness: SIGTERM (close)", exits[2].Cause)

	r := crashStage(t, exits)
	require.Equal(t, validate.Illegal, r.Verdict, "a panic no fault declares")
	decl := history.Injection{Name: "beforeCommit:panic", Targets: []string{"member-0"}, Start: armedAt, End: exits[1].Time + time.Second,
		Explains: []history.ExitExplained{{Member: "member-0", PID: panicked, Kinds: []history.ExitKind{history.ExitPanic, history.ExitFatal},
			LogContains: []string{"failpoint panic"}, From: armedAt, Why: "gofail panic at beforeCommit"}}}
	r = validate.Crash{}.Validate(ctx, &validate.Check{Input: validate.Input{FinalRead: -1, Exits: exits, Injections: []history.Injection{decl}}})
	require.Equal(t, validate.OK, r.Verdict, r.Message)
	require.Equal(t, 3, r.Checked)
}

// gofailPut arms a gofail point on m.
func gofailPut(t *testing.T, m *Member, point, action string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, m.GofailURL()+"/"+point, strings.NewReader(action))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "gofail PUT status")
}

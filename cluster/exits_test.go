package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

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

// fakeMember is a member whose process pid "runs" (no process: the test
// writes its log and calls what wait would).
func fakeMember(t *testing.T, pid int) *Member {
	t.Helper()
	dir := t.TempDir()
	m := &Member{name: "member-0", dir: dir, logPath: filepath.Join(dir, "etcd.log"), lg: zap.NewNop(),
		clock: &runClock{origin: time.Now()}, running: true, pid: pid, startedAt: time.Now()}
	return m
}

func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString(strings.Join(lines, ""))
	require.NoError(t, err)
}

// TestExitRecordsFromLogs: what the records take from a member's log, without etcd.
func TestExitRecordsFromLogs(t *testing.T) {
	ts := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	info := `{"level":"info","ts":"` + ts + `","msg":"x"}` + "\n"
	ready := `{"level":"info","ts":"` + ts + `","caller":"embed/serve.go:139","msg":"ready to serve client requests"}` + "\n"
	fatal := `{"level":"fatal","ts":"` + ts + `","msg":"failed to apply"}`
	trace := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "trace line %d\n\n", i)
		}
		return b.String()
	}

	t.Run("a fatal line logged while running, then a panic that ends it", func(t *testing.T) {
		m := fakeMember(t, 42)
		appendTo(t, m.logPath, "=== start ===\n", info, ready, fatal+"\n", trace(50), info, `{"level":"panic","ts":"`)
		m.ScanLog()
		exits := m.Exits()
		require.Len(t, exits, 1)
		logged := exits[0]
		require.False(t, logged.Exited())
		require.Equal(t, fatal, logged.Log[0])
		require.Len(t, logged.Log, history.MaxTraceLines+1, "the line and its trace, bounded, blank lines left out")
		require.Equal(t, "trace line 0", logged.Log[1])
		require.InDelta(t, -time.Second.Seconds(), logged.Time.Seconds(), 0.2, "at its zap timestamp")

		// The partial line was left for later; the exit reads it.
		appendTo(t, m.logPath, `","msg":"boom"}`+"\n", "panic: boom\n", "goroutine 7 [running]:\n")
		m.recordExit(42, time.Now(), "exit status 2")
		exits = m.Exits()
		require.Len(t, exits, 2)
		exit := exits[1]
		require.Equal(t, "exit status 2", exit.Status)
		require.Empty(t, exit.Cause)
		require.False(t, exit.Startup, "it logged that it serves")
		require.Equal(t, []string{`{"level":"panic","ts":"","msg":"boom"}`, "panic: boom", "goroutine 7 [running]:"}, exit.Log)
		require.Equal(t, history.ExitPanic, exit.Kind())
	})

	t.Run("a panic read just before the process ended of it", func(t *testing.T) {
		m := fakeMember(t, 43)
		appendTo(t, m.logPath, ready, "panic: runtime error: index out of range\n", "goroutine 9 [running]:\n")
		m.ScanLog()
		require.Len(t, m.Exits(), 1)
		m.recordExit(43, time.Now(), "exit status 2")
		exits := m.Exits()
		require.Len(t, exits, 1, "the logged panic is the exit's")
		require.True(t, exits[0].Exited())
		require.Equal(t, "panic: runtime error: index out of range", exits[0].Log[0])
	})

	t.Run("the harness's SIGTERM, and lines logged before it", func(t *testing.T) {
		m := fakeMember(t, 44)
		appendTo(t, m.logPath, ready, fatal+"\n")
		m.ScanLog() // as Stop does before it signals
		m.setCause(44, "harness: SIGTERM (stop)")
		appendTo(t, m.logPath, info)
		m.recordExit(44, time.Now(), "signal: terminated")
		exits := m.Exits()
		require.Len(t, exits, 2)
		require.False(t, exits[0].Exited(), "the fatal line came before the harness's signal")
		require.Equal(t, "harness: SIGTERM (stop)", exits[1].Cause)
		require.Empty(t, exits[1].Log, "a harness exit without a crash line quotes nothing")
	})

	t.Run("a process that ended on its own before it served", func(t *testing.T) {
		m := fakeMember(t, 45)
		appendTo(t, m.logPath, info, "Error: unknown flag\n")
		m.recordExit(45, time.Now(), "exit status 1")
		exits := m.Exits()
		require.Len(t, exits, 1)
		require.True(t, exits[0].Startup)
		require.Equal(t, history.ExitPlain, exits[0].Kind())
		require.Equal(t, []string{strings.TrimSpace(info), "Error: unknown flag"}, exits[0].Log, "its last lines")
	})
}

package history

import (
	"regexp"
	"strings"
	"time"
)

// MemberExit is one end of a member's etcd process during a run, or a
// panic or fatal line a member logged while it kept running, as the harness
// saw it. The crash stage decides whether the harness caused it or an
// injected fault explains it (see ExitExplained).
type MemberExit struct {
	// Member is the member's name (as in Injection.Targets).
	Member string `json:"member"`
	// PID is the process's.
	PID int `json:"pid,omitempty"`
	// Started is when the process started, on the run's clock (negative
	// for a process started before the run's clock did).
	Started time.Duration `json:"started"`
	// Time is when the harness saw the process end, or when the line was
	// logged (its zap timestamp; else when the harness read it), on the
	// run's clock.
	Time time.Duration `json:"time"`
	// Status is the process's exit status as exec reports it ("exit
	// status 2", "signal: killed"); empty for a line logged by a member
	// that did not exit.
	Status string `json:"status,omitempty"`
	// Cause is what the harness did to end the process ("harness: SIGKILL
	// (kill)", "harness: SIGTERM (stop)", ...), when the process ended
	// while that was in flight; empty when the process ended on its own,
	// and for a logged line.
	Cause string `json:"cause,omitempty"`
	// Startup is set when the process ended before it ever served (the
	// harness never saw it answer): it could not start.
	Startup bool `json:"startup,omitempty"`
	// Log holds the member's log lines that explain the exit: the first
	// panic or fatal line the process logged (see CrashLine) and up to
	// MaxTraceLines non-blank lines after it. When the process ended on its
	// own without such a line, its last lines instead.
	Log []string `json:"log,omitempty"`
}

// Exited reports whether the record is an end of the process (not a line
// logged by a member that kept running).
func (e MemberExit) Exited() bool { return e.Status != "" }

// ByHarness reports whether the harness ended the process.
func (e MemberExit) ByHarness() bool { return e.Cause != "" }

// MaxTraceLines bounds the lines kept after the first panic or fatal line.
const MaxTraceLines = 40

// ExitKind is what a record shows: how a process ended, or what it logged.
type ExitKind string

// The kinds of exit, from the record's first log line and its status.
const (
	// ExitPanic: a Go panic ("panic: ...") or a zap line at level panic or
	// dpanic.
	ExitPanic ExitKind = "panic"
	// ExitFatal: a zap line at level fatal, or a Go fatal error ("fatal
	// error: ...").
	ExitFatal ExitKind = "fatal"
	// ExitSignal: the Go runtime's dump for a fatal signal ("SIGABRT:
	// abort"), or a process killed by a signal ("signal: killed").
	ExitSignal ExitKind = "signal"
	// ExitPlain: the process ended with no such line or signal.
	ExitPlain ExitKind = "exit"
)

// Kind is what the record shows: the kind of its first log line if that is
// a crash line, else a signal if its status is one, else a plain exit.
func (e MemberExit) Kind() ExitKind {
	for _, l := range e.Log {
		if k, ok := CrashLine(l); ok {
			return k
		}
	}
	if strings.HasPrefix(e.Status, "signal: ") {
		return ExitSignal
	}
	return ExitPlain
}

// FirstCrashLine is the record's first panic or fatal line; "" if it has
// none.
func (e MemberExit) FirstCrashLine() string {
	for _, l := range e.Log {
		if _, ok := CrashLine(l); ok {
			return l
		}
	}
	return ""
}

var (
	// goSignal is the first line of the Go runtime's dump for a fatal
	// signal: "SIGABRT: abort", "SIGSEGV: segmentation violation".
	goSignal = regexp.MustCompile(`^SIG[A-Z0-9]+: [a-z]`)
	// zapLevel finds a zap JSON line's level, which etcd writes first.
	zapLevel = regexp.MustCompile(`^\{"level":"([a-zA-Z]+)"`)
)

// CrashLine reports whether a line of an etcd log says the process
// panicked or died: a zap JSON line (etcd's own log) at level panic, dpanic
// or fatal; or a line the Go runtime prints when it crashes: "panic: ...",
// "fatal error: ...", or a fatal signal's "SIGABRT: abort" and the like.
// Lines the runtime prints for a panic recovered by the program (net/http's
// "http: panic serving") are not crash lines.
func CrashLine(line string) (ExitKind, bool) {
	switch {
	case strings.HasPrefix(line, "panic: "):
		return ExitPanic, true
	case strings.HasPrefix(line, "fatal error: "):
		return ExitFatal, true
	case goSignal.MatchString(line):
		return ExitSignal, true
	case strings.HasPrefix(line, `{"level":"`):
		m := zapLevel.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		switch strings.ToLower(m[1]) {
		case "panic", "dpanic":
			return ExitPanic, true
		case "fatal":
			return ExitFatal, true
		}
	}
	return "", false
}

// ExitExplained is what a fault declares it accounts for: the ends of one
// member's process, and the panic or fatal lines it logs, of the given
// kinds, within a window of the run. The crash stage takes any other exit
// or line that the harness did not cause for a bug in etcd.
type ExitExplained struct {
	// Member is the member the fault acted on.
	Member string `json:"member"`
	// PID, when set, is the one process of the member the declaration is
	// for. A process ends once, so its end is accounted for whenever it
	// comes after From (a panic in etcd's watch sender ends the process
	// only once its stream closes); Until bounds only declarations without
	// a PID.
	PID int `json:"pid,omitempty"`
	// Kinds are the kinds of record the fault accounts for.
	Kinds []ExitKind `json:"kinds"`
	// LogContains, when set, are texts the record's log lines must all
	// contain (a gofail panic says "failpoint panic").
	LogContains []string `json:"log_contains,omitempty"`
	// From and Until bound the window, on the run's clock; the crash
	// stage allows a small grace after Until. A zero Until means the end of
	// the injection.
	From  time.Duration `json:"from"`
	Until time.Duration `json:"until"`
	// Why says what the fault did that accounts for it, for the report.
	Why string `json:"why"`
	// Startup, when set, makes the declaration account also for a
	// process that ended before it ever served (MemberExit.Startup): a
	// start the fault expects etcd may refuse, such as a member restarted
	// on data its disk lost acknowledged bytes of. Without it, a start
	// that never serves is always a finding.
	Startup bool `json:"startup,omitempty"`
}

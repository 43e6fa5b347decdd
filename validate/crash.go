package validate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Bounds of the crash stage.
const (
	// ExitGrace is how long after the end of a declaration's window (see
	// history.ExitExplained) the fault still accounts for an exit: the
	// harness notes an exit once it has reaped the process, and a line
	// read without a timestamp once it has read it.
	ExitGrace = 2 * time.Second
	// exitClockSlack allows a zap timestamp, put on the run's clock, to
	// come a moment before the declaration it belongs to.
	exitClockSlack = 100 * time.Millisecond
	// maxMessageLine bounds the log line quoted in a one-line message.
	maxMessageLine = 200
)

// Crash checks that etcd did not crash: every etcd process that ended during
// the run, and every panic or fatal line a member logged, is accounted for
// by the harness or by a fault (Input.Exits, as cluster.Member records
// them; Input.Injections' declarations).
//
// A record is one end of a member's process (its time, exit status and the
// log lines that explain it) or a panic or fatal line the member logged
// while it kept running (see history.CrashLine for which lines are). Its
// kind is that of its first crash line, else a signal if the process was
// killed by one, else a plain exit (history.MemberExit.Kind). A record is
// accounted for when either
//
//  1. the harness caused it: the process ended while the harness's
//     SIGKILL or SIGTERM was in flight (Kill, Stop, Close, a restart;
//     MemberExit.Cause); or
//  2. an injection declares it (history.ExitExplained): same member, same
//     process when the declaration names one, a kind the declaration
//     lists, every text the declaration requires in the record's lines,
//     at or after the declaration's From, and, for a declaration without
//     a process, at most ExitGrace after its Until (the injection's End
//     when zero); and the process had served before it ended; or
//  3. it is a Go runtime panic the process printed as it ended, within
//     dyingBurst of its end, beside a panic a declaration accounts for
//     (accountedBy: other goroutines panic while the declared one ends
//     the process).
//
// Anything else is a bug in etcd, and the verdict is Illegal. Three named
// checks say which:
//
//   - exits: no process that had served ended on its own unaccounted for
//     (a panic, a fatal error, a signal the harness did not send, or an
//     exit of any status);
//   - logged: no member logged a panic or fatal line unaccounted for while
//     it kept running;
//   - starts: every process the harness started served before it ended,
//     or the harness ended it: a process that ended on its own before it
//     ever served is a member that could not start (a restart after a
//     fault that fails, a data dir that etcd refuses). Only a declaration
//     that says so (ExitExplained.Startup: a fault that restarts the
//     member on data its disk lost) accounts for it. One whose log says its port was taken by another
//     process ("address already in use") is the harness's problem, and
//     makes the check Inconclusive instead.
//
// The stage counts member processes: each process that has a record, and
// each member the record names elsewhere (end states, WALs) without one.
// With no record at all the verdict is OK: the harness watched every
// process, and none ended or logged a crash line outside what it did.
type Crash struct{}

// Name implements Validator.
func (Crash) Name() string { return "crash" }

// Validate implements Validator.
func (Crash) Validate(_ context.Context, c *Check) Result {
	exits := c.Exits
	procs := countProcesses(c.Input)
	var nExits, nLogged, nHarness, nDeclared, nStarts int
	var exitFindings, loggedFindings, startFindings, portTaken []history.MemberExit
	for _, e := range exits {
		if e.Exited() {
			nExits++
		} else {
			nLogged++
		}
		if e.Exited() {
			nStarts++ // one end per process
		}
		switch {
		case e.ByHarness():
			nHarness++
			continue
		case accountedBy(e, exits, c.Injections) != nil:
			nDeclared++
			continue
		}
		switch {
		case !e.Exited():
			loggedFindings = append(loggedFindings, e)
		case e.Startup && portWasTaken(e):
			portTaken = append(portTaken, e)
		case e.Startup:
			startFindings = append(startFindings, e)
		default:
			exitFindings = append(exitFindings, e)
		}
	}

	checks := []NamedCheck{
		crashCheck("exits", nExits, exitFindings, "no process that had served ended on its own outside what the harness did and the faults declare", nil),
		// Every member process's log is read for such lines: the check
		// reads them all, whether or not any has one.
		crashCheck("logged", procs, loggedFindings, "no member logged a panic or fatal line while it kept running, outside what the faults declare", nil),
		crashCheck("starts", nStarts, startFindings, "every process that ended had served first, or the harness ended it", portTaken),
	}
	summary := fmt.Sprintf("%d member processes watched; %d exits (%d by the harness, %d declared by a fault) and %d panic or fatal lines logged while running",
		procs, nExits, nHarness, nDeclared, nLogged)
	r := Result{Checked: procs, CheckedWhat: "member processes", Checks: checks}

	findings := slices.Concat(exitFindings, loggedFindings, startFindings)
	slices.SortStableFunc(findings, func(a, b history.MemberExit) int { return cmp.Compare(a.Time, b.Time) })
	if len(findings) > 0 {
		r.Verdict = Illegal
		r.Message = DescribeExit(findings[0]) + during(findings[0], c.Injections)
		if l := findings[0].FirstCrashLine(); l != "" {
			r.Message += ": " + clip(l, maxMessageLine)
		}
		if len(findings) > 1 {
			r.Message += fmt.Sprintf("; and %d more", len(findings)-1)
		}
		r.Message += " (" + summary + ")"
		var parts []string
		for _, e := range findings {
			parts = append(parts, explainExit(e, c.Injections))
		}
		r.Explanation = "etcd crashed: a member's process ended, or logged a panic or fatal line, when neither the harness nor a fault accounts for it. " +
			"That is a bug in etcd, whatever the other stages say.\n\n" + strings.Join(parts, "\n\n")
		return r
	}
	if len(portTaken) > 0 {
		r.Verdict = Inconclusive
		r.Message = DescribeExit(portTaken[0]) + ": its port was taken by another process, which is the harness's problem, not etcd's (" + summary + ")"
		r.Explanation = explainExit(portTaken[0], c.Injections)
		return r
	}
	r.Verdict = OK
	r.Message = "no member exited or logged a panic outside what the harness did (" + summary + ")"
	if procs == 0 {
		r.Message = "nothing to check: the record names no member process; " + r.Message
	}
	return r
}

// crashCheck is one named check of the stage.
func crashCheck(name string, checked int, findings []history.MemberExit, ok string, inconclusive []history.MemberExit) NamedCheck {
	nc := NamedCheck{Name: name, Verdict: OK, Checked: checked, Message: ok}
	switch {
	case len(findings) > 0:
		nc.Verdict = Illegal
		nc.Message = DescribeExit(findings[0])
		if len(findings) > 1 {
			nc.Message += fmt.Sprintf("; and %d more", len(findings)-1)
		}
	case len(inconclusive) > 0:
		nc.Verdict = Inconclusive
		nc.Message = DescribeExit(inconclusive[0]) + ": its port was taken"
	case checked == 0:
		nc.Message = "nothing to check: " + map[string]string{
			"exits":  "no process ended",
			"logged": "no member logged a panic or fatal line while it kept running",
			"starts": "no process ended",
		}[name]
	}
	return nc
}

// countProcesses counts the member processes the record covers: each
// process with a record, and each member named in the end states or WALs
// without one.
func countProcesses(in Input) int {
	type proc struct {
		member string
		pid    int
	}
	seen := map[proc]bool{}
	members := map[string]bool{}
	for _, e := range in.Exits {
		seen[proc{e.Member, e.PID}] = true
		members[e.Member] = true
	}
	n := len(seen)
	add := func(name string) {
		if name != "" && !members[name] {
			members[name] = true
			n++
		}
	}
	for _, s := range in.EndStates {
		add(s.Member)
	}
	if in.Persisted != nil {
		for _, m := range in.Persisted.Members {
			add(m.Member)
		}
	}
	return n
}

// Unexplained are the records of exits (and logged panic or fatal lines)
// that the harness did not cause and no injection declares: the crash
// stage's findings, the port-taken ones included. The run uses it to say
// why a fault could not be injected.
func Unexplained(exits []history.MemberExit, injections []history.Injection) []history.MemberExit {
	var out []history.MemberExit
	for _, e := range exits {
		if !e.ByHarness() && accountedBy(e, exits, injections) == nil {
			out = append(out, e)
		}
	}
	return out
}

// declared pairs a declaration with its injection.
type declared struct {
	inj *history.Injection
	d   *history.ExitExplained
}

// dyingBurst bounds how far from a process's end a Go runtime crash line
// it logged counts as printed while it was ending (see accountedBy): the
// harness notes the exit once it reaped the process, and gives a line
// without a timestamp the time it read it.
const dyingBurst = time.Second

// accountedBy is the declaration that accounts for e (declaredBy), or for
// the panic of e's process that e came with: when a fault's declared panic
// ends a process, Go lets every goroutine that panics meanwhile print its
// panic before the process exits, and the exit status is the last one's.
// A panic unwinding runs its deferred unlocks, so other goroutines meet the
// half-done state it left: etcd v3.5.6's defrag, panicking at
// defragBeforeCopy, lets an apply reach a nil bbolt transaction
// ("invalid memory address" in (*Tx).Bucket) before the process is gone.
// So a record of a process that ended on its own, whose first crash line is
// the Go runtime's ("panic: ", "fatal error: "), within dyingBurst of the
// process's end, is accounted for by a declaration that accounts for a
// panic record of the same process. etcd's own panic and fatal lines (zap
// lines) are not: those are its assertions, judged on their own.
func accountedBy(e history.MemberExit, exits []history.MemberExit, injections []history.Injection) *declared {
	if d := declaredBy(e, injections); d != nil {
		return d
	}
	if !runtimeCrash(e.FirstCrashLine()) {
		return nil
	}
	var end *history.MemberExit
	for i := range exits {
		if x := &exits[i]; x.Member == e.Member && x.PID == e.PID && x.Exited() && !x.ByHarness() {
			end = x
		}
	}
	if end == nil || e.Time < end.Time-dyingBurst || e.Time > end.Time+dyingBurst {
		return nil
	}
	for _, x := range exits {
		if x.Member != e.Member || x.PID != e.PID || x.Kind() != history.ExitPanic || !runtimeCrash(x.FirstCrashLine()) {
			continue
		}
		if d := declaredBy(x, injections); d != nil && slices.Contains(d.d.Kinds, history.ExitPanic) {
			return d
		}
	}
	return nil
}

// runtimeCrash reports whether line is the Go runtime's own first line of
// an unrecovered panic or a fatal error.
func runtimeCrash(line string) bool {
	return strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")
}

// declaredBy is the first declaration that accounts for e, or nil.
func declaredBy(e history.MemberExit, injections []history.Injection) *declared {
	kind := e.Kind()
	lines := strings.Join(e.Log, "\n")
	for i := range injections {
		inj := &injections[i]
		for j := range inj.Explains {
			d := &inj.Explains[j]
			if d.Member != e.Member || (d.PID != 0 && d.PID != e.PID) || !slices.Contains(d.Kinds, kind) || (e.Startup && !d.Startup) {
				continue
			}
			if slices.ContainsFunc(d.LogContains, func(s string) bool { return !strings.Contains(lines, s) }) {
				continue
			}
			if e.Time < d.From-exitClockSlack {
				continue
			}
			until := d.Until
			if until == 0 {
				until = inj.End
			}
			if d.PID == 0 && e.Time > until+ExitGrace {
				continue
			}
			return &declared{inj, d}
		}
	}
	return nil
}

// DescribeExit says in a few words what a record is: "member-2 exited on
// its own at 9.1s (exit status 2)".
func DescribeExit(e history.MemberExit) string {
	who := e.Member
	switch {
	case !e.Exited():
		return fmt.Sprintf("%s logged a %s line at %s and kept running", who, e.Kind(), secs(e.Time))
	case e.ByHarness():
		return fmt.Sprintf("%s exited at %s (%s) by the harness's %s", who, secs(e.Time), e.Status, strings.TrimPrefix(e.Cause, "harness: "))
	case e.Startup:
		return fmt.Sprintf("%s could not start: its process, started at %s, exited on its own at %s (%s) before it ever served",
			who, secs(e.Started), secs(e.Time), e.Status)
	}
	return fmt.Sprintf("%s exited on its own at %s (%s)", who, secs(e.Time), e.Status)
}

// during says which faults were active when e happened, to follow
// DescribeExit (with the space or comma it needs).
func during(e history.MemberExit, injections []history.Injection) string {
	sep := " "
	if e.Startup {
		sep = ", "
	}
	return sep + activeFaults(e, injections)
}

func activeFaults(e history.MemberExit, injections []history.Injection) string {
	var active, after []string
	for _, inj := range injections {
		switch {
		case e.Time >= inj.Start && e.Time <= inj.End:
			active = append(active, fmt.Sprintf("%s (%s to %s)", inj.Name, secs(inj.Start), secs(inj.End)))
		case e.Time > inj.End && e.Time <= inj.End+ExitGrace:
			after = append(after, fmt.Sprintf("%s (%s to %s)", inj.Name, secs(inj.Start), secs(inj.End)))
		}
	}
	switch {
	case len(active) > 0:
		return "during fault " + strings.Join(active, " and ") + ", which does not account for it"
	case len(after) > 0:
		return "just after fault " + strings.Join(after, " and ") + ", which does not account for it"
	}
	return "while no fault was active"
}

// explainExit explains one record to a person: who, when, which process,
// what it showed, during which faults, and its log lines.
func explainExit(e history.MemberExit, injections []history.Injection) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s.", DescribeExit(e), during(e, injections))
	if e.PID != 0 {
		fmt.Fprintf(&b, " The process was pid %d, started at %s.", e.PID, secs(e.Started))
	}
	switch k := e.Kind(); k {
	case history.ExitPlain:
		if e.Exited() {
			b.WriteString(" It logged no panic or fatal line.")
		}
	default:
		fmt.Fprintf(&b, " It shows a %s.", k)
	}
	var decls []string
	for _, inj := range injections {
		for _, d := range inj.Explains {
			if d.Member == e.Member {
				decls = append(decls, fmt.Sprintf("%s declares %s of %s from %s (%s)", inj.Name, kindsOf(d.Kinds), d.Member, secs(d.From), d.Why))
			}
		}
	}
	if len(decls) > 0 {
		b.WriteString(" Faults on this member: " + strings.Join(decls, "; ") + "; none covers this record.")
	}
	if len(e.Log) > 0 {
		what := "Its log, from its first panic or fatal line"
		if e.FirstCrashLine() == "" {
			what = "Its last log lines"
		}
		fmt.Fprintf(&b, "\n%s:\n    %s", what, strings.Join(e.Log, "\n    "))
	}
	return b.String()
}

func kindsOf(ks []history.ExitKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, "/") + " ends"
}

// portWasTaken reports whether a process that could not start says its
// listen port was in use.
func portWasTaken(e history.MemberExit) bool {
	return slices.ContainsFunc(e.Log, func(l string) bool { return strings.Contains(l, "address already in use") })
}

// secs formats a run-clock time in seconds, to a tenth.
func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

package validate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// Bounds of the recovery stage, measured from each fault's End (when the
// harness had healed it and seen every member serve a linearizable read
// again). They were chosen from real 3-member runs on v3.7.3 at 200
// requests/s from 6 clients (kill, pause-leader, blackhole-member,
// isolate-leader, seed 11): there the first write sent after End
// succeeded within 10 ms, and the first 1 s window after End already held
// the rate before the fault. Each bound leaves room for gRPC's reconnect
// backoff (capped at 1 s by the client) and for a machine busy with other
// clusters.
const (
	// RecoveryWriteBound: a write sent after End succeeds within it.
	RecoveryWriteBound = 2 * time.Second
	// RecoveryThroughputBound: a 1 s window that starts within it after
	// End holds at least half the successful operations per second of the
	// baseline window before the fault.
	RecoveryThroughputBound = 2 * time.Second
	// RecoveryWatchBound: every watcher shows it caught up to the last
	// revision written before End within it after End. Watchers ask for
	// progress every 500 ms, and members notify progress every 500 ms.
	RecoveryWatchBound = 3 * time.Second
	// watchSyncRevisions and watchSyncInterval are how fast etcd brings an
	// unsynced watch up to date: its watchable store reads at most 1,000
	// revisions (watchBatchMaxRevs) for its unsynced watchers every 100 ms
	// (syncWatchers' loop). A watcher that must catch up a backlog of B
	// revisions gets B/1000 × 100 ms more than RecoveryWatchBound.
	watchSyncRevisions = 1000
	watchSyncInterval  = 100 * time.Millisecond
	// watchResumeSlack is the harness's own delay before a broken watch is
	// opened again (traffic's maxResumeBackoff): a watcher one of whose
	// streams broke during the fault gets it too.
	watchResumeSlack = time.Second
	// recoveryBaseline is the longest baseline window before a fault;
	// shorter (down to recoveryMinBaseline) when the fault comes early or
	// right after another one.
	recoveryBaseline    = 2 * time.Second
	recoveryMinBaseline = time.Second
	// recoveryMinOps is the fewest successful operations in the baseline
	// window for a throughput comparison to mean anything.
	recoveryMinOps = 10
	recoveryStep   = 100 * time.Millisecond
	// recoveryMinWindow is the shortest window throughput is measured
	// over, when the traffic ends less than 1 s after a point.
	recoveryMinWindow = 500 * time.Millisecond
)

// RecoveryWindow is how long after a fault heals the recovery stage reads
// the traffic: its longest bound, the throughput's counted with its 1 s
// window. A run gives each fault this long before the next one starts,
// and before the traffic stops, so that the stage can judge it.
const RecoveryWindow = max(RecoveryWriteBound, RecoveryThroughputBound+time.Second, RecoveryWatchBound)

// Recovery checks that the cluster recovers from each fault it was given.
// For each injection that took effect and healed (End, the moment the
// harness had healed the fault and seen every member serve a
// linearizable read), three parts:
//
//  1. writes: a write (Put, DeleteRange or Txn) sent at End or later
//     succeeds and returns within RecoveryWriteBound of End;
//  2. throughput: let the baseline be the successful operations per
//     second returned in the window before the fault's Start (up to 2 s,
//     at least 1 s, after the previous fault's End); some 1 s window
//     [t, t+1s) with End <= t <= End+RecoveryThroughputBound holds at
//     least half as many per second (a window the traffic's end or the
//     next fault cuts short counts if it is at least 500 ms long: the
//     runner keeps traffic going only 1 s after the last fault); for a
//     fault that records steps spanning time (history.FaultStep.Begin: a
//     downgrade's member swaps), each step is judged so instead, against
//     the traffic in the 2 s before that step (recoverThroughputSteps);
//  3. watches: every watcher (the streams of one watch client, resumed
//     ones included) that was watching at End, or started to before
//     End+RecoveryWatchBound, shows by then that it has caught up to R, the highest revision a
//     write had returned before End: it received a progress notification
//     at revision R or later (etcd sends one only to a stream whose
//     watchers are all synced), an event at revision R or later, or, when
//     the replayed log's events are known (Check.Events), the last event
//     at or below R that its watch selects. A watcher that must catch up
//     a backlog (R minus the highest revision it had shown before the
//     fault's Start) gets etcd's own sync time for it on top
//     (watchSyncRevisions per watchSyncInterval), and one whose stream
//     broke during the fault the harness's resume delay (watchResumeSlack).
//
// A part is Illegal when the bound passed with the traffic still running
// and no evidence came; Inconclusive when there is too little data (the
// traffic ended, or the next fault began, before the bound; too few
// operations before the fault; a watcher that stopped before the bound,
// or whose streams gave no way to show it caught up). Operations of the final read are left out; the
// fault triggers' requests are counted. Faults that did not take effect
// or did not heal are not checked here (the run is inconclusive for them
// already).
type Recovery struct{}

// Name implements Validator.
func (Recovery) Name() string { return "recovery" }

type partVerdict struct {
	verdict     Verdict
	msg         string
	explanation string
}

// Validate implements Validator.
func (Recovery) Validate(_ context.Context, c *Check) Result {
	var ops []history.Operation
	var firstCall, lastCall time.Duration = -1, 0
	for _, cl := range c.Clients {
		if cl.ID == c.FinalRead {
			continue
		}
		for _, op := range cl.Operations {
			ops = append(ops, op)
			if firstCall < 0 || op.Call < firstCall {
				firstCall = op.Call
			}
			lastCall = max(lastCall, op.Call)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Return < ops[j].Return })
	var injs []history.Injection
	for _, inj := range c.Injections {
		if inj.Error == "" && inj.Effect > 0 && inj.End > 0 {
			injs = append(injs, inj)
		}
	}
	if len(injs) == 0 {
		return Result{Verdict: Inconclusive, Message: "no fault took effect and healed, so recovery was not checked"}
	}
	if len(ops) == 0 {
		return Result{Verdict: Inconclusive, Message: "no operation was recorded, so recovery was not checked"}
	}
	sort.Slice(injs, func(i, j int) bool { return injs[i].Start < injs[j].Start })
	worst := OK
	var msgs []string
	var explanations []string
	for i, inj := range injs {
		prevEnd := time.Duration(0)
		if i > 0 {
			prevEnd = injs[i-1].End
		}
		limit := lastCall // the traffic's end, or the next fault's start
		if i+1 < len(injs) {
			limit = min(limit, injs[i+1].Start)
		}
		throughput := recoverThroughput(ops, inj, max(prevEnd, firstCall), limit, faultTerms)
		if sp := spans(inj); len(sp) > 0 {
			throughput = recoverThroughputSteps(ops, sp, max(prevEnd, firstCall), limit)
		}
		parts := []partVerdict{
			recoverWrites(ops, inj, limit),
			throughput,
			recoverWatches(c, ops, inj),
		}
		var pm []string
		for _, p := range parts {
			pm = append(pm, p.msg)
			worst = worse(worst, p.verdict)
			if p.explanation != "" {
				explanations = append(explanations, fmt.Sprintf("After %s (%s, took effect at %v, healed and recovered by %v): %s",
					inj.Name, targets(inj), inj.Effect.Round(time.Millisecond), inj.End.Round(time.Millisecond), p.explanation))
			}
		}
		msgs = append(msgs, fmt.Sprintf("after %s (healed by %v): %s", inj.Name, inj.End.Round(time.Millisecond), strings.Join(pm, "; ")))
	}
	r := Result{Verdict: worst, Message: strings.Join(msgs, ". "), Checked: len(injs), CheckedWhat: "healed faults"}
	if worst == Illegal {
		r.Explanation = strings.Join(explanations, " ")
	}
	return r
}

// worse is the worse of two verdicts: Illegal, then Inconclusive, then OK.
func worse(a, b Verdict) Verdict {
	rank := map[Verdict]int{OK: 0, Inconclusive: 1, TimedOut: 1, Illegal: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func targets(inj history.Injection) string {
	if len(inj.Targets) == 0 {
		return "no named target"
	}
	return strings.Join(inj.Targets, ", ")
}

func isWrite(r history.Request) bool { return r.Put != nil || r.DeleteRange != nil || r.Txn != nil }

// recoverWrites is part 1.
func recoverWrites(ops []history.Operation, inj history.Injection, limit time.Duration) partVerdict {
	deadline := inj.End + RecoveryWriteBound
	var first *history.Operation
	attempts, failed := 0, 0
	var lastErr string
	for i := range ops {
		op := &ops[i]
		if !isWrite(op.Request) || op.Call < inj.End {
			continue
		}
		if op.Call <= deadline {
			attempts++
		}
		if op.Error == nil {
			if first == nil || op.Return < first.Return {
				first = op
			}
		} else if op.Return <= deadline {
			failed++
			lastErr = op.Error.Error()
		}
	}
	switch {
	case first != nil && first.Return <= deadline:
		return partVerdict{verdict: OK, msg: fmt.Sprintf("a write sent after it succeeded %v later", (first.Return - inj.End).Round(time.Millisecond))}
	case first == nil && attempts == 0 && limit >= deadline:
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("writes not checked: no write was sent in the %v after it", RecoveryWriteBound)}
	case limit < deadline:
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("writes not checked: the traffic ended or the next fault began %v after it, before the %v bound passed with no write succeeding",
			(limit - inj.End).Round(time.Millisecond), RecoveryWriteBound)}
	}
	what := fmt.Sprintf("no write succeeded within %v: %d writes were sent in that time, %d failed", RecoveryWriteBound, attempts, failed)
	if lastErr != "" {
		what += fmt.Sprintf(" (the last with %s)", lastErr)
	}
	if first != nil {
		what += fmt.Sprintf("; the first write to succeed returned only %v after the fault healed", (first.Return - inj.End).Round(time.Millisecond))
	} else {
		what += "; none succeeded before the traffic ended"
	}
	return partVerdict{verdict: Illegal, msg: what, explanation: what + "."}
}

// terms are the words part 2's messages use for what is judged: a whole
// fault, or one step of it.
type terms struct{ what, healed, next string }

var (
	faultTerms = terms{what: "the fault", healed: "healed", next: "the next fault began"}
	stepTerms  = terms{what: "the step", healed: "ended", next: "the next step or fault began"}
)

// recoverThroughput is part 2, for inj from its Start to its End.
func recoverThroughput(ops []history.Operation, inj history.Injection, notBefore, limit time.Duration, tm terms) partVerdict {
	from := max(inj.Start-recoveryBaseline, notBefore)
	window := inj.Start - from
	if window < recoveryMinBaseline {
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("throughput not checked: only %v of traffic before %s to compare with", window.Round(time.Millisecond), tm.what)}
	}
	base := countOK(ops, from, inj.Start)
	if base < recoveryMinOps {
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("throughput not checked: only %d successful operations in the %v before %s", base, window.Round(time.Millisecond), tm.what)}
	}
	rate := float64(base) / window.Seconds()
	need := rate / 2
	deadline := inj.End + RecoveryThroughputBound
	best, bestAt := 0, time.Duration(0)
	for t := inj.End; t <= deadline; t += recoveryStep {
		// A window cut short by the end of the traffic (or the next
		// fault) still counts if it is half as long.
		w := min(time.Second, limit-t)
		if w < recoveryMinWindow {
			break
		}
		n := int(float64(countOK(ops, t, t+w)) / w.Seconds())
		if float64(n) >= need {
			return partVerdict{verdict: OK, msg: fmt.Sprintf("throughput back to %d ops/s (baseline %.0f ops/s) in the %v from %v after it", n, rate, w.Round(time.Millisecond), (t - inj.End).Round(time.Millisecond))}
		}
		if n > best {
			best, bestAt = n, t
		}
	}
	if deadline+recoveryMinWindow > limit {
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("throughput not checked: the traffic ended or %s %v after it, before a 1 s window at most %v after it was complete and back to half the baseline (%.0f ops/s)",
			tm.next, (limit - inj.End).Round(time.Millisecond), RecoveryThroughputBound, rate)}
	}
	what := fmt.Sprintf("throughput did not return to half its baseline within %v: %.0f successful ops/s in the %v before %s, at most %d in any 1 s window starting up to %v after it %s (from %v)",
		RecoveryThroughputBound, rate, window.Round(time.Millisecond), tm.what, best, RecoveryThroughputBound, tm.healed, bestAt.Round(time.Millisecond))
	return partVerdict{verdict: Illegal, msg: what, explanation: what + "."}
}

// spans are the steps of inj that span time (FaultStep.Begin set), in
// the order they began; none for a fault that records no such step.
func spans(inj history.Injection) []history.FaultStep {
	var out []history.FaultStep
	for _, st := range inj.Steps {
		if st.Begin > 0 && st.At >= st.Begin {
			out = append(out, st)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Begin < out[j].Begin })
	return out
}

// recoverThroughputSteps is part 2 for a fault made of steps (a
// downgrade's member swaps): each step is judged as a fault of its own,
// from its Begin to its At. Its baseline is the traffic in the 2 s before
// it began (not before the previous step ended, nor before notBefore),
// and some 1 s window starting within RecoveryThroughputBound after it
// ended (cut short by the next step's begin or by limit as for a fault)
// must hold half of that. This replaces the comparison of the traffic
// after the whole fault with the traffic before its start: over a fault
// of many steps that lasts tens of seconds, the rate moves with more than
// the fault (the run's own growth, a loaded machine), and the first 2 s
// are no measure of the last step. A step that leaves the cluster slow
// for good still fails, at that step; so does the last, whose window runs
// past the fault's end as a fault's does. The fault must leave each step
// that long before the next one (failpoint.Env.StepGap), or the step is
// INCONCLUSIVE, never passed unmeasured.
func recoverThroughputSteps(ops []history.Operation, sp []history.FaultStep, notBefore, limit time.Duration) partVerdict {
	worst := OK
	var bad []string
	var explanations []string
	lowest, lowestBase, lowestAt := -1.0, 0.0, 0
	for k, st := range sp {
		nb := notBefore
		if k > 0 {
			nb = max(nb, sp[k-1].At)
		}
		lim := limit
		if k+1 < len(sp) {
			lim = min(lim, sp[k+1].Begin)
		}
		p := recoverThroughput(ops, history.Injection{Start: st.Begin, End: st.At}, nb, lim, stepTerms)
		name := fmt.Sprintf("step %d of %d (%v to %v: %s)", k+1, len(sp), st.Begin.Round(time.Millisecond), st.At.Round(time.Millisecond), stepName(st.What))
		switch p.verdict {
		case OK:
			if r, base, ok := stepRatio(ops, st, nb, lim); ok && (lowest < 0 || r < lowest) {
				lowest, lowestBase, lowestAt = r, base, k
			}
		default:
			worst = worse(worst, p.verdict)
			bad = append(bad, name+": "+p.msg)
			if p.explanation != "" {
				explanations = append(explanations, "after "+name+", "+p.explanation)
			}
		}
	}
	if len(bad) > 0 {
		return partVerdict{verdict: worst, msg: fmt.Sprintf("throughput judged after each of its %d steps: %s", len(sp), strings.Join(bad, "; ")),
			explanation: strings.Join(explanations, " ")}
	}
	msg := fmt.Sprintf("throughput back to half its level before each step within %v after it, for each of its %d steps", RecoveryThroughputBound, len(sp))
	if lowest >= 0 {
		msg += fmt.Sprintf(" (the closest: step %d, %s, at %.0f%% of its baseline of %.0f ops/s)", lowestAt+1, stepName(sp[lowestAt].What), 100*lowest, lowestBase)
	}
	return partVerdict{verdict: OK, msg: msg}
}

// stepRatio is the best 1 s window's rate within the bound after step st
// over its baseline, for the message of a step that passed.
func stepRatio(ops []history.Operation, st history.FaultStep, notBefore, limit time.Duration) (float64, float64, bool) {
	from := max(st.Begin-recoveryBaseline, notBefore)
	window := st.Begin - from
	if window <= 0 {
		return 0, 0, false
	}
	rate := float64(countOK(ops, from, st.Begin)) / window.Seconds()
	if rate == 0 {
		return 0, 0, false
	}
	best := 0.0
	for t := st.At; t <= st.At+RecoveryThroughputBound; t += recoveryStep {
		w := min(time.Second, limit-t)
		if w < recoveryMinWindow {
			break
		}
		best = max(best, float64(countOK(ops, t, t+w))/w.Seconds())
	}
	return best / rate, rate, true
}

// stepName is a step's words up to their first colon: "member-0 started
// on v3.5.35 and caught up", without every member's versions.
func stepName(what string) string {
	name, _, _ := strings.Cut(what, ":")
	return name
}

// countOK counts the successful operations that returned in [from, to).
// ops are sorted by return.
func countOK(ops []history.Operation, from, to time.Duration) int {
	i := sort.Search(len(ops), func(i int) bool { return ops[i].Return >= from })
	n := 0
	for ; i < len(ops) && ops[i].Return < to; i++ {
		if ops[i].Error == nil {
			n++
		}
	}
	return n
}

// recoverWatches is part 3.
func recoverWatches(c *Check, ops []history.Operation, inj history.Injection) partVerdict {
	if len(c.Watches) == 0 {
		return partVerdict{verdict: OK, msg: "no watch was recorded, so no watch catch-up to check"}
	}
	var target int64
	for _, op := range ops {
		if op.Return <= inj.End && op.Error == nil && op.Response != nil && isWrite(op.Request) {
			target = max(target, op.Response.Header.Revision)
		}
	}
	if target == 0 {
		return partVerdict{verdict: Inconclusive, msg: "watches not checked: no write had returned before the fault healed"}
	}
	deadline := inj.End + RecoveryWatchBound
	byClient := map[int][]history.Watch{}
	for _, w := range c.Watches {
		byClient[w.ClientID] = append(byClient[w.ClientID], w)
	}
	clients := make([]int, 0, len(byClient))
	for id := range byClient {
		clients = append(clients, id)
	}
	sort.Ints(clients)
	var ok, unproven []string
	var late []string
	var worst Verdict = OK
	var slowest time.Duration
	for _, id := range clients {
		ws := byClient[id]
		// Only watchers that watched at the heal, or started before the
		// deadline, are judged; those that stopped before the deadline
		// only if they showed it or had to.
		watching, through := false, false
		for _, w := range ws {
			if refusedAtCreation(w) {
				continue // it never watched (say, for want of permission)
			}
			if w.Call <= deadline && w.End >= inj.End {
				watching = true
			}
			if w.Call <= deadline && w.End >= deadline {
				through = true
			}
		}
		if !watching {
			continue
		}
		at, proof := caughtUp(c.Events, ws, target)
		own := watcherDeadline(ws, inj, target)
		switch {
		case at >= 0 && at <= own:
			ok = append(ok, fmt.Sprint(id))
			slowest = max(slowest, at-inj.End)
		case at >= 0:
			worst = Illegal
			late = append(late, fmt.Sprintf("watcher %d showed it had caught up to revision %d only %v after the fault healed (%s; its bound was %v)", id, target, (at-inj.End).Round(time.Millisecond), proof, (own-inj.End).Round(time.Millisecond)))
		case !through:
			worst = worse(worst, Inconclusive)
			unproven = append(unproven, fmt.Sprint(id))
		case asked(ws, inj.End, deadline) || proof != "":
			worst = Illegal
			late = append(late, fmt.Sprintf("watcher %d never showed it caught up to revision %d (%s)", id, target, firstNonEmpty(proof, "it asked for progress and got no notification at that revision")))
		default:
			worst = worse(worst, Inconclusive)
			unproven = append(unproven, fmt.Sprint(id))
		}
	}
	if len(late) > 0 {
		what := fmt.Sprintf("a watcher did not catch up within %v: %s", RecoveryWatchBound, strings.Join(late, "; "))
		return partVerdict{verdict: Illegal, msg: what, explanation: fmt.Sprintf("The highest revision a write had returned before the fault healed is %d, and %s.", target, what)}
	}
	if len(ok) == 0 && len(unproven) == 0 {
		return partVerdict{verdict: Inconclusive, msg: fmt.Sprintf("watches not checked: no watcher was watching through %v after it", RecoveryWatchBound)}
	}
	msg := fmt.Sprintf("%d watchers caught up to revision %d within %v (the slowest %v after it)", len(ok), target, RecoveryWatchBound, slowest.Round(time.Millisecond))
	if len(unproven) > 0 {
		msg += fmt.Sprintf("; watchers %s gave no progress notification or event to show it (or stopped watching before the bound)", strings.Join(unproven, ", "))
	}
	return partVerdict{verdict: worst, msg: msg}
}

// refusedAtCreation reports whether etcd refused the watch in the
// response that created it (created and canceled at once), so that it
// never watched anything.
func refusedAtCreation(w history.Watch) bool {
	return len(w.Responses) > 0 && w.Responses[0].Created && w.Responses[0].Canceled && w.Responses[0].CompactRevision == 0
}

// watcherDeadline is when watcher ws must have shown it caught up to
// target: RecoveryWatchBound after the heal, plus etcd's sync time for the
// backlog it had to catch up, plus the harness's resume delay if one of
// its streams broke during the fault.
func watcherDeadline(ws []history.Watch, inj history.Injection, target int64) time.Duration {
	var shown int64
	broke := false
	for _, w := range ws {
		for i, r := range w.Responses {
			if r.Time > inj.Start {
				break
			}
			for _, e := range r.Events {
				shown = max(shown, e.KV.ModRevision)
			}
			if w.Vouches(i) {
				shown = max(shown, r.Header.Revision)
			}
		}
		if w.End >= inj.Start && w.End <= inj.End && w.EndReason != "done" {
			broke = true
		}
	}
	d := inj.End + RecoveryWatchBound
	if backlog := target - shown; shown > 0 && backlog > 0 {
		d += time.Duration((backlog+watchSyncRevisions-1)/watchSyncRevisions) * watchSyncInterval
	}
	if broke {
		d += watchResumeSlack
	}
	return d
}

// asked reports whether a watcher asked for progress in [from, to].
func asked(ws []history.Watch, from, to time.Duration) bool {
	for _, w := range ws {
		for _, t := range w.ProgressRequests {
			if t >= from && t <= to {
				return true
			}
		}
	}
	return false
}

// lastSelected is the last of events (in revision order) at or below rev,
// from w's start on, that w's request selects; nil if none is, or if w's
// start or the events are not known.
func lastSelected(events []model.Event, w history.Watch, rev int64) *model.Event {
	start := watchStart(w)
	if events == nil || start <= 0 {
		return nil
	}
	end := sort.Search(len(events), func(i int) bool { return events[i].Revision > rev })
	for i := end - 1; i >= 0 && events[i].Revision >= start; i-- {
		if selects(w.Request, events[i]) {
			return &events[i]
		}
	}
	return nil
}

// caughtUp is when the watcher's streams first showed it had caught up to
// rev, and how; -1 if they never did. If they never did but the replayed
// events name one the watcher should have received, the reason says so.
func caughtUp(events []model.Event, ws []history.Watch, rev int64) (time.Duration, string) {
	at := time.Duration(-1)
	how := ""
	better := func(t time.Duration, why string) {
		if at < 0 || t < at {
			at, how = t, why
		}
	}
	for _, w := range ws {
		// The last event at or below rev that this watch selects, if known:
		// the events are in revision order, so it is the first one it
		// selects walking back from rev, down to its start (a walk from
		// the log's first event, for every watch and fault, took most of
		// the stage on a 300 s run).
		want := lastSelected(events, w, rev)
		for i, r := range w.Responses {
			if w.Vouches(i) && r.Header.Revision >= rev {
				better(r.Time, fmt.Sprintf("a progress notification at revision %d", r.Header.Revision))
			}
			for _, e := range r.Events {
				if e.KV.ModRevision >= rev {
					better(r.Time, fmt.Sprintf("an event at revision %d", e.KV.ModRevision))
				}
				if want != nil && e.KV.ModRevision == want.Revision && e.KV.Key == want.KV.Key {
					better(r.Time, fmt.Sprintf("the last event its watch selects up to revision %d, %s", rev, want))
				}
			}
		}
		if at < 0 && want != nil && how == "" {
			how = fmt.Sprintf("it never received %s, the last event up to revision %d its watch selects", want, rev)
		}
	}
	if at >= 0 {
		return at, how
	}
	return -1, how
}

// watchStart is the first revision a watch stream delivers: its start
// revision, or for one that starts at "now", the revision its creation
// was confirmed at plus one; 0 if unknown.
func watchStart(w history.Watch) int64 {
	if w.Request.StartRevision > 0 {
		return w.Request.StartRevision
	}
	for _, r := range w.Responses {
		if r.Created && r.Header.Revision > 0 {
			return r.Header.Revision + 1
		}
	}
	return 0
}

// selects reports whether a watch request selects an event: the key is in
// its range and no filter drops the event's type.
func selects(req history.WatchRequest, e model.Event) bool {
	k := e.KV.Key
	switch {
	case req.RangeEnd == "":
		if k != req.Key {
			return false
		}
	case req.RangeEnd == "\x00":
		if k < req.Key {
			return false
		}
	default:
		if k < req.Key || k >= req.RangeEnd {
			return false
		}
	}
	for _, f := range req.Filters {
		if (f == "NOPUT" && e.Type == model.EventPut) || (f == "NODELETE" && e.Type == model.EventDelete) {
			return false
		}
	}
	return true
}

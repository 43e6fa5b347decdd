package validate

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// The windowed search: porcupine searches only where the witness's order
// fails, never the whole history of a long run.
//
// What a window is. planWitness gives every operation a place (it goes on
// past the problems it meets), so the patched history has one order O,
// op 1 to op N. The walk (walkOrder) steps O from model.InitialState and
// marks the positions model.Step refuses (past one, it goes on from the
// state the operation's request would leave, as a guess). Real time marks
// each pair at positions i < j where op j returned before op i was called.
// A window is a stretch [a, b) of O that holds every refused position and
// every such pair, widened by a margin, overlapping stretches merged.
//
// Why a window that passes certifies the whole history. The window's
// operations are searched by porcupine from S_a, the state the walk has
// before position a, and must end, with a last barrier operation that
// every one of them returned before, in S_b, the walk's state before
// position b (windowModel). Outside every window the walk was accepted at
// every position, from S_b of the window before. So when every window
// passes, O with each window's stretch replaced by the order porcupine
// found is accepted by model.Step from the initial state at every step.
// It also keeps real time: a pair that breaks it in O lies inside one
// window (the pairs are merged into the windows), so for every window
// edge e, no operation after e returned before one before e was called,
// and inside a window porcupine keeps real time itself. The new order
// holds every operation once, with open operations returning after
// everything, as PorcupineOperations tells the whole search: it is a
// linearization, and the whole history passes. An operation whose
// [call, return] crosses a window's edge is no exception: it is on one
// side, and the edge keeps real time with it as with any other. A window
// that covers the whole order is checked the same way, ending in the
// walk's final state, which is only stricter than the whole search.
//
// Why a window that fails proves nothing by itself, and what does. A
// failure may come from the barrier (porcupine's window could end in
// another state) or from the order outside. So a failing window is
// checked again as a time window [T0, T1] (failWindow), and only its
// failure is a FAIL. T1 is the last return in the window; T0 is at or
// before its first call, at a time where the state is forced (forcedCut):
//   - no operation that may change the state, called before T0, is still
//     running at T0, unless its answer pins it below the revision that an
//     operation which returned before T0 had already seen (then it took
//     effect before T0); open operations and those that pin nothing
//     qualify by ending before T0 only, so an open operation called
//     before T0 (its return is after everything) rules T0 out. Reads,
//     refusals and keepalives (which only raise a lease's deadline) may
//     run across T0: they are left out of the time window.
//   - the prefix P (every operation that returned before T0, and those
//     pinned before it) then holds every change made before T0, each of a
//     known outcome and pinned by its revision, so that every
//     linearization of P ends in the same state (the keys at every
//     revision follow from the pinned writes, in revision order; a lease
//     exists or not by its pinned grants and revokes; deadlines are the
//     largest of the pinned grants' and keepalives', and leaving
//     keepalives out only lowers them, which makes the search more
//     permissive). That state is S0, the walk of P in O's order.
//   - the leader's expiries are placed by the revision the replayed log
//     pins them at (logPin; also one no answer came after, and one a
//     client's revoke of unknown outcome may have made: the log says where
//     it took effect, whoever sent it): below S0's revision they are in P,
//     above it in the time window; one at S0's revision could be on either
//     side and rules T0 out, as does one the log does not pin.
//
// The time window holds the operations called in [T0, T1] and the
// expiries after S0. One still running at T1 may take effect after it: a
// write becomes of unknown outcome, a read is left out. Take any
// linearization of the whole history, with each operation at a point in
// its interval. The operations at points in [T0, T1] are a valid sequence
// from the state at T0, which is S0; they are the time window's
// operations (left-out reads and keepalives aside, which only relaxes the
// search), those running at T1 taking effect or not. So if porcupine finds
// no linearization of the time window from S0, there is none of the whole
// history: the FAIL is real. Where no time is forced but T0 = 0, the time
// window starts from the initial state: sound, but as long as the prefix.
//
// Anything else (no order, a search that runs out of time, a window that
// fails but whose time window passes after the widenings) leaves the
// decision to the whole search, within what is left of the time limit:
// never a pass.

const (
	// windowMargin is how many positions of the order a window reaches
	// past the failures it holds, at first; each widening multiplies it by
	// windowGrowth.
	windowMargin   = 32
	windowGrowth   = 8
	windowWidening = 3
	// windowShare is the least time one window's search may take (at most
	// a quarter of the budget otherwise).
	windowShare = 2 * time.Second
)

// barrier is the last operation of a window: the state must be want.
type barrier struct{ want model.State }

// windowModel is the model for a window: it starts from any of states, and
// steps as windowStep (search.go) says: a barrier only in the state it
// names, a running or pinned operation as having taken effect outside the
// window too.
func windowModel(states []model.State) porcupine.Model {
	nm := &porcupine.NondeterministicModel{
		Init: func() []interface{} {
			out := make([]interface{}, len(states))
			for i, s := range states {
				out[i] = s
			}
			return out
		},
		Step: func(state, input, output interface{}) []interface{} {
			next := windowStep(state.(model.State), input, output)
			out := make([]interface{}, len(next))
			for i, n := range next {
				out[i] = n
			}
			return out
		},
		Equal: func(a, b interface{}) bool { return a.(model.State).Equal(b.(model.State)) },
		Hash:  func(s interface{}) uint64 { return s.(model.State).Hash() },
		DescribeOperation: func(input, output interface{}) string {
			if _, ok := input.(barrier); ok {
				return "end of the window: the state the committed log's order goes on from"
			}
			if r, ok := input.(runningOp); ok {
				return model.Describe(r.req, output.(model.Response)) + " (running at the window's start)"
			}
			if m, ok := input.(maybeOp); ok {
				return model.Describe(m.req, output.(model.Response)) + " (running at the window's end: here, or after it)"
			}
			return model.Describe(input.(model.Request), output.(model.Response))
		},
		DescribeState: func(s interface{}) string { return s.(model.State).String() },
	}
	return nm.ToModel()
}

// span is a stretch [a, b) of positions of the order.
type span struct{ a, b int }

// walked is the witness's order walked from the initial state.
type walked struct {
	order  []int         // indices into the patched operations, by place
	states []model.State // states[k]: before position k; len(order)+1
	bad    []span        // positions refused, and pairs that break real time
}

// walkOrder walks the order planWitness gave; nil when some operation has
// no place.
func walkOrder(patched []Op) *walked {
	w := &walked{order: make([]int, len(patched))}
	for i := range patched {
		if patched[i].place == 0 {
			return nil
		}
		w.order[i] = i
	}
	sort.SliceStable(w.order, func(a, b int) bool { return patched[w.order[a]].place < patched[w.order[b]].place })
	w.states = make([]model.State, len(w.order)+1)
	w.states[0] = model.InitialState()
	// An operation the walk refuses waits, and is tried again after each
	// one it accepts: one out of place fits once those it should have come
	// after are walked. The window then runs from where it was refused to
	// where it fits, so that the states at the window's edges are those of
	// a valid order of the operations on either side. Past maxDeferred
	// waiting, the oldest is walked as its request asks, whatever its
	// answer (an answer that is wrong, like a revision lowered, still did
	// what it asked), and its window ends there; so is one that waited
	// maxWait positions.
	type waiting struct{ k, i int }
	var wait []waiting
	flush := func(s model.State, k int) model.State {
		for progress := true; progress; {
			progress = false
			for j, d := range wait {
				o := &patched[d.i]
				if next := model.Step(s, o.Request, o.Response); len(next) > 0 {
					s = choose(next, s, o.applied)
					w.bad = append(w.bad, span{d.k, k + 1})
					wait = append(wait[:j], wait[j+1:]...)
					progress = true
					break
				}
			}
		}
		return s
	}
	for k, i := range w.order {
		o, s := &patched[i], w.states[k]
		for len(wait) > 0 && (len(wait) > maxDeferred || k-wait[0].k > maxWait) {
			d := wait[0]
			wait = wait[1:]
			s, _, _ = s.Apply(patched[d.i].Request)
			w.bad = append(w.bad, span{d.k, k})
			s = flush(s, k-1)
		}
		if next := model.Step(s, o.Request, o.Response); len(next) > 0 {
			w.states[k+1] = flush(choose(next, s, o.applied), k)
			continue
		}
		wait = append(wait, waiting{k, i})
		w.states[k+1] = s
	}
	for _, d := range wait {
		w.bad = append(w.bad, span{d.k, len(w.order)})
	}
	// Real time: position j returned before position i < j was called. The
	// calls' running maximum ascends, so the first i is a search.
	n := len(w.order)
	maxCall := make([]time.Duration, n)
	for k, i := range w.order {
		maxCall[k] = patched[i].Call
		if k > 0 {
			maxCall[k] = max(maxCall[k], maxCall[k-1])
		}
	}
	for j, i := range w.order {
		ret := returned(&patched[i])
		if first := sort.Search(j, func(k int) bool { return maxCall[k] > ret }); first < j {
			w.bad = append(w.bad, span{first, j + 1})
		}
	}
	return w
}

// maxDeferred bounds the operations the walk keeps waiting, and maxWait
// how many positions one waits.
const (
	maxDeferred = 8
	maxWait     = 64
)

// windows merges the bad spans, each widened by margin, into windows.
func (w *walked) windows(margin int) []span {
	n := len(w.order)
	spans := make([]span, len(w.bad))
	for k, s := range w.bad {
		spans[k] = span{max(0, s.a-margin), min(n, s.b+margin)}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].a < spans[b].a })
	var out []span
	for _, s := range spans {
		if len(out) > 0 && s.a <= out[len(out)-1].b {
			out[len(out)-1].b = max(out[len(out)-1].b, s.b)
			continue
		}
		out = append(out, s)
	}
	return out
}

// windowOutcome is what the windowed search decided.
type windowOutcome struct {
	// result: Ok, the whole history is linearizable; Illegal, it is not;
	// Unknown, undecided (why says why).
	result porcupine.CheckResult
	why    string
	// searched counts the operations searched; what says which
	// windows, for the verdict.
	searched int
	what     string
	// For Illegal: the time window that failed (as porcupine's input, with
	// where each came from in the whole history's operations), the state
	// it started from and the prefix before it, in order (indices into the
	// whole history's operations).
	fail *timeWindow
	// longest is the longest order the search placed in fail (indices
	// into fail's operations), for the explanation.
	longest []int
}

// searchWindows is the windowed search over the patched history (see the
// comment at the top of this file). ops and pos are its porcupine
// operations (porcupineOps); budget bounds it.
func searchWindows(ctx context.Context, patched []Op, ops []porcupine.Operation, pos []int, budget time.Duration) windowOutcome {
	w := walkOrder(patched)
	if w == nil {
		return windowOutcome{result: porcupine.Unknown, why: "some operation has no place in the committed log's order"}
	}
	if len(w.bad) == 0 {
		return windowOutcome{result: porcupine.Ok, what: "no window: the committed log's order is a linearization"}
	}
	deadline := time.Now().Add(budget)
	margin := windowMargin
	var why string
	for round := 0; round <= windowWidening; round, margin = round+1, margin*windowGrowth {
		spans := w.windows(margin)
		out := windowOutcome{result: porcupine.Ok}
		var largest span
		var failed, passed []span
		for _, s := range spans {
			left := time.Until(deadline)
			if left <= 0 {
				return windowOutcome{result: porcupine.Unknown, why: "the windows' search ran out of time"}
			}
			// One window may not take the whole budget: one whose search
			// runs out of its share is decided as a failing one is, by a
			// time window around it (never a pass).
			res, err := w.check(ctx, patched, ops, pos, s, min(left, max(windowShare, budget/4)))
			if err != nil {
				return windowOutcome{result: porcupine.Unknown, why: err.Error()}
			}
			out.searched += s.b - s.a
			if s.b-s.a > largest.b-largest.a {
				largest = s
			}
			switch res {
			case porcupine.Ok:
				passed = append(passed, s)
				continue
			case porcupine.Unknown:
				why = fmt.Sprintf("the search of a window of %d operations did not finish in time", s.b-s.a)
			}
			failed = append(failed, s)
		}
		if len(failed) == 0 {
			out.what = fmt.Sprintf("searched %d windows of the committed log's order where it fails (%d operations in all; the largest: %s)",
				len(spans), out.searched, w.describe(patched, largest))
			return out
		}
		// A failing window: a FAIL only if a time window around it, from
		// the states it may start in, has no linearization: the cut window
		// first (cut.go), short, then one from a forced state.
		s := failed[0]
		starts := cutStarts(patched, w, s)
		for k, t0 := range starts {
			cw := cutWindow(patched, ops, pos, w, passed, s, t0)
			if cw == nil {
				continue
			}
			left := time.Until(deadline)
			if left <= 0 {
				return windowOutcome{result: porcupine.Unknown, why: "the windows' search ran out of time"}
			}
			// The later T0 first, with a quarter of what is left: its
			// time window is the shorter.
			share := left/2 + time.Second
			if k < len(starts)-1 {
				share = left/4 + time.Second
			}
			res := windowSearch(ctx, cw.states(), cw.searchOps(), min(left, share))
			if err := ctx.Err(); err != nil {
				return windowOutcome{result: porcupine.Unknown, why: err.Error()}
			}
			if res.result == porcupine.Illegal {
				return windowOutcome{result: porcupine.Illegal, fail: cw, longest: res.longest, searched: out.searched + len(cw.ops),
					what: fmt.Sprintf("the search over %s", cw.describe())}
			}
		}
		tw, reason := forcedWindow(patched, ops, pos, w, passed, s)
		if tw == nil {
			why = fmt.Sprintf("a window (%s) has no linearization from the order's states, and %s", w.describe(patched, s), reason)
		} else {
			left := time.Until(deadline)
			if left <= 0 {
				return windowOutcome{result: porcupine.Unknown, why: "the windows' search ran out of time"}
			}
			res := windowSearch(ctx, tw.states(), tw.searchOps(), left)
			if err := ctx.Err(); err != nil {
				return windowOutcome{result: porcupine.Unknown, why: err.Error()}
			}
			switch res.result {
			case porcupine.Illegal:
				return windowOutcome{result: porcupine.Illegal, fail: tw, longest: res.longest, searched: out.searched + len(tw.ops),
					what: fmt.Sprintf("the search over %s", tw.describe())}
			case porcupine.Unknown:
				return windowOutcome{result: porcupine.Unknown, why: fmt.Sprintf("the search over %s did not finish in time", tw.describe())}
			}
			why = fmt.Sprintf("a window (%s) has no linearization from the order's states, but %s has one", w.describe(patched, s), tw.describe())
		}
		if len(spans) == 1 && spans[0].a == 0 && spans[0].b == len(w.order) {
			break
		}
	}
	return windowOutcome{result: porcupine.Unknown, why: why}
}

// check searches one window from the walk's state at its start, ending
// with a barrier in the walk's state at its end.
func (w *walked) check(ctx context.Context, patched []Op, ops []porcupine.Operation, pos []int, s span, timeout time.Duration) (porcupine.CheckResult, error) {
	in := make([]porcupine.Operation, 0, s.b-s.a+1)
	last, client := int64(math.MinInt64), 0
	for _, i := range w.order[s.a:s.b] {
		op := ops[pos[i]]
		in = append(in, op)
		last, client = max(last, op.Return, op.Call), max(client, op.ClientId)
	}
	in = append(in, porcupine.Operation{ClientId: client + 1, Input: barrier{w.states[s.b]}, Call: last + 1, Return: last + 2, Metadata: "end of window"})
	res := windowSearch(ctx, []model.State{w.states[s.a]}, in, timeout)
	return res.result, ctx.Err()
}

// describe says which stretch of the order s is, for the verdict.
func (w *walked) describe(patched []Op, s span) string {
	from, to := time.Duration(math.MaxInt64), time.Duration(0)
	for _, i := range w.order[s.a:s.b] {
		if o := &patched[i]; o.ClientID >= 0 {
			from, to = min(from, o.Call), max(to, o.Call)
		}
	}
	if from > to {
		from = 0
	}
	return fmt.Sprintf("%d operations at places %d to %d, called from %s to %s, revisions %d to %d",
		s.b-s.a, s.a+1, s.b, roundMS(from), roundMS(to), w.states[s.a].Revision, w.states[s.b].Revision)
}

// timeWindow is the part of the history called in [from, to], from the
// forced state start (see the comment at the top of this file).
type timeWindow struct {
	from, to time.Duration
	start    model.State
	ops      []porcupine.Operation // porcupine's input
	index    []int                 // index[k]: ops[k]'s index in the whole history's operations
	prefix   []int                 // the prefix, in the order, as such indices
	changed  int                   // operations running at the end, made of unknown outcome
	// A cut window (cut.go) starts from any of starts; running of its
	// operations ran across its start, made of unknown outcome.
	cut     bool
	starts  []model.State
	running int
	// search holds ops as porcupine searches them (searchOps), where that
	// differs from how the report shows them: a cut window's running
	// operations as runningOp, one running at the end that its answer or
	// the log pins as maybeOp. Nil: as shown.
	search []porcupine.Operation
}

// states are the states the time window starts from.
func (t *timeWindow) states() []model.State {
	if t.cut {
		return t.starts
	}
	return []model.State{t.start}
}

func (t *timeWindow) describe() string {
	if t.cut {
		return fmt.Sprintf("the %d operations called from %s to %s and the %d running at %s, from any of the %d states those may leave at %s (revisions %d to %d)",
			len(t.ops)-t.running, roundMS(t.from), roundMS(t.to), t.running, roundMS(t.from), len(t.starts), roundMS(t.from),
			t.starts[0].Revision, t.starts[len(t.starts)-1].Revision)
	}
	return fmt.Sprintf("the %d operations called from %s to %s, from the state forced at %s (revision %d)",
		len(t.ops), roundMS(t.from), roundMS(t.to), roundMS(t.from), t.start.Revision)
}

// leavesState says whether o leaves every state as it was, or only raises
// a lease's deadline: such an operation may be left out of a time window.
func leavesState(o *Op) bool {
	switch {
	case o.Response.Status == model.StatusFailed:
		return true
	case o.Request.Type == model.LeaseKeepAlive:
		return true
	case o.Response.Status == model.StatusOK && !o.Request.IsWrite():
		return true
	}
	return false
}

// pinnedBelow is a revision o's answer pins it below or at: it took effect
// when the store was at a revision under it or at it. ok is false when the
// answer pins nothing.
func pinnedBelow(o *Op) (int64, bool) {
	switch r := o.Response; {
	case o.Open:
		return 0, false
	case r.Status == model.StatusOK && !model.LocalHeader(o.Request):
		return r.Revision, true
	case r.Status == model.StatusApplied && r.AppliedTo != 0:
		return r.AppliedTo, true
	}
	return 0, false
}

// logPin is the revision the committed log pins one of etcd's own
// operations (a leader's expiry) at: the store's revision when its entry
// was applied, from the replay. It holds also when no answer came after
// the expiry (Open: its latest time is unknown), as it comes from the log,
// not from an answer.
func logPin(o *Op) (int64, bool) {
	if r := o.Response; r.Status == model.StatusApplied && r.AppliedTo != 0 {
		return r.AppliedTo, true
	}
	return 0, false
}

// callSpan is when the window s's client operations were called, from the
// first call to the last return (or call, for an open one); from > to
// when it holds none.
func (w *walked) callSpan(patched []Op, s span) (from, to time.Duration) {
	from, to = time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	for _, i := range w.order[s.a:s.b] {
		o := &patched[i]
		if o.ClientID < 0 {
			continue
		}
		from = min(from, o.Call)
		if !o.Open {
			to = max(to, o.Return)
		}
		to = max(to, o.Call)
	}
	return from, to
}

// forcedWindow builds the time window around the window s of the order: T1
// is the last return in it, T0 the latest time at or before its first call
// where the state is forced. It says why when there is none.
func forcedWindow(patched []Op, ops []porcupine.Operation, pos []int, w *walked, passed []span, s span) (*timeWindow, string) {
	from, to := w.callSpan(patched, s)
	if from > to {
		return nil, "it holds no client's operation"
	}
	// obs, by return: the largest revision an answer that returned by then
	// showed.
	type seen struct {
		ret time.Duration
		rev int64
	}
	var obs []seen
	for i := range patched {
		o := &patched[i]
		if r, ok := pinnedRevision(o); ok && !o.Open {
			obs = append(obs, seen{o.Return, r})
		}
	}
	sort.Slice(obs, func(a, b int) bool { return obs[a].ret < obs[b].ret })
	for k := 1; k < len(obs); k++ {
		obs[k].rev = max(obs[k].rev, obs[k-1].rev)
	}
	// exemptAfter is the earliest time T0 may be past for an operation
	// pinned at or below rev: once an answer above rev returned.
	exemptAfter := func(rev int64) time.Duration {
		k := sort.Search(len(obs), func(k int) bool { return obs[k].rev > rev })
		if k == len(obs) {
			return math.MaxInt64
		}
		return obs[k].ret
	}
	// Each client operation that may change the state rules out the times
	// in (call, end]: end is its return, or sooner the moment its pin is
	// known to be passed.
	type block struct{ from, to time.Duration }
	var blocks []block
	for i := range patched {
		o := &patched[i]
		if o.ClientID < 0 || leavesState(o) {
			continue
		}
		end := returned(o)
		if r, ok := pinnedBelow(o); ok {
			end = min(end, exemptAfter(r))
		}
		if end > o.Call {
			blocks = append(blocks, block{o.Call, end})
		}
	}
	sort.Slice(blocks, func(a, b int) bool { return blocks[a].from < blocks[b].from })
	var merged []block
	for _, b := range blocks {
		if len(merged) > 0 && b.from <= merged[len(merged)-1].to {
			merged[len(merged)-1].to = max(merged[len(merged)-1].to, b.to)
			continue
		}
		merged = append(merged, b)
	}
	// Candidates, latest first: from itself, else the start of the merged
	// block that covers it, then the starts of the blocks before.
	t0 := from
	k := sort.Search(len(merged), func(k int) bool { return merged[k].from >= from }) - 1
	if k >= 0 && merged[k].to >= from {
		t0 = merged[k].from
	} else {
		k++
	}
	for tries := 0; ; tries++ {
		if tw := timeWindowAt(patched, ops, pos, w, passed, t0, to); tw != nil {
			return tw, ""
		}
		if t0 <= 0 {
			break
		}
		k--
		if k < 0 || tries == 64 {
			t0 = 0 // the initial state: always forced
		} else {
			t0 = merged[k].from
		}
	}
	return nil, "no time before it was found where the state is forced"
}

// timeWindowAt builds the time window [t0, t1], or nil when the state at
// t0 is not known from the order. The prefix is the operations before
// position k of the order, k just past the last client operation called
// before t0 that it holds (every one that returned before t0, and those
// pinned before it). Its state is the walk's states[k] when the order
// before k holds exactly those and operations that leave the state as it
// was (reads and refusals running across t0, not keepalives, whose
// deadline could come after t0), and every window before k lies wholly
// before it and passed: then the ops before k have a linearization that
// ends in states[k] (the argument for a windowed pass, on that prefix), so
// that state is the prefix's, the one every linearization of it reaches.
// The leader's expiries must lie by their revisions on the side of k the
// order has them, none at states[k]'s revision.
func timeWindowAt(patched []Op, ops []porcupine.Operation, pos []int, w *walked, passed []span, t0, t1 time.Duration) *timeWindow {
	tw := &timeWindow{from: t0, to: t1}
	inPrefix := func(o *Op) bool { return o.Call < t0 && !(returned(o) >= t0 && leavesState(o)) }
	k := 0
	for p, i := range w.order {
		if o := &patched[i]; o.ClientID >= 0 && inPrefix(o) {
			k = p + 1
		}
	}
	for _, s := range passed {
		if s.a < k && s.b > k {
			return nil
		}
	}
	tw.start = w.states[k]
	for p, i := range w.order {
		o := &patched[i]
		before := p < k
		if o.ClientID < 0 {
			r, ok := logPin(o)
			switch {
			case t0 == 0:
			case !ok || r == tw.start.Revision || before != (r < tw.start.Revision):
				return nil
			}
		} else if before && !inPrefix(o) && !(o.Response.Status != model.StatusUnknown && leavesState(o) && o.Request.Type != model.LeaseKeepAlive) {
			return nil
		}
		if before {
			tw.prefix = append(tw.prefix, pos[i])
		} else if o.ClientID < 0 {
			tw.add(patched, ops, pos, []int{i}, t1)
		}
	}
	for _, i := range w.order {
		if o := &patched[i]; o.ClientID >= 0 && o.Call >= t0 && o.Call <= t1 {
			tw.add(patched, ops, pos, []int{i}, t1)
		}
	}
	tw.prune()
	return tw
}

// add puts the operations into the time window: one still running at its
// end is left out if it leaves the state as it was; else it may have taken
// effect after the end, so it is of unknown outcome, searched as maybeOp
// when its answer or the log pins where it took effect (as the report
// shows it: of unknown outcome).
func (t *timeWindow) add(patched []Op, ops []porcupine.Operation, pos []int, idx []int, t1 time.Duration) {
	for _, i := range idx {
		o := &patched[i]
		op := ops[pos[i]]
		search, differs := op, false
		if returned(o) > t1 {
			if leavesState(o) {
				continue
			}
			if pin, ok := effectPin(o); ok {
				search.Input, differs = maybeOp{req: o.Request, pin: pin}, true
			}
			op.Output = model.Response{Status: model.StatusUnknown}
			if !differs {
				search = op
			}
			t.changed++
		}
		t.push(op, search, differs, pos[i])
	}
}

// push appends one operation, shown as op and searched as search (which
// differs from op when differs is set).
func (t *timeWindow) push(op, search porcupine.Operation, differs bool, index int) {
	if t.search == nil && differs {
		t.search = append(make([]porcupine.Operation, 0, len(t.ops)+1), t.ops...)
	}
	t.ops = append(t.ops, op)
	if t.search != nil {
		t.search = append(t.search, search)
	}
	t.index = append(t.index, index)
}

// prune leaves out the operations running at the window's end (maybeOp)
// pinned above the highest revision the window can reach: each operation
// raises the store's revision by one at most, so such an operation cannot
// take effect within the window, and it took effect after its end (at its
// pin, past every state the window reaches), which every linearization's
// restriction to the window has without it. The leader's expiries late in
// a run are the bulk of them: left in, each would be an operation the
// search could leave without effect anywhere, which it tries at every
// point.
func (t *timeWindow) prune() {
	if t.search == nil {
		return
	}
	var top int64
	for _, s := range t.states() {
		top = max(top, s.Revision)
	}
	reach := top + int64(len(t.ops))
	k := 0
	for j := range t.ops {
		if m, ok := t.search[j].Input.(maybeOp); ok && m.pin > reach {
			t.changed--
			continue
		}
		t.ops[k], t.search[k], t.index[k] = t.ops[j], t.search[j], t.index[j]
		k++
	}
	t.ops, t.search, t.index = t.ops[:k], t.search[:k], t.index[:k]
}

// maybeOp is an operation running at a time window's end whose effect is
// pinned: an answer that names its revision (model.Step accepts it only
// there), or an entry of the log its operation is pinned to
// (model.StatusApplied with AppliedTo). It took effect there, within the
// window or after its end: the search applies it as answered, or, while
// the store is at its pin or below it, leaves it without effect (it took
// effect after the window's end, when the store was at the pin, so no
// later than the window's last state). Both hold every linearization's
// restriction to the window, so this only narrows what a blanket unknown
// outcome would let the search try: a write whose answer pins it cannot
// take effect at another revision in any linearization.
type maybeOp struct {
	req model.Request
	pin int64
}

// effectPin is the revision o's answer, or the log, pins its effect at or
// below (pinnedBelow, logPin), when model.Step checks it there.
func effectPin(o *Op) (int64, bool) {
	switch r := o.Response; {
	case r.Status == model.StatusOK && !model.LocalHeader(o.Request):
		return r.Revision, true
	case r.Status == model.StatusApplied && r.AppliedTo != 0:
		return r.AppliedTo, true
	}
	return 0, false
}

// porcupineRun runs porcupine aside, with any model, so that a cancelled run
// does not wait for the search to end.
func porcupineRun(ctx context.Context, m porcupine.Model, ops []porcupine.Operation, timeout time.Duration, verbose bool) (porcupineResult, error) {
	done := make(chan porcupineResult, 1)
	go func() {
		if verbose {
			res, info := porcupine.CheckOperationsVerbose(m, ops, timeout)
			done <- porcupineResult{res, info}
			return
		}
		done <- porcupineResult{result: porcupine.CheckOperationsTimeout(m, ops, timeout)}
	}()
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		return porcupineResult{}, ctx.Err()
	}
}

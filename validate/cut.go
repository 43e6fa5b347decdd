package validate

import (
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// The cut window: a time window [T0, T1] that starts from several states,
// so that T0 need not be a time where the state is forced. forcedWindow
// looks back for a T0 where no operation that may change the state is
// running; at a high rate writes overlap without a gap for seconds, and
// the time window it finds is then too long for porcupine to exhaust.
// cutWindow takes T0 at the failing window's first call instead (moving
// back past an operation that rules it out), and lets the operations
// running across T0 (F) fall on either side of it:
//   - seen is the largest revision an answer that returned before T0
//     showed. P is every client operation that returned before T0, and
//     every one running across T0 whose answer pins it below seen (it
//     took effect before the store passed its pin, which the store had by
//     T0), or that is the txn whose answer took the store to seen
//     (bumpsTo); with the leader's expiries the log pins below seen. As
//     for forcedWindow, every linearization of P ends in the same state
//     S_P, the walk of P in the order O, from the walk's state at the
//     first position O holds anything else (not past the failing window's
//     start, where every window before passed). Reads, refusals and
//     keepalives running across T0 are left out, which only relaxes the
//     search.
//   - F is every other client operation running across T0 that may
//     change the state, and the leader's expiries the log pins at seen or
//     above but not past what F could reach. Each is pinned, by its answer
//     or by the log, to the store's revision it took effect at (model.Step
//     refuses it at any other); an open operation (no answer bounds it)
//     counts as running across T0 when the log pins it (a write the
//     evidence settled as applied), like the leader's expiries, on P's
//     side when pinned below seen; one that nothing pins rules T0 out.
//   - In a linearization of the whole history, the state at T0 is S_P with
//     those of F applied that took effect before T0, at revision seen or
//     above. Pinned writes take effect in revision order, so if one of F
//     is before T0, every pinned one at a lower revision is too, and each
//     is applied at the revision it is pinned to, where the others around
//     it were applied too; in O (the log's order) they come in that order,
//     and operations pinned at the same revision that do not change it
//     (lease grants and revokes without keys, compactions) commute. So the
//     state at T0 is one of those got by applying a subset of F to S_P in
//     O's order, each accepted by model.Step (cutStates enumerates them,
//     up to a bound; past it there is no cut window).
//   - The time window's operations are those called in [T0, T1] (one
//     running at T1 of unknown outcome if it may change the state, else
//     left out), the later expiries, and F as runningOp: applied as
//     answered, or, in a state at its pin or past it, as having no effect.
//     One of F that took effect before T0 is then placed at the window's
//     start with no effect (the start state is past its pin, and it was
//     called before every other, so real time holds); one that took effect
//     after T0 is applied as answered at its point.
// So every linearization of the whole history gives, from one of the
// start states, a linearization of the time window: if porcupine finds
// none from any of them (windowModel with several initial states), the
// whole history has none, and the FAIL is real. A cut window that has one
// proves nothing: the search goes on as without it.

const (
	// maxCutRunning bounds F; maxCutStates the start states; maxCutSteps
	// the model steps cutStates may take.
	maxCutRunning = 48
	maxCutStates  = 256
	maxCutSteps   = 1 << 14
	// cutTries is how many times T0 moves back (to the call of the
	// operation running across it that rules it out) before giving up.
	cutTries = 32
)

// cutStarts are the times cutWindow tries as T0 for the failing window s
// of the order, latest first. T0 may be any time (the argument above
// holds for every T0), so the choice only decides how long the time
// window is and whether it holds the violation:
//   - the first call in the window of an operation that returned by the
//     window's last call: one that runs across the whole window (a write
//     of unknown outcome the log settled, its return bounded only by the
//     first answer that showed it, perhaps the final read's) may have
//     been called seconds before, and is running across this T0;
//   - the first call in the window of an operation that returned, as an
//     open one's call may lie far back, where the window's order placed
//     it by the log.
func cutStarts(patched []Op, w *walked, s span) []time.Duration {
	lastCall := time.Duration(math.MinInt64)
	for _, i := range w.order[s.a:s.b] {
		if o := &patched[i]; o.ClientID >= 0 {
			lastCall = max(lastCall, o.Call)
		}
	}
	inner, outer := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for _, i := range w.order[s.a:s.b] {
		o := &patched[i]
		if o.ClientID < 0 || o.Open {
			continue
		}
		outer = min(outer, o.Call)
		if o.Return <= lastCall {
			inner = min(inner, o.Call)
		}
	}
	var out []time.Duration
	for _, t0 := range []time.Duration{inner, outer} {
		if t0 > 0 && t0 <= lastCall && (len(out) == 0 || t0 < out[len(out)-1]) {
			out = append(out, t0)
		}
	}
	return out
}

// cutWindow builds a cut window for the failing window s of the order,
// with T0 at or before t0 (one of cutStarts); nil when none is found.
func cutWindow(patched []Op, ops []porcupine.Operation, pos []int, w *walked, passed []span, s span, t0 time.Duration) *timeWindow {
	_, to := w.callSpan(patched, s)
	for range cutTries {
		tw, back := cutWindowAt(patched, ops, pos, w, passed, s.a, t0, to)
		if tw != nil {
			return tw
		}
		if back <= 0 || back >= t0 {
			return nil
		}
		t0 = back
	}
	return nil
}

// Roles of the operations in a cut window.
const (
	cutOut    = iota // left out: a read, refusal or keepalive across T0
	cutPrefix        // P
	cutRunning
	cutWindowed
)

// cutWindowAt builds the cut window [t0, t1] for a failing window that
// starts at position limit of the order. When there is none it returns an
// earlier time to try (the call of an operation that ruled t0 out), or 0.
func cutWindowAt(patched []Op, ops []porcupine.Operation, pos []int, w *walked, passed []span, limit int, t0, t1 time.Duration) (*timeWindow, time.Duration) {
	// seen: the largest revision an answer that returned before t0 showed.
	var seen int64
	for i := range patched {
		o := &patched[i]
		if r, ok := pinnedRevision(o); ok && !o.Open && o.Return < t0 {
			seen = max(seen, r)
		}
	}
	place := make([]int, len(patched))
	for p, i := range w.order {
		place[i] = p
	}
	role := make([]int, len(patched))
	running := 0
	for i := range patched {
		o := &patched[i]
		switch {
		case o.ClientID < 0:
			r, ok := logPin(o)
			switch {
			case !ok:
				return nil, 0
			case r < seen:
				role[i] = cutPrefix
			default:
				role[i] = cutRunning // placed below, once S_P is known
			}
		case o.Call >= t0:
			role[i] = cutWindowed
		case returned(o) < t0:
			role[i] = cutPrefix
		case leavesState(o):
			role[i] = cutOut
		case o.Open:
			// No answer bounds it; the log may still pin where it took
			// effect (a write the evidence settled as applied), as for
			// the leader's expiries.
			r, ok := logPin(o)
			switch {
			case !ok:
				return nil, o.Call
			case r < seen:
				role[i] = cutPrefix
			default:
				role[i] = cutRunning
				running++
			}
		default:
			r, ok := pinnedBelow(o)
			switch {
			case !ok:
				return nil, o.Call
			case r < seen, r == seen && bumpsTo(o, w, place[i], seen):
				// It took effect before the store passed r, which it had
				// by t0, or it is the write that took the store to seen.
				role[i] = cutPrefix
			default:
				role[i] = cutRunning
				running++
			}
		}
	}
	if running > maxCutRunning {
		return nil, 0
	}
	// k0: the first position of the order that is not P or a read or
	// refusal left out, and not past the failing window's start; the
	// walk's state there is P's so far (the windows before it passed).
	k0 := limit
	for p, i := range w.order[:limit] {
		if role[i] != cutPrefix && !(role[i] == cutOut && patched[i].Request.Type != model.LeaseKeepAlive) {
			k0 = p
			break
		}
	}
	for _, sp := range passed {
		if sp.a < k0 && sp.b > k0 {
			return nil, 0
		}
	}
	tw := &timeWindow{from: t0, to: t1, cut: true}
	state := w.states[k0]
	for p, i := range w.order {
		if role[i] != cutPrefix {
			continue
		}
		if p >= k0 {
			o := &patched[i]
			next := model.Step(state, o.Request, o.Response)
			if len(next) == 0 {
				return nil, 0
			}
			state = choose(next, state, o.applied)
		}
		tw.prefix = append(tw.prefix, pos[i])
	}
	tw.start = state
	// The expiries: with F if F could reach their revision, else after.
	reach := state.Revision + int64(running)
	var f []int
	for _, i := range w.order {
		if role[i] != cutRunning {
			continue
		}
		if patched[i].ClientID < 0 {
			if r, _ := logPin(&patched[i]); r > reach {
				role[i] = cutWindowed
				continue
			}
		}
		f = append(f, i)
	}
	starts, ok := cutStates(patched, f, state, seen)
	if !ok || len(starts) == 0 {
		return nil, 0
	}
	tw.starts = starts
	tw.running = len(f)
	for _, i := range f {
		op := ops[pos[i]]
		pin, ok := pinnedBelow(&patched[i])
		if patched[i].ClientID < 0 || patched[i].Open {
			pin, ok = logPin(&patched[i])
		}
		if !ok {
			return nil, 0
		}
		search := porcupine.Operation{ClientId: op.ClientId, Call: op.Call, Return: op.Return,
			Input: runningOp{req: op.Input.(model.Request), pin: pin}, Output: op.Output, Metadata: op.Metadata}
		// As the report shows it: of unknown outcome.
		op.Output = model.Response{Status: model.StatusUnknown}
		tw.push(op, search, true, pos[i])
	}
	for _, i := range w.order {
		if role[i] == cutWindowed && (patched[i].ClientID < 0 || patched[i].Call <= t1) {
			tw.add(patched, ops, pos, []int{i}, t1)
		}
	}
	tw.prune()
	return tw, 0
}

// runningOp is an operation running across a cut window's start, as its
// search takes it: applied as answered, or, once the store is at its pin
// or past it, as having no effect (it took effect before the start).
type runningOp struct {
	req model.Request
	pin int64
}

// searchOps are the time window's operations as porcupine searches them:
// a cut window's running operations as runningOp, each with its answer,
// and those running at the end that are pinned as maybeOp (see add).
func (t *timeWindow) searchOps() []porcupine.Operation {
	if t.search == nil {
		return t.ops
	}
	return t.search
}

// bumpsTo says whether o is a write whose answer says it took the store
// to revision rev: a txn (puts, deletes and transactions) whose answer,
// accepted by the walk at its place p from revision rev-1, raises the
// revision to rev. Whether a txn raises the revision follows from its
// answer (the branch taken, what each operation deleted), so it does in
// every order that accepts it.
func bumpsTo(o *Op, w *walked, p int, rev int64) bool {
	if o.Request.Type != model.Txn || o.Response.Status != model.StatusOK || w.states[p].Revision != rev-1 {
		return false
	}
	next := model.Step(w.states[p], o.Request, o.Response)
	return len(next) == 1 && next[0].Revision == rev
}

// cutStates is every state got from start by applying a subset of the
// operations f (indices into patched, in the order's order) in that
// order, each accepted by model.Step as answered, at revision seen or
// above (an answer before T0 showed seen); ok is false past the bounds.
func cutStates(patched []Op, f []int, start model.State, seen int64) (states []model.State, ok bool) {
	steps := 0
	type node struct {
		s model.State
		k int
	}
	var out []model.State
	add := func(s model.State) bool {
		for _, o := range out {
			if o.Hash() == s.Hash() && o.Equal(s) {
				return true
			}
		}
		out = append(out, s)
		return len(out) <= maxCutStates
	}
	// Depth first: each operation skipped or applied.
	stack := []node{{start, 0}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.k == len(f) {
			if n.s.Revision < seen {
				continue
			}
			if !add(n.s) {
				return nil, false
			}
			continue
		}
		stack = append(stack, node{n.s, n.k + 1})
		o := &patched[f[n.k]]
		if steps++; steps > maxCutSteps {
			return nil, false
		}
		for _, next := range model.Step(n.s, o.Request, o.Response) {
			stack = append(stack, node{next, n.k + 1})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Revision < out[b].Revision })
	return out, true
}

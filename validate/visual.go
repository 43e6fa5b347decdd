package validate

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// MaxVisualizedOps bounds history.html: a history with more operations is
// shown as a window of about this many. porcupine's page grows faster than
// linearly with the operations it shows (it keeps partial linearizations),
// so this bounds its size.
const MaxVisualizedOps = 1000

// windowCheckTimeout bounds porcupine's search over the operations a
// HistoryView shows.
const windowCheckTimeout = 30 * time.Second

// maxFoldedStates bounds the states a window may start from; folding stops
// before an operation that would leave more.
const maxFoldedStates = 64

// HistoryView is everything history.html shows of the linearizability
// check, computed by the stage after its verdict and never deciding it: at
// most about MaxVisualizedOps operations, the states they start from, and
// porcupine's search over them from those states.
type HistoryView struct {
	// Ops are the operations shown, as porcupine reads them.
	Ops []porcupine.Operation
	// States are the model states the shown operations start from: the
	// initial state, or the states the operations folded before the window
	// leave.
	States []model.State
	// Info is porcupine's search over Ops from States (PorcupineModel).
	Info porcupine.LinearizationInfo
	// Total is how many operations the whole history has; Folded how many
	// of them, ordered before the window, are folded into States.
	Total, Folded int
	// From and To are the call times of the first and last operation of
	// the window.
	From, To time.Duration
	// Description says in one line which operations are shown, and why
	// those.
	Description string
}

// PorcupineModel is model.Porcupine starting from any of states.
func PorcupineModel(states []model.State) porcupine.Model {
	m := model.Porcupine
	m.Init = func() interface{} {
		out := make([]interface{}, len(states))
		for i, s := range states {
			out[i] = s
		}
		return out
	}
	return m
}

// firstView shows the first MaxVisualizedOps operations of a linearizable
// history in call order, from the initial state, with porcupine's search
// over them. A prefix in call order may cut a read off from a write it saw;
// the description says so when porcupine cannot place all of it.
func firstView(ops []porcupine.Operation) *HistoryView {
	v := prefixView(ops, callOrder(ops), "in call order")
	switch v.check() {
	case porcupine.Illegal:
		v.Description += "; porcupine cannot place all of them, as the window cuts the history at a call: that is not a violation"
	case porcupine.Unknown:
		v.Description += fmt.Sprintf("; porcupine's search over them did not finish within %s, so the drawing shows the orders it had found", windowCheckTimeout)
	}
	return v
}

// witnessView shows the first MaxVisualizedOps operations in the witness's
// order (see witnessed), from the initial state. That order is a
// linearization, and so is every prefix of it, so porcupine need not
// search: its checker is led along the order (orderModel), which takes
// time linear in the operations where a search over a window of etcd
// traffic takes seconds. The page draws it with the model itself.
func witnessView(ops []porcupine.Operation, patched []Op, pos []int) *HistoryView {
	order := placeOrder(patched, pos)
	v := prefixView(ops, order, "in the committed log's order")
	applied := make([]bool, len(ops))
	for i, p := range pos {
		applied[p] = patched[i].applied
	}
	shown := order[:len(v.Ops)]
	seq := make([]porcupine.Operation, len(shown))
	steps := make([]bool, len(shown))
	for k, i := range shown {
		seq[k], steps[k] = ops[i], applied[i]
	}
	res, info := porcupine.CheckOperationsVerbose(orderModel(seq, steps), v.Ops, windowCheckTimeout)
	v.Info = info
	if res != porcupine.Ok {
		// Not expected: the witness checked this order. Search instead.
		if v.check() != porcupine.Ok {
			v.Description += "; porcupine's search over them did not end in a linearization within " + windowCheckTimeout.String()
		}
	}
	return v
}

// prefixView holds the first MaxVisualizedOps operations in order (indices
// into ops), from the initial state; how names the order.
func prefixView(ops []porcupine.Operation, order []int, how string) *HistoryView {
	n := min(len(order), MaxVisualizedOps)
	v := &HistoryView{States: []model.State{model.InitialState()}, Total: len(ops)}
	for _, i := range order[:n] {
		v.Ops = append(v.Ops, ops[i])
	}
	v.From, v.To = callRange(v.Ops)
	what := fmt.Sprintf("all %d operations", len(ops))
	if n < len(ops) {
		what = fmt.Sprintf("the first %d of the %d operations %s, called from %s to %s", n, len(ops), how, roundMS(v.From), roundMS(v.To))
	}
	v.Description = what + ", from the initial state (the history is linearizable)"
	return v
}

// ordered is orderModel's state: how many operations of the order are
// linearized, and the model's state after them.
type ordered struct {
	next  int
	state model.State
}

// orderModel accepts only seq's operations, one after the other, each
// from the state the ones before it left (Step's, as choose picks among
// them: applied[k] says seq[k] took effect at its log entry). Operations
// are told apart by their request and response, as porcupine hands them
// over (model.Request and model.Response hold no slices, so they compare
// with ==, and each operation's point to its own parts); two equal ones
// have equal effects.
func orderModel(seq []porcupine.Operation, applied []bool) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return ordered{state: model.InitialState()} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			st := state.(ordered)
			if st.next >= len(seq) || seq[st.next].Input != input || seq[st.next].Output != output {
				return false, nil
			}
			next := model.Step(st.state, input.(model.Request), output.(model.Response))
			if len(next) == 0 {
				return false, nil
			}
			return true, ordered{st.next + 1, choose(next, st.state, applied[st.next])}
		},
		Equal: func(a, b interface{}) bool {
			x, y := a.(ordered), b.(ordered)
			return x.next == y.next && x.state.Equal(y.state)
		},
		Hash: func(s interface{}) uint64 { return s.(ordered).state.Hash() ^ uint64(s.(ordered).next) },
	}
}

// windowView shows about MaxVisualizedOps operations, in call order,
// around ops[center]: the operations of order (a valid order of some of
// them from the states start, in order) that were called before the
// window are folded into the states the window starts from, and porcupine
// searches the window again from there. why says how center was chosen.
func windowView(ops []porcupine.Operation, start []model.State, center int, order []int, why string) *HistoryView {
	return windowViewOf(ops, start, center, order, why, MaxVisualizedOps, windowCheckTimeout)
}

// windowViewOf is windowView with size operations at most, and porcupine's
// search over them bounded by timeout.
func windowViewOf(ops []porcupine.Operation, start []model.State, center int, order []int, why string, size int, timeout time.Duration) *HistoryView {
	byCall := make([]int, len(ops))
	for i := range byCall {
		byCall[i] = i
	}
	sort.SliceStable(byCall, func(a, b int) bool { return ops[byCall[a]].Call < ops[byCall[b]].Call })
	pos := 0
	for p, i := range byCall {
		if i == center {
			pos = p
		}
	}
	lo := max(0, min(pos-size/2, len(ops)-size))
	hi := min(len(ops), lo+size)
	from, to := ops[byCall[lo]].Call, ops[byCall[hi-1]].Call

	states := start
	folded := make([]bool, len(ops))
	nFolded := 0
	for _, i := range order {
		if ops[i].Call >= from {
			break
		}
		next := stepAll(states, ops[i])
		if len(next) == 0 || len(next) > maxFoldedStates {
			break
		}
		states, folded[i] = next, true
		nFolded++
	}
	v := &HistoryView{States: states, Total: len(ops), Folded: nFolded, From: time.Duration(from), To: time.Duration(to)}
	for i, op := range ops {
		if !folded[i] && op.Call <= to {
			v.Ops = append(v.Ops, op)
		}
	}
	v.Description = fmt.Sprintf("a window of %d of the %d operations, called from %s to %s, %s; the %d operations ordered before it are folded into the starting state (%s)",
		len(v.Ops), len(ops), roundMS(v.From), roundMS(v.To), why, nFolded, statesString(states))
	if v.checkWithin(timeout) == porcupine.Unknown {
		v.Description += fmt.Sprintf("; porcupine's search over the window did not finish within %s, so the drawing shows the orders it had found", timeout)
	}
	return v
}

// wholeView shows every operation, with the search the verdict's own
// verbose search left (info over ops from the initial state).
func wholeView(ops []porcupine.Operation, info porcupine.LinearizationInfo, desc string) *HistoryView {
	v := &HistoryView{Ops: ops, States: []model.State{model.InitialState()}, Info: info, Total: len(ops), Description: desc}
	v.From, v.To = callRange(ops)
	return v
}

// check runs porcupine's search over the view's operations from its
// states, keeping what the page draws, and returns its result.
func (v *HistoryView) check() porcupine.CheckResult { return v.checkWithin(windowCheckTimeout) }

// checkWithin is check within timeout.
func (v *HistoryView) checkWithin(timeout time.Duration) porcupine.CheckResult {
	res, info := porcupine.CheckOperationsVerbose(PorcupineModel(v.States), v.Ops, timeout)
	v.Info = info
	return res
}

// stepAll applies op to every state and returns the distinct states it
// may lead to.
func stepAll(states []model.State, op porcupine.Operation) []model.State {
	var next []model.State
	for _, s := range states {
		for _, n := range model.Step(s, op.Input.(model.Request), op.Output.(model.Response)) {
			if !containsState(next, n) {
				next = append(next, n)
			}
		}
	}
	return next
}

func containsState(states []model.State, s model.State) bool {
	for _, o := range states {
		if o.Equal(s) {
			return true
		}
	}
	return false
}

// callOrder is the indices of ops by call time.
func callOrder(ops []porcupine.Operation) []int {
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].Call < ops[order[b]].Call })
	return order
}

// placeOrder is the indices into the porcupine operations (pos[i] is
// patched[i]'s) in the witness's order.
func placeOrder(patched []Op, pos []int) []int {
	byPlace := make([]int, len(patched))
	for i := range byPlace {
		byPlace[i] = i
	}
	sort.SliceStable(byPlace, func(a, b int) bool { return patched[byPlace[a]].place < patched[byPlace[b]].place })
	order := make([]int, len(patched))
	for k, i := range byPlace {
		order[k] = pos[i]
	}
	return order
}

// logOrderStop walks the witness's order (see witnessed) from the initial
// state and returns the first operation model.Step rejects, as an index
// into the porcupine operations, with the operations before it in that
// order; -1 when some operation has no place or every one is accepted.
func logOrderStop(patched []Op, pos []int) (int, []int) {
	for i := range patched {
		if patched[i].place == 0 {
			return -1, nil
		}
	}
	order := placeOrder(patched, pos)
	byPos := make([]int, len(patched)) // porcupine index -> patched index
	for i, p := range pos {
		byPos[p] = i
	}
	state := model.InitialState()
	for k, p := range order {
		o := &patched[byPos[p]]
		next := model.Step(state, o.Request, o.Response)
		if len(next) == 0 {
			return p, order[:k]
		}
		state = choose(next, state, o.applied)
	}
	return -1, nil
}

func callRange(ops []porcupine.Operation) (from, to time.Duration) {
	for i, op := range ops {
		if i == 0 || time.Duration(op.Call) < from {
			from = time.Duration(op.Call)
		}
		to = max(to, time.Duration(op.Call))
	}
	return from, to
}

// maxStatesShown bounds the starting states a description spells out.
const maxStatesShown = 2000

func statesString(states []model.State) string {
	var out []string
	for _, s := range states {
		out = append(out, s.String())
	}
	s := strings.Join(out, " or ")
	if len(s) > maxStatesShown {
		s = s[:maxStatesShown] + " …"
	}
	return s
}

func roundMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

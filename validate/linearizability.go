package validate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// DefaultLinearizabilityTimeout bounds porcupine's search.
const DefaultLinearizabilityTimeout = time.Minute

// Linearizability checks the patched history against model.Porcupine. The
// verdict comes from one path, whatever is asked of the report: the
// log-order witness first (ordered.go; it can only certify a pass), then
// porcupine's plain search, within Timeout. Only then, and never changing
// the verdict, it computes what the report draws (Result.History) and, for
// a violation, its explanation (Result.Explanation, Result.Involved).
type Linearizability struct {
	// Timeout bounds the search; zero means DefaultLinearizabilityTimeout.
	Timeout time.Duration
	// Visualize asks for the report's HistoryView also when the history is
	// linearizable; a violation always gets one.
	Visualize bool
	// SearchOnly skips the witness, so that porcupine alone decides. It is
	// for tests that compare the two; Stages never sets it.
	SearchOnly bool
}

// Name implements Validator.
func (Linearizability) Name() string { return "linearizability" }

// Validate implements Validator.
func (l Linearizability) Validate(ctx context.Context, c *Check) (r Result) {
	if c.Patched == nil {
		// Run alone (without the patch stage): check the history as
		// recorded, every write of unknown outcome left open.
		p, ops := derive(c.Clients)
		for _, o := range ops {
			p.Ops = append(p.Ops, o.Op)
		}
		p.Open = countOpen(ops)
		p.noWitness = "no committed log to order by (the patch stage did not run)"
		c.Patched = p
	}
	p := c.Patched
	r = Result{CheckedWhat: "operations"}
	if len(p.Ops) == 0 {
		r.Verdict, r.Message = Inconclusive, "the history is empty"
		return r
	}
	if len(p.Unsupported) > 0 {
		r.Verdict, r.Message = Inconclusive, fmt.Sprintf("%d requests are of kinds the model does not check yet, e.g. %s", len(p.Unsupported), p.Unsupported[0])
		return r
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = DefaultLinearizabilityTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	// Once an earlier stage found a violation the run fails on it; the
	// search is shortened, and a search cut short says so (never a pass).
	var shortened string
	if c.Violated != "" && timeout > FoundSearchTimeout {
		timeout = FoundSearchTimeout
		shortened = fmt.Sprintf("; the search was given %s, as the %s stage had found a violation", FoundSearchTimeout, c.Violated)
	}
	defer func() {
		if r.Verdict == TimedOut {
			r.Message += shortened
		}
	}()
	start := time.Now()
	// A pass needs a write known to have taken effect: a history without one
	// exercises nothing.
	knownWrites := history.Count(c.Clients).SuccessfulWrites + p.Applied + p.Server
	noWitness := p.noWitness
	if noWitness == "" {
		noWitness = witnessed(p.Ops)
	}
	if l.SearchOnly {
		noWitness = "skipped (SearchOnly)"
	}
	ops, pos := porcupineOps(p.Ops)
	if knownWrites > 0 && noWitness == "" {
		r.Verdict, r.Checked = OK, len(ops)
		r.Message = fmt.Sprintf("%d operations are linearizable, in the committed log's order (%d of unknown outcome left open; checked in %s)",
			len(ops), p.Open, time.Since(start).Round(time.Millisecond))
		if l.Visualize {
			r.History = witnessView(ops, p.Ops, pos)
		}
		return r
	}
	// An expiry before a deadline etcd acknowledged fails every order
	// (lease.go): no search needed to say so.
	if e, found := earlyExpiry(p.Ops); found && noWitness != "" && !l.SearchOnly {
		r.Verdict, r.Checked = Illegal, len(ops)
		r.Message = fmt.Sprintf("%d operations are not linearizable: %s (checked in %s)", len(ops), e.message, time.Since(start).Round(time.Millisecond))
		r.Explanation, r.Involved = e.explanation, e.involved
		return r
	}
	// The witness's order failed somewhere: porcupine searches only around
	// there (window.go), and the whole history only if that decides
	// nothing, within what is left of the time limit.
	var windows string
	if !l.SearchOnly {
		wo := searchWindows(ctx, p.Ops, ops, pos, timeout)
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case wo.result == porcupine.Ok && knownWrites > 0:
			r.Verdict, r.Checked = OK, len(ops)
			r.Message = fmt.Sprintf("%d operations are linearizable, in the committed log's order where it holds and by the windows' search where it does not: %s (%d of unknown outcome left open; checked in %s; the log's order alone was no witness: %s)",
				len(ops), wo.what, p.Open, took, noWitness)
			if l.Visualize {
				// The witness's order up to its first failing window is a
				// linearization's prefix: when the view ends before it,
				// it is drawn along that order in linear time, else
				// searched (witnessView).
				r.History = witnessView(ops, p.Ops, pos)
			}
			return r
		case wo.result == porcupine.Illegal:
			r.Verdict, r.Checked = Illegal, len(ops)
			r.Message = fmt.Sprintf("%d operations are not linearizable, by %s (checked in %s)", len(ops), wo.what, took)
			windowViolation(ctx, c, &r, ops, wo.fail, wo.longest)
			return r
		case wo.result == porcupine.Unknown:
			windows = "; the windowed search decided nothing: " + wo.why
		}
		timeout -= time.Since(start)
		if timeout <= 0 {
			r.Verdict, r.Message = TimedOut, fmt.Sprintf("checking %d operations did not finish within %s (%d of unknown outcome left open; the log's order was no witness: %s%s)",
				len(ops), l.timeout(), p.Open, noWitness, windows)
			return r
		}
	}
	res, err := porcupineCheck(ctx, ops, timeout, false)
	if err != nil {
		r.Verdict, r.Message = TimedOut, fmt.Sprintf("checking %d operations was cancelled: %v", len(ops), err)
		return r
	}
	took := time.Since(start).Round(time.Millisecond)
	switch res.result {
	case porcupine.Ok:
		if knownWrites == 0 {
			r.Verdict, r.Message = Inconclusive, fmt.Sprintf("none of %d operations is a write known to have taken effect", len(ops))
			return r
		}
		r.Verdict, r.Checked = OK, len(ops)
		r.Message = fmt.Sprintf("%d operations are linearizable, by porcupine's search over %d operations (%d of unknown outcome left open; checked in %s; the log's order was no witness: %s%s)",
			len(ops), len(ops), p.Open, took, noWitness, windows)
		if l.Visualize {
			r.History = firstView(ops)
		}
	case porcupine.Illegal:
		r.Verdict, r.Checked = Illegal, len(ops)
		r.Message = fmt.Sprintf("%d operations are not linearizable, by porcupine's search over %d operations (checked in %s)", len(ops), len(ops), took)
		violation(ctx, c, &r, ops, pos, timeout)
	default:
		// Say why the witness did not certify: the search alone cannot
		// tell whether the history is too hard or the order failed on
		// something the report should name.
		r.Verdict, r.Message = TimedOut, fmt.Sprintf("checking %d operations did not finish within %s (%d of unknown outcome left open; the log's order was no witness: %s%s)",
			len(ops), l.timeout(), p.Open, noWitness, windows)
	}
	return r
}

// timeout is the search's time limit.
func (l Linearizability) timeout() time.Duration {
	if l.Timeout == 0 {
		return DefaultLinearizabilityTimeout
	}
	return l.Timeout
}

// windowViolation explains a violation the windowed search found in the
// time window tw, and computes its HistoryView, without changing the
// verdict: local is the longest order the search placed in tw (indices
// into tw.ops), which, after the prefix tw starts from, stands for the
// checker's longest order, and the operation outside it that returned
// first is the one no order gets past (as stuckOp says for porcupine's).
// The page shows about viewOps operations of the time window around it,
// from the states it starts in, with porcupine's search over what it
// shows, within viewTimeout: the verdict is the windows' search's.
func windowViolation(ctx context.Context, c *Check, r *Result, ops []porcupine.Operation, tw *timeWindow, local []int) {
	in := make([]bool, len(tw.ops))
	for _, k := range local {
		in[k] = true
	}
	stuck := -1
	for k := range tw.ops {
		if !in[k] && (stuck < 0 || tw.ops[k].Return < tw.ops[stuck].Return) {
			stuck = k
		}
	}
	if stuck < 0 {
		r.Message += "; the search placed every operation of the window, unlike its verdict"
		r.History = firstView(ops)
		return
	}
	longest := append([]int(nil), tw.prefix...)
	for _, k := range local {
		longest = append(longest, tw.index[k])
	}
	g := tw.index[stuck]
	r.Message += ": " + firstStuck(ops, g, len(longest))
	r.Explanation, r.Involved = explainStuck(c, ops, g, longest)
	why := "around the first operation that could not be placed in " + tw.describe()
	v := windowViewOf(tw.ops, tw.states(), stuck, local, why, viewOps, viewTimeout)
	v.Total, v.Folded = len(ops), v.Folded+len(tw.prefix)
	r.History = v
}

// viewOps and viewTimeout bound the drawing of a violation the windows'
// search found: porcupine, which draws it, searches it again.
const (
	viewOps     = 200
	viewTimeout = time.Second
)

// violation explains a violation porcupine's plain search found, and
// computes its HistoryView, without changing the verdict. Porcupine's
// verbose search over the whole history gives the longest order it can
// find and the first operation that cannot be placed after it; when that
// search does not finish within timeout, the first operation the committed
// log's order cannot place stands in for it, or else the first operations
// are shown, and the result says so.
func violation(ctx context.Context, c *Check, r *Result, ops []porcupine.Operation, pos []int, timeout time.Duration) {
	verbose, err := porcupineCheck(ctx, ops, timeout, true)
	if err != nil {
		r.Message += "; the search for the operation it cannot place was cancelled"
		return
	}
	stuck, longest := stuckOp(ops, verbose.info)
	searched := verbose.result == porcupine.Illegal && stuck >= 0
	why, fallback := "around the first operation that could not be placed", ""
	if !searched {
		fallback = fmt.Sprintf("porcupine's search for the longest order did not finish within %s", timeout)
		if verbose.result != porcupine.Unknown {
			fallback = fmt.Sprintf("porcupine's search for the longest order answered %s, unlike its plain search", verbose.result)
		}
		if s, prefix := logOrderStop(c.Patched.Ops, pos); s >= 0 {
			stuck, longest = s, prefix
			fallback += "; the committed log's order cannot place " + source(ops[s])
			why = "around " + source(ops[s]) + ", the first operation the committed log's order cannot place (" + fallback + ")"
		} else {
			stuck, longest = -1, nil
			fallback += ", and the committed log's order gives no operation in its place"
		}
	}
	if stuck >= 0 {
		if searched {
			r.Message += ": " + firstStuck(ops, stuck, len(longest))
		} else {
			r.Message += "; " + fallback
		}
		r.Explanation, r.Involved = explainStuck(c, ops, stuck, longest)
		if !searched {
			r.Explanation += " (" + fallback + ".)"
		}
	} else {
		r.Message += "; " + fallback
	}
	switch {
	case len(ops) <= MaxVisualizedOps:
		desc := fmt.Sprintf("all %d operations, from the initial state", len(ops))
		if searched {
			desc += "; the first that could not be placed is " + source(ops[stuck])
		} else {
			desc += " (" + fallback + ", so the drawing shows the orders it had found)"
		}
		r.History = wholeView(ops, verbose.info, desc)
	case stuck >= 0:
		r.History = windowView(ops, []model.State{model.InitialState()}, stuck, longest, why)
	default:
		r.History = firstView(ops)
		r.History.Description = fmt.Sprintf("the first %d of the %d operations in call order, from the initial state, as no operation could be singled out (%s)",
			len(r.History.Ops), len(ops), fallback)
	}
}

type porcupineResult struct {
	result porcupine.CheckResult
	info   porcupine.LinearizationInfo
}

// porcupineCheck runs porcupine aside, since it takes no context, so that a
// cancelled run (Ctrl-C) does not wait for the search to end.
func porcupineCheck(ctx context.Context, ops []porcupine.Operation, timeout time.Duration, verbose bool) (porcupineResult, error) {
	done := make(chan porcupineResult, 1)
	go func() {
		if verbose {
			res, info := porcupine.CheckOperationsVerbose(model.Porcupine, ops, timeout)
			done <- porcupineResult{res, info}
			return
		}
		done <- porcupineResult{result: porcupine.CheckOperationsTimeout(model.Porcupine, ops, timeout)}
	}()
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		return porcupineResult{}, ctx.Err()
	}
}

// PorcupineOperations turns the patched history into porcupine's input.
// An open operation returns after the end of the history. Porcupine shows
// one row per client and expects a client's operations not to overlap; an
// operation whose return was moved past the client's next call puts the
// client's later operations on a new row.
func PorcupineOperations(patched []Op) []porcupine.Operation {
	ops, _ := porcupineOps(patched)
	return ops
}

// porcupineOps is PorcupineOperations, with where each operation of
// patched went: pos[i] is patched[i]'s index in the operations.
func porcupineOps(patched []Op) ([]porcupine.Operation, []int) {
	order := make([]int, len(patched))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &patched[order[a]], &patched[order[b]]
		if x.ClientID != y.ClientID {
			return x.ClientID < y.ClientID
		}
		return x.Call < y.Call
	})
	var end time.Duration
	for _, o := range patched {
		end = max(end, o.Return, o.Call)
	}
	out := make([]porcupine.Operation, 0, len(patched))
	pos := make([]int, len(patched))
	row, busyUntil, lastClient := -1, time.Duration(0), 0
	for k, i := range order {
		o := &patched[i]
		ret := o.Return
		if o.Open {
			ret = end + 1
		}
		if k == 0 || o.ClientID != lastClient || o.Call <= busyUntil {
			row++
		}
		lastClient, busyUntil = o.ClientID, ret
		pos[i] = len(out)
		out = append(out, porcupine.Operation{
			ClientId: row,
			Input:    o.Request,
			Call:     int64(o.Call),
			Output:   o.Response,
			Return:   int64(ret),
			Metadata: o.Source,
		})
	}
	return out, pos
}

// firstStuck names the operation the checker could not get past (see
// stuckOp), with how many operations it could order before it.
func firstStuck(ops []porcupine.Operation, stuck, ordered int) string {
	op := ops[stuck]
	return fmt.Sprintf("no linearization gets past %s (%v, called at %s, %d of %d operations linearized)",
		model.Describe(op.Input.(model.Request), op.Output.(model.Response)), op.Metadata,
		time.Duration(op.Call).Round(time.Millisecond), ordered, len(ops))
}

// stuckOp returns, from porcupine's verbose search over ops, its longest
// partial linearization (indices into ops, in order) and the operation
// outside it that returned first, which had to be linearized before
// anything after it; -1 when every operation is in it.
func stuckOp(ops []porcupine.Operation, info porcupine.LinearizationInfo) (int, []int) {
	var longest []int
	for _, partition := range info.PartialLinearizations() {
		for _, lin := range partition {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	linearized := make([]bool, len(ops))
	for _, i := range longest {
		linearized[i] = true
	}
	stuck := -1
	for i := range ops {
		if !linearized[i] && (stuck < 0 || ops[i].Return < ops[stuck].Return) {
			stuck = i
		}
	}
	return stuck, longest
}

// source is where an operation comes from ("client 3 #17").
func source(op porcupine.Operation) string { return fmt.Sprint(op.Metadata) }

func conditions(req model.Request) []model.Compare {
	if req.Txn == nil {
		return nil
	}
	return req.Txn.Conditions
}

// describeKeys renders a state's revision and the keys req touches.
func describeKeys(s model.State, req model.Request) string {
	out := fmt.Sprintf("revision %d", s.Revision)
	seen := map[string]bool{}
	if req.Txn == nil {
		return out
	}
	for _, ops := range [][]model.Op{req.Txn.Then, req.Txn.Else} {
		for _, op := range ops {
			if op.End != "" || seen[op.Key] {
				continue
			}
			seen[op.Key] = true
			if v, ok := s.Get(op.Key); ok {
				out += fmt.Sprintf(" with %s=%s@%d", op.Key, v.Value, v.ModRevision)
			} else {
				out += fmt.Sprintf(" with %s absent", op.Key)
			}
		}
	}
	return out
}

// writtenKeys are the keys a successful response says req wrote.
func writtenKeys(req model.Request, resp model.Response) []string {
	if resp.Status != model.StatusOK || resp.Txn == nil || req.Txn == nil {
		return nil
	}
	branch := req.Txn.Then
	if !resp.Txn.Succeeded {
		branch = req.Txn.Else
	}
	var keys []string
	for i, op := range branch {
		if op.Type == model.OpPut || (op.Type == model.OpDelete && i < len(resp.Txn.Results) && resp.Txn.Results[i].Deleted > 0) {
			keys = append(keys, op.Key)
		}
	}
	return keys
}

package validate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// DefaultLinearizabilityTimeout bounds porcupine's search.
const DefaultLinearizabilityTimeout = time.Minute

// Linearizability checks the patched history against model.Porcupine.
type Linearizability struct {
	// Timeout bounds the search; zero means DefaultLinearizabilityTimeout.
	Timeout time.Duration
	// Visualize keeps porcupine's search for the report also when the
	// history is linearizable; a violation always keeps it.
	Visualize bool
}

// Name implements Validator.
func (Linearizability) Name() string { return "linearizability" }

// Validate implements Validator.
func (l Linearizability) Validate(ctx context.Context, c *Check) Result {
	if c.Patched == nil {
		// Run alone (without the patch stage): check the history as
		// recorded, every write of unknown outcome left open.
		p, ops := derive(c.Clients)
		for _, o := range ops {
			p.Ops = append(p.Ops, o.Op)
		}
		p.Open = countOpen(ops)
		c.Patched = p
	}
	p := c.Patched
	if len(p.Ops) == 0 {
		return Result{Verdict: Inconclusive, Message: "the history is empty"}
	}
	if len(p.Unsupported) > 0 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("%d requests are of kinds the model does not check yet, e.g. %s", len(p.Unsupported), p.Unsupported[0])}
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = DefaultLinearizabilityTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	start := time.Now()
	// A pass needs a write known to have taken effect: a history without one
	// exercises nothing.
	knownWrites := history.Count(c.Clients).SuccessfulWrites + p.Applied + p.Server
	noWitness := p.noWitness
	if noWitness == "" {
		noWitness = witnessed(p.Ops)
	}
	if knownWrites > 0 && !l.Visualize && noWitness == "" {
		return Result{Verdict: OK, Message: fmt.Sprintf("%d operations are linearizable, in the committed log's order (%d of unknown outcome left open; checked in %s)",
			len(p.Ops), p.Open, time.Since(start).Round(time.Millisecond))}
	}
	ops := PorcupineOperations(p.Ops)
	res, err := porcupineCheck(ctx, ops, timeout, false)
	if err != nil {
		return Result{Verdict: TimedOut, Message: fmt.Sprintf("checking %d operations was cancelled: %v", len(ops), err)}
	}
	took := time.Since(start).Round(time.Millisecond)
	var r Result
	switch res.result {
	case porcupine.Ok:
		if knownWrites == 0 {
			return Result{Verdict: Inconclusive, Message: fmt.Sprintf("none of %d operations is a write known to have taken effect", len(ops))}
		}
		r = Result{Verdict: OK, Message: fmt.Sprintf("%d operations are linearizable (%d of unknown outcome left open; checked in %s by porcupine's search, as the log's order was no witness: %s)", len(ops), p.Open, took, noWitness)}
		if !l.Visualize {
			return r
		}
	case porcupine.Illegal:
		r = Result{Verdict: Illegal, Message: fmt.Sprintf("%d operations are not linearizable", len(ops))}
	default:
		return Result{Verdict: TimedOut, Message: fmt.Sprintf("checking %d operations did not finish within %s", len(ops), timeout)}
	}
	// The search again, keeping what the visualization and the
	// explanation need: it costs more than the plain check.
	verbose, err := porcupineCheck(ctx, ops, timeout, true)
	if err != nil || verbose.result != res.result {
		if r.Verdict == Illegal {
			r.Message += "; see the history visualization"
		}
		return r
	}
	r.Linearization = &verbose.info
	if r.Verdict == Illegal {
		r.Message += ": " + firstStuck(ops, verbose.info)
		r.Explanation = explainStuck(ops, verbose.info)
	}
	return r
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
	ops := append([]Op(nil), patched...)
	sort.SliceStable(ops, func(i, j int) bool {
		if ops[i].ClientID != ops[j].ClientID {
			return ops[i].ClientID < ops[j].ClientID
		}
		return ops[i].Call < ops[j].Call
	})
	var end time.Duration
	for _, o := range ops {
		end = max(end, o.Return, o.Call)
	}
	out := make([]porcupine.Operation, 0, len(ops))
	row, busyUntil, lastClient := -1, time.Duration(0), 0
	for i, o := range ops {
		ret := o.Return
		if o.Open {
			ret = end + 1
		}
		if i == 0 || o.ClientID != lastClient || o.Call <= busyUntil {
			row++
		}
		lastClient, busyUntil = o.ClientID, ret
		out = append(out, porcupine.Operation{
			ClientId: row,
			Input:    o.Request,
			Call:     int64(o.Call),
			Output:   o.Response,
			Return:   int64(ret),
			Metadata: o.Source,
		})
	}
	return out
}

// firstStuck names the operation the checker could not get past: among the
// operations outside the longest partial linearization, the one that returned
// first had to be linearized before anything after it.
func firstStuck(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	stuck, longest := stuckOp(ops, info)
	if stuck == nil {
		return "see the history visualization"
	}
	return fmt.Sprintf("no linearization gets past %s (%v, called at %s, %d of %d operations linearized)",
		model.Describe(stuck.Input.(model.Request), stuck.Output.(model.Response)), stuck.Metadata,
		time.Duration(stuck.Call).Round(time.Millisecond), len(longest), len(ops))
}

// stuckOp returns the operation outside the longest partial linearization
// that returned first, and that linearization.
func stuckOp(ops []porcupine.Operation, info porcupine.LinearizationInfo) (*porcupine.Operation, []porcupine.Operation) {
	var longest []porcupine.Operation
	for _, partition := range info.PartialLinearizationsOperations() {
		for _, lin := range partition {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	// Operations are comparable: the same request and response pointers
	// come back in the partial linearizations.
	linearized := make(map[porcupine.Operation]bool, len(longest))
	for _, op := range longest {
		linearized[op] = true
	}
	var stuck *porcupine.Operation
	for i := range ops {
		if op := &ops[i]; !linearized[*op] && (stuck == nil || op.Return < stuck.Return) {
			stuck = op
		}
	}
	return stuck, longest
}

// explainStuck says in words, with etcd's revisions, why the stuck operation
// cannot be placed: what it returned, what the model allowed after the
// operations that could be ordered, and the operations that pin it down.
func explainStuck(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	stuck, longest := stuckOp(ops, info)
	if stuck == nil {
		return ""
	}
	req, resp := stuck.Input.(model.Request), stuck.Output.(model.Response)
	at := func(d int64) time.Duration { return time.Duration(d).Round(time.Millisecond) }
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%v) was called at %s", req, stuck.Metadata, at(stuck.Call))
	if resp.Status == model.StatusOK {
		fmt.Fprintf(&b, " and returned %s at %s.", resp, at(stuck.Return))
	} else {
		fmt.Fprintf(&b, " (%s).", resp)
	}
	states := []model.State{model.InitialState()}
	for _, op := range longest {
		var next []model.State
		for _, s := range states {
			for _, n := range model.Step(s, op.Input.(model.Request), op.Output.(model.Response)) {
				if !slices.ContainsFunc(next, n.Equal) && len(next) < 8 {
					next = append(next, n)
				}
			}
		}
		states = next
	}
	if len(states) > 0 {
		var alts []string
		for _, s := range states {
			alts = append(alts, describeKeys(s, req))
		}
		_, want, _ := states[0].Apply(req)
		fmt.Fprintf(&b, " After the %d operation(s) the checker could order, etcd could only be at %s; from there the model answers %s.",
			len(longest), strings.Join(alts, ", or "), want)
	}
	if resp.Status != model.StatusOK {
		return b.String()
	}
	other := func(fn func(o *porcupine.Operation, r model.Response) bool) *porcupine.Operation {
		var found *porcupine.Operation
		for i := range ops {
			o := &ops[i]
			if r := o.Output.(model.Response); o != stuck && r.Status == model.StatusOK && fn(o, r) && (found == nil || o.Return < found.Return) {
				found = o
			}
		}
		return found
	}
	name := func(o *porcupine.Operation) string {
		return fmt.Sprintf("%s (%v)", o.Input.(model.Request), o.Metadata)
	}
	if len(writtenKeys(req, resp)) > 0 {
		if o := other(func(o *porcupine.Operation, r model.Response) bool {
			return r.Revision == resp.Revision && len(writtenKeys(o.Input.(model.Request), r)) > 0
		}); o != nil {
			fmt.Fprintf(&b, " %s was also acknowledged at revision %d, at %s. A revision holds exactly one write, so one of the two was lost.",
				name(o), resp.Revision, at(o.Return))
		}
	}
	if o := other(func(o *porcupine.Operation, r model.Response) bool {
		return o.Return < stuck.Call && r.Revision > resp.Revision
	}); o != nil {
		fmt.Fprintf(&b, " Before it was called, %s had already returned revision %d, at %s. etcd's revision never goes back, so an answer at revision %d after that is stale, or the writes in between were lost.",
			name(o), o.Output.(model.Response).Revision, at(o.Return), resp.Revision)
	}
	for _, c := range conditions(req) {
		if resp.Txn == nil || !resp.Txn.Succeeded || c.Target != model.TargetMod || c.Result != model.Equal || c.End != "" {
			continue
		}
		if o := other(func(o *porcupine.Operation, r model.Response) bool {
			return o.Return < stuck.Call && r.Revision > c.Operand && slices.Contains(writtenKeys(o.Input.(model.Request), r), c.Key)
		}); o != nil {
			fmt.Fprintf(&b, " Its compare mod(%s)==%d succeeded, but %s had changed %s at revision %d, acknowledged at %s, before the compare-and-set was called: it won on a stale revision.",
				c.Key, c.Operand, name(o), c.Key, o.Output.(model.Response).Revision, at(o.Return))
		}
	}
	if resp.Txn != nil {
		for _, res := range resp.Txn.Results {
			for _, kv := range res.KVs {
				if o := other(func(o *porcupine.Operation, r model.Response) bool {
					return o.Return < stuck.Call && r.Revision > kv.ModRevision && slices.Contains(writtenKeys(o.Input.(model.Request), r), kv.Key)
				}); o != nil {
					fmt.Fprintf(&b, " It read %s=%s@%d, but %s had written %s at revision %d, acknowledged at %s, before the read was called: the read is stale.",
						kv.Key, kv.Value, kv.ModRevision, name(o), kv.Key, o.Output.(model.Response).Revision, at(o.Return))
				}
			}
		}
	}
	return b.String()
}

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

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

// Linearizability checks the KV history against model.Porcupine.
type Linearizability struct {
	// Timeout bounds the search; zero means DefaultLinearizabilityTimeout.
	Timeout time.Duration
}

// Name implements Validator.
func (Linearizability) Name() string { return "linearizability" }

// Validate implements Validator.
func (l Linearizability) Validate(ctx context.Context, in Input) Result {
	stats := history.Count(in.Clients)
	if stats.Operations == 0 {
		return Result{Verdict: Inconclusive, Message: "the history is empty"}
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = DefaultLinearizabilityTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	ops := PorcupineOperations(in.Clients)
	start := time.Now()
	// porcupine takes no context; run it aside so that a cancelled run
	// (Ctrl-C) does not wait for the search to end.
	type check struct {
		res  porcupine.CheckResult
		info porcupine.LinearizationInfo
	}
	done := make(chan check, 1)
	go func() {
		res, info := porcupine.CheckOperationsVerbose(model.Porcupine, ops, timeout)
		done <- check{res, info}
	}()
	var res porcupine.CheckResult
	var info porcupine.LinearizationInfo
	select {
	case c := <-done:
		res, info = c.res, c.info
	case <-ctx.Done():
		return Result{Verdict: TimedOut, Message: fmt.Sprintf("checking %d operations was cancelled: %v", len(ops), ctx.Err())}
	}
	took := time.Since(start).Round(time.Millisecond)
	r := Result{Linearization: &info}
	switch res {
	case porcupine.Ok:
		// A violation needs no writes to be shown, but a pass does: a
		// history without a successful write exercises nothing.
		if stats.SuccessfulWrites == 0 {
			r.Verdict = Inconclusive
			r.Message = fmt.Sprintf("none of %d operations is a successful write", stats.Operations)
			break
		}
		r.Verdict = OK
		r.Message = fmt.Sprintf("%d operations are linearizable (checked in %s)", len(ops), took)
	case porcupine.Illegal:
		r.Verdict = Illegal
		r.Message = fmt.Sprintf("%d operations are not linearizable: %s", len(ops), firstStuck(ops, info))
	default:
		r.Verdict = TimedOut
		r.Message = fmt.Sprintf("checking %d operations did not finish within %s", len(ops), timeout)
	}
	return r
}

// PorcupineOperations turns recorded client histories into porcupine's input.
//
//   - A failed read is dropped: it tells nothing.
//   - A failed write may take effect at any time after its call, even after
//     every other operation, so it returns after the end of the history.
//   - Porcupine shows one row per client and expects a client's operations
//     not to overlap; once a client's write fails it stays pending, so the
//     client's later operations move to a new row.
func PorcupineOperations(clients []history.Client) []porcupine.Operation {
	sorted := append([]history.Client(nil), clients...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	var end time.Duration
	for _, c := range sorted {
		for _, op := range c.Operations {
			end = max(end, op.Return)
		}
	}
	var ops []porcupine.Operation
	row := 0
	for _, c := range sorted {
		used := false
		for _, op := range c.Operations {
			ret := op.Return
			if op.Response.Failed() {
				if !op.Request.IsWrite() {
					continue
				}
				ret = end + 1
			}
			ops = append(ops, porcupine.Operation{
				ClientId: row,
				Input:    op.Request,
				Call:     int64(op.Call),
				Output:   op.Response,
				Return:   int64(ret),
				Metadata: op.ClientID,
			})
			used = true
			if op.Response.Failed() {
				row++
				used = false
			}
		}
		if used {
			row++
		}
	}
	return ops
}

// firstStuck names the operation the checker could not get past: among the
// operations outside the longest partial linearization, the one that returned
// first had to be linearized before anything after it.
func firstStuck(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
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
	if stuck == nil {
		return "see the history visualization"
	}
	return fmt.Sprintf("no linearization gets past %s (client %v, called at %s, %d of %d operations linearized)",
		model.Describe(stuck.Input.(model.Request), stuck.Output.(model.Response)), stuck.Metadata,
		time.Duration(stuck.Call).Round(time.Millisecond), len(longest), len(ops))
}

package validate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// StaleRead checks serializable reads, which the linearizability check
// leaves out: the member that answers one reads its own store, which may
// lag the cluster, so the read may be stale but must be a state the cluster
// had. A serializable read answered at header revision H must be the
// model's answer to the same request at Replayed[H], the state the
// committed log gives at revision H. A header revision past the last
// revision of the (complete) log is a state the cluster never committed.
// Only answered reads are checked: an error carries no revision to check
// it at.
type StaleRead struct{}

// Name implements Validator.
func (StaleRead) Name() string { return "stale-read" }

// Validate implements Validator.
func (StaleRead) Validate(_ context.Context, c *Check) Result {
	type read struct {
		source string
		rec    history.Operation
		req    model.Request
		resp   model.Response
	}
	var reads []read
	var unsupported []string
	for _, cl := range c.Clients {
		for i, rec := range cl.Operations {
			if rec.Outcome() != history.Succeeded || !serializableRecord(rec.Request) {
				continue
			}
			req, resp, err := model.FromRecord(rec)
			if err != nil {
				unsupported = append(unsupported, fmt.Sprintf("client %d #%d: %v", cl.ID, i, err))
				continue
			}
			reads = append(reads, read{fmt.Sprintf("client %d #%d", cl.ID, i), rec, req, resp})
		}
	}
	if len(reads) == 0 && len(unsupported) == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no serializable reads", CheckedWhat: "serializable reads"}
	}
	if c.Replayed == nil {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("%d serializable reads, but the committed log did not replay (%s), so there is no state to check them against",
			len(reads)+len(unsupported), firstNonEmpty(c.EvidenceError, "missing, incomplete or holding a request the model cannot apply"))}
	}
	last := int64(len(c.Replayed) - 1)
	var bad, why []string
	for _, r := range reads {
		h := r.resp.Revision
		if h < 1 || h > last {
			bad = append(bad, fmt.Sprintf("%s answered at revision %d, past the last committed revision %d", r.source, h, last))
			why = append(why, fmt.Sprintf("%s (%s) returned %s at %s; the committed log is complete and ends at revision %d, so no member could have been at revision %d.",
				r.req, r.source, r.resp, r.rec.Return, last, h))
			continue
		}
		// The member checks a serializable read's permission against its
		// own auth state, which may be any the log had at revision h; the
		// keys it read are the state's at h.
		if cands := authBetween(c.Auth, h, h); r.req.User != "" || slices.ContainsFunc(cands, model.State.AuthEnabled) {
			if !slices.ContainsFunc(cands, func(s model.State) bool { return model.PermissionError(s, r.req) == "" }) {
				bad = append(bad, fmt.Sprintf("%s read what its user %q may not read", r.source, r.req.User))
				why = append(why, fmt.Sprintf("%s (%s) returned %s at %s, but in no auth state the log had at revision %d could user %q read it.",
					r.req, r.source, r.resp, r.rec.Return, h, r.req.User))
				continue
			}
			r.req.User = model.RootUser // its permission judged, the keys remain
		}
		_, want, _ := c.Replayed[h].Apply(r.req)
		if want.Equal(r.resp) {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s is not the state at revision %d", r.source, h))
		why = append(why, fmt.Sprintf("%s (%s) returned %s at %s, but at revision %d the committed log gives %s.",
			r.req, r.source, r.resp, r.rec.Return, h, want))
	}
	if len(bad) > 0 {
		return Result{Verdict: Illegal, Checked: len(reads), CheckedWhat: "serializable reads", Message: fmt.Sprintf("%d of %d serializable reads saw a state the cluster never had at their revision, e.g. %s", len(bad), len(reads), bad[0]),
			Explanation: strings.Join(why, " ")}
	}
	if len(unsupported) > 0 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("%d serializable reads are of kinds the model does not check yet, e.g. %s", len(unsupported), unsupported[0])}
	}
	return Result{Verdict: OK, Message: fmt.Sprintf("%d serializable reads each match the replayed state at their revision", len(reads)), Checked: len(reads), CheckedWhat: "serializable reads"}
}

// serializableRecord reports whether etcd serves a recorded request
// without raft, from the answering member's store: a serializable range,
// or a transaction of serializable ranges only.
func serializableRecord(r history.Request) bool {
	switch {
	case r.Range != nil:
		return r.Range.Serializable
	case r.Txn != nil:
		for _, ops := range [][]history.RequestOp{r.Txn.Success, r.Txn.Failure} {
			for _, op := range ops {
				if op.Range == nil || !op.Range.Serializable {
					return false
				}
			}
		}
		return true
	}
	return false
}

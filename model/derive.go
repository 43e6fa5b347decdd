package model

import (
	"fmt"
	"slices"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// This file reads the record: it derives the model's requests and responses
// from what a client sent and what etcd answered. The record keeps every
// field etcd gave; the model reads the ones it checks, so the model can grow
// without re-recording.

// ErrUnsupported wraps a recorded request the model cannot check yet.
type ErrUnsupported struct{ What string }

func (e *ErrUnsupported) Error() string { return "the model does not check " + e.What }

// FromRecord derives the model's request and response from a recorded
// operation. Times the semantics need (a grant's or keepalive's call) come
// from the operation.
func FromRecord(op history.Operation) (Request, Response, error) {
	req, err := RequestFromRecord(op.Request)
	if err != nil {
		return Request{}, Response{}, err
	}
	var resp Response
	switch op.Outcome() {
	case history.Unknown:
		resp.Status = StatusUnknown
	case history.Failed:
		resp.Status, resp.Error = StatusFailed, op.Error.Message
		if op.Error.Message == ErrNoSpace && !op.Request.ReadOnly() {
			// etcd's quota applier applies a put, a transaction or a
			// grant and then answers this error (apply.go's
			// quotaApplierV3); only under a NOSPACE alarm, or before
			// proposal, does it refuse one without effect. The outcome is
			// unknown; the patch stage settles it with the log.
			resp.Status, resp.Error = StatusUnknown, ""
		}
	default:
		if op.Response == nil {
			return Request{}, Response{}, fmt.Errorf("operation of client %d at %s succeeded without a response", op.ClientID, op.Call)
		}
		if resp, err = responseFromRecord(op.Request, *op.Response); err != nil {
			return Request{}, Response{}, err
		}
	}
	if req.Lease != nil {
		l := *req.Lease
		l.At = op.Call
		if req.Type == LeaseGrant {
			if resp.Status == StatusOK {
				// etcd raises a TTL below its minimum: the answer says
				// which TTL the lease got, and which ID.
				if l.ID == 0 {
					l.ID = resp.Lease.ID
				}
				// A TTL below the one asked is wrong: keep the asked one,
				// which the answer then does not match.
				l.TTL, l.TTLExact = max(l.TTL, resp.Lease.TTL), true
			} else if l.ID == 0 {
				return Request{}, Response{}, &ErrUnsupported{"a lease grant without a client-chosen ID whose answer is not known"}
			}
		}
		req.Lease = &l
	}
	return req, resp, nil
}

// RequestFromRecord derives the model's request from a recorded one, also
// one read from a member's WAL (whose lease grants carry the ID the server
// chose, and the TTL asked).
func RequestFromRecord(r history.Request) (Request, error) {
	req, err := requestFromRecord(r)
	req.User, req.AuthRevision = r.User, r.AuthRevision
	return req, err
}

func requestFromRecord(r history.Request) (Request, error) {
	switch {
	case r.Auth != nil:
		a := r.Auth
		return Request{Type: Auth, Auth: &AuthRequest{Op: AuthOp(a.Op), User: a.User, Role: a.Role, NoPassword: a.NoPassword,
			Perm: Permission{Key: a.Key, End: a.RangeEnd, Type: PermType(a.PermType)}}}, nil
	case r.Range != nil, r.Put != nil, r.DeleteRange != nil:
		op, err := opFromRecord(history.RequestOp{Range: r.Range, Put: r.Put, DeleteRange: r.DeleteRange})
		if err != nil {
			return Request{}, err
		}
		return txnRequest(nil, []Op{op}, nil), nil
	case r.Txn != nil:
		t, err := txnFromRecord(r.Txn)
		if err != nil {
			return Request{}, err
		}
		return Request{Type: Txn, Txn: t}, nil
	case r.LeaseGrant != nil:
		return Request{Type: LeaseGrant, Lease: &LeaseRequest{ID: r.LeaseGrant.ID, TTL: r.LeaseGrant.TTL}}, nil
	case r.LeaseRevoke != nil:
		return LeaseRevokeRequest(r.LeaseRevoke.ID), nil
	case r.LeaseKeepAlive != nil:
		return Request{Type: LeaseKeepAlive, Lease: &LeaseRequest{ID: r.LeaseKeepAlive.ID}}, nil
	case r.LeaseTimeToLive != nil:
		return LeaseTimeToLiveRequest(r.LeaseTimeToLive.ID, r.LeaseTimeToLive.Keys), nil
	case r.LeaseLeases != nil:
		return Request{Type: LeaseLeases}, nil
	case r.Compaction != nil:
		if r.Compaction.Revision <= 0 {
			return Request{}, &ErrUnsupported{fmt.Sprintf("compaction at revision %d", r.Compaction.Revision)}
		}
		return CompactRequestAt(r.Compaction.Revision), nil
	case r.Defragment != nil:
		return Request{Type: Defragment}, nil
	}
	return Request{}, &ErrUnsupported{r.Kind() + " requests"}
}

func txnFromRecord(r *history.TxnRequest) (*TxnRequest, error) {
	t := &TxnRequest{}
	for _, c := range r.Compare {
		cmp, err := compareFromRecord(c)
		if err != nil {
			return nil, err
		}
		t.Conditions = append(t.Conditions, cmp)
	}
	var err error
	if t.Then, err = opsFromRecord(r.Success); err != nil {
		return nil, err
	}
	if t.Else, err = opsFromRecord(r.Failure); err != nil {
		return nil, err
	}
	return t, nil
}

var (
	targets = map[string]CompareTarget{"VALUE": TargetValue, "VERSION": TargetVersion, "CREATE": TargetCreate, "MOD": TargetMod, "LEASE": TargetLease}
	results = map[string]CompareResult{"EQUAL": Equal, "NOT_EQUAL": NotEqual, "GREATER": Greater, "LESS": Less}
)

func compareFromRecord(c history.Compare) (Compare, error) {
	t, ok := targets[c.Target]
	if c.Target == "" {
		t, ok = TargetVersion, true // etcd's enum default
	}
	r, rok := results[c.Result]
	if c.Result == "" {
		r, rok = Equal, true
	}
	if !ok || !rok {
		return Compare{}, &ErrUnsupported{fmt.Sprintf("compare %s %s on %q", c.Target, c.Result, c.Key)}
	}
	out := Compare{Key: c.Key, End: c.RangeEnd, Target: t, Result: r}
	switch t {
	case TargetValue:
		out.Value = c.Value
	case TargetVersion:
		out.Operand = c.Version
	case TargetCreate:
		out.Operand = c.CreateRevision
	case TargetMod:
		out.Operand = c.ModRevision
	case TargetLease:
		out.Operand = c.Lease
	}
	return out, nil
}

func opsFromRecord(ops []history.RequestOp) ([]Op, error) {
	out := make([]Op, 0, len(ops))
	for _, o := range ops {
		op, err := opFromRecord(o)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, nil
}

func opFromRecord(o history.RequestOp) (Op, error) {
	switch {
	case o.Range != nil:
		r := *o.Range
		opts := RangeOptions{Revision: r.Revision, Limit: r.Limit, KeysOnly: r.KeysOnly, CountOnly: r.CountOnly, Serializable: r.Serializable,
			MinModRevision: r.MinModRevision, MaxModRevision: r.MaxModRevision, MinCreateRevision: r.MinCreateRevision, MaxCreateRevision: r.MaxCreateRevision}
		switch {
		case r.SortTarget != "" && r.SortTarget != "KEY":
			// Ties on other targets come back in no defined order.
			return Op{}, &ErrUnsupported{fmt.Sprintf("a range sorted by %s", r.SortTarget)}
		case r.SortOrder == "DESCEND":
			opts.Descend = true
		case r.SortOrder != "" && r.SortOrder != "NONE" && r.SortOrder != "ASCEND":
			return Op{}, &ErrUnsupported{fmt.Sprintf("sort order %s", r.SortOrder)}
		}
		if r.Revision < 0 {
			return Op{}, &ErrUnsupported{fmt.Sprintf("a range at revision %d", r.Revision)}
		}
		return Op{Type: OpRange, Key: r.Key, End: r.RangeEnd, Range: opts}, nil
	case o.Put != nil:
		p := *o.Put
		return Op{Type: OpPut, Key: p.Key, Value: p.Value, Lease: p.Lease, PrevKV: p.PrevKV, IgnoreValue: p.IgnoreValue, IgnoreLease: p.IgnoreLease}, nil
	case o.DeleteRange != nil:
		d := *o.DeleteRange
		return Op{Type: OpDelete, Key: d.Key, End: d.RangeEnd, PrevKV: d.PrevKV}, nil
	case o.Txn != nil:
		t, err := txnFromRecord(o.Txn)
		if err != nil {
			return Op{}, err
		}
		return Op{Type: OpTxn, Txn: t}, nil
	}
	return Op{}, &ErrUnsupported{"an empty transaction operation"}
}

func responseFromRecord(req history.Request, r history.Response) (Response, error) {
	resp := Response{Revision: r.Header.Revision}
	missing := func(what string) (Response, error) {
		return resp, fmt.Errorf("a %s answered without a %s response", req.Kind(), what)
	}
	switch {
	case req.Range != nil:
		if r.Range == nil {
			return missing("range")
		}
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{rangeResult(r.Range)}}
	case req.Put != nil:
		res := OpResult{}
		if r.Put != nil {
			res.PrevKV = kvPtr(r.Put.PrevKV)
		}
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{res}}
	case req.DeleteRange != nil:
		if r.DeleteRange == nil {
			return missing("delete")
		}
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{deleteResult(r.DeleteRange)}}
	case req.Txn != nil:
		if r.Txn == nil {
			return missing("txn")
		}
		resp.Txn = txnResult(r.Txn)
	case req.LeaseGrant != nil:
		if r.LeaseGrant == nil {
			return missing("lease grant")
		}
		if r.LeaseGrant.Error != "" {
			// etcd answers a failed grant with an error, never with this
			// field: keep it so that it cannot match.
			resp.Status, resp.Error = StatusFailed, "lease grant answered with error field: "+r.LeaseGrant.Error
			return resp, nil
		}
		resp.Lease = &LeaseResponse{ID: r.LeaseGrant.ID, TTL: r.LeaseGrant.TTL}
	case req.LeaseRevoke != nil:
		resp.Lease = &LeaseResponse{}
	case req.LeaseKeepAlive != nil:
		if r.LeaseKeepAlive == nil {
			return missing("lease keepalive")
		}
		resp.Lease = &LeaseResponse{ID: r.LeaseKeepAlive.ID, TTL: r.LeaseKeepAlive.TTL}
	case req.LeaseTimeToLive != nil:
		l := r.LeaseTimeToLive
		if l == nil {
			return missing("lease time-to-live")
		}
		resp.Lease = &LeaseResponse{ID: l.ID, TTL: l.TTL, GrantedTTL: l.GrantedTTL}
		if l.GrantedTTL != 0 {
			// The remaining time of an existing lease depends on the
			// clock; the model does not predict it.
			resp.Lease.TTL = 0
		}
		if len(l.Keys) > 0 {
			resp.Lease.Keys = slices.Sorted(slices.Values(l.Keys))
		}
	case req.LeaseLeases != nil:
		if r.LeaseLeases == nil {
			return missing("lease leases")
		}
		resp.Lease = &LeaseResponse{}
		if len(r.LeaseLeases.Leases) > 0 {
			resp.Lease.Leases = slices.Sorted(slices.Values(r.LeaseLeases.Leases))
		}
	case req.Compaction != nil, req.Defragment != nil:
	}
	return resp, nil
}

func txnResult(r *history.TxnResponse) *TxnResponse {
	t := &TxnResponse{Succeeded: r.Succeeded}
	for _, op := range r.Responses {
		var res OpResult
		switch {
		case op.Range != nil:
			res = rangeResult(op.Range)
		case op.DeleteRange != nil:
			res = deleteResult(op.DeleteRange)
		case op.Put != nil:
			res.PrevKV = kvPtr(op.Put.PrevKV)
		case op.Txn != nil:
			res.Txn = txnResult(op.Txn)
		}
		t.Results = append(t.Results, res)
	}
	return t
}

func kvPtr(kv *history.KeyValue) *KeyValue {
	if kv == nil {
		return nil
	}
	out := KeyValue(*kv)
	return &out
}

func deleteResult(d *history.DeleteRangeResponse) OpResult {
	res := OpResult{Deleted: d.Deleted}
	for _, kv := range d.PrevKVs {
		res.PrevKVs = append(res.PrevKVs, KeyValue(kv))
	}
	return res
}

func rangeResult(r *history.RangeResponse) OpResult {
	res := OpResult{Count: r.Count, More: r.More}
	for _, kv := range r.KVs {
		res.KVs = append(res.KVs, KeyValue(kv))
	}
	return res
}

// declined are errors by which etcd refuses work for reasons outside the
// model's state (load, quotas, no leader, auth): the request did nothing, and
// the model cannot predict the refusal. Other definite errors are answers
// the model must predict.
var declined = map[string]bool{
	"etcdserver: too many requests":    true,
	ErrNoSpace:                         true, // for a read; a write is of unknown outcome (FromRecord)
	"etcdserver: no leader":            true,
	"etcdserver: not capable":          true,
	"etcdserver: request is too large": true,
	"etcdserver: invalid auth token":   true,
	// The auth errors of a request clientv3 then resent with a new token
	// (its retry interceptor's shouldRefreshToken), its last answer; or
	// the refresh's own failure. "permission denied" is not among these:
	// the model predicts it.
	ErrAuthOldRevision: true,
	ErrUserEmpty:       true,
	"etcdserver: authentication failed, invalid user ID or password": true,
	"etcdserver: rpc not supported for learner":                      true,
	"etcdserver: cluster ID mismatch":                                true,
}

// Declined reports whether a definite error is a refusal the model does not
// predict.
func Declined(message string) bool { return declined[message] }

// refusedBeforeProposal are the errors etcd gives only before it proposes a
// request to raft, so a request refused with one was not committed (where
// in etcd v3.6's server each is returned):
var refusedBeforeProposal = map[string]bool{
	// EtcdServer.processInternalRaftRequestOnce (etcdserver/v3_server.go):
	// the committed index is too far ahead of the applied one; checked
	// before the request is marshaled and proposed.
	"etcdserver: too many requests": true,
	// EtcdServer.processInternalRaftRequestOnce: the marshaled request is
	// over --max-request-bytes; checked before s.r.Propose.
	"etcdserver: request is too large": true,
	// The unary interceptor (etcdserver/api/v3rpc/interceptor.go) refuses a
	// request that requires a leader while the member knows none, before
	// the handler runs; EtcdServer.waitLeader (v3_server.go) serves reads,
	// keepalives and time-to-live, which are not proposed.
	"etcdserver: no leader": true,
	// The unary interceptor, before the handler, while the v3 API is not
	// enabled (the cluster version is not decided yet).
	"etcdserver: not capable": true,
	// The unary interceptor, before the handler, on a learner member for
	// every request but serializable reads and status.
	"etcdserver: rpc not supported for learner": true,
	// rpctypes.ErrGRPCClusterIDMismatch: the server returns it only from
	// its peers' hash endpoint (etcdserver/corrupt.go), never once it has
	// proposed a client's request.
	"etcdserver: cluster ID mismatch": true,
}

// refusedAtApply are the errors etcd's applier gives a committed request
// without applying it, that the model predicts from its state and the
// request (its user and, read from the WAL, its auth revision): the auth
// checks of apply/apply_auth.go.
var refusedAtApply = map[string]bool{
	ErrPermissionDenied: true,
	ErrAuthOldRevision:  true,
	ErrUserEmpty:        true,
	ErrUserNotFound:     true, // an admin request by a user that no longer exists
}

// RefusedAtApply reports whether a committed request the model refuses
// with message was refused by etcd's applier after it was committed, so
// that it changed nothing.
func RefusedAtApply(message string) bool { return refusedAtApply[message] }

// RefusedBeforeProposal reports whether etcd gives the error only before it
// proposes a request, so that a request it refused with one was never
// committed. "database space exceeded", "permission denied" and "invalid
// auth token" are not among them: etcd's applier also returns them when a
// committed request is applied (under a NOSPACE alarm, or an auth change
// committed before it), so a request refused with one may be in the log.
func RefusedBeforeProposal(message string) bool { return refusedBeforeProposal[message] }

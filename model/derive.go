package model

import (
	"fmt"

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
// operation.
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
	default:
		if op.Response == nil {
			return Request{}, Response{}, fmt.Errorf("operation of client %d at %s succeeded without a response", op.ClientID, op.Call)
		}
		if resp, err = responseFromRecord(op.Request, *op.Response); err != nil {
			return Request{}, Response{}, err
		}
	}
	return req, resp, nil
}

// RequestFromRecord derives the model's request from a recorded one, also
// one read from a member's WAL.
func RequestFromRecord(r history.Request) (Request, error) {
	switch {
	case r.Range != nil, r.Put != nil, r.DeleteRange != nil:
		op, err := opFromRecord(history.RequestOp{Range: r.Range, Put: r.Put, DeleteRange: r.DeleteRange})
		if err != nil {
			return Request{}, err
		}
		return txnRequest(nil, []Op{op}, nil), nil
	case r.Txn != nil:
		t := &TxnRequest{}
		for _, c := range r.Txn.Compare {
			if c.Target != "MOD" || c.Result != "EQUAL" || c.RangeEnd != "" {
				return Request{}, &ErrUnsupported{fmt.Sprintf("compare %s %s on %q", c.Target, c.Result, c.Key)}
			}
			t.Conditions = append(t.Conditions, Compare{Key: c.Key, ModRevision: c.ModRevision})
		}
		var err error
		if t.Then, err = opsFromRecord(r.Txn.Success); err != nil {
			return Request{}, err
		}
		if t.Else, err = opsFromRecord(r.Txn.Failure); err != nil {
			return Request{}, err
		}
		return Request{Type: Txn, Txn: t}, nil
	}
	return Request{}, &ErrUnsupported{r.Kind() + " requests"}
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
		if r.Limit != 0 || r.Revision != 0 || r.SortOrder != "" || r.SortTarget != "" || r.Serializable || r.KeysOnly ||
			r.CountOnly || r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
			return Op{}, &ErrUnsupported{fmt.Sprintf("range options %+v", r)}
		}
		return Op{Type: OpRange, Key: r.Key, End: r.RangeEnd}, nil
	case o.Put != nil:
		p := *o.Put
		if p.Lease != 0 || p.PrevKV || p.IgnoreValue || p.IgnoreLease {
			return Op{}, &ErrUnsupported{fmt.Sprintf("put options %+v", p)}
		}
		return Op{Type: OpPut, Key: p.Key, Value: p.Value}, nil
	case o.DeleteRange != nil:
		d := *o.DeleteRange
		if d.PrevKV {
			return Op{}, &ErrUnsupported{"delete with prev_kv"}
		}
		return Op{Type: OpDelete, Key: d.Key, End: d.RangeEnd}, nil
	}
	return Op{}, &ErrUnsupported{"nested transactions"}
}

func responseFromRecord(req history.Request, r history.Response) (Response, error) {
	resp := Response{Revision: r.Header.Revision}
	switch {
	case req.Range != nil:
		if r.Range == nil {
			return resp, fmt.Errorf("a range answered without a range response")
		}
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{rangeResult(r.Range)}}
	case req.Put != nil:
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{{}}}
	case req.DeleteRange != nil:
		if r.DeleteRange == nil {
			return resp, fmt.Errorf("a delete answered without a delete response")
		}
		resp.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{{Deleted: r.DeleteRange.Deleted}}}
	case req.Txn != nil:
		if r.Txn == nil {
			return resp, fmt.Errorf("a txn answered without a txn response")
		}
		t := &TxnResponse{Succeeded: r.Txn.Succeeded}
		for _, op := range r.Txn.Responses {
			var res OpResult
			switch {
			case op.Range != nil:
				res = rangeResult(op.Range)
			case op.DeleteRange != nil:
				res.Deleted = op.DeleteRange.Deleted
			}
			t.Results = append(t.Results, res)
		}
		resp.Txn = t
	}
	return resp, nil
}

func rangeResult(r *history.RangeResponse) OpResult {
	var res OpResult
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
	"etcdserver: too many requests":             true,
	"etcdserver: mvcc: database space exceeded": true,
	"etcdserver: no leader":                     true,
	"etcdserver: not capable":                   true,
	"etcdserver: request is too large":          true,
	"etcdserver: permission denied":             true,
	"etcdserver: invalid auth token":            true,
	"etcdserver: rpc not supported for learner": true,
	"etcdserver: cluster ID mismatch":           true,
}

// Declined reports whether a definite error is a refusal the model does not
// predict.
func Declined(message string) bool { return declined[message] }

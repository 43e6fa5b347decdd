// Package historytest builds recorded histories for unit tests: operations
// as a client records them, with etcd's responses or errors.
package historytest

import (
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Op is one operation of client called at call ms and returned at ret ms.
func Op(client, call, ret int, req history.Request, resp *history.Response) history.Operation {
	return history.Operation{
		ClientID: client,
		Call:     time.Duration(call) * time.Millisecond,
		Return:   time.Duration(ret) * time.Millisecond,
		Request:  req,
		Response: resp,
	}
}

// Unknown is an operation whose outcome is unknown: it timed out.
func Unknown(client, call, ret int, req history.Request) history.Operation {
	o := Op(client, call, ret, req, nil)
	o.Error = &history.Error{Code: "DeadlineExceeded", Message: "context deadline exceeded", Outcome: history.Unknown}
	return o
}

// Failed is an operation etcd answered with a definite error message.
func Failed(client, call, ret int, req history.Request, code, message string) history.Operation {
	o := Op(client, call, ret, req, nil)
	o.Error = &history.Error{Code: code, Message: message, Outcome: history.Failed}
	return o
}

// Put, Get, Del and CAS are the requests of the etcd-kv traffic.
var (
	Put = history.Put
	Get = history.Get
	Del = history.Delete
	CAS = history.CompareAndSet
)

// PutOK is a put's response at rev.
func PutOK(rev int64) *history.Response {
	return &history.Response{Header: history.Header{Revision: rev}, Put: &history.PutResponse{}}
}

// GetOK is a range response at rev with kvs.
func GetOK(rev int64, kvs ...history.KeyValue) *history.Response {
	return &history.Response{Header: history.Header{Revision: rev}, Range: &history.RangeResponse{KVs: kvs, Count: int64(len(kvs))}}
}

// DelOK is a delete's response at rev.
func DelOK(rev, deleted int64) *history.Response {
	return &history.Response{Header: history.Header{Revision: rev}, DeleteRange: &history.DeleteRangeResponse{Deleted: deleted}}
}

// CASResp is a compare-and-set's response: the put's, or the read of the
// else branch.
func CASResp(rev int64, succeeded bool, kvs ...history.KeyValue) *history.Response {
	r := &history.Response{Header: history.Header{Revision: rev}, Txn: &history.TxnResponse{Succeeded: succeeded}}
	if succeeded {
		r.Txn.Responses = []history.ResponseOp{{Put: &history.PutResponse{}}}
	} else {
		r.Txn.Responses = []history.ResponseOp{{Range: &history.RangeResponse{KVs: kvs, Count: int64(len(kvs))}}}
	}
	return r
}

// KV is a key at mod revision rev; the create revision and version are
// those of a key written once.
func KV(k, v string, rev int64) history.KeyValue {
	return history.KeyValue{Key: k, Value: v, ModRevision: rev, CreateRevision: rev, Version: 1}
}

// Clients groups operations by their ClientID, in order of first use.
func Clients(ops ...history.Operation) []history.Client {
	byID := map[int]int{}
	var out []history.Client
	for _, o := range ops {
		i, ok := byID[o.ClientID]
		if !ok {
			i = len(out)
			byID[o.ClientID] = i
			out = append(out, history.Client{ID: o.ClientID})
		}
		out[i].Operations = append(out[i].Operations, o)
	}
	return out
}

// KVAt is a key with every revision field given: created at create,
// last written at mod, written version times, attached to no lease.
func KVAt(k, v string, create, mod, version int64) history.KeyValue {
	return history.KeyValue{Key: k, Value: v, CreateRevision: create, ModRevision: mod, Version: version}
}

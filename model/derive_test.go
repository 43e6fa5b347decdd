package model

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

func TestFromRecord(t *testing.T) {
	tests := []struct {
		name     string
		op       history.Operation
		wantReq  string
		wantResp string
	}{
		{"get", ht.Op(0, 1, 2, ht.Get("a"), ht.GetOK(5, ht.KV("a", "1", 4))), "get(a)", "rev 5, a=1@4"},
		{"put", ht.Op(0, 1, 2, ht.Put("a", "1"), ht.PutOK(6)), "put(a, 1)", "rev 6"},
		{"delete", ht.Op(0, 1, 2, ht.Del("a"), ht.DelOK(7, 1)), "delete(a)", "rev 7, deleted 1"},
		{"range", ht.Op(0, 1, 2, history.Range("a", "c"), ht.GetOK(7, ht.KV("a", "1", 4), ht.KV("b", "2", 6))), "range(a..c)", "rev 7, a=1@4 b=2@6"},
		{"compare-and-set that failed", ht.Op(0, 1, 2, ht.CAS("a", 3, "9"), ht.CASResp(8, false, ht.KV("a", "1", 4))),
			"if(mod(a)==3).then(put(a, 9)).else(get(a))", "else, rev 8, a=1@4"},
		{"compare-and-set that succeeded", ht.Op(0, 1, 2, ht.CAS("a", 4, "9"), ht.CASResp(9, true)),
			"if(mod(a)==4).then(put(a, 9)).else(get(a))", "rev 9"},
		{"unknown outcome", ht.Unknown(0, 1, 2, ht.Put("a", "1")), "put(a, 1)", "unknown outcome"},
		{"definite error", ht.Failed(0, 1, 2, ht.Put("a", "1"), "ResourceExhausted", "etcdserver: too many requests"),
			"put(a, 1)", "error: etcdserver: too many requests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, resp, err := FromRecord(tc.op)
			require.NoError(t, err)
			require.Equal(t, tc.wantReq, req.String())
			require.Equal(t, tc.wantResp, resp.String())
		})
	}
}

// The model must say so when a request uses a feature it does not check,
// rather than check it as if the feature were not there.
func TestFromRecordUnsupported(t *testing.T) {
	tests := []struct {
		name string
		req  history.Request
	}{
		{"range sorted by mod revision", history.Request{Range: &history.RangeRequest{Key: "a", RangeEnd: "z", SortTarget: "MOD", SortOrder: "ASCEND"}}},
		{"an empty operation in a nested transaction", history.Request{Txn: &history.TxnRequest{Success: []history.RequestOp{{Txn: &history.TxnRequest{Success: []history.RequestOp{{}}}}}}}},
		{"compaction at revision 0", history.Request{Compaction: &history.CompactionRequest{}}},
		{"compare on an unknown target", history.Request{Txn: &history.TxnRequest{Compare: []history.Compare{{Result: "EQUAL", Target: "SIZE", Key: "a"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RequestFromRecord(tc.req)
			var u *ErrUnsupported
			require.True(t, errors.As(err, &u), "got %v", err)
		})
	}
}

// A grant whose ID the server chose and whose answer is unknown names no
// lease the model could track.
func TestFromRecordGrantWithoutID(t *testing.T) {
	_, _, err := FromRecord(ht.Unknown(0, 1, 2, history.Request{LeaseGrant: &history.LeaseGrantRequest{TTL: 5}}))
	var u *ErrUnsupported
	require.True(t, errors.As(err, &u), "got %v", err)
	req, _, err := FromRecord(ht.Op(0, 1, 2, history.Request{LeaseGrant: &history.LeaseGrantRequest{TTL: 1}},
		&history.Response{Header: history.Header{Revision: 1}, LeaseGrant: &history.LeaseGrantResponse{ID: 7, TTL: 2}}))
	require.NoError(t, err)
	require.Equal(t, LeaseRequest{ID: 7, TTL: 2, TTLExact: true, At: 1e6}, *req.Lease, "the answer gives the ID and the TTL etcd granted")
}

// A RangeStream is checked as the range it is: its merged chunks must be
// the model's answer, so a chunk left out, a count of the chunks sent
// rather than of the range, or a header without its revision is rejected;
// a stream that failed after some chunks has no answer and changes nothing.
func TestRangeStreamIsARange(t *testing.T) {
	s := InitialState()
	for _, k := range []string{"a", "b", "c"} {
		s, _, _ = s.Apply(PutRequest(k, "v"+k))
	}
	stream := history.Request{Range: &history.RangeRequest{Key: "a", RangeEnd: "z", Limit: 2, Stream: true}}
	a, b := ht.KV("a", "va", 2), ht.KV("b", "vb", 3)
	answer := func(rev int64, count int64, more bool, kvs ...history.KeyValue) *history.Response {
		return &history.Response{Header: history.Header{Revision: rev, MemberID: 1}, Range: &history.RangeResponse{KVs: kvs, Count: count, More: more, Chunks: 2}}
	}
	tests := []struct {
		name string
		op   history.Operation
		ok   bool
	}{
		{"the merged chunks", ht.Op(0, 1, 2, stream, answer(4, 3, true, a, b)), true},
		{"a chunk left out", ht.Op(0, 1, 2, stream, answer(4, 3, true, a)), false},
		{"the count of what was sent", ht.Op(0, 1, 2, stream, answer(4, 2, true, a, b)), false},
		{"more left unset", ht.Op(0, 1, 2, stream, answer(4, 3, false, a, b)), false},
		{"a header without its revision", ht.Op(0, 1, 2, stream, answer(0, 3, true, a, b)), false},
		{"failed after a chunk", func() history.Operation {
			o := ht.Op(0, 1, 2, stream, nil)
			o.Error = &history.Error{Code: "OutOfRange", Message: "range stream failed after 1 chunks: etcdserver: mvcc: required revision has been compacted", Outcome: history.Unknown}
			return o
		}(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, resp, err := FromRecord(tc.op)
			require.NoError(t, err)
			next := Step(s, req, resp)
			require.Equal(t, tc.ok, len(next) > 0, "%s -> %s", req, resp)
			for _, n := range next {
				require.True(t, n.Equal(s), "a read changes nothing")
			}
		})
	}
}

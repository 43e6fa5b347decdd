package model

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestApply(t *testing.T) {
	s := InitialState()
	steps := []struct {
		req     Request
		wantRev int64
		want    string // Response.String()
		state   string // State.String() afterwards
	}{
		{GetRequest("a"), 1, "rev 1", "rev=1"},
		{PutRequest("a", "1"), 2, "rev 2", "rev=2 a=1@2"},
		{PutRequest("b", "2"), 3, "rev 3", "rev=3 a=1@2 b=2@3"},
		{GetRequest("a"), 3, "rev 3, a=1@2", "rev=3 a=1@2 b=2@3"},
		{RangeRequest("a", "z"), 3, "rev 3, a=1@2 b=2@3", "rev=3 a=1@2 b=2@3"},
		{RangeAllRequest(), 3, "rev 3, a=1@2 b=2@3", "rev=3 a=1@2 b=2@3"},
		{RangeRequest("b", FromKey), 3, "rev 3, b=2@3", "rev=3 a=1@2 b=2@3"},
		{CompareAndSetRequest("a", 3, "x"), 3, "else, rev 3, a=1@2", "rev=3 a=1@2 b=2@3"},
		{CompareAndSetRequest("a", 2, "x"), 4, "rev 4", "rev=4 a=x@4 b=2@3"},
		{CompareAndSetRequest("c", 0, "y"), 5, "rev 5", "rev=5 a=x@4 b=2@3 c=y@5"},
		{DeleteRequest("zz"), 5, "rev 5", "rev=5 a=x@4 b=2@3 c=y@5"},
		{DeleteRequest("b"), 6, "rev 6, deleted 1", "rev=6 a=x@4 c=y@5"},
	}
	for _, st := range steps {
		before := s.String()
		next, resp, _ := s.Apply(st.req)
		require.Equal(t, before, s.String(), "Apply must not mutate its receiver")
		require.Equal(t, st.wantRev, resp.Revision, st.req.String())
		require.Equal(t, st.want, resp.String(), st.req.String())
		require.Equal(t, st.state, next.String(), st.req.String())
		s = next
	}
}

func TestStep(t *testing.T) {
	s, _, _ := InitialState().Apply(PutRequest("a", "1"))
	tests := []struct {
		name   string
		req    Request
		resp   Response
		states int
	}{
		{"matching response", PutRequest("a", "2"), Response{Revision: 3, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, 1},
		{"wrong revision", PutRequest("a", "2"), Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, 0},
		{"wrong value", GetRequest("a"), Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{KVs: []KeyValue{{Key: "a", Value: "9", ModRevision: 2}}}}}}, 0},
		{"a write of unknown outcome may or may not apply", PutRequest("a", "2"), Response{Status: StatusUnknown}, 2},
		{"a read of unknown outcome changes nothing", GetRequest("a"), Response{Status: StatusUnknown}, 1},
		{"an applied write must apply", PutRequest("a", "2"), Response{Status: StatusApplied}, 1},
		{"a declined write applies nothing", PutRequest("a", "2"), Response{Status: StatusFailed, Error: "etcdserver: too many requests"}, 1},
		{"an error the model does not predict is impossible", PutRequest("a", "2"),
			Response{Status: StatusFailed, Error: "etcdserver: mvcc: required revision has been compacted"}, 0},
		{"a response at a revision two ahead is impossible", GetRequest("a"), Response{Revision: 4, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, Step(s, tc.req, tc.resp), tc.states)
		})
	}
	applied := Step(s, PutRequest("a", "2"), Response{Status: StatusApplied})
	require.Equal(t, "rev=3 a=2@3", applied[0].String(), "an applied write is applied")
}

func TestStateEqualAndHash(t *testing.T) {
	a, _, _ := InitialState().Apply(PutRequest("k", "v"))
	b, _, _ := InitialState().Apply(PutRequest("k", "v"))
	c, _, _ := InitialState().Apply(PutRequest("k", "w"))
	require.True(t, a.Equal(b))
	require.Equal(t, a.Hash(), b.Hash())
	require.False(t, a.Equal(c))
	require.False(t, a.Equal(InitialState()))
}

func TestDescribe(t *testing.T) {
	s, _, _ := InitialState().Apply(PutRequest("a", "1"))
	tests := []struct {
		req  Request
		resp Response
		want string
	}{
		{GetRequest("a"), mustApply(s, GetRequest("a")), "get(a) -> rev 2, a=1@2"},
		{GetRequest("b"), mustApply(s, GetRequest("b")), "get(b) -> rev 2, not found"},
		{RangeAllRequest(), mustApply(s, RangeAllRequest()), "range(all keys) -> rev 2, a=1@2"},
		{PutRequest("b", "2"), mustApply(s, PutRequest("b", "2")), "put(b, 2) -> rev 3"},
		{CompareAndSetRequest("a", 9, "x"), mustApply(s, CompareAndSetRequest("a", 9, "x")), "if(mod(a)==9).then(put(a, x)).else(get(a)) -> else, rev 2, a=1@2"},
		{PutRequest("b", "2"), Response{Status: StatusFailed, Error: "etcdserver: too many requests"}, "put(b, 2) -> error: etcdserver: too many requests"},
		{PutRequest("b", "2"), Response{Status: StatusUnknown}, "put(b, 2) -> unknown outcome"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Describe(tc.req, tc.resp))
	}
}

func mustApply(s State, req Request) Response {
	_, resp, _ := s.Apply(req)
	return resp
}

// Every field of a key is kept, returned by a range and carried by events.
func TestKeyValueFieldsAndEvents(t *testing.T) {
	s := InitialState()
	s, _, ev := s.Apply(PutRequest("a", "1"))
	require.Equal(t, []Event{{Type: EventPut, Revision: 2, KV: KeyValue{Key: "a", Value: "1", CreateRevision: 2, ModRevision: 2, Version: 1}}}, ev)
	s, _, _ = s.Apply(PutRequest("b", "x"))
	s, _, ev = s.Apply(PutRequest("a", "2"))
	a := KeyValue{Key: "a", Value: "2", CreateRevision: 2, ModRevision: 4, Version: 2}
	require.Equal(t, []Event{{Type: EventPut, Revision: 4, KV: a,
		PrevKV: &KeyValue{Key: "a", Value: "1", CreateRevision: 2, ModRevision: 2, Version: 1}}}, ev)
	_, resp, _ := s.Apply(GetRequest("a"))
	require.Equal(t, []KeyValue{a}, resp.Txn.Results[0].KVs)
	wrong := resp
	wrong.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{{KVs: []KeyValue{{Key: "a", Value: "2", CreateRevision: 4, ModRevision: 4, Version: 1}}}}}
	require.Empty(t, Step(s, GetRequest("a"), wrong), "a read that says a was created at its last write is rejected")
	s, _, ev = s.Apply(DeleteRequest("a"))
	require.Equal(t, []Event{{Type: EventDelete, Revision: 5, KV: KeyValue{Key: "a", ModRevision: 5}, PrevKV: &a}}, ev)
	_, _, ev = s.Apply(PutRequest("a", "3"))
	require.Equal(t, KeyValue{Key: "a", Value: "3", CreateRevision: 6, ModRevision: 6, Version: 1}, ev[0].KV, "a key recreated starts over")
	require.Nil(t, ev[0].PrevKV)
}

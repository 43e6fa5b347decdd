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
		next, resp := s.Apply(st.req)
		require.Equal(t, before, s.String(), "Apply must not mutate its receiver")
		require.Equal(t, st.wantRev, resp.Revision, st.req.String())
		require.Equal(t, st.want, resp.String(), st.req.String())
		require.Equal(t, st.state, next.String(), st.req.String())
		s = next
	}
}

func TestStep(t *testing.T) {
	s, _ := InitialState().Apply(PutRequest("a", "1"))
	tests := []struct {
		name   string
		req    Request
		resp   Response
		states int
	}{
		{"matching response", PutRequest("a", "2"), Response{Revision: 3, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, 1},
		{"wrong revision", PutRequest("a", "2"), Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, 0},
		{"wrong value", GetRequest("a"), Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{KVs: []KeyValue{{Key: "a", Value: "9", ModRevision: 2}}}}}}, 0},
		{"failed write may or may not apply", PutRequest("a", "2"), Response{Error: "timeout"}, 2},
		{"failed read changes nothing", GetRequest("a"), Response{Error: "timeout"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, Step(s, tc.req, tc.resp), tc.states)
		})
	}
}

func TestStateEqualAndHash(t *testing.T) {
	a, _ := InitialState().Apply(PutRequest("k", "v"))
	b, _ := InitialState().Apply(PutRequest("k", "v"))
	c, _ := InitialState().Apply(PutRequest("k", "w"))
	require.True(t, a.Equal(b))
	require.Equal(t, a.Hash(), b.Hash())
	require.False(t, a.Equal(c))
	require.False(t, a.Equal(InitialState()))
}

func TestWrote(t *testing.T) {
	ok := Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}
	require.True(t, Wrote(PutRequest("a", "1"), ok))
	require.False(t, Wrote(PutRequest("a", "1"), Response{Error: "x"}))
	require.False(t, Wrote(GetRequest("a"), ok))
	require.False(t, Wrote(DeleteRequest("a"), ok), "deleting nothing writes nothing")
	require.False(t, Wrote(CompareAndSetRequest("a", 5, "1"), Response{Revision: 2, Txn: &TxnResponse{Succeeded: false, Results: []OpResult{{}}}}))
}

func TestDescribe(t *testing.T) {
	s, _ := InitialState().Apply(PutRequest("a", "1"))
	tests := []struct {
		req  Request
		resp Response
		want string
	}{
		{GetRequest("a"), mustApply(s, GetRequest("a")), "get(a) -> rev 2, a=1@2"},
		{GetRequest("b"), mustApply(s, GetRequest("b")), "get(b) -> rev 2, not found"},
		{PutRequest("b", "2"), mustApply(s, PutRequest("b", "2")), "put(b, 2) -> rev 3"},
		{CompareAndSetRequest("a", 9, "x"), mustApply(s, CompareAndSetRequest("a", 9, "x")), "if(mod(a)==9).then(put(a, x)).else(get(a)) -> else, rev 2, a=1@2"},
		{PutRequest("b", "2"), Response{Error: "timeout"}, "put(b, 2) -> error: timeout"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Describe(tc.req, tc.resp))
	}
}

func mustApply(s State, req Request) Response {
	_, resp := s.Apply(req)
	return resp
}

package model

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPorcupineSetsAsMerge: Porcupine's hashed step and set equality give
// what porcupine's own power-set construction (ToModel's pairwise merge)
// gives, state for state and in the same order, on a walk where writes
// of unknown outcome multiply the states and some of them coincide.
func TestPorcupineSetsAsMerge(t *testing.T) {
	orig := nondeterministic.ToModel()
	unknown := Response{Status: StatusUnknown}
	walk := []struct {
		req  Request
		resp Response
	}{
		{PutRequest("a", "1"), unknown},
		// The same put again: applying it to the state without the
		// first gives the state with the first, not applied: the merge
		// must keep it once.
		{PutRequest("a", "1"), unknown},
		{PutRequest("b", "1"), unknown},
		// A delete of a key no state has changes nothing: both outcomes
		// are one state, which the merge must keep once.
		{DeleteRequest("zz"), unknown},
		{DeleteRequest("a"), unknown},
		{PutRequest("a", "2"), unknown},
		{GetRequest("zz"), unknown},
		// A read that only some states allow.
		{GetRequest("b"), Response{Revision: 3, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}},
	}
	got, want := Porcupine.Init(), orig.Init()
	var most []interface{}
	for i, w := range walk {
		okGot, nextGot := Porcupine.Step(got, w.req, w.resp)
		okWant, nextWant := orig.Step(want, w.req, w.resp)
		require.Equal(t, okWant, okGot, "step %d", i)
		if !okWant {
			break
		}
		require.Equal(t, setStrings(nextWant), setStrings(nextGot), "step %d: %s", i, w.req)
		require.Equal(t, orig.Hash(nextWant), Porcupine.Hash(nextGot))
		require.True(t, Porcupine.Equal(nextGot, nextWant))
		got, want = nextGot, nextWant
		if len(got.([]interface{})) > len(most) {
			most = got.([]interface{})
		}
	}
	require.Greater(t, len(most), 4, "the walk must reach several states")

	// Set equality ignores order, and tells different sets apart.
	set := most
	reversed := make([]interface{}, len(set))
	for i, s := range set {
		reversed[len(set)-1-i] = s
	}
	require.True(t, Porcupine.Equal(set, reversed))
	require.Equal(t, orig.Equal(set, reversed), Porcupine.Equal(set, reversed))
	q, _, _ := InitialState().Apply(PutRequest("q", "9"))
	other := append(append([]interface{}{}, set[1:]...), q)
	require.False(t, Porcupine.Equal(set, other))
	require.Equal(t, orig.Equal(set, other), Porcupine.Equal(set, other))
	require.False(t, Porcupine.Equal(set, set[1:]))
}

func setStrings(set interface{}) []string {
	var out []string
	for _, s := range set.([]interface{}) {
		out = append(out, s.(State).String())
	}
	return out
}

package model

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func rangeAnswer(rev int64, more bool, count int64, kvs ...KeyValue) Response {
	return Response{Revision: rev, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{KVs: kvs, Count: count, More: more}}}}
}

func key(k, v string, mod int64) KeyValue {
	return KeyValue{Key: k, Value: v, CreateRevision: mod, ModRevision: mod, Version: 1}
}

// diffBases are answers of every kind, every field set, for the property
// test below.
func diffBases() []Response {
	a, b := key("a", "1", 2), key("b", "2", 3)
	b.Lease = 7
	return []Response{
		rangeAnswer(5, true, 3, a, b),
		{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{PrevKV: &a}}}},
		{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{Deleted: 1, PrevKVs: []KeyValue{b}}}}},
		{Revision: 6, Txn: &TxnResponse{Succeeded: false, Results: []OpResult{{KVs: []KeyValue{a}, Count: 1}, {PrevKV: &b}, {Deleted: 2, PrevKVs: []KeyValue{a, b}}}}},
		{Revision: 4, Lease: &LeaseResponse{ID: 7, TTL: 10, GrantedTTL: 10, Keys: []string{"b"}, Leases: []int64{7, 8}}},
		{Revision: 4, Lease: &LeaseResponse{ID: 7, TTL: 10, GrantedTTL: 10, MinTTL: true}},
		{Status: StatusFailed, Error: ErrCompacted},
		{Status: StatusApplied, Revision: 9, AppliedTo: 8},
	}
}

// Diff is empty exactly when Equal says two answers are the same: for
// every field of every kind of answer changed in turn, both ways round.
func TestDiffAgreesWithEqual(t *testing.T) {
	differing := 0
	for _, base := range diffBases() {
		for _, path := range leaves(reflect.ValueOf(base), "") {
			if strings.HasSuffix(path, ".Status") {
				continue // a uint8; TestDiff changes it
			}
			var changed Response
			deepCopy(reflect.ValueOf(&changed).Elem(), reflect.ValueOf(base))
			mutate(reflect.ValueOf(&changed).Elem(), path)
			for _, pair := range [][2]Response{{base, changed}, {changed, base}} {
				want, got := pair[0], pair[1]
				d := Diff(want, got)
				require.Equal(t, want.Equal(got), len(d) == 0, "%s changed: Equal says %t, Diff says %q", path, want.Equal(got), d)
				if len(d) > 0 {
					differing++
				}
			}
		}
		require.Empty(t, Diff(base, base))
	}
	require.Greater(t, differing, 60, "the changes reach the fields Equal compares")
}

func TestDiff(t *testing.T) {
	a, b, c := key("a", "1", 2), key("b", "2", 3), key("c", "3", 4)
	stale := b
	stale.ModRevision, stale.Value = 37, "old"
	lease := func(l LeaseResponse) Response { return Response{Revision: 4, Lease: &l} }
	tests := []struct {
		name      string
		want, got Response
		// diff is Diff's answer in full.
		diff []string
	}{
		{"the same", rangeAnswer(5, true, 3, a, b), rangeAnswer(5, true, 3, a, b), nil},
		{"more", rangeAnswer(5, true, 3, a, b), rangeAnswer(5, false, 3, a, b), []string{"more: want true, got false"}},
		{"count", rangeAnswer(5, false, 12), rangeAnswer(5, false, 5), []string{"count: want 12, got 5"}},
		{"a key's mod revision and value", rangeAnswer(5, false, 2, a, b), rangeAnswer(5, false, 2, a, stale),
			[]string{`kvs[1].value: want "2", got "old"`, "kvs[1].mod_revision: want 3, got 37"}},
		{"a key missing", rangeAnswer(5, false, 3, a, b, c), rangeAnswer(5, false, 3, a, c),
			[]string{"kvs: want 3 keys [a@2 b@3 c@4], got 2 [a@2 c@4] (missing b)"}},
		{"keys in another order", rangeAnswer(5, false, 2, a, b), rangeAnswer(5, false, 2, b, a),
			[]string{"kvs: want 2 keys [a@2 b@3], got 2 [b@3 a@2] (in another order)"}},
		{"the header revision", rangeAnswer(5, false, 0), rangeAnswer(4, false, 0), []string{"header.revision: want 5, got 4"}},
		{"succeeded", Response{Revision: 3, Txn: &TxnResponse{Results: []OpResult{{KVs: []KeyValue{a}, Count: 1}}}},
			Response{Revision: 4, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}},
			[]string{"header.revision: want 3, got 4", "succeeded: want false, got true", "count: want 1, got 0", "kvs: want 1 key [a@2], got 0 [] (missing a)"}},
		{"results of a transaction of two", Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}, {Deleted: 1}}}},
			Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}, {Deleted: 0}}}}, []string{"results[1].deleted: want 1, got 0"}},
		{"how many results", Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}, {}}}},
			Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, []string{"results: want 2, got 1"}},
		{"a prev_kv missing", Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{PrevKV: &a}}}},
			Response{Revision: 6, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, []string{"prev_kv: want a=1@2, got none"}},
		{"a status", Response{Revision: 2, Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}}, Response{Status: StatusFailed, Error: ErrLeaseNotFound},
			[]string{"status: want ok, got failed", `error: want "", got "` + ErrLeaseNotFound + `"`}},
		{"an error", Response{Status: StatusFailed, Error: ErrCompacted}, Response{Status: StatusFailed, Error: ErrFutureRev},
			[]string{`error: want "` + ErrCompacted + `", got "` + ErrFutureRev + `"`}},
		{"applied to is not compared", Response{Status: StatusApplied, Revision: 3, AppliedTo: 2}, Response{Status: StatusApplied, Revision: 3}, nil},
		{"a transaction's answer where a lease answer was due", lease(LeaseResponse{ID: 7}), Response{Revision: 4, Txn: &TxnResponse{}},
			[]string{"lease: want a lease answer, got none", "txn: want none, got a transaction's answer"}},
		{"a lease TTL below the least the model allows", lease(LeaseResponse{ID: 7, TTL: 5, MinTTL: true}), lease(LeaseResponse{ID: 7, TTL: 3}),
			[]string{"lease.ttl: want at least 5, got 3"}},
		{"a lease TTL above the least the model allows", lease(LeaseResponse{ID: 7, TTL: 5, MinTTL: true}), lease(LeaseResponse{ID: 7, TTL: 9}), nil},
		{"a lease's keys", lease(LeaseResponse{ID: 7, Keys: []string{"a", "b"}}), lease(LeaseResponse{ID: 7, Keys: []string{"a"}}),
			[]string{"lease.keys: want [a b], got [a]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.want, tc.got)
			require.Equal(t, tc.diff, got)
			require.Equal(t, tc.want.Equal(tc.got), len(got) == 0, "Diff and Equal agree")
		})
	}
}

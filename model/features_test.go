package model

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// apply applies reqs in order, requiring each to succeed, and returns the
// state after them.
func apply(t *testing.T, s State, reqs ...Request) State {
	t.Helper()
	for _, r := range reqs {
		var resp Response
		s, resp, _ = s.Apply(r)
		require.Equal(t, StatusOK, resp.Status, "%s: %s", r, resp)
	}
	return s
}

func ok(rev int64, results ...OpResult) Response {
	return Response{Revision: rev, Txn: &TxnResponse{Succeeded: true, Results: results}}
}

func kv(k, v string, create, mod, version int64) KeyValue {
	return KeyValue{Key: k, Value: v, CreateRevision: create, ModRevision: mod, Version: version}
}

// Each feature: a request on a prepared state, the answer a correct etcd
// gives (accepted), and a wrong one (rejected).
func TestFeatures(t *testing.T) {
	const sec = time.Second
	// rev 2: a=1, rev 3: b=2, rev 4: a=3, rev 5: c=4 (lease 7); lease 7 granted at 0s with ttl 10.
	base := apply(t, InitialState(), PutRequest("a", "1"), PutRequest("b", "2"), PutRequest("a", "3"),
		LeaseGrantRequest(7, 10, 0), PutWithLeaseRequest("c", "4", 7))
	compacted := apply(t, base, CompactRequestAt(3))
	revoked := apply(t, base, LeaseRevokeRequest(7))
	a := kv("a", "3", 2, 4, 2)
	b := kv("b", "2", 3, 3, 1)
	c := KeyValue{Key: "c", Value: "4", CreateRevision: 5, ModRevision: 5, Version: 1, Lease: 7}
	cond := func(cmp Compare) Request {
		return TxnOf([]Compare{cmp}, []Op{{Type: OpPut, Key: "z", Value: "yes"}}, nil)
	}
	failedTxn := Response{Revision: 5, Txn: &TxnResponse{Succeeded: false, Results: []OpResult{}}}
	wonTxn := ok(6, OpResult{})
	tests := []struct {
		name         string
		state        State
		req          Request
		right, wrong Response
	}{
		{"read at an old revision", base, RangeWithOptions("a", "", RangeOptions{Revision: 2}),
			ok(5, OpResult{KVs: []KeyValue{kv("a", "1", 2, 2, 1)}, Count: 1}), ok(5, OpResult{KVs: []KeyValue{a}, Count: 1})},
		{"read at the compact revision", compacted, RangeWithOptions("b", "", RangeOptions{Revision: 3}),
			ok(5, OpResult{KVs: []KeyValue{b}, Count: 1}), failed(ErrCompacted)},
		{"read below the compact revision", compacted, RangeWithOptions("a", "", RangeOptions{Revision: 2}),
			failed(ErrCompacted), ok(5, OpResult{KVs: []KeyValue{kv("a", "1", 2, 2, 1)}, Count: 1})},
		{"read at a future revision", base, RangeWithOptions("a", "", RangeOptions{Revision: 6}),
			failed(ErrFutureRev), ok(5, OpResult{KVs: []KeyValue{a}, Count: 1})},
		{"compaction", base, CompactRequestAt(4), Response{Revision: 5}, Response{Revision: 6}},
		{"compaction at a compacted revision", compacted, CompactRequestAt(3), failed(ErrCompacted), Response{Revision: 5}},
		{"compaction at a future revision", base, CompactRequestAt(9), failed(ErrFutureRev), Response{Revision: 5}},
		{"a page: count is every key, more says keys were left out", base, RangeWithOptions("a", FromKey, RangeOptions{Limit: 2}),
			ok(5, OpResult{KVs: []KeyValue{a, b}, Count: 3, More: true}), ok(5, OpResult{KVs: []KeyValue{a, b}, Count: 2, More: true})},
		{"a page with the wrong more", base, RangeWithOptions("a", FromKey, RangeOptions{Limit: 3}),
			ok(5, OpResult{KVs: []KeyValue{a, b, c}, Count: 3}), ok(5, OpResult{KVs: []KeyValue{a, b, c}, Count: 3, More: true})},
		{"keys only", base, RangeWithOptions("a", "", RangeOptions{KeysOnly: true}),
			ok(5, OpResult{KVs: []KeyValue{kv("a", "", 2, 4, 2)}, Count: 1}), ok(5, OpResult{KVs: []KeyValue{a}, Count: 1})},
		{"count only", base, RangeWithOptions("a", FromKey, RangeOptions{CountOnly: true}),
			ok(5, OpResult{Count: 3}), ok(5, OpResult{KVs: []KeyValue{a, b, c}, Count: 3})},
		{"descending", base, RangeWithOptions("a", FromKey, RangeOptions{Descend: true, Limit: 1}),
			ok(5, OpResult{KVs: []KeyValue{c}, Count: 3, More: true}), ok(5, OpResult{KVs: []KeyValue{a}, Count: 3, More: true})},
		{"min mod revision filters after counting", base, RangeWithOptions("a", FromKey, RangeOptions{MinModRevision: 4}),
			ok(5, OpResult{KVs: []KeyValue{a, c}, Count: 3}), ok(5, OpResult{KVs: []KeyValue{a, c}, Count: 2})},
		{"put with prev_kv", base, TxnOf(nil, []Op{{Type: OpPut, Key: "a", Value: "5", PrevKV: true}}, nil),
			ok(6, OpResult{PrevKV: &a}), ok(6, OpResult{})},
		{"delete with prev_kv", base, TxnOf(nil, []Op{{Type: OpDelete, Key: "a", End: "c", PrevKV: true}}, nil),
			ok(6, OpResult{Deleted: 2, PrevKVs: []KeyValue{a, b}}), ok(6, OpResult{Deleted: 2, PrevKVs: []KeyValue{a}})},
		{"ignore_value keeps the value", base, TxnOf(nil, []Op{{Type: OpPut, Key: "a", IgnoreValue: true}, {Type: OpRange, Key: "a"}}, nil),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{kv("a", "3", 2, 6, 3)}, Count: 1}), ok(6, OpResult{}, OpResult{KVs: []KeyValue{kv("a", "", 2, 6, 3)}, Count: 1})},
		{"ignore_lease on a missing key", base, TxnOf(nil, []Op{{Type: OpPut, Key: "zz", Value: "1", IgnoreLease: true}}, nil),
			failed(ErrKeyNotFound), ok(6, OpResult{})},
		{"a key put twice in one txn", base, TxnOf(nil, []Op{{Type: OpPut, Key: "q", Value: "1"}, {Type: OpPut, Key: "q", Value: "2"}}, nil),
			failed(ErrDuplicateKey), ok(6, OpResult{}, OpResult{})},
		{"multi-op txn sees its own writes", base, TxnOf(nil, []Op{{Type: OpPut, Key: "q", Value: "1"}, {Type: OpRange, Key: "a", End: "z", Range: RangeOptions{CountOnly: true}}}, nil),
			ok(6, OpResult{}, OpResult{Count: 4}), ok(6, OpResult{}, OpResult{Count: 3})},
		// A branch reads what it wrote before: every write of the txn is at
		// its one new revision, and a read sees the writes before it.
		{"a get after a put of the same key in one txn", base, TxnOf(nil, []Op{{Type: OpPut, Key: "a", Value: "5"}, {Type: OpRange, Key: "a"}}, nil),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{kv("a", "5", 2, 6, 3)}, Count: 1}),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{a}, Count: 1})},
		{"a get after a put reads the txn's revision, not the next", base, TxnOf(nil, []Op{{Type: OpPut, Key: "b", Value: "5"}, {Type: OpPut, Key: "q", Value: "6"}, {Type: OpRange, Key: "b"}}, nil),
			ok(6, OpResult{}, OpResult{}, OpResult{KVs: []KeyValue{kv("b", "5", 3, 6, 2)}, Count: 1}),
			ok(6, OpResult{}, OpResult{}, OpResult{KVs: []KeyValue{kv("b", "5", 3, 7, 2)}, Count: 1})},
		{"a get after a put of a new key: created at the txn's revision", base, TxnOf(nil, []Op{{Type: OpPut, Key: "q", Value: "5", Lease: 7}, {Type: OpRange, Key: "q"}}, nil),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{{Key: "q", Value: "5", CreateRevision: 6, ModRevision: 6, Version: 1, Lease: 7}}, Count: 1}),
			ok(6, OpResult{}, OpResult{})},
		{"a get after a delete of the same key in one txn", base, TxnOf(nil, []Op{{Type: OpDelete, Key: "a"}, {Type: OpRange, Key: "a"}}, nil),
			ok(6, OpResult{Deleted: 1}, OpResult{}),
			ok(6, OpResult{Deleted: 1}, OpResult{KVs: []KeyValue{a}, Count: 1})},
		{"a key deleted twice in one txn: the second finds nothing", base, TxnOf(nil, []Op{{Type: OpDelete, Key: "a"}, {Type: OpDelete, Key: "a"}}, nil),
			ok(6, OpResult{Deleted: 1}, OpResult{}),
			ok(6, OpResult{Deleted: 1}, OpResult{Deleted: 1})},
		{"a get before a put of the same key reads the old value", base, TxnOf(nil, []Op{{Type: OpRange, Key: "a"}, {Type: OpPut, Key: "a", Value: "5"}}, nil),
			ok(6, OpResult{KVs: []KeyValue{a}, Count: 1}, OpResult{}),
			ok(6, OpResult{KVs: []KeyValue{kv("a", "5", 2, 6, 3)}, Count: 1}, OpResult{})},
		{"a prefix range after a put and a delete in one txn", base, TxnOf(nil, []Op{{Type: OpPut, Key: "b", Value: "5"}, {Type: OpDelete, Key: "a"}, {Type: OpRange, Key: "a", End: "c"}}, nil),
			ok(6, OpResult{}, OpResult{Deleted: 1}, OpResult{KVs: []KeyValue{kv("b", "5", 3, 6, 2)}, Count: 1}),
			ok(6, OpResult{}, OpResult{Deleted: 1}, OpResult{KVs: []KeyValue{a, kv("b", "5", 3, 6, 2)}, Count: 2})},
		{"a read at the current revision after a put in one txn reads before the txn", base, TxnOf(nil, []Op{{Type: OpPut, Key: "a", Value: "5"}, {Type: OpRange, Key: "a", Range: RangeOptions{Revision: 5}}}, nil),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{a}, Count: 1}),
			ok(6, OpResult{}, OpResult{KVs: []KeyValue{kv("a", "5", 2, 6, 3)}, Count: 1})},
		{"a read at the txn's own revision is a future revision", base, TxnOf(nil, []Op{{Type: OpPut, Key: "a", Value: "5"}, {Type: OpRange, Key: "a", Range: RangeOptions{Revision: 6}}}, nil),
			failed(ErrFutureRev), ok(6, OpResult{}, OpResult{KVs: []KeyValue{kv("a", "5", 2, 6, 3)}, Count: 1})},
		{"a put after a delete of the same key in one txn", base, TxnOf(nil, []Op{{Type: OpDelete, Key: "a"}, {Type: OpPut, Key: "a", Value: "5"}}, nil),
			failed(ErrDuplicateKey), ok(6, OpResult{Deleted: 1}, OpResult{})},
		// Compares: every target and operator, a missing key, a range.
		{"value equal", base, cond(Compare{Key: "a", Target: TargetValue, Result: Equal, Value: "3"}), wonTxn, failedTxn},
		{"value not equal", base, cond(Compare{Key: "a", Target: TargetValue, Result: NotEqual, Value: "3"}), failedTxn, wonTxn},
		{"value greater", base, cond(Compare{Key: "a", Target: TargetValue, Result: Greater, Value: "2"}), wonTxn, failedTxn},
		{"value less", base, cond(Compare{Key: "a", Target: TargetValue, Result: Less, Value: "3"}), failedTxn, wonTxn},
		{"value of a missing key fails even not-equal", base, cond(Compare{Key: "zz", Target: TargetValue, Result: NotEqual, Value: "x"}), failedTxn, wonTxn},
		{"version equal", base, cond(Compare{Key: "a", Target: TargetVersion, Result: Equal, Operand: 2}), wonTxn, failedTxn},
		{"version of a missing key is 0", base, cond(Compare{Key: "zz", Target: TargetVersion, Result: Equal, Operand: 0}), wonTxn, failedTxn},
		{"create greater", base, cond(Compare{Key: "a", Target: TargetCreate, Result: Greater, Operand: 2}), failedTxn, wonTxn},
		{"create less", base, cond(Compare{Key: "a", Target: TargetCreate, Result: Less, Operand: 3}), wonTxn, failedTxn},
		{"mod not equal", base, cond(Compare{Key: "a", Target: TargetMod, Result: NotEqual, Operand: 4}), failedTxn, wonTxn},
		{"mod equal (a stale compare-and-set)", base, CompareAndSetRequest("a", 2, "x"),
			Response{Revision: 5, Txn: &TxnResponse{Results: []OpResult{{KVs: []KeyValue{a}, Count: 1}}}}, ok(6, OpResult{})},
		{"lease equal", base, cond(Compare{Key: "c", Target: TargetLease, Result: Equal, Operand: 7}), wonTxn, failedTxn},
		{"lease greater on a range: every key must hold", base, cond(Compare{Key: "a", End: "d", Target: TargetLease, Result: Greater, Operand: 0}), failedTxn, wonTxn},
		{"mod less on a range", base, cond(Compare{Key: "a", End: "d", Target: TargetMod, Result: Less, Operand: 6}), wonTxn, failedTxn},
		// Leases.
		{"grant", base, LeaseGrantRequest(8, 5, 0), Response{Revision: 5, Lease: &LeaseResponse{ID: 8, TTL: 5}}, Response{Revision: 5, Lease: &LeaseResponse{ID: 8, TTL: 4}}},
		{"grant of an existing lease", base, LeaseGrantRequest(7, 5, 0), failed(ErrLeaseExists), Response{Revision: 5, Lease: &LeaseResponse{ID: 7, TTL: 5}}},
		{"put with an unknown lease", base, PutWithLeaseRequest("q", "1", 9), failed(ErrLeaseNotFound), ok(6, OpResult{})},
		{"revoke deletes its keys in one revision", base, LeaseRevokeRequest(7), Response{Revision: 6, Lease: &LeaseResponse{}}, Response{Revision: 5, Lease: &LeaseResponse{}}},
		{"revoke of an unknown lease", base, LeaseRevokeRequest(9), failed(ErrLeaseNotFound), Response{Revision: 5, Lease: &LeaseResponse{}}},
		{"a key of a revoked lease is gone", revoked, GetRequest("c"), ok(6, OpResult{}), ok(6, OpResult{KVs: []KeyValue{c}, Count: 1})},
		{"keepalive", base, LeaseKeepAliveRequest(7, sec), Response{Revision: 5, Lease: &LeaseResponse{ID: 7, TTL: 10}}, Response{Revision: 5, Lease: &LeaseResponse{ID: 7}}},
		{"keepalive of a revoked lease", revoked, LeaseKeepAliveRequest(7, sec), Response{Revision: 6, Lease: &LeaseResponse{ID: 7}}, Response{Revision: 6, Lease: &LeaseResponse{ID: 7, TTL: 10}}},
		{"time-to-live with keys", base, LeaseTimeToLiveRequest(7, true), Response{Revision: 5, Lease: &LeaseResponse{ID: 7, GrantedTTL: 10, Keys: []string{"c"}}},
			Response{Revision: 5, Lease: &LeaseResponse{ID: 7, GrantedTTL: 10}}},
		{"time-to-live of a revoked lease", revoked, LeaseTimeToLiveRequest(7, false), Response{Revision: 6, Lease: &LeaseResponse{ID: 7, TTL: -1}},
			Response{Revision: 6, Lease: &LeaseResponse{ID: 7, GrantedTTL: 10}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, want, _ := tc.state.Apply(tc.req)
			require.True(t, want.Equal(tc.right), "the model answers %s, want %s", want, tc.right)
			require.NotEmpty(t, Step(tc.state, tc.req, withStatus(tc.right)), "the right answer is accepted")
			require.Empty(t, Step(tc.state, tc.req, withStatus(tc.wrong)), "the wrong answer %s is rejected", tc.wrong)
		})
	}
}

func withStatus(r Response) Response {
	if r.Error != "" {
		r.Status = StatusFailed
	}
	return r
}

// A lease expires only once its TTL ran out since its grant and its last
// keepalive: an expiry bounded before then is rejected, whether it was
// seen applied or its outcome is unknown.
func TestLeaseExpiry(t *testing.T) {
	const sec = time.Second
	s := apply(t, InitialState(), LeaseGrantRequest(7, 10, 2*sec), PutWithLeaseRequest("k", "v", 7))
	renewed := apply(t, s, LeaseKeepAliveRequest(7, 8*sec))
	applied := Response{Status: StatusApplied}
	tests := []struct {
		name   string
		state  State
		req    Request
		states int
	}{
		{"expiry after the TTL ran out", s, LeaseExpiryRequest(7, 13*sec, 0), 1},
		{"expiry bounded before the TTL ran out", s, LeaseExpiryRequest(7, 11*sec, 0), 0},
		{"expiry whose time is unknown", s, LeaseExpiryRequest(7, 0, 0), 1},
		{"expiry before a keepalive's TTL ran out", renewed, LeaseExpiryRequest(7, 13*sec, 0), 0},
		{"expiry after a keepalive's TTL ran out", renewed, LeaseExpiryRequest(7, 19*sec, 0), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, Step(tc.state, tc.req, applied), tc.states)
		})
	}
	// A client's revoke may come at any time.
	require.Len(t, Step(s, LeaseRevokeRequest(7), Response{Revision: 3, Lease: &LeaseResponse{}}), 1)
	// An early expiry of unknown outcome is only possible as not applied.
	require.Len(t, Step(s, LeaseExpiryRequest(7, 11*sec, 0), Response{Status: StatusUnknown}), 1)
	// A key of an expired lease still read after the expiry is a violation.
	expired := Step(s, LeaseExpiryRequest(7, 13*sec, 0), applied)[0]
	require.Empty(t, Step(expired, GetRequest("k"), ok(3, OpResult{KVs: []KeyValue{{Key: "k", Value: "v", CreateRevision: 3, ModRevision: 3, Version: 1, Lease: 7}}, Count: 1})))
	// A grant whose answer was not seen may have got a higher TTL.
	g := Request{Type: LeaseGrant, Lease: &LeaseRequest{ID: 8, TTL: 1}}
	unsure := Step(InitialState(), g, Response{Status: StatusApplied})[0]
	require.Len(t, Step(unsure, LeaseKeepAliveRequest(8, 0), Response{Revision: 1, Lease: &LeaseResponse{ID: 8, TTL: 2}}), 1)
	require.Empty(t, Step(unsure, LeaseKeepAliveRequest(8, 0), Response{Revision: 1, Lease: &LeaseResponse{ID: 8, TTL: 0}}))
}

// Two states with the same keys now but different pasts differ: a read at
// an older revision tells them apart. Compaction forgets the past.
func TestStatePast(t *testing.T) {
	x := apply(t, InitialState(), PutRequest("a", "1"), PutRequest("b", "1"), DeleteRequest("a"))
	y := apply(t, InitialState(), PutRequest("a", "2"), PutRequest("b", "1"), DeleteRequest("a"))
	require.Equal(t, x.Keys(), y.Keys())
	require.False(t, x.Equal(y))
	require.NotEqual(t, x.Hash(), y.Hash())
	x, y = apply(t, x, CompactRequestAt(4)), apply(t, y, CompactRequestAt(4))
	require.True(t, x.Equal(y), "nothing below revision 4 can be read any more")
	require.Equal(t, x.Hash(), y.Hash())
	_, resp, events := apply(t, InitialState(), PutRequest("a", "1"), LeaseGrantRequest(5, 10, 0), PutWithLeaseRequest("b", "2", 5), PutWithLeaseRequest("c", "3", 5)).
		Apply(LeaseRevokeRequest(5))
	require.Equal(t, int64(5), resp.Revision, "a revoke deletes its keys at one revision")
	require.Len(t, events, 2)
	require.Equal(t, Event{Type: EventDelete, Revision: 5, KV: KeyValue{Key: "b", ModRevision: 5},
		PrevKV: &KeyValue{Key: "b", Value: "2", CreateRevision: 3, ModRevision: 3, Version: 1, Lease: 5}}, events[0])
}

// termed sets the raft term of a lease request: a grant's or keepalive's
// answer header, or an expiry's log entry.
func termed(r Request, term uint64) Request {
	l := *r.Lease
	l.Term = term
	r.Lease = &l
	return r
}

// An old leader paused past a lease's TTL still holds itself primary when
// it runs again, and revokes the leases its lessor holds as expired; raft
// forwards the revoke to the new leader, which commits it in its later
// term (etcd #15247). Its lessor saw the grant and the keepalives answered
// up to the grant's term, never those a later leader renewed. An expiry
// before even that deadline, or one committed in the grant's own term, is
// still rejected.
func TestLeaseExpiryByAStaleLeader(t *testing.T) {
	const sec = time.Second
	granted := apply(t, InitialState(), termed(LeaseGrantRequest(7, 10, 2*sec), 3), PutWithLeaseRequest("k", "v", 7))
	// Renewed at 8 s by the leader of term 3 (deadline 18 s), and at 15 s
	// by the leader of term 4 (deadline 25 s).
	renewed := apply(t, granted, termed(LeaseKeepAliveRequest(7, 8*sec), 3), termed(LeaseKeepAliveRequest(7, 15*sec), 4))
	unknownTerm := apply(t, granted, termed(LeaseKeepAliveRequest(7, 8*sec), 3), LeaseKeepAliveRequest(7, 15*sec))
	noGrantTerm := apply(t, apply(t, InitialState(), LeaseGrantRequest(7, 10, 2*sec), PutWithLeaseRequest("k", "v", 7)),
		termed(LeaseKeepAliveRequest(7, 8*sec), 3), termed(LeaseKeepAliveRequest(7, 15*sec), 4))
	applied := Response{Status: StatusApplied}
	tests := []struct {
		name   string
		state  State
		req    Request
		states int
	}{
		{"committed in a later term, after the grant's term's deadline", renewed, termed(LeaseExpiryRequest(7, 20*sec, 0), 4), 1},
		{"committed in a later term, before the grant's term's deadline", renewed, termed(LeaseExpiryRequest(7, 17*sec, 0), 4), 0},
		{"committed in the grant's term, before the deadline", renewed, termed(LeaseExpiryRequest(7, 20*sec, 0), 3), 0},
		{"committed in no known term", renewed, LeaseExpiryRequest(7, 20*sec, 0), 0},
		{"after the deadline, in any term", renewed, termed(LeaseExpiryRequest(7, 26*sec, 0), 3), 1},
		{"the later keepalive's answer names no term", unknownTerm, termed(LeaseExpiryRequest(7, 20*sec, 0), 4), 0},
		{"the grant's answer names no term", noGrantTerm, termed(LeaseExpiryRequest(7, 20*sec, 0), 4), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, Step(tc.state, tc.req, applied), tc.states)
		})
	}
	// The terms are part of the state: a renewal in the grant's term and
	// one in a later term with the same deadline leave different states.
	a := apply(t, granted, termed(LeaseKeepAliveRequest(7, 8*sec), 3))
	b := apply(t, granted, termed(LeaseKeepAliveRequest(7, 8*sec), 4))
	require.False(t, a.Equal(b))
}

package validate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// logWith is a complete committed log of items at raft indices 1..n: a
// history.Request is an entry that carries it, a string an entry of that
// kind without a request (evidence.Entry.Kind).
func logWith(items ...any) *evidence.Log {
	l := &evidence.Log{FirstIndex: 1, Complete: true}
	for i, it := range items {
		e := evidence.Entry{Index: uint64(i + 1), Term: 2}
		switch v := it.(type) {
		case history.Request:
			e.Request = &v
		case string:
			e.Kind = v
		default:
			panic("logWith takes requests and kinds")
		}
		l.Entries = append(l.Entries, e)
	}
	l.CommitIndex = uint64(len(items))
	return l
}

func failed(client, call, ret int, req history.Request, code, msg string) history.Operation {
	return ht.Failed(client, call, ret, req, code, msg)
}

// TestPatchEveryCommittedRequestWasSent: the log may hold, unsent, only
// etcd's own requests; any other committed request no client sent, or sent
// fewer times than it is committed, is a violation the patch names, and a
// read that sees it is not explained by an operation of the server's.
func TestPatchEveryCommittedRequestWasSent(t *testing.T) {
	put, get, del := ht.Put, ht.Get, ht.Del
	tests := []struct {
		name    string
		history []history.Operation
		log     *evidence.Log
		// want: the evidence, patch and linearizability verdicts.
		want []Verdict
		// msg and why must be in the patch's message and explanation;
		// involved is the patch's Involved.
		msg, why []string
		involved []string
	}{
		{
			name: "a put refused before proposal, yet applied and read",
			history: []history.Operation{
				failed(0, 0, 10, put("a", "1"), "ResourceExhausted", "etcdserver: too many requests"),
				op(1, 20, 30, put("b", "2"), putOK(3)),
				op(1, 40, 50, get("a"), getOK(3, kv("a", "1", 2))),
			},
			log:  logOf(put("a", "1"), put("b", "2")),
			want: []Verdict{OK, Illegal, Illegal},
			msg: []string{"put(a, 1) (client 0 #0) was refused with 'etcdserver: too many requests', an error etcd gives before proposing, " +
				"yet raft index 1 holds it"},
			why:      []string{"clientv3 never resends", "etcd applied a write it had refused"},
			involved: []string{"client 0 #0", "wal index 1"},
		},
		{
			name: "the same put refused, in no member's WAL",
			history: []history.Operation{
				failed(0, 0, 10, put("a", "1"), "ResourceExhausted", "etcdserver: too many requests"),
				op(1, 20, 30, put("b", "2"), putOK(2)),
				op(1, 40, 50, get("a"), getOK(2)),
			},
			log:  logOf(put("b", "2")),
			want: []Verdict{OK, OK, OK},
		},
		{
			// etcd's applier refuses a put under a NOSPACE alarm: the
			// refused put may be committed, and nobody saw it.
			name: "a put refused with an error etcd also gives when applying, in the log",
			history: []history.Operation{
				op(1, 0, 10, put("b", "2"), putOK(2)),
				failed(0, 20, 30, put("a", "1"), "ResourceExhausted", "etcdserver: mvcc: database space exceeded"),
				op(1, 40, 50, get("a"), getOK(2)),
			},
			log:  logOf(put("b", "2"), put("a", "1")),
			want: []Verdict{OK, OK, OK},
		},
		{
			// The second copy of the delete removes client 0's
			// acknowledged second put, which the read then misses.
			name: "a delete sent once, committed twice",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, del("a"), delOK(3, 1)),
				op(0, 40, 50, put("a", "2"), putOK(4)),
				op(2, 60, 70, get("a"), getOK(5)),
			},
			log:      logOf(put("a", "1"), del("a"), put("a", "2"), del("a")),
			want:     []Verdict{OK, Illegal, Illegal},
			msg:      []string{"delete(a) was sent once (client 1 #0) but committed twice, at raft indexes 2 and 4"},
			why:      []string{"non-repeatable", "1 more copy was committed than were sent"},
			involved: []string{"client 1 #0", "wal index 2", "wal index 4"},
		},
		{
			name: "the same delete of unknown outcome, committed twice",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 20, 1000, del("a")),
				op(0, 40, 50, put("a", "2"), putOK(4)),
				op(2, 60, 70, get("a"), getOK(5)),
			},
			log:  logOf(put("a", "1"), del("a"), put("a", "2"), del("a")),
			want: []Verdict{OK, Illegal, Illegal},
			msg:  []string{"delete(a) was sent once (client 1 #0) but committed twice, at raft indexes 2 and 4"},
		},
		{
			name: "the same history with the delete committed once",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, del("a"), delOK(3, 1)),
				op(0, 40, 50, put("a", "2"), putOK(4)),
				op(2, 60, 70, get("a"), getOK(4, ht.KVAt("a", "2", 4, 4, 1))),
			},
			log:  logOf(put("a", "1"), del("a"), put("a", "2")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "two clients send the same delete, the log holds two copies",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, del("a"), delOK(3, 1)),
				op(2, 40, 50, del("a"), delOK(3, 0)),
			},
			log:  logOf(put("a", "1"), del("a"), del("a")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a delete sent twice, one copy refused before proposal, committed twice",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, del("a"), delOK(3, 1)),
				failed(2, 40, 50, del("a"), "Unavailable", "etcdserver: no leader"),
			},
			log:  logOf(put("a", "1"), del("a"), del("a")),
			want: []Verdict{OK, Illegal, OK},
			msg: []string{"delete(a) was sent twice (client 1 #0; client 2 #0, refused before proposal with 'etcdserver: no leader') " +
				"but committed twice, at raft indexes 2 and 3"},
		},
		{
			name: "a compaction no client sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(0, 20, 30, put("a", "2"), putOK(3)),
			},
			log:      logOf(put("a", "1"), put("a", "2"), compact(2)),
			want:     []Verdict{OK, Illegal, OK},
			msg:      []string{"compact(2) was committed at raft index 3, but no client sent it"},
			why:      []string{"without auto-compaction"},
			involved: []string{"wal index 3"},
		},
		{
			name: "the same compaction sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(0, 20, 30, put("a", "2"), putOK(3)),
				op(1, 40, 50, compact(2), compactOK(3)),
			},
			log:  logOf(put("a", "1"), put("a", "2"), compact(2)),
			want: []Verdict{OK, OK, OK},
		},
		{
			// etcd answers "required revision has been compacted" when it
			// applies the compaction: the refused one may be committed.
			name: "a compaction refused when applied, in the log",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(0, 20, 30, put("a", "2"), putOK(3)),
				op(1, 40, 50, compact(2), compactOK(3)),
				failed(1, 60, 70, compact(2), "OutOfRange", model.ErrCompacted),
			},
			log:  logOf(put("a", "1"), put("a", "2"), compact(2), compact(2)),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a put sent once, committed twice",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log:  logOf(put("a", "1"), put("a", "1")),
			want: []Verdict{OK, Illegal, OK},
			msg:  []string{"put(a, 1) was sent once (client 0 #0) but committed twice, at raft indexes 1 and 2"},
		},
		{
			name: "a put no client sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log:      logOf(put("a", "1"), put("b", "x")),
			want:     []Verdict{OK, Illegal, OK},
			msg:      []string{"put(b, x) was committed at raft index 2, but no client sent it"},
			involved: []string{"wal index 2"},
		},
		{
			// The model cannot check it, but it was sent: not unsent.
			name: "a put the model does not check is still sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, history.Request{Txn: &history.TxnRequest{Success: []history.RequestOp{{Txn: &history.TxnRequest{
					Success: []history.RequestOp{{Put: &history.PutRequest{Key: "b", Value: "x"}}}}}}}}, nil),
			},
			log: logOf(put("a", "1"), history.Request{Txn: &history.TxnRequest{Success: []history.RequestOp{{Txn: &history.TxnRequest{
				Success: []history.RequestOp{{Put: &history.PutRequest{Key: "b", Value: "x"}}}}}}}}),
			want: []Verdict{OK, OK, Inconclusive},
		},
		{
			name: "a lease grant no client sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log:  logOf(put("a", "1"), grant(9, 5)),
			want: []Verdict{OK, Illegal, OK},
			msg:  []string{"lease-grant(9, ttl 5) was committed at raft index 2, but no client sent it"},
		},
		{
			name: "a lease revoke no client sent, of a lease never granted",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log:  logOf(put("a", "1"), revoke(9)),
			want: []Verdict{OK, Illegal, OK},
			msg:  []string{"lease-revoke(9) was committed at raft index 2, but no client sent it"},
			why:  []string{"lessor holds only a lease granted in the log"},
		},
		{
			// The leader's expiry loop proposes the revoke again when the
			// first was not applied within its retry interval.
			name: "the leader's expiry committed twice",
			history: []history.Operation{
				op(0, 0, 10, grant(8, 1), grantOK(1, 8, 1)),
				op(0, 20, 30, putLease("d", "4", 8), putOK(2)),
				op(1, 2300, 2310, get("d"), getOK(3)),
			},
			log:  logOf(grant(8, 1), putLease("d", "4", 8), revoke(8), revoke(8)),
			want: []Verdict{OK, OK, OK},
			msg:  []string{"all accounted for (1 lease expiries by the leader)"},
		},
		{
			// The grant's first attempt was applied; clientv3 resent it,
			// and the last attempt found no leader.
			name: "a grant answered 'no leader', applied by an earlier attempt",
			history: []history.Operation{
				failed(0, 0, 10, grant(7, 5), "Unavailable", "etcdserver: no leader"),
				op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
				op(1, 40, 50, get("a"), getOK(2, kvLease("a", "1", 2, 7))),
			},
			log:  logOf(grant(7, 5), putLease("a", "1", 7)),
			want: []Verdict{OK, OK, OK},
			msg:  []string{"1 refused lease requests applied by an attempt clientv3 resent"},
		},
		{
			name: "a revoke answered 'no leader', applied by an earlier attempt before the lease's deadline",
			history: []history.Operation{
				op(0, 0, 10, grant(7, 5), grantOK(1, 7, 5)),
				op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
				failed(0, 100, 200, revoke(7), "Unavailable", "etcdserver: no leader"),
				op(1, 300, 310, get("a"), getOK(3)),
			},
			log:  logOf(grant(7, 5), putLease("a", "1", 7), revoke(7)),
			want: []Verdict{OK, OK, OK},
			msg:  []string{"(0 lease expiries by the leader, 1 refused lease requests applied by an attempt clientv3 resent)"},
		},
		{
			name: "a revoke answered 'no leader', never committed",
			history: []history.Operation{
				op(0, 0, 10, grant(7, 5), grantOK(1, 7, 5)),
				op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
				failed(0, 100, 200, revoke(7), "Unavailable", "etcdserver: no leader"),
				op(1, 300, 310, get("a"), getOK(2, kvLease("a", "1", 2, 7))),
			},
			log:  logOf(grant(7, 5), putLease("a", "1", 7)),
			want: []Verdict{OK, OK, OK},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, c := patched(Input{Clients: clients(tc.history...), FinalRead: -1, Persisted: tc.log})
			require.Equal(t, tc.want, verdicts(rs), "%+v", rs)
			p := rs[1]
			for _, m := range tc.msg {
				require.Contains(t, p.Message, m)
			}
			for _, w := range tc.why {
				require.Contains(t, p.Explanation, w)
			}
			if tc.involved != nil {
				require.Equal(t, tc.involved, p.Involved)
			}
			if p.Verdict == Illegal {
				require.NotEmpty(t, p.Involved)
				require.NotEmpty(t, p.Explanation)
			}
			require.Equal(t, "committed entries", p.CheckedWhat)
			require.Equal(t, len(tc.log.Entries), p.Checked)
			// Only the leader's expiries are operations no client sent.
			for _, o := range c.Patched.Ops {
				if o.ClientID < 0 {
					require.True(t, o.Request.Type == model.LeaseRevoke && o.Request.Lease.Expiry, "%s: %s", o.Source, o.Request)
				}
			}
		})
	}
}

// retriedRevoke is a revoke clientv3 resent: its first attempt was
// committed and revoked the lease (raft index 3), the answer was lost, and
// the resent attempt, committed too (raft index 4), found no lease. The
// lease's deadline is 5 s after its grant; the read at 300 ms sees its key
// gone.
func retriedRevoke() ([]history.Operation, *evidence.Log) {
	h := []history.Operation{
		op(0, 0, 10, grant(7, 5), grantOK(1, 7, 5)),
		op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
		failed(0, 100, 200, revoke(7), "NotFound", model.ErrLeaseNotFound),
		op(1, 300, 310, ht.Get("a"), getOK(3)),
	}
	return h, logOf(grant(7, 5), putLease("a", "1", 7), revoke(7), revoke(7))
}

func TestPatchRetriedRevoke(t *testing.T) {
	chain := func(h []history.Operation, log *evidence.Log) ([]Result, *Check) {
		c := &Check{Input: Input{Clients: clients(h...), FinalRead: -1, Persisted: log}}
		var rs []Result
		for _, v := range []Validator{EvidenceStage{}, PatchStage{}, Linearizability{}} {
			rs = append(rs, v.Validate(context.Background(), c))
		}
		return rs, c
	}

	t.Run("the client's revoke, applied by its first attempt", func(t *testing.T) {
		h, log := retriedRevoke()
		rs := All(context.Background(), Input{Clients: clients(h...), FinalRead: -1, Persisted: log}, EvidenceStage{}, PatchStage{}, Linearizability{})
		require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
		_, c := chain(h, log)
		require.Equal(t, 0, c.Patched.Server, "the effective revoke is the client's, not an expiry")
		require.Equal(t, 1, c.Patched.Resent)
		for _, o := range c.Patched.Ops {
			if o.Source == "client 0 #2" {
				require.Equal(t, model.StatusApplied, o.Response.Status)
				require.Equal(t, int64(2), o.Response.AppliedTo)
				require.Equal(t, int64(3), o.Response.Revision)
				require.Equal(t, 310*time.Millisecond, o.Return, "bounded by the read that shows it")
			}
		}
		require.True(t, byRevision(c.Patched.Ops), "plan: %s; check: %s", c.Patched.noWitness, witnessed(c.Patched.Ops))
	})

	t.Run("shown before the client called, before the deadline: an early expiry", func(t *testing.T) {
		h, log := retriedRevoke()
		h[3] = op(1, 50, 60, ht.Get("a"), getOK(3))
		rs, c := chain(h, log)
		require.Equal(t, []Verdict{OK, OK, Illegal}, verdicts(rs), "%+v", rs)
		require.Equal(t, 1, c.Patched.Server, "the effective revoke stays the leader's expiry")
		require.Equal(t, 0, c.Patched.Resent)
		// Porcupine alone agrees (SearchOnly skips the witness).
		porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
		require.Equal(t, Illegal, porc.Verdict, porc.Message)
	})

	t.Run("shown before the client called, after the deadline: the leader's expiry", func(t *testing.T) {
		h, log := retriedRevoke()
		h[2] = failed(0, 5100, 5200, revoke(7), "NotFound", model.ErrLeaseNotFound)
		h[3] = op(1, 5050, 5060, ht.Get("a"), getOK(3))
		rs, c := chain(h, log)
		require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
		require.Equal(t, 1, c.Patched.Server)
	})

	t.Run("no resent copy in the log to answer 'not found'", func(t *testing.T) {
		h, log := retriedRevoke()
		log = logOf(grant(7, 5), putLease("a", "1", 7), revoke(7))
		rs, c := chain(h, log)
		require.Equal(t, 0, c.Patched.Resent, "the refusal answers no committed copy: it stays a refusal")
		require.Equal(t, Illegal, rs[2].Verdict, rs[2].Message)
	})
}

// Entries that carry no client request are etcd's own: named by kind and
// ignored. One that does not decode may hold anything: the patch cannot
// vouch for the log.
func TestPatchInternalEntries(t *testing.T) {
	h := []history.Operation{
		op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
		op(1, 20, 30, ht.Get("a"), getOK(2, kv("a", "1", 2))),
	}
	kinds := []any{evidence.KindEmpty, evidence.KindConfChange, evidence.KindClusterVersion, evidence.KindMemberAttr,
		evidence.KindMemberAttr, evidence.KindDowngrade, evidence.KindAlarm, evidence.KindAuth, evidence.KindLeaseCheckpoint, evidence.KindV2}
	log := logWith(append(kinds, ht.Put("a", "1"))...)
	rs, _ := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
	require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
	require.Contains(t, rs[1].Message, "ignored 10 internal entries (1 alarm, 1 auth, 1 cluster-version, 1 conf-change, 1 downgrade, "+
		"1 empty, 1 lease-checkpoint, 2 member-attr, 1 v2)")
	require.Equal(t, 1, rs[1].Checked)

	t.Run("an entry that does not decode", func(t *testing.T) {
		log := logWith(evidence.KindOther, ht.Put("a", "1"))
		rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
		require.Equal(t, Inconclusive, rs[1].Verdict, rs[1].Message)
		require.Contains(t, rs[1].Message, "1 committed entries could not be decoded (first at raft index 1)")
		require.Nil(t, c.Replayed, "the log does not replay past it")
	})

	t.Run("an acknowledged write missing beside an entry that does not decode", func(t *testing.T) {
		// The write may be in the entry that does not decode: no loss.
		h := []history.Operation{
			op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
			op(0, 20, 30, ht.Put("b", "2"), putOK(3)),
		}
		rs, _ := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: logWith(evidence.KindOther, ht.Put("b", "2"))})
		require.Equal(t, Inconclusive, rs[1].Verdict, rs[1].Message)
	})

	t.Run("a violation among the entries that decode", func(t *testing.T) {
		rs, _ := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: logWith(evidence.KindOther, ht.Put("a", "1"), ht.Put("z", "9"))})
		require.Equal(t, Illegal, rs[1].Verdict, rs[1].Message)
		require.Contains(t, rs[1].Message, "put(z, 9) was committed at raft index 3, but no client sent it")
	})
}

// The errors etcd gives only before proposing; those its applier also
// gives are not among them.
func TestRefusedBeforeProposal(t *testing.T) {
	for _, msg := range []string{"etcdserver: too many requests", "etcdserver: no leader", "etcdserver: request is too large",
		"etcdserver: not capable", "etcdserver: rpc not supported for learner", "etcdserver: cluster ID mismatch"} {
		require.True(t, model.RefusedBeforeProposal(msg), msg)
		require.True(t, model.Declined(msg), "%s: a refusal before proposal is one the model does not predict", msg)
	}
	for _, msg := range []string{"etcdserver: mvcc: database space exceeded", "etcdserver: permission denied", "etcdserver: invalid auth token",
		model.ErrLeaseNotFound, model.ErrCompacted, model.ErrLeaseExists, "etcdserver: request timed out"} {
		require.False(t, model.RefusedBeforeProposal(msg), msg)
	}
}

// A client's revoke of unknown outcome adds no effect of its own: the
// complete log holds at most one revoke of a lease that took effect, and
// that entry has its operation (here the leader's, open to being the
// client's). So the copy is left out (Patched.StoodFor): the log's revoke
// explains the key gone; without it in the log nothing does, though the
// copy, left open, could have.
func TestPatchOpenRevokeStoodFor(t *testing.T) {
	h := []history.Operation{
		op(0, 0, 10, grant(7, 5), grantOK(1, 7, 5)),
		op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
		unknown(1, 100, 1000, revoke(7)),
		op(2, 300, 310, ht.Get("a"), getOK(3)),
	}
	tests := []struct {
		name string
		log  *evidence.Log
		want Verdict
	}{
		{"the log's revoke stands for it", logOf(grant(7, 5), putLease("a", "1", 7), revoke(7)), OK},
		{"no revoke in the log: nothing deleted the key", logOf(grant(7, 5), putLease("a", "1", 7)), Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: tc.log})
			require.Equal(t, OK, rs[1].Verdict, rs[1].Message)
			require.Equal(t, 1, c.Patched.StoodFor, rs[1].Message)
			require.Contains(t, rs[1].Message, "1 revokes stood for by the log's one effective revoke of their lease")
			for _, o := range c.Patched.Ops {
				require.NotEqual(t, "client 1 #0", o.Source, "the client's revoke is left out")
			}
			require.Equal(t, tc.want, rs[2].Verdict, rs[2].Message)
			porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, tc.want, porc.Verdict, porc.Message)
		})
	}
}

package validate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// inTerm sets the raft term of an answer's header.
func inTerm(r *history.Response, term uint64) *history.Response {
	r.Header.RaftTerm = term
	return r
}

// staleLeaderExpiry is a lease of 2 s granted in term 3 and renewed at 1 s
// by that term's leader, then at 2.5 s by the leader of term 4 (its
// deadline is 4.5 s). A revoke no client sent, committed in term 4 (the
// old leader, paused past the TTL, revoked the lease by its own lessor's
// clock when it ran again, and raft forwarded the revoke: etcd #15247), is
// seen by a read at 3.5 s: after the old leader's deadline of 3 s.
func staleLeaderExpiry() ([]history.Operation, *evidence.Log) {
	h := []history.Operation{
		op(0, 0, 10, grant(7, 2), inTerm(grantOK(1, 7, 2), 3)),
		op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
		op(1, 1000, 1010, keepAlive(7), inTerm(keepAliveOK(2, 7, 2), 3)),
		op(1, 2500, 2510, keepAlive(7), inTerm(keepAliveOK(2, 7, 2), 4)),
		op(2, 3500, 3510, ht.Get("a"), getOK(3)),
	}
	log := logOf(grant(7, 2), putLease("a", "1", 7), revoke(7))
	log.Entries[0].Term, log.Entries[1].Term, log.Entries[2].Term = 3, 3, 4
	return h, log
}

func TestLeaseExpiryByAStaleLeader(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(h []history.Operation, log *evidence.Log)
		verdict Verdict
	}{
		{"committed in a later term, after the old leader's deadline", func(h []history.Operation, log *evidence.Log) {}, OK},
		{"committed in the grant's term: the leader that renewed at 2.5 s revoked it", func(h []history.Operation, log *evidence.Log) {
			log.Entries[2].Term = 3
			h[3].Response = inTerm(keepAliveOK(2, 7, 2), 3)
		}, Illegal},
		{"committed in a later term, before even the old leader's deadline", func(h []history.Operation, log *evidence.Log) {
			h[4] = op(2, 2800, 2810, ht.Get("a"), getOK(3))
		}, Illegal},
		{"no leader change among the renewals", func(h []history.Operation, log *evidence.Log) {
			h[0].Response = inTerm(grantOK(1, 7, 2), 4)
			h[2].Response = inTerm(keepAliveOK(2, 7, 2), 4)
			log.Entries[0].Term, log.Entries[1].Term = 4, 4
		}, Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, log := staleLeaderExpiry()
			tc.mutate(h, log)
			rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
			require.Equal(t, []Verdict{OK, OK, tc.verdict}, verdicts(rs), "%+v", rs)
			require.Equal(t, 1, c.Patched.Server, "the revoke is the leader's expiry")
			// Porcupine alone agrees (SearchOnly skips the witness).
			porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, tc.verdict, porc.Verdict, porc.Message)
		})
	}
}

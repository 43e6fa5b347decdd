package validate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// TestEarlyExpiry builds a lease granted with a 5 s TTL at 1 s, renewed
// at 4 s (answered TTL 5: kept until 9 s), with a key on it, and the
// leader's expiry of it applied by some time: before 9 s every order of
// the history fails, and the stage says so at once, naming the lease and
// the renewal; after it the history is linearizable.
func TestEarlyExpiry(t *testing.T) {
	const sec = time.Second
	history := func(expiryBy time.Duration, renewed bool) []Op {
		grant := model.LeaseGrantRequest(7, 5, 1*sec)
		ops := []Op{
			{ClientID: 0, Call: 1 * sec, Return: 1*sec + 10, Request: grant,
				Response: model.Response{Revision: 1, Lease: &model.LeaseResponse{ID: 7, TTL: 5}}, Source: "client 0 #0"},
			{ClientID: 0, Call: 2 * sec, Return: 2*sec + 10, Request: model.PutWithLeaseRequest("k", "v", 7),
				Response: model.Response{Revision: 2, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{}}}}, Source: "client 0 #1"},
		}
		if renewed {
			ops = append(ops, Op{ClientID: 1, Call: 4 * sec, Return: 4*sec + 10, Request: model.LeaseKeepAliveRequest(7, 4*sec),
				Response: model.Response{Revision: 2, Lease: &model.LeaseResponse{ID: 7, TTL: 5}}, Source: "client 1 #0"})
		}
		return append(ops, Op{ClientID: -1, Call: 0, Return: expiryBy, Request: model.LeaseExpiryRequest(7, expiryBy),
			Response: model.Response{Status: model.StatusApplied, Revision: 3}, Source: "wal index 9"})
	}
	tests := []struct {
		name     string
		ops      []Op
		want     Verdict
		involved []string
	}{
		{"expired after the renewal's TTL ran out", history(9500*time.Millisecond, true), OK, nil},
		{"expired after the grant's TTL, before the renewal's", history(7*sec, true), Illegal, []string{"client 0 #0", "client 1 #0", "wal index 9"}},
		{"expired before the grant's TTL ran out", history(5*sec, false), Illegal, []string{"client 0 #0", "wal index 9"}},
		{"expired after the grant's TTL, never renewed", history(7*sec, false), OK, nil},
		// A second grant of the same ID, of unknown outcome, may have
		// made the lease anew: the expiry (after the first grant's TTL)
		// revoked the first, the second grant took effect after it, and
		// the keepalive renewed the second. The search finds that order;
		// the direct check must not call it early.
		{"a grant of unknown outcome of the same ID may have made it anew", withOpenGrant(history(7*sec, true)), OK, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Patched: &Patched{Ops: tc.ops, Server: 1}}
			r := Linearizability{Timeout: 10 * time.Second}.Validate(context.Background(), c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Equal(t, tc.involved, r.Involved)
			if tc.want == Illegal {
				require.Contains(t, r.Message, "lease 7 was revoked by the leader's expiry (wal index 9)")
				require.Contains(t, r.Explanation, "etcd #15247")
			}
		})
	}
}

// withOpenGrant adds a second grant of lease 7 whose outcome is unknown.
func withOpenGrant(ops []Op) []Op {
	return append(ops, Op{ClientID: 2, Call: 3 * time.Second, Open: true, Request: model.LeaseGrantRequest(7, 5, 3*time.Second),
		Response: model.Response{Status: model.StatusUnknown}, Source: "client 2 #0"})
}

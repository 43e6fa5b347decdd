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

// The pattern of the 60 s high-rate run: two time-to-lives, whose headers
// are member-local (so their answers pin no revision), one returned just
// before the other was called. The later one lists a key that a put
// overwrites soon after, so only one slot fits it, below the latest slot
// real time allows; the earlier one fits its latest slot, above that. The
// plan must keep the earlier one at or below the later one's final slot.
func TestWitnessKeepsRealTimeAmongUnpinned(t *testing.T) {
	put := ht.Put
	base := func() ([]history.Operation, *evidence.Log) {
		h := []history.Operation{
			op(0, 0, 10, grant(7, 100), grantOK(1, 7, 100)),
			op(1, 0, 10, grant(8, 100), grantOK(1, 8, 100)),
			op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
			// lease 8 exists everywhere after its grant: its latest slot
			// is before the put of b, called after it returned.
			op(1, 25, 40, timeToLive(8), timeToLiveOK(1, 8, 90, 100)),
			// lists a on lease 7: only between the two puts of a.
			op(2, 41, 50, timeToLive(7), timeToLiveOK(1, 7, 90, 100, "a")),
			op(0, 35, 60, put("a", "2"), putOK(3)),
			op(3, 45, 70, put("b", "x"), putOK(4)),
		}
		return h, logOf(grant(7, 100), grant(8, 100), putLease("a", "1", 7), put("a", "2"), put("b", "x"))
	}
	tests := []struct {
		name    string
		mutate  func(h []history.Operation) []history.Operation
		witness bool
		verdict Verdict
	}{
		{"two unpinned time-to-lives in real-time order", func(h []history.Operation) []history.Operation { return h }, true, OK},
		{"a keepalive of the first lease in between", func(h []history.Operation) []history.Operation {
			return append(h, op(4, 42, 48, keepAlive(8), keepAliveOK(1, 8, 100)))
		}, true, OK},
		{"the key-listing time-to-live called after the overwrite returned", func(h []history.Operation) []history.Operation {
			h[4] = op(2, 61, 65, timeToLive(7), timeToLiveOK(1, 7, 90, 100, "a"))
			return h
		}, false, Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, log := base()
			rs, c := patched(Input{Clients: clients(tc.mutate(h)...), FinalRead: -1, Persisted: log})
			require.Equal(t, OK, rs[1].Verdict, rs[1].Message)
			require.Equal(t, tc.witness, byRevision(c.Patched.Ops), "plan: %s; check: %s", c.Patched.noWitness, witnessed(c.Patched.Ops))
			require.Equal(t, tc.verdict, rs[2].Verdict, rs[2].Message)
			porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, tc.verdict, porc.Verdict, porc.Message)
		})
	}
}

package validate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// longHistory is n sequential puts by two clients, with a stale read at
// op bad (none if bad < 0): it returns the value the put before the last
// one wrote.
func longHistory(n, bad int) []history.Client {
	var ops []history.Operation
	for i := 0; i < n; i++ {
		rev := int64(i + 2)
		ops = append(ops, op(i%2, 10*i, 10*i+5, ht.Put("a", fmt.Sprint(i)), putOK(rev)))
		if i == bad {
			ops = append(ops, op(2, 10*i+6, 10*i+8, ht.Get("a"), getOK(rev-1, ht.KVAt("a", fmt.Sprint(i-1), 2, rev-1, rev-2))))
		}
	}
	return clients(ops...)
}

// A violation in a long history is shown as a window around the first
// operation that could not be placed, the operations ordered before it
// folded into its starting state, and the window alone shows the
// violation.
func TestViolationWindow(t *testing.T) {
	r := linearizability(context.Background(), Linearizability{Timeout: 30 * time.Second}, longHistory(3000, 2000))
	require.Equal(t, Illegal, r.Verdict, r.Message)
	v := r.History
	require.NotNil(t, v)
	require.Equal(t, 3001, v.Total)
	require.LessOrEqual(t, len(v.Ops), MaxVisualizedOps+1)
	require.Greater(t, v.Folded, 1000, "what comes before the window is folded into its starting state")
	require.Len(t, v.States, 1)
	require.Less(t, v.From, 20*time.Second)
	require.Greater(t, v.To, 20*time.Second, "the window is around the violation at 20 s")
	require.Contains(t, v.Description, "a window of")
	require.Contains(t, v.Description, "of the 3001 operations")
	require.Contains(t, v.Description, "around the first operation that could not be placed")
	res, _ := porcupine.CheckOperationsVerbose(PorcupineModel(v.States), v.Ops, 10*time.Second)
	require.Equal(t, porcupine.Illegal, res, "the window shows the violation on its own")
	require.Equal(t, "client 2 #0", r.Involved[0], "the stale read first")
}

// When porcupine's longest-order search does not finish, the verdict its
// plain search gave stays, and the view falls back to the first
// operations, and says so.
func TestViolationViewWithoutTheSearch(t *testing.T) {
	c := &Check{Input: Input{Clients: longHistory(3000, 2000), FinalRead: -1}}
	p, ops := derive(c.Clients)
	for _, o := range ops {
		p.Ops = append(p.Ops, o.Op)
	}
	c.Patched = p
	pops, pos := porcupineOps(p.Ops)
	r := Result{Verdict: Illegal, Message: "3001 operations are not linearizable"}
	violation(context.Background(), c, &r, pops, pos, time.Nanosecond)
	require.Equal(t, Illegal, r.Verdict)
	require.Contains(t, r.Message, "did not finish within 1ns")
	require.NotNil(t, r.History)
	require.Len(t, r.History.Ops, MaxVisualizedOps)
	require.Contains(t, r.History.Description, "as no operation could be singled out")
	require.Contains(t, r.History.Description, "did not finish within 1ns")
}

// A passing history gets a view only when asked, of its first
// MaxVisualizedOps operations, and asking never changes the verdict.
func TestPassView(t *testing.T) {
	h := longHistory(1500, -1)
	plain := linearizability(context.Background(), Linearizability{}, h)
	kept := linearizability(context.Background(), Linearizability{Visualize: true}, h)
	require.Equal(t, OK, plain.Verdict, plain.Message)
	require.Equal(t, plain.Verdict, kept.Verdict)
	require.Equal(t, 1500, kept.Checked)
	require.Nil(t, plain.History)
	require.NotNil(t, kept.History)
	require.Len(t, kept.History.Ops, MaxVisualizedOps)
	require.Zero(t, kept.History.Folded)
	require.Contains(t, kept.History.Description, "the first 1000 of the 1500 operations in call order")
}

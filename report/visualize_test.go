package report

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// longHistory is n sequential puts by two clients, with a stale read at
// op bad: it returns the value the put before the last one wrote.
func longHistory(n, bad int) []history.Client {
	var ops []history.Operation
	for i := 0; i < n; i++ {
		rev := int64(i + 2)
		ops = append(ops, ht.Op(i%2, 10*i, 10*i+5, ht.Put("a", fmt.Sprint(i)), ht.PutOK(rev)))
		if i == bad {
			ops = append(ops, ht.Op(2, 10*i+6, 10*i+8, ht.Get("a"), ht.GetOK(rev-1, history.KeyValue{Key: "a", Value: fmt.Sprint(i - 1), ModRevision: rev - 1, CreateRevision: 2, Version: rev - 2})))
		}
	}
	return ht.Clients(ops...)
}

func TestHistoryWindow(t *testing.T) {
	in := validate.Input{Clients: longHistory(3000, 2000), FinalRead: -1}
	results := validate.All(t.Context(), in, validate.Linearizability{Timeout: 30 * time.Second})
	require.Equal(t, validate.Illegal, results[0].Verdict)
	rec := Record{Scenario: scenarios.Scenario{Name: "long", Members: 3}, Input: in}
	ops := patchedOps(rec)
	require.Len(t, ops, 3001)

	w := HistoryWindow(ops, *results[0].Linearization, MaxVisualizedOps)
	require.LessOrEqual(t, len(w.Ops), MaxVisualizedOps+1)
	require.Greater(t, w.Before, 1000, "what comes before the window is folded into its starting state")
	require.Len(t, w.States, 1)
	require.Less(t, w.From, 20000*time.Millisecond)
	require.Greater(t, w.To, 20000*time.Millisecond, "the window is around the violation at 20 s")
	res, _ := porcupine.CheckOperationsVerbose(visualModel(rec, w.States), w.Ops, 10*time.Second)
	require.Equal(t, porcupine.Illegal, res, "the window shows the violation on its own")

	dir := t.TempDir()
	desc, err := WriteHistory(dir, rec, results[0])
	require.NoError(t, err)
	require.Contains(t, desc, "of the 3001 operations")
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	require.Contains(t, string(b), `id="window-note"`)
	require.Contains(t, string(b), "#jump-link", "the page opens at the violation")
	require.Less(t, len(b), 2<<20)
}

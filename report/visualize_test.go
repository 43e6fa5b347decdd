package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// WriteHistory draws what the linearizability stage handed over and
// nothing else: given a record without a single operation, the page still
// shows the stage's window, its operations and its note.
func TestWriteHistoryRendersTheResult(t *testing.T) {
	in := validate.Input{Clients: longHistory(3000, 2000), FinalRead: -1}
	res := validate.All(t.Context(), in, validate.Linearizability{Timeout: 30 * time.Second})[0]
	require.Equal(t, validate.Illegal, res.Verdict)
	require.NotNil(t, res.History)

	rec := Record{Scenario: scenarios.Scenario{Name: "long", Members: 3},
		Input: validate.Input{Injections: []history.Injection{{Name: "kill", Targets: []string{"member-1"}, Start: 19 * time.Second, End: 21 * time.Second}}}}
	dir := t.TempDir()
	desc, err := WriteHistory(dir, rec, res)
	require.NoError(t, err)
	require.Equal(t, res.History.Description, desc)
	require.Contains(t, desc, "of the 3001 operations")
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	page := string(b)
	require.Contains(t, page, `id="window-note"`)
	require.Contains(t, page, htmlEscape(desc))
	require.Contains(t, page, "#jump-link", "the page opens at the violation")
	require.Contains(t, page, "put(a, 2000)", "the window's operations, from the result")
	require.NotContains(t, page, "put(a, 10) ", "an operation folded into the starting state is not drawn")
	require.Contains(t, page, "kill member-1", "the faults come from the record")
	require.Less(t, len(b), 2<<20)

	// No view, no page.
	empty := t.TempDir()
	desc, err = WriteHistory(empty, rec, validate.Result{Verdict: validate.OK})
	require.NoError(t, err)
	require.Empty(t, desc)
	require.NoFileExists(t, filepath.Join(empty, HTMLFile))
}

// A kept passing run's page shows the first MaxVisualizedOps operations.
func TestWriteHistoryOfAPass(t *testing.T) {
	in := validate.Input{Clients: longHistory(1500, -1), FinalRead: -1}
	res := validate.All(t.Context(), in, validate.Linearizability{Timeout: 30 * time.Second, Visualize: true})[0]
	require.Equal(t, validate.OK, res.Verdict, res.Message)
	require.NotNil(t, res.History)
	require.Len(t, res.History.Ops, MaxVisualizedOps)
	dir := t.TempDir()
	desc, err := WriteHistory(dir, Record{}, res)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(desc, "the first 1000 of the 1500 operations"), desc)
	require.FileExists(t, filepath.Join(dir, HTMLFile))
}

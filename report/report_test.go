package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func sample() Report {
	ops := []history.Operation{
		{ClientID: 0, Call: 1 * time.Millisecond, Return: 2 * time.Millisecond, Request: model.PutRequest("a", "1"),
			Response: model.Response{Revision: 2, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{}}}}},
		{ClientID: 0, Call: 3 * time.Millisecond, Return: 4 * time.Millisecond, Request: model.PutRequest("a", "2"),
			Response: model.Response{Error: "context deadline exceeded"}},
	}
	clients := []history.Client{{ID: 0, Operations: ops}}
	injections := []history.Injection{{Name: "kill", Member: "member-1", Start: time.Millisecond, End: 3 * time.Millisecond}}
	pops := validate.PorcupineOperations(clients)
	res, info := porcupine.CheckOperationsVerbose(model.Porcupine, pops, time.Second)
	if res != porcupine.Ok {
		panic(res)
	}
	return Report{
		Summary:    Summary{Seed: 7, Outcome: "PASS"},
		Clients:    clients,
		Injections: injections,
		Results:    []validate.Result{{Validator: "linearizability", Verdict: validate.OK, Message: "fine", Linearization: &info}},
	}
}

func TestWriteLoad(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	require.NoError(t, Write(dir, r))
	html, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	require.Contains(t, string(html), "kill member-1", "the fault is annotated in the visualization")
	require.Contains(t, string(html), "put(a, 1)")

	got, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, r.Clients, got.Clients)
	require.Equal(t, r.Injections, got.Injections)
	require.Equal(t, int64(7), got.Summary.Seed)
	require.Equal(t, validate.OK, got.Results[0].Verdict)
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"not a directory", func(dir string) { os.RemoveAll(dir) }, "is not a report directory"},
		{"summary missing", func(dir string) { os.Remove(filepath.Join(dir, SummaryFile)) }, "summary.json is missing"},
		{"summary not JSON", func(dir string) { os.WriteFile(filepath.Join(dir, SummaryFile), []byte("{oops"), 0o644) }, "summary.json"},
		{"no histories", func(dir string) { os.RemoveAll(filepath.Join(dir, HistoryDir)) }, "no history/client-N.json files"},
		{"truncated history", func(dir string) {
			p := filepath.Join(dir, HistoryDir, "client-0.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "client-0.json"},
		{"unknown request type", func(dir string) {
			p := filepath.Join(dir, HistoryDir, "client-0.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"type": "txn"`, `"type": "lease"`, 1)), 0o644)
		}, `unknown request type "lease" (valid: txn)`},
		{"unknown field", func(dir string) {
			os.WriteFile(filepath.Join(dir, InjectionsFile), []byte(`[{"nme": "kill"}]`), 0o644)
		}, `unknown field "nme"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, Write(dir, sample()))
			tc.damage(dir)
			_, err := Load(dir)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n", "errors are one line")
		})
	}
}

package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func sample() (Record, Summary) {
	put := ht.Put("a", "1")
	clients := ht.Clients(
		ht.Op(0, 1, 2, put, ht.PutOK(2)),
		ht.Unknown(0, 3, 4, ht.Put("a", "2")),
	)
	rec := Record{
		Scenario: scenarios.Scenario{Name: "default", Members: 3},
		Seed:     7,
		Input: validate.Input{
			Clients:    clients,
			Injections: []history.Injection{{Name: "kill", Targets: []string{"member-1"}, Start: time.Millisecond, Effect: 2 * time.Millisecond, End: 3 * time.Millisecond}},
			FinalRead:  -1,
			Persisted: &evidence.Log{FirstIndex: 1, CommitIndex: 1, Complete: true,
				Entries: []evidence.Entry{{Index: 1, Term: 2, Request: &put}}},
			EndStates: []evidence.MemberState{{Member: "member-0", Revision: 2, Hash: 42}},
		},
	}
	lin := validate.All(context.Background(), rec.Input, validate.EvidenceStage{}, validate.PatchStage{}, validate.Linearizability{Visualize: true})[2]
	if lin.Verdict != validate.OK || lin.History == nil {
		panic(lin.Message)
	}
	sum := Summary{Scenario: "default", Seed: 7, Outcome: "PASS", Results: []validate.Result{lin}}
	return rec, sum
}

func TestWriteLoad(t *testing.T) {
	dir := t.TempDir()
	rec, sum := sample()
	require.NoError(t, Write(dir, rec, sum))
	html, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	require.Contains(t, string(html), "kill member-1", "the fault is annotated in the visualization")
	require.Contains(t, string(html), "put(a, 1)")

	got, err := Load(dir)
	require.NoError(t, err)
	rec.Format, rec.Version = Format, Version
	require.Equal(t, rec, got, "the record is read back whole")
	s, err := LoadSummary(dir)
	require.NoError(t, err)
	require.Equal(t, validate.OK, s.Results[0].Verdict)
}

func TestLoadCorrupt(t *testing.T) {
	// Damage to the JSON inside record.json.zst, recompressed, so that
	// Load gets past zstd and finds it in the JSON.
	rewrite := func(f func([]byte) []byte) func(string) {
		return func(dir string) { rewriteRecord(t, dir, f) }
	}
	edit := func(from, to string) func(string) {
		return rewrite(func(b []byte) []byte { return []byte(strings.Replace(string(b), from, to, 1)) })
	}
	tests := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"not a directory", func(dir string) { os.RemoveAll(dir) }, "is not a report directory"},
		{"record missing", func(dir string) { os.Remove(filepath.Join(dir, RecordZstdFile)) }, "record.json is missing"},
		{"an older report", func(dir string) {
			os.Remove(filepath.Join(dir, RecordZstdFile))
			os.MkdirAll(filepath.Join(dir, "history"), 0o755)
		}, "written by an older etcd-robustness (record version 1"},
		{"truncated JSON", rewrite(func(b []byte) []byte { return b[:len(b)/2] }), "is corrupt: record.json.zst: unexpected end of JSON input"},
		{"garbled record", edit(`"clients":[`, `"clients":{`), "is corrupt: record.json.zst"},
		{"another version", edit(`"version":2`, `"version":3`), "record.json.zst is version 3; this etcd-robustness reads version 2 only"},
		{"not a record", edit(`"format":"etcd-robustness run record"`, `"format":"x"`), `record.json.zst has format "x"`},
		{"unknown field", edit(`"seed":7`, `"sed":7`), `unknown field "sed"`},
		{"empty request", edit(`"request":{"put":{"key":"a","value":"2"}}`, `"request":{}`), "client 0 operation 1: the request is empty"},
		{"bad outcome", edit(`"outcome":"unknown"`, `"outcome":"maybe"`), `error outcome "maybe" (valid: failed, unknown)`},
		{"garbled into other valid JSON", edit(`"value":"1"`, `"value":"7"`), "record.json.zst does not match its checksum in record.json.sha256"},
		{"checksum missing", func(dir string) { os.Remove(filepath.Join(dir, ChecksumFile)) }, "record.json.sha256 is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rec, sum := sample()
			require.NoError(t, Write(dir, rec, sum))
			tc.damage(dir)
			_, err := Load(dir)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n", "errors are one line")
		})
	}
}

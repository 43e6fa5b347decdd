package report

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// failingReport writes the report of a run that lost a write into a new
// directory, with member dirs as the cluster runner leaves them.
func failingReport(t *testing.T) (string, Record, Summary) {
	dir := t.TempDir()
	in := lostWrite()
	in.Injections = []history.Injection{{Name: "raftBeforeSave", Targets: []string{"member-0"}, Start: 100 * time.Millisecond,
		Effect: 200 * time.Millisecond, End: 450 * time.Millisecond}}
	rec := Record{Scenario: scenarios.Scenario{Name: "issue-14370", Members: 1, Traffic: "etcd-kv", Duration: time.Second},
		EtcdVersions: []string{"v3.5.4"}, Seed: 1, Start: time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC), Input: in}
	results := validate.Run(context.Background(), in, validate.Options{CheckTimeout: 10 * time.Second})
	sum := Summary{Scenario: "issue-14370", EtcdVersions: rec.EtcdVersions, Seed: 1, Stats: history.Count(in.Clients),
		Outcome: "FAIL", Verdict: "FAIL: lost", Results: results}
	// A preallocated WAL: 8 MB, mostly zeros.
	wal := filepath.Join(dir, "member-0", "data", "member", "wal")
	require.NoError(t, os.MkdirAll(wal, 0o755))
	zeros := make([]byte, 8<<20)
	copy(zeros, "walheader")
	require.NoError(t, os.WriteFile(filepath.Join(wal, "0000000000000000-0000000000000000.wal"), zeros, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member-0", "etcd.log"), []byte("small log\n"), 0o644))
	require.NoError(t, Write(dir, rec, sum))
	return dir, rec, sum
}

func TestIndex(t *testing.T) {
	dir, _, _ := failingReport(t)
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	require.NoError(t, err)
	page := string(b)
	for _, want := range []string{
		`id="verdicts"`, `<td class="illegal">illegal</td>`, "linearizability", "patch",
		`id="explanation"`, "put(a, 1) (client 0 #0) was acknowledged at revision 2",
		`<svg id="timeline"`, `class="fault"`, "raftBeforeSave", "member abc",
		`href="history.html"`, `href="record.json.zst"`, `href="summary.json"`, `href="member-0/data.tar.gz"`,
		"v3.5.4", "issue-14370",
		// The outcome at a glance, not the whole verdict on one line.
		`<p id="headline">FAIL: patch: put(a, 1) was acknowledged at revision 2 by client 0 #0 but is in no member&#39;s WAL`,
	} {
		require.Contains(t, page, want)
	}
	require.Contains(t, page, `href="record.json.sha256"`)
	require.NotContains(t, page, `href="record.json"`, "the record is linked as Write keeps it, compressed")
	own := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, ext := range []string{"http://", "https://", "<script src", "<link"} {
		require.NotContains(t, own, ext, "no external resource")
	}
}

func TestCompressMembers(t *testing.T) {
	dir, _, _ := failingReport(t)
	_, err := os.Stat(filepath.Join(dir, "member-0", "data"))
	require.True(t, os.IsNotExist(err), "the data dir is gone once archived")
	require.FileExists(t, filepath.Join(dir, "member-0", "etcd.log"), "a small log stays as it is")
	fi, err := os.Stat(filepath.Join(dir, "member-0", "data.tar.gz"))
	require.NoError(t, err)
	require.Less(t, fi.Size(), int64(100<<10), "8 MB of zeros compress to little")

	f, err := os.Open(filepath.Join(dir, "member-0", "data.tar.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, ".wal") {
			var buf bytes.Buffer
			_, err := io.Copy(&buf, tr)
			require.NoError(t, err)
			require.Equal(t, 8<<20, buf.Len())
			require.True(t, bytes.HasPrefix(buf.Bytes(), []byte("walheader")))
		}
	}
	require.Contains(t, names, "data/member/wal/0000000000000000-0000000000000000.wal")
}

func TestCompressLargeLog(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "member-1"), 0o755))
	log := bytes.Repeat([]byte("a log line\n"), LogCompressThreshold/10)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "member-1", "etcd.log"), log, 0o644))
	require.NoError(t, CompressMembers(dir))
	require.NoFileExists(t, filepath.Join(dir, "member-1", "etcd.log"))
	f, err := os.Open(filepath.Join(dir, "member-1", "etcd.log.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	got, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, log, got)
}

// A linearizability violation's page lists the operations the stage named
// in Result.Involved, as recorded, the stuck one first.
func TestIndexListsInvolvedOperations(t *testing.T) {
	dir := t.TempDir()
	in := staleRead()
	rec := Record{Scenario: scenarios.Scenario{Name: "stale", Members: 1}, Input: in}
	results := validate.Run(context.Background(), in, validate.Options{CheckTimeout: 10 * time.Second})
	sum := Summary{Scenario: "stale", Outcome: "FAIL", Results: results}
	require.NoError(t, Write(dir, rec, sum))
	v := FirstViolation(rec, sum)
	require.NotNil(t, v)
	require.Equal(t, "linearizability", v.Validator)
	var sources []string
	for _, o := range v.Involved {
		sources = append(sources, o.Source)
	}
	require.Equal(t, []string{"client 2 #0", "client 1 #0"}, sources)
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	require.NoError(t, err)
	page := string(b)
	table := page[strings.Index(page, `<table id="involved">`):]
	table = table[:strings.Index(table, "</table>")]
	require.Contains(t, table, "<td>client 2 #0</td>")
	require.Contains(t, table, "<td>client 1 #0</td>")
	require.Less(t, strings.Index(table, "client 2 #0"), strings.Index(table, "client 1 #0"), "the stuck operation first")
	require.Contains(t, table, `{&#34;range&#34;:{&#34;key&#34;:&#34;a&#34;}}`, "the request as recorded")
}

func TestFirstViolationInvolved(t *testing.T) {
	rec := Record{Input: lostWrite()}
	tests := []struct {
		name   string
		result validate.Result
		want   []string
	}{
		{"the stage's list, not the text", validate.Result{Verdict: validate.Illegal, Explanation: "client 0 #0 and client 1 #0", Involved: []string{"client 1 #0"}},
			[]string{"client 1 #0"}},
		{"the text's names without a list", validate.Result{Verdict: validate.Illegal, Explanation: "client 0 #0, then client 1 #0 and client 0 #0 again"},
			[]string{"client 0 #0", "client 1 #0"}},
		{"a source not in the record is listed by name", validate.Result{Verdict: validate.Illegal, Involved: []string{"client 9 #9"}},
			[]string{"client 9 #9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := FirstViolation(rec, Summary{Results: []validate.Result{tc.result}})
			var got []string
			for _, o := range v.Involved {
				got = append(got, o.Source)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestReportNamesWhatRan: a run whose flags changed the scenario is named
// with them, and described from what ran, on the page and in `summary`'s
// rows; so is a record from before runs recorded their flags.
func TestReportNamesWhatRan(t *testing.T) {
	def, err := scenarios.Lookup(scenarios.BasicName)
	require.NoError(t, err)
	changed := def
	changed.Traffic, changed.QPS, changed.Clients, changed.Failpoint = "etcd", 500, 10, "pause-follower"
	tests := []struct {
		name  string
		sc    scenarios.Scenario
		title string
	}{
		{"with its flags", changed.Overridden([]string{"--traffic etcd", "--failpoint pause-follower"}), "basic, with flags: --traffic etcd --failpoint pause-follower"},
		{"an older record", changed, "basic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := lostWrite()
			rec := Record{Scenario: tc.sc, EtcdVersions: []string{"v3.7.3"}, Seed: 1, Input: in}
			results := validate.Run(context.Background(), in, validate.Options{CheckTimeout: 10 * time.Second})
			sum := Summary{Scenario: tc.sc.Name, Seed: 1, Stats: history.Count(in.Clients), Outcome: "FAIL", Results: results}
			require.NoError(t, Write(dir, rec, sum))
			b, err := os.ReadFile(filepath.Join(dir, IndexFile))
			require.NoError(t, err)
			page := string(b)
			want := "3 members; etcd traffic for 10s at 500 requests/s from 10 clients (medium rate); no watches; fault: pause-follower at 2.5s"
			require.Contains(t, page, "</span> "+tc.title+", seed 1</h1>")
			require.Contains(t, page, `<p id="what-ran">What ran: `+want+`.</p>`)
			require.Contains(t, page, `<tr><th>scenario description</th><td class="mono">`+want+`</td></tr>`)
			require.NotContains(t, page, def.Description, "not the registered scenario's text")
			row, err := ReadRow(dir)
			require.NoError(t, err)
			require.Equal(t, tc.title, row.Scenario)
		})
	}
}

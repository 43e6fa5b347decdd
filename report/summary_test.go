package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSummaryOfRuns(t *testing.T) {
	failing, _, _ := failingReport(t)
	passing := t.TempDir()
	rec, sum := sample()
	require.NoError(t, Write(passing, rec, sum))

	parent := t.TempDir()
	for name, dir := range map[string]string{"run-fail": failing, "run-pass": passing} {
		require.NoError(t, os.Symlink(dir, filepath.Join(parent, name)))
	}
	require.NoError(t, os.Mkdir(filepath.Join(parent, "not-a-report"), 0o755))

	dirs, err := FindReports([]string{parent})
	require.NoError(t, err)
	require.Len(t, dirs, 2, "a directory of reports stands for the reports in it")

	var rows []Row
	for _, d := range dirs {
		r, err := ReadRow(d)
		require.NoError(t, err)
		rows = append(rows, r)
	}
	SortRows(rows)
	require.Equal(t, "FAIL", rows[0].Outcome, "failures first")
	require.Equal(t, "raftBeforeSave member-0", rows[0].Faults)
	require.Equal(t, "patch", rows[0].Violation.Validator)
	require.Nil(t, rows[1].Violation)

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rows))
	require.Contains(t, table.String(), "FAIL     issue-14370")
	require.Contains(t, table.String(), "patch: put(a, 1) (client 0 #0) was acknowledged at revision 2 at 20ms by member abc.")

	page := filepath.Join(parent, "summary.html")
	require.NoError(t, WriteSummaryHTML(page, rows))
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	require.Contains(t, string(b), `href="run-fail/index.html"`)
	require.Contains(t, string(b), "1 failed, 0 inconclusive, 1 passed")
}

func TestSummaryOfBrokenReports(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"no summary", func(d string) { os.Remove(filepath.Join(d, SummaryFile)) }, "summary.json is missing"},
		{"summary not JSON", func(d string) { os.WriteFile(filepath.Join(d, SummaryFile), []byte("{"), 0o644) }, "is corrupt: summary.json"},
		{"summary without results", func(d string) { os.WriteFile(filepath.Join(d, SummaryFile), []byte(`{"outcome":"FAIL"}`), 0o644) },
			"is incomplete: summary.json"},
		{"record cut short", func(d string) {
			p := filepath.Join(d, RecordZstdFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "is corrupt: record.json.zst: unexpected EOF"},
		{"plain record cut short", func(d string) {
			os.Remove(filepath.Join(d, RecordZstdFile))
			os.WriteFile(filepath.Join(d, RecordFile), []byte(`{"format":`), 0o644)
		}, "is corrupt: record.json: unexpected end of JSON input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := failingReport(t)
			tc.damage(dir)
			_, err := ReadRow(dir)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
	_, err := FindReports([]string{t.TempDir()})
	require.ErrorContains(t, err, "holds no report")
}

// A directory is a report when it holds a summary or a run record in any
// of its forms, record.json.zst included.
func TestFindReportsByRecord(t *testing.T) {
	parent := t.TempDir()
	for _, f := range []string{RecordFile, RecordZstdFile, RecordGzipFile} {
		d := filepath.Join(parent, "only-"+f)
		require.NoError(t, os.Mkdir(d, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, f), nil, 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(parent, "not-a-report"), 0o755))
	dirs, err := FindReports([]string{parent})
	require.NoError(t, err)
	require.Len(t, dirs, 3)
	for _, d := range dirs {
		require.Contains(t, d, "only-")
	}
}

package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/validate"
)

// WriteScale adds the run's size and cost to summary.json; a summary
// without them (written before) still reads, and says so when printed.
func TestWriteScale(t *testing.T) {
	dir := t.TempDir()
	rec, sum := sample()
	rec.Watches = watchRecord(2, 50, 1).Watches
	require.NoError(t, Write(dir, rec, sum))

	old, err := LoadSummary(dir)
	require.NoError(t, err)
	require.Nil(t, old.Scale, "a summary written without scale figures")
	var out bytes.Buffer
	require.NoError(t, WriteScaleFigures(&out, dir, old))
	require.Contains(t, out.String(), "no scale figures")

	results := []validate.Result{{Validator: "patch", Took: time.Second}, {Validator: "watch", Took: 500 * time.Millisecond}}
	s, err := WriteScale(dir, rec, results)
	require.NoError(t, err)
	require.Equal(t, 2, s.Operations)
	require.Equal(t, 1, s.Entries)
	require.Equal(t, len(rec.Watches[0].Responses)+len(rec.Watches[1].Responses), s.WatchResponses)
	require.InDelta(t, 1.5, s.CheckSeconds, 1e-9)
	require.InDelta(t, 0.003, s.TrafficSeconds, 1e-9, "client 0 called at 1 ms and its last return was at 4 ms")
	require.Positive(t, s.PeakRSSBytes)
	fi, err := os.Stat(filepath.Join(dir, RecordZstdFile))
	require.NoError(t, err)
	require.Greater(t, s.ReportBytes, fi.Size())

	got, err := LoadSummary(dir)
	require.NoError(t, err)
	require.Equal(t, &s, got.Scale)
	require.Equal(t, sum.Outcome, got.Outcome)
	out.Reset()
	require.NoError(t, WriteScaleFigures(&out, dir, got))
	require.Contains(t, out.String(), "operations 2, committed entries 1, watch responses")
	require.Contains(t, out.String(), "  linearizability  ", "each stage of the summary with its time")
	require.Contains(t, out.String(), "check 1.5s for 0.0s of traffic")
}

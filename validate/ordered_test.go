package validate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecordDir checks the run record in $ETCD_ROBUSTNESS_RECORD (a report
// directory, or a glob of them) with every stage and logs each stage's
// time against the traffic's: a measurement on a record too large to
// commit. It decodes record.json itself, as report.Load would, since
// report imports this package.
func TestRecordDir(t *testing.T) {
	pattern := os.Getenv("ETCD_ROBUSTNESS_RECORD")
	if pattern == "" {
		t.Skip("set ETCD_ROBUSTNESS_RECORD to a report directory")
	}
	dirs, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "record.json"))
		require.NoError(t, err)
		var rec struct {
			Scenario struct {
				Duration time.Duration `json:"duration"`
			} `json:"scenario"`
			Input
		}
		require.NoError(t, json.Unmarshal(b, &rec))
		start := time.Now()
		rs := Run(context.Background(), rec.Input, Options{})
		took := time.Since(start)
		for _, r := range rs {
			t.Logf("%-16s %-12s %8s %s", r.Validator, r.Verdict, r.Took.Round(time.Millisecond), r.Message)
		}
		t.Logf("%s: all stages in %s, traffic %s (%.1f%%)", dir, took.Round(time.Millisecond), rec.Scenario.Duration,
			100*took.Seconds()/rec.Scenario.Duration.Seconds())
		for _, r := range rs {
			require.Equal(t, OK, r.Verdict, "%s: %s", r.Validator, r.Message)
		}
	}
}

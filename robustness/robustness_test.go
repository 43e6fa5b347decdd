package robustness

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

var (
	resultsDir = flag.String("results-dir", envOr("ETCD_ROBUSTNESS_RESULTS", "../results"), "where a failing run leaves its report (env ETCD_ROBUSTNESS_RESULTS)")
	keep       = flag.Bool("keep", os.Getenv("ETCD_ROBUSTNESS_KEEP") != "", "keep the report of a passing run too (env ETCD_ROBUSTNESS_KEEP=1)")
	scenario   = flag.String("scenario", scenarios.BasicName, "scenario TestRobustness runs (TestRobustnessExploratory runs the default, explore)")
	seed       = flag.Int64("seed", 0, "seed (default: from the clock)")
)

// TestRobustness runs a named scenario (by default basic: 3 members, a
// kill, 10 s of traffic) against a real etcd cluster and fails on any violation. A failing
// run keeps its report and the test prints where.
func TestRobustness(t *testing.T) {
	bins := testetcd.Binaries(t)
	sc, err := scenarios.Lookup(*scenario)
	require.NoError(t, err)
	s := *seed
	if s == 0 {
		s = time.Now().UnixNano() % 1_000_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Scenario:    sc,
		Binaries:    []etcdbuild.Binaries{bins},
		ResultsDir:  *resultsDir,
		KeepPassing: *keep,
		Seed:        s,
		Logger:      zaptest.NewLogger(t),
	})
	require.NoError(t, err)
	var table strings.Builder
	res.WriteStages(&table)
	t.Logf("seed %d: %s\n%s", s, res.Headline(), table.String())
	if res.Dir != "" {
		t.Logf("report: %s", res.Dir)
	}
	require.Equal(t, Pass, res.Outcome, "report: %s", res.Dir)
	if !*keep {
		require.Empty(t, res.Dir, "a passing run removes its directory")
	}
	require.Len(t, res.Injections, 1)
	require.Empty(t, res.Injections[0].Error)
	require.NotEmpty(t, res.Injections[0].Targets)
	require.Greater(t, res.Injections[0].End, res.Injections[0].Start)
	require.Greater(t, res.Stats.Operations, 500, "traffic ran at far below its rate")
	require.Greater(t, res.Stats.SuccessfulWrites, 100)
	// Every stage of the one list ran and passed, the evidence ones included.
	var want, stages []string
	for _, v := range validate.Stages(validate.Options{}) {
		want = append(want, v.Name())
	}
	for _, r := range res.Results {
		stages = append(stages, r.Validator)
		require.Equal(t, validate.OK, r.Verdict, "%s: %s", r.Validator, r.Message)
	}
	require.Equal(t, want, stages)
}

func TestRunRejectsBadConfig(t *testing.T) {
	good, err := scenarios.Lookup(scenarios.BasicName)
	require.NoError(t, err)
	bins := []etcdbuild.Binaries{{Version: "v0.0.0", Etcd: "/nonexistent/etcd"}}
	tests := []struct {
		name    string
		mutate  func(*Config)
		message string
	}{
		{"unknown failpoint", func(c *Config) { c.Scenario.Failpoint = "nope" }, `unknown failpoint "nope" (valid: `},
		{"unknown traffic", func(c *Config) { c.Scenario.Traffic = "nope" }, `unknown traffic profile "nope" (valid: etcd, etcd-kv, kubernetes)`},
		{"bad size", func(c *Config) { c.Scenario.Members = 2 }, "members must be 1, 3 or 5"},
		{"binaries per member", func(c *Config) { c.Binaries = append(bins, bins...) }, "2 etcd binaries given for 3 members"},
		{"unwritable results dir", func(c *Config) { c.ResultsDir = "/proc/nope" }, "results directory /proc/nope cannot be created"},
		{"etcd does not start", func(c *Config) {}, "starting the cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Scenario: good, Binaries: bins, ResultsDir: t.TempDir()}
			tc.mutate(&cfg)
			_, err := Run(context.Background(), cfg)
			var setup *SetupError
			require.True(t, errors.As(err, &setup), "want a SetupError, got %v", err)
			require.Contains(t, err.Error(), tc.message)
		})
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}

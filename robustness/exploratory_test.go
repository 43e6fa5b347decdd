package robustness

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/report"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

var shard = flag.String("shard", "", "i/n: TestRobustnessExploratory takes every n-th seed, starting at i (0 ≤ i < n), so that a matrix splits across machines")

// exploratory counts the runs of TestRobustnessExploratory in this process
// (-count N repeats it), for their seeds and the running totals.
var exploratory struct {
	sync.Mutex
	runs   int
	base   int64
	totals map[Outcome]int
}

// parseShard reads -shard i/n; "" is 0/1.
func parseShard(s string) (i, n int64, err error) {
	if s == "" {
		return 0, 1, nil
	}
	if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("-shard %q: want i/n with 0 ≤ i < n, like 0/4", s)
	}
	return i, n, nil
}

// exploratorySeed is the seed of the k-th run (from 0) of a process whose
// first seed is base, in shard i of n: every n-th seed from base*n+i, so
// that shards never share a seed and a base repeats the same seeds.
func exploratorySeed(base, k, i, n int64) int64 { return (base+k)*n + i }

func TestExploratorySeeds(t *testing.T) {
	_, _, err := parseShard("4/4")
	require.ErrorContains(t, err, "want i/n with 0 ≤ i < n")
	_, _, err = parseShard("x")
	require.Error(t, err)
	seen := map[int64]int64{}
	for i := range int64(3) {
		for k := range int64(20) {
			s := exploratorySeed(100, k, i, 3)
			require.Equal(t, i, s%3, "shard %d takes its residue", i)
			_, dup := seen[s]
			require.False(t, dup, "seed %d drawn twice", s)
			seen[s] = i
		}
	}
}

// TestRobustnessExploratory runs the default scenario, explore: each run
// draws its cluster size, traffic, watches, faults and etcd settings from
// its seed, against the releases in $ETCD_ROBUSTNESS_VERSION (a comma
// separated list draws which member runs which). It fails unless the run
// passes. -count N repeats it with the next seeds; -args -shard i/n takes
// every n-th seed; -seed S starts from S (default: from the clock).
func TestRobustnessExploratory(t *testing.T) {
	releases := testetcd.Releases(t)
	i, n, err := parseShard(*shard)
	require.NoError(t, err)
	exploratory.Lock()
	if exploratory.runs == 0 {
		exploratory.base = *seed
		if exploratory.base == 0 {
			exploratory.base = time.Now().UnixNano() % 1_000_000
		}
	}
	k := int64(exploratory.runs)
	exploratory.runs++
	s := exploratorySeed(exploratory.base, k, i, n)
	exploratory.Unlock()
	byVersion := map[string]etcdbuild.Binaries{}
	var versions []string
	for _, b := range releases {
		byVersion[b.Version] = b
		versions = append(versions, b.Version)
	}
	ex, err := scenarios.Lookup(scenarios.ExploreName)
	require.NoError(t, err)
	sc, err := ex.Draw(s, versions)
	require.NoError(t, err)
	bins := releases[:1]
	if mv := sc.Explore.MemberVersions; len(mv) > 0 {
		bins = nil
		for _, v := range mv {
			bins = append(bins, byVersion[v])
		}
	}
	t.Logf("seed %d draws: %s", s, sc.Description)
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Scenario: sc, Binaries: bins, ResultsDir: *resultsDir, KeepPassing: *keep, Seed: s, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	var table strings.Builder
	res.WriteStages(&table)
	exploratory.Lock()
	if exploratory.totals == nil {
		exploratory.totals = map[Outcome]int{}
	}
	exploratory.totals[res.Outcome]++
	totals := fmt.Sprintf("%d PASS, %d FAIL, %d INCONCLUSIVE", exploratory.totals[Pass], exploratory.totals[Fail], exploratory.totals[Inconclusive])
	exploratory.Unlock()
	t.Logf("run %d, seed %d, %s: %s (so far: %s)", k+1, s, time.Since(started).Round(time.Second), firstLine(res.Headline()), totals)
	if res.Outcome != Pass {
		t.Logf("stages:\n%s", table.String())
	}
	require.Equal(t, Pass, res.Outcome, "seed %d, report: %s", s, res.Dir)
	require.Len(t, res.Injections, sc.Explore.Faults, "every drawn fault ran")
	for _, inj := range res.Injections {
		require.NotEqual(t, "random", inj.Name, "random is picked before traffic")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestReplaySamePlan: a replay of a kept report runs the same plan: the
// same draws, the same faults picked in the same places of the schedule,
// and the clients placed alike; the result compares the two runs.
func TestReplaySamePlan(t *testing.T) {
	bins := testetcd.Binaries(t)
	ex, err := scenarios.Lookup(scenarios.ExploreName)
	require.NoError(t, err)
	const s = 21
	sc, err := ex.Draw(s, []string{bins.Version})
	require.NoError(t, err)
	// Short and light: the plan is what is compared, not what etcd did.
	sc.Members, sc.Traffic, sc.Rate, sc.QPS, sc.Clients, sc.Duration = 3, "etcd", "", 100, 4, 4*time.Second
	sc.Failpoint = "random,random"
	sc = sc.Overridden([]string{"--members 3", "--traffic etcd", "--qps 100", "--clients 4", "--failpoint random,random", "--duration 4s"})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cfg := Config{Scenario: sc, Binaries: []etcdbuild.Binaries{bins}, ResultsDir: dir, KeepPassing: true, Seed: s, Logger: zaptest.NewLogger(t)}
	first, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.NotEmpty(t, first.Dir)
	orig, err := report.LoadOriginal(first.Dir)
	require.NoError(t, err)
	require.NotContains(t, orig.Scenario.Failpoint, "random", "the record names the faults picked")

	cfg.Scenario, cfg.Seed, cfg.Replay = orig.Scenario, orig.Seed, &orig
	second, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.NotNil(t, second.Replay)
	require.True(t, second.Replay.SamePlan, "plan differs in %s", second.Replay.PlanDiff)
	require.Equal(t, string(first.Outcome), second.Replay.OriginalOutcome)
	require.Len(t, second.Replay.Faults, 2)
	for i, f := range second.Replay.Faults {
		require.Equal(t, first.Injections[i].Name, f.Name)
		require.Equal(t, second.Injections[i].Name, f.Name)
	}
	sum, err := report.LoadSummary(second.Dir)
	require.NoError(t, err)
	require.NotNil(t, sum.Replay, "the replay's summary compares it with the original")
	require.Equal(t, first.Dir, sum.Replay.Of)
}

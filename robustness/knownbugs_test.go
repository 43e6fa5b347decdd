package robustness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// planOf is the plan of a schedule, without a cluster (random left out).
func planOf(t *testing.T, sched []scenarios.Fault) faultPlan {
	var p faultPlan
	for _, f := range sched {
		if f.Name == failpoint.Random {
			continue
		}
		fs, err := failpoint.Parse(f.Name)
		require.NoError(t, err)
		p.steps = append(p.steps, faultStep{spec: f, fp: fs[0]})
	}
	return p
}

func pausedLeaderBug(t *testing.T) traffic.KnownBug {
	for _, b := range traffic.KnownBugs {
		if b.ID == traffic.PausedLeaderExpiry {
			return b
		}
	}
	t.Fatal("no known bug " + traffic.PausedLeaderExpiry)
	return traffic.KnownBug{}
}

// The paused leader's expiries are avoided, by longer TTLs, only where the
// plan pauses the leader, and not with --expose-known-bugs.
func TestPausedLeaderAvoidance(t *testing.T) {
	bug := pausedLeaderBug(t)
	avoided := []string{traffic.PausedLeaderExpiry}
	tests := []struct {
		name      string
		sched     []scenarios.Fault
		exercises bool
		minTTL    int64
	}{
		{"a leader pause of the default duration", []scenarios.Fault{{Name: "kill"}, {Name: "pause-leader"}}, true, 12},
		{"a leader pause of 2 s", []scenarios.Fault{{Name: "pause-leader", Duration: 2 * time.Second}}, true, 8},
		{"the longest of two", []scenarios.Fault{{Name: "pause-leader", Duration: 2 * time.Second}, {Name: "pause-leader", Duration: 8 * time.Second}}, true, 17},
		{"a follower's pause", []scenarios.Fault{{Name: "pause-follower"}}, false, 0},
		{"the leader's raft loop stalled (#15247, fixed by its own fix)", []scenarios.Fault{{Name: "stall-leader", Duration: 8 * time.Second}}, false, 0},
		{"no pause", []scenarios.Fault{{Name: "kill"}, {Name: "blackhole-member"}}, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planOf(t, tc.sched)
			require.Equal(t, tc.exercises, p.exercises(bug))
			require.Equal(t, tc.minTTL, p.minLeaseTTL(avoided))
			// --expose-known-bugs: nothing avoided, the profile's own TTLs.
			require.Zero(t, p.minLeaseTTL(nil))
		})
	}
}

// No regression target has its TTLs raised: the #15247 target (a stalled
// leader) keeps the short leases that let it catch #15247.
func TestRegressionsKeepShortLeases(t *testing.T) {
	bug := pausedLeaderBug(t)
	for _, r := range scenarios.Regressions() {
		for _, v := range []string{r.Release, r.Fixed} {
			sc, err := r.ScenarioFor(v)
			require.NoError(t, err)
			p := planOf(t, sc.Schedule())
			require.False(t, p.exercises(bug), "#%d on %s: its plan pauses the leader", r.Issue, v)
			require.Zero(t, p.minLeaseTTL([]string{traffic.PausedLeaderExpiry}), "#%d on %s", r.Issue, v)
		}
	}
}

package robustness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

func TestAvoidedBugs(t *testing.T) {
	ids := func(bugs []traffic.KnownBug) []string {
		var out []string
		for _, b := range bugs {
			if b.ID != traffic.PausedLeaderExpiry { // avoided by the plan: TestPausedLeaderAvoidance
				out = append(out, b.ID)
			}
		}
		return out
	}
	reg20221, err := scenarios.LookupRegression("20221")
	require.NoError(t, err)
	reg15220, err := scenarios.LookupRegression("15220")
	require.NoError(t, err)
	reg18089, err := scenarios.LookupRegression("18089")
	require.NoError(t, err)
	tests := []struct {
		name     string
		versions []string
		expose   []string
		want     []string
	}{
		{"v3.6.1 has #20221", []string{"v3.6.1"}, nil, []string{"etcd#20221"}},
		{"#20221's own regression sends the watches", []string{reg20221.Release}, []string{reg20221.KnownBugID()}, nil},
		{"another regression on a release with #20221 and #18089 avoids them", []string{reg15220.Fixed}, reg15220.Exposed(), []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		{"#18089's own regression compacts at deletes", []string{reg18089.Release}, reg18089.Exposed(), []string{"etcd#20221"}},
		{"#18089's regression without #19179 exposed would not", []string{reg18089.Release}, []string{reg18089.KnownBugID()}, []string{"etcd#20221", "etcd#19179"}},
		{"v3.7.3: #20221 is fixed, #22209 is not", []string{"v3.7.3"}, []string{reg20221.KnownBugID()}, []string{"etcd#22209"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ids(avoidedBugs(tc.versions, false, tc.expose)))
		})
	}
	// No regression avoids its own bug on the release that has it, nor
	// another bug whose avoidance would leave out what shows its own.
	for _, r := range scenarios.Regressions() {
		avoided := avoidedBugs([]string{r.Release}, true, r.Exposed())
		require.NotContains(t, ids(avoided), r.KnownBugID(), "etcd #%d on %s", r.Issue, r.Release)
		for _, own := range traffic.KnownBugs {
			if own.ID != r.KnownBugID() {
				continue
			}
			for _, b := range avoided {
				require.NotEqual(t, own.Avoid, b.Avoid, "etcd #%d on %s: %s avoids %s as well", r.Issue, r.Release, b.ID, own.Avoid)
			}
		}
	}
}

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

// etcd #14370 is avoided on the plan's side: on one member of an affected
// release, `random` draws no kill and no injected panic; a cluster of
// more members, a run that exposes the bug, or a pool of crashes only
// keeps its pool whole.
func TestSingleMemberCrashAvoidance(t *testing.T) {
	faults := func(names ...string) []failpoint.Failpoint {
		var out []failpoint.Failpoint
		for _, n := range names {
			fs, err := failpoint.Parse(n)
			require.NoError(t, err)
			out = append(out, fs[0])
		}
		return out
	}
	names := func(fs []failpoint.Failpoint) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name())
		}
		return out
	}
	on3412 := avoidedBugs([]string{"v3.4.12"}, false, nil)
	var bug traffic.KnownBug
	for _, b := range on3412 {
		if b.ID == traffic.EtcdIssue14370 {
			bug = b
		}
	}
	require.Equal(t, traffic.EtcdIssue14370, bug.ID, "v3.4.12 has etcd#14370")
	pool := faults("kill", "pause-leader", "raftBeforeSave:panic", "defragBeforeRename:panic", "raftAfterSave:sleep")
	tests := []struct {
		name      string
		members   int
		avoided   []traffic.KnownBug
		pool      []failpoint.Failpoint
		want      []string
		exercises bool
	}{
		{"one member of v3.4.12", 1, on3412, pool, []string{"pause-leader", "raftAfterSave:sleep"}, true},
		{"three members of v3.4.12", 3, on3412, pool, names(pool), false},
		{"--expose-known-bugs", 1, nil, pool, names(pool), false},
		{"v3.4.21 has the fix", 1, avoidedBugs([]string{"v3.4.21"}, false, nil), pool, names(pool), false},
		{"v3.5.4 has it", 1, avoidedBugs([]string{"v3.5.4"}, false, nil), pool, []string{"pause-leader", "raftAfterSave:sleep"}, true},
		{"v3.5.5 has the fix", 1, avoidedBugs([]string{"v3.5.5"}, false, nil), pool, names(pool), false},
		{"crashes only", 1, on3412, faults("kill", "raftBeforeSave:panic"), []string{"kill", "raftBeforeSave:panic"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, left := leaveOutCrashes(tc.pool, tc.members, tc.avoided)
			require.Equal(t, tc.want, names(kept))
			require.Equal(t, tc.exercises, left)
			require.Equal(t, tc.exercises, faultPlan{crashesLeftOut: left}.exercises(bug))
		})
	}
	// The #14370 regression names its crash and does not avoid its bug.
	r, err := scenarios.LookupRegression("14370")
	require.NoError(t, err)
	require.NotContains(t, avoidedBugs([]string{r.Release}, false, r.Exposed()), bug)
	sc, err := r.ScenarioFor(r.Release)
	require.NoError(t, err)
	for _, f := range sc.Schedule() {
		require.NotEqual(t, failpoint.Random, f.Name)
	}
}

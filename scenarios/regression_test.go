package scenarios_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// The bugs of ../shared/etcd-releases.md and etcd #15247, each with the
// release that has it and the first with the fix.
var wantRegressions = map[int][2]string{
	13766: {"v3.5.2", "v3.5.3"},
	14370: {"v3.5.4", "v3.5.5"},
	14685: {"v3.5.5", "v3.5.6"},
	15220: {"v3.5.7", "v3.5.8"},
	15247: {"v3.5.12", "v3.5.13"},
	15271: {"v3.5.7", "v3.5.8"},
	17529: {"v3.5.12", "v3.5.13"},
	17780: {"v3.5.13", "v3.5.14"},
	18089: {"v3.5.12", "v3.5.16"},
	19179: {"v3.5.17", "v3.5.18"},
	20221: {"v3.6.1", "v3.6.2"},
}

func TestRegressionRegistry(t *testing.T) {
	var stages []string
	for _, v := range validate.Stages(validate.Options{}) {
		stages = append(stages, v.Name())
	}
	checks := map[string][]string{
		"watch":      validate.WatchCheckNames(),
		"kubernetes": {validate.K8sFutureWatch{}.Name(), validate.K8sWatchNoGap{}.Name()},
	}
	got := scenarios.Regressions()
	require.Len(t, got, len(wantRegressions))
	for _, r := range got {
		t.Run(r.Scenario, func(t *testing.T) {
			want, ok := wantRegressions[r.Issue]
			require.True(t, ok, "etcd #%d", r.Issue)
			require.Equal(t, want, [2]string{r.Release, r.Fixed})
			require.True(t, r.HasBug(r.Release))
			require.False(t, r.HasBug(r.Fixed))
			require.False(t, r.HasBug(r.FixedRun()))
			// A fixed run must pass, so its release has none of the known
			// bugs the target sends; FixedRelease is there only because
			// Fixed has one.
			affects := func(v string) []string {
				var ids []string
				for _, b := range traffic.KnownBugs {
					if slices.Contains(r.Exposed(), b.ID) && b.Affects(v) {
						ids = append(ids, b.ID)
					}
				}
				return ids
			}
			require.Empty(t, affects(r.FixedRun()), "--fixed runs %s", r.FixedRun())
			if r.FixedRelease != "" {
				require.NotEmpty(t, affects(r.Fixed), "FixedRelease %s, but Fixed %s has no bug the target sends", r.FixedRelease, r.Fixed)
			}
			require.NotEmpty(t, r.Summary)

			sc, err := scenarios.Lookup(r.Scenario)
			require.NoError(t, err)
			require.Equal(t, r.Release, sc.EtcdVersion, "the scenario pins the release with the bug")
			require.NoError(t, sc.Validate())
			for _, v := range []string{r.Release, r.Fixed, r.FixedRun()} {
				s, err := r.ScenarioFor(v)
				require.NoError(t, err)
				require.NoError(t, s.Validate())
				_, err = failpoint.Parse(s.Failpoint)
				require.NoError(t, err, "faults on %s", v)
				_, err = etcdbuild.PatchesFor(v, s.EtcdPatches)
				require.NoError(t, err)
			}
			require.NotEmpty(t, r.Catches)
			for _, c := range r.Catches {
				stage, check, named := strings.Cut(c, "/")
				require.Contains(t, stages, stage, c)
				if named {
					require.Contains(t, checks[stage], check, c)
				}
			}
		})
	}
}

func TestRegressionScenarioFor(t *testing.T) {
	r, err := scenarios.LookupRegression("#14370")
	require.NoError(t, err)
	bug, err := r.ScenarioFor("v3.5.4")
	require.NoError(t, err)
	require.Equal(t, "raftBeforeSave:panic", bug.Failpoint)
	for _, v := range []string{"v3.5.5", "v3.5.35", "v3.6.16"} {
		fixed, err := r.ScenarioFor(v)
		require.NoError(t, err)
		require.Equal(t, "raftBeforeSaveWaitWalSync:panic", fixed.Failpoint, "from the fix on, a single member saves through the new point")
		require.Equal(t, []scenarios.Fault{{Name: "raftBeforeSaveWaitWalSync:panic", Start: bug.Duration / 4}}, fixed.Schedule())
	}

	r, err = scenarios.LookupRegression("17780")
	require.NoError(t, err)
	for _, v := range []string{"v3.5.13", "v3.5.14"} {
		s, err := r.ScenarioFor(v)
		require.NoError(t, err)
		require.Equal(t, "compactBeforeSetFinishedCompact:panic", s.Failpoint, "no FixedFailpoint: the same faults on both")
	}
	ps, err := etcdbuild.PatchesFor("v3.5.13", []string{"compactBeforeSetFinishedCompact"})
	require.NoError(t, err)
	require.Len(t, ps, 1, "the release with the bug is patched")
	ps, err = etcdbuild.PatchesFor(r.Fixed, []string{"compactBeforeSetFinishedCompact"})
	require.NoError(t, err)
	require.Empty(t, ps, "the fixed release has the point of its own")
}

func TestLookupRegressionUnknown(t *testing.T) {
	for _, in := range []string{"99999", "abc", ""} {
		_, err := scenarios.LookupRegression(in)
		require.ErrorContains(t, err, "no reproduction of that etcd issue here (valid: 13766, 14370, 14685, 15220, 15247, 15271, 17529, 17780, 18089, 19179, 20221)")
	}
}

func TestCaughtBy(t *testing.T) {
	r, err := scenarios.LookupRegression("17529")
	require.NoError(t, err)
	tests := []struct {
		name    string
		illegal []string
		want    string
	}{
		{"nothing illegal", nil, ""},
		{"another stage only: not this bug", []string{"linearizability", "watch/caught-up", "watch/resumable"}, ""},
		{"the first listed wins", []string{"kubernetes/k8s-watch-no-gap", "watch/reliable"}, "watch/reliable"},
		{"a kubernetes check", []string{"kubernetes/k8s-watch-no-gap"}, "kubernetes/k8s-watch-no-gap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, r.CaughtBy(func(n string) bool { return slices.Contains(tt.illegal, n) }))
		})
	}
}

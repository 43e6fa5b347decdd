package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

func TestCompareReplay(t *testing.T) {
	sc := scenarios.Scenario{Name: "explore", Members: 3, Traffic: "etcd", Failpoint: "kill,pause-leader", ClientMembers: []string{"member-0", ""},
		Explore: &scenarios.Exploration{Seed: 4, Faults: 2}}
	orig := Original{Dir: "/r/explore-1", Scenario: sc, Seed: 4, Outcome: "FAIL", Stats: history.Stats{Operations: 900},
		Injections: []history.Injection{{Name: "kill", Targets: []string{"member-1"}}, {Name: "pause-leader", Targets: []string{"member-0"}}}}
	now := []history.Injection{{Name: "kill", Targets: []string{"member-1"}}, {Name: "pause-leader", Error: "the fault did not take effect"}}

	r := CompareReplay(orig, sc, now, "INCONCLUSIVE", history.Stats{Operations: 880})
	require.True(t, r.SamePlan)
	require.Equal(t, "FAIL", r.OriginalOutcome)
	require.Equal(t, 880, r.Operations)
	require.Len(t, r.Faults, 2)
	lines := strings.Join(r.Lines(), "\n")
	require.Contains(t, lines, "replay of /r/explore-1: the same plan")
	require.Contains(t, lines, "the original ended FAIL with 900 operations, this run INCONCLUSIVE with 880")
	require.Contains(t, lines, "kill: hit member-1, then member-1")
	require.Contains(t, lines, "pause-leader: hit member-0, then not injected (the fault did not take effect)")

	// A plan that differs is named, field by field.
	other := sc
	other.Members, other.ClientMembers = 5, []string{"member-4"}
	r = CompareReplay(orig, other, now, "PASS", history.Stats{})
	require.False(t, r.SamePlan)
	require.Equal(t, "Members, ClientMembers", r.PlanDiff)
	require.Contains(t, r.Lines()[0], "a plan that differs in Members, ClientMembers")
}

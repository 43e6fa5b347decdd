package robustness

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

func TestAvoidedBugs(t *testing.T) {
	ids := func(bugs []traffic.KnownBug) []string {
		var out []string
		for _, b := range bugs {
			out = append(out, b.ID)
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

package scenarios

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDrawIsReplayable: the same seed and releases draw the same scenario,
// and the draws are recorded.
func TestDrawIsReplayable(t *testing.T) {
	ex, err := Lookup(ExploreName)
	require.NoError(t, err)
	for seed := int64(1); seed <= 50; seed++ {
		a, err := ex.Draw(seed, []string{"v3.6.16", "v3.7.3"})
		require.NoError(t, err)
		b, err := ex.Draw(seed, []string{"v3.6.16", "v3.7.3"})
		require.NoError(t, err)
		require.Equal(t, a, b, "seed %d", seed)
		require.Equal(t, seed, a.Explore.Seed)
		require.Len(t, a.Explore.MemberVersions, a.Members)
		require.Equal(t, a.Describe(), a.Description)
	}
}

// TestDrawCoversTheSpace: over many seeds every size, profile, rate,
// placement, fault count and setting is drawn, every draw is a valid
// scenario, and the etcd settings stay within what etcd accepts and the
// checks' timing bounds assume.
func TestDrawCoversTheSpace(t *testing.T) {
	ex, err := Lookup(ExploreName)
	require.NoError(t, err)
	seen := map[string]map[any]int{}
	saw := func(what string, v any) {
		if seen[what] == nil {
			seen[what] = map[any]int{}
		}
		seen[what][v]++
	}
	for seed := int64(0); seed < 2000; seed++ {
		s, err := ex.Draw(seed, []string{"v3.7.3"})
		require.NoError(t, err)
		require.NoError(t, s.Validate())
		require.Empty(t, s.Explore.MemberVersions, "one release: nothing to draw")
		saw("members", s.Members)
		saw("traffic", s.Traffic)
		saw("rate", s.Rate)
		saw("placement", s.Placement)
		saw("watch", s.Watch != nil)
		saw("tls", s.TLS)
		if s.TLS {
			require.Contains(t, s.Description, "over TLS", "seed %d", seed)
		} else {
			require.NotContains(t, s.Description, "TLS", "seed %d", seed)
		}
		saw("faults", len(s.Schedule()))
		saw("compaction", s.CompactionInterval)
		require.Equal(t, s.Explore.Faults, len(s.Schedule()))
		for _, f := range s.Schedule() {
			require.Equal(t, "random", f.Name, "picked by the run, once the cluster is up")
		}
		if e := s.Etcd; e != nil {
			saw("snapshot", e.SnapshotCount)
			saw("batch", e.CompactionBatchLimit)
			saw("election", e.ElectionTimeout)
			election, heartbeat := e.ElectionTimeout, e.HeartbeatInterval
			if election == 0 {
				election = time.Second
			}
			if heartbeat == 0 {
				heartbeat = 100 * time.Millisecond
			}
			require.LessOrEqual(t, election, time.Second)
			require.GreaterOrEqual(t, election, 5*heartbeat, "etcd refuses an election timeout under 5 heartbeats")
		}
	}
	// One run in four is over TLS.
	require.InDelta(t, 500, seen["tls"][true], 60, "runs over TLS of 2000: %v", seen["tls"])
	want := map[string]int{"members": 3, "traffic": 3, "rate": 3, "placement": 3, "watch": 2, "tls": 2, "faults": 3, "compaction": 3, "snapshot": 3, "batch": 3, "election": 2}
	for what, n := range want {
		require.Len(t, seen[what], n, "%s drawn: %v", what, seen[what])
	}
}

// TestDrawVersions: given several releases, each member gets one, every
// release runs where the size allows, and a new size draws again.
func TestDrawVersions(t *testing.T) {
	ex, err := Lookup(ExploreName)
	require.NoError(t, err)
	firsts := map[string]bool{}
	for seed := int64(0); seed < 200; seed++ {
		s, err := ex.Draw(seed, []string{"v3.6.16", "v3.7.3"})
		require.NoError(t, err)
		s.Members = 3
		s = s.DrawVersions()
		require.Len(t, s.Explore.MemberVersions, 3)
		require.ElementsMatch(t, []string{"v3.6.16", "v3.7.3"}, slices.Compact(slices.Sorted(slices.Values(s.Explore.MemberVersions))))
		firsts[s.Explore.MemberVersions[0]] = true
		s.Members = 1
		require.Len(t, s.DrawVersions().Explore.MemberVersions, 1)
	}
	require.Len(t, firsts, 2, "the first member runs either release")
}

func TestDrawLeavesOtherScenarios(t *testing.T) {
	basic, err := Lookup(BasicName)
	require.NoError(t, err)
	got, err := basic.Draw(7, []string{"v3.7.3"})
	require.NoError(t, err)
	require.Equal(t, basic, got)
}

package scenarios

import (
	"fmt"
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
		saw("auth", s.Auth)
		if s.Auth != "" {
			require.False(t, s.TLS, "seed %d: TLS with auth is not covered", seed)
			require.Contains(t, s.Description, "auth with "+s.Auth+" tokens", "seed %d", seed)
		} else {
			require.NotContains(t, s.Description, "auth", "seed %d", seed)
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
	// One run in four of the other 1500 enables auth, simple or jwt alike.
	require.InDelta(t, 375, seen["auth"]["simple"]+seen["auth"]["jwt"], 50, "runs with auth of 2000: %v", seen["auth"])
	require.InDelta(t, seen["auth"]["simple"], seen["auth"]["jwt"], 60, "simple and jwt tokens: %v", seen["auth"])
	want := map[string]int{"members": 3, "traffic": 3, "rate": 3, "placement": 3, "watch": 2, "tls": 2, "auth": 3, "faults": 3, "compaction": 3, "snapshot": 3, "batch": 3, "election": 2}
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

// TestDrawMixedVersions: with an older and a newer release, a minority or
// a majority of the members runs the older one, as recorded; the leader
// is drawn on either side, and LeaderSide names the members there; both
// are drawn again, the same way, from the same seed.
func TestDrawMixedVersions(t *testing.T) {
	ex, err := Lookup(ExploreName)
	require.NoError(t, err)
	seen := map[string]int{}
	for _, members := range []int{2, 3, 4, 5} {
		for seed := int64(0); seed < 100; seed++ {
			s, err := ex.Draw(seed, []string{"v3.7.3", "v3.6.16"})
			require.NoError(t, err)
			s.Members = members
			s = s.DrawVersions()
			x := s.Explore
			older := 0
			for _, v := range x.MemberVersions {
				if v == "v3.6.16" {
					older++
				}
			}
			switch x.Older {
			case "minority":
				require.Less(t, 2*older, members, "seed %d: %v", seed, x.MemberVersions)
				require.Positive(t, older)
			case "majority":
				require.Greater(t, 2*older, members, "seed %d: %v", seed, x.MemberVersions)
				require.Less(t, older, members, "the newer release runs too")
			case "half":
				require.Equal(t, members, 2*older)
			default:
				t.Fatalf("seed %d: older %q", seed, x.Older)
			}
			side := x.LeaderSide()
			require.NotEmpty(t, side)
			for _, i := range side {
				require.Equal(t, x.LeaderOn == "older", x.MemberVersions[i] == "v3.6.16")
			}
			seen[fmt.Sprint(members, x.Older, x.LeaderOn)]++
			again := s.DrawVersions()
			require.Equal(t, x, again.Explore, "the same seed draws the same")
			require.Contains(t, s.Describe(), "a "+x.Older+" on the older release, the leader on the "+x.LeaderOn+" side")
		}
	}
	for _, want := range []string{"3minoritynewer", "3minorityolder", "3majoritynewer", "3majorityolder", "5minorityolder", "5majoritynewer", "2halfolder", "4majorityolder", "4minoritynewer"} {
		require.Positive(t, seen[want], "%s never drawn: %v", want, seen)
	}
	// One member runs either release, with no side to draw.
	s, err := ex.Draw(1, []string{"v3.7.3", "v3.6.16"})
	require.NoError(t, err)
	s.Members = 1
	x := s.DrawVersions().Explore
	require.Len(t, x.MemberVersions, 1)
	require.Empty(t, x.Older)
	require.Nil(t, x.LeaderSide())
}

func TestVersionLess(t *testing.T) {
	require.True(t, versionLess("v3.6.16", "v3.7.3"))
	require.True(t, versionLess("v3.6.1", "v3.6.16"), "numeric, not string order")
	require.False(t, versionLess("v3.7.3", "v3.6.16"))
	require.False(t, versionLess("v3.7.3", "v3.7.3"))
}

// The auth draw: what Draw records is drawAuth's, simple or jwt; one run in
// four without TLS, none with TLS.
func TestDrawAuth(t *testing.T) {
	ex, err := Lookup(ExploreName)
	require.NoError(t, err)
	var with []int64
	for seed := int64(1); seed <= 200; seed++ {
		s, err := ex.Draw(seed, []string{"v3.7.3"})
		require.NoError(t, err)
		require.Equal(t, drawAuth(seed, s.TLS), s.Auth)
		if s.Auth == "" {
			continue
		}
		with = append(with, seed)
		require.Contains(t, []string{"simple", "jwt"}, s.Auth)
		require.False(t, s.TLS)
	}
	require.NotEmpty(t, with, "no seed of 200 drew auth")
	for _, tls := range []bool{false, true} {
		on := 0
		for seed := int64(0); seed < 1000; seed++ {
			if drawAuth(seed, tls) != "" {
				on++
			}
		}
		if tls {
			require.Zero(t, on, "auth drawn with TLS")
		} else {
			require.InDelta(t, 250, on, 45, "auth drawn in %d of 1000", on)
		}
	}
}

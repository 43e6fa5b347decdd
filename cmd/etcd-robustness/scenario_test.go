package main

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

// TestScenarioFlags: the scenario a report names is what ran. Flags that
// change the scenario are recorded, and its description is made from what
// runs instead of the registered text.
func TestScenarioFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name        string
		args        []string
		title       string
		description string // "" means the registered one
	}{
		{"no flags: the registered description", []string{"--scenario", "basic"}, "basic", ""},
		{"flags that change nothing in the scenario", []string{"--scenario", "basic", "--seed", "3", "--keep", "--etcd-version", "v3.6.16"}, "basic", ""},
		{"traffic and fault", []string{"--scenario", "basic", "--traffic", "etcd", "--failpoint", "pause-follower"},
			"basic, with flags: --traffic etcd --failpoint pause-follower",
			"3 members; etcd traffic for 10s at 500 requests/s from 10 clients (medium rate); no watches; fault: pause-follower at 2.5s"},
		{"members and a panic", []string{"--scenario", "etcd", "--members", "1", "--failpoint", "raftBeforeSave:panic"},
			"etcd, with flags: --members 1 --failpoint raftBeforeSave:panic",
			"1 member; etcd traffic for 10s at 500 requests/s from 10 clients (medium rate); no watches; fault: raftBeforeSave:panic at 2.5s"},
		{"watches off, rate, duration and placement", []string{"--scenario", "watch", "--watch=false", "--qps", "50", "--duration", "4s", "--placement", "pinned"},
			"watch, with flags: --qps 50 --placement pinned --watch=false --duration 4s",
			"3 members; etcd-kv traffic for 4s at 50 requests/s from 6 clients, each pinned to one member; no watches; fault: kill at 1s"},
		{"watches on", []string{"--scenario", "basic", "--watch-progress-requests", "100ms"},
			"basic, with flags: --watch-progress-requests 100ms",
			"3 members; etcd-kv traffic for 10s at 200 requests/s from 6 clients (medium rate); watches on every member and over the cluster (progress requested every 100ms); fault: kill at 2.5s"},
		{"over TLS", []string{"--scenario", "basic", "--tls", "--members", "1"},
			"basic, with flags: --members 1 --tls",
			"1 member over TLS (client and peer, client certificates required); etcd-kv traffic for 10s at 200 requests/s from 6 clients (medium rate); no watches; fault: kill at 2.5s"},
		{"a rate level over a schedule", []string{"--scenario", "pause-and-partition", "--rate", "low"},
			"pause-and-partition, with flags: --rate low",
			"3 members; etcd-kv traffic for 20s at 100 requests/s from 4 clients (low rate); no watches; faults: pause-leader at 3s for 2s, then partition-majority at 8s for 3s, then raftBeforeSave:sleep at 14s for 2s"},
		{"other faults replace the schedule", []string{"--scenario", "watch-15271", "--failpoint", "kill,pause-leader"},
			"watch-15271, with flags: --failpoint kill,pause-leader",
			"3 members; etcd-kv traffic for 32s at 1000 requests/s from 12 clients; watches on every member and over the cluster (snapshot count 100); faults: kill at 8s, then pause-leader at 16s"},
		{"a release other than the one a reproduction pins", []string{"--scenario", "watch-15220", "--etcd-version", "v3.5.35"},
			"watch-15220, with flags: --etcd-version v3.5.35",
			"1 member; etcd-kv traffic for 10s at 300 requests/s from 6 clients; watches on every member and over the cluster (progress requested every 20ms); fault: kill at 2.5s"},
		{"the release a reproduction pins", []string{"--scenario", "watch-15220", "--etcd-version", "3.5.7"}, "watch-15220", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			a, code := parseRun(append(tc.args, "--results-dir", dir), &stderr)
			require.Equal(t, exitPass, code, stderr.String())
			require.Equal(t, tc.title, a.sc.Title())
			want := tc.description
			if want == "" {
				reg, err := scenarios.Lookup(a.sc.Name)
				require.NoError(t, err)
				want = reg.Description
				require.Empty(t, a.sc.Flags)
			}
			require.Equal(t, want, a.sc.Description)
			require.Equal(t, want, a.sc.WhatRan(), "a report shows the description")
		})
	}
}

// TestExploreDraws: with no --scenario the run draws its scenario from the
// seed; the same seed draws the same, a flag changes what it names, and a
// list of releases is drawn over the members.
func TestExploreDraws(t *testing.T) {
	dir := t.TempDir()
	parse := func(args ...string) runArgs {
		var stderr bytes.Buffer
		a, code := parseRun(append(args, "--results-dir", dir), &stderr)
		require.Equal(t, exitPass, code, stderr.String())
		return a
	}
	a, b := parse("--seed", "11"), parse("--seed", "11")
	require.Equal(t, scenarios.ExploreName, a.sc.Name)
	require.Equal(t, a.sc, b.sc, "the same seed draws the same scenario")
	require.NotNil(t, a.sc.Explore)
	require.Equal(t, int64(11), a.sc.Explore.Seed)
	require.Equal(t, a.sc.Describe(), a.sc.Description)
	require.Equal(t, "explore", a.sc.Title())

	// --tls=false turns a drawn TLS off, --tls turns it on.
	for seed := 1; seed < 40; seed++ {
		s := strconv.Itoa(seed)
		drawn := parse("--seed", s).sc.TLS
		require.False(t, parse("--seed", s, "--tls=false").sc.TLS)
		on := parse("--seed", s, "--tls")
		require.True(t, on.sc.TLS)
		require.Equal(t, "explore, with flags: --tls", on.sc.Title())
		if drawn {
			require.Contains(t, parse("--seed", s).sc.Description, "over TLS")
		}
	}

	c := parse("--seed", "11", "--members", "5", "--traffic", "kubernetes")
	require.Equal(t, 5, c.sc.Members)
	require.Equal(t, "kubernetes", c.sc.Traffic)
	require.Equal(t, "explore, with flags: --members 5 --traffic kubernetes", c.sc.Title())

	m := parse("--seed", "11", "--members", "3", "--etcd-version", "v3.6.16,v3.7.3")
	require.Len(t, m.versions, 3, "one release per member, drawn")
	require.ElementsMatch(t, []string{"v3.6.16", "v3.7.3"}, slices.Compact(slices.Sorted(slices.Values(m.versions))), "every release given runs")
	require.Equal(t, m.sc.Explore.MemberVersions, m.versions)
	require.Contains(t, m.sc.Description, "(running "+strings.Join(m.versions, ", ")+"; a "+m.sc.Explore.Older+" on the older release, the leader on the "+m.sc.Explore.LeaderOn+" side)")
}

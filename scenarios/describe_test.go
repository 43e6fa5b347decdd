package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDescribe(t *testing.T) {
	def, err := Lookup(BasicName)
	require.NoError(t, err)
	tests := []struct {
		name string
		sc   Scenario
		want string
	}{
		{"the default", def, "3 members; etcd-kv traffic for 10s at 200 requests/s from 6 clients (medium rate); no watches; fault: kill at 2.5s"},
		{"qps no longer the level's", func() Scenario { s := def; s.QPS = 50; return s }(),
			"3 members; etcd-kv traffic for 10s at 50 requests/s from 6 clients; no watches; fault: kill at 2.5s"},
		{"one member, spread clients, a list of faults", Scenario{Members: 1, Traffic: "kubernetes", Duration: 8 * time.Second, QPS: 100, Clients: 4,
			Placement: "spread", Failpoint: "kill,raftBeforeSave:panic"},
			"1 member; kubernetes traffic for 8s at 100 requests/s from 4 clients, each spread over every member; no watches; faults: kill at 2s, then raftBeforeSave:panic at 4s"},
		{"a schedule with durations, watches", Scenario{Members: 5, Traffic: "etcd", Duration: 30 * time.Second, QPS: 9, Clients: 2,
			Faults: []Fault{{Name: "blackhole-member", Start: 3 * time.Second, Duration: 25 * time.Second}}, Watch: &Watch{SnapshotCount: 100}},
			"5 members; etcd traffic for 30s at 9 requests/s from 2 clients; watches on every member and over the cluster (snapshot count 100); fault: blackhole-member at 3s for 25s"},
		{"over TLS", Scenario{Members: 3, TLS: true, Traffic: "etcd", Duration: time.Second, QPS: 1, Clients: 1, Failpoint: "kill"},
			"3 members over TLS (client and peer, client certificates required); etcd traffic for 1s at 1 requests/s from 1 client; no watches; fault: kill at 250ms"},
		{"no fault", Scenario{Members: 3, Traffic: "etcd", Duration: time.Second, QPS: 1, Clients: 1, Watch: &Watch{}},
			"3 members; etcd traffic for 1s at 1 requests/s from 1 client; watches on every member and over the cluster; no fault"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.sc.Describe())
		})
	}
}

func TestOverriddenAndTitle(t *testing.T) {
	def, err := Lookup(BasicName)
	require.NoError(t, err)
	require.Equal(t, def, def.Overridden(nil), "no flags change nothing")
	require.Equal(t, "basic", def.Title())
	s := def
	s.Traffic, s.QPS, s.Clients = "etcd", 500, 10
	s = s.Overridden([]string{"--traffic etcd"})
	require.Equal(t, "basic, with flags: --traffic etcd", s.Title())
	require.Equal(t, "--traffic etcd", s.Flags)
	require.Equal(t, s.Describe(), s.Description)
	require.NotContains(t, s.Description, "etcd-style KV", "not the registered text")
}

// WhatRan: a record's description is shown when it is true of what ran.
// A record from before runs recorded their flags carries the registered
// text of a scenario that flags changed; it is described from its fields.
func TestWhatRan(t *testing.T) {
	def, err := Lookup(BasicName)
	require.NoError(t, err)
	changed := def
	changed.Members, changed.Failpoint = 1, "raftBeforeSave:panic"
	ran := def
	ran.ClientMembers, ran.KnownBugsAvoided = []string{"member-0", ""}, []string{"etcd#22209"} // a run fills these in
	tests := []struct {
		name string
		sc   Scenario
		want string
	}{
		{"as registered", ran, def.Description},
		{"changed by flags, recorded before Flags", changed, "1 member; etcd-kv traffic for 10s at 200 requests/s from 6 clients (medium rate); no watches; fault: raftBeforeSave:panic at 2.5s"},
		{"changed by flags, recorded with them", changed.Overridden([]string{"--members 1", "--failpoint raftBeforeSave:panic"}), changed.Describe()},
		{"not a registered scenario keeps its text", Scenario{Name: "issue-99999", Description: "custom", Members: 1}, "custom"},
		{"not a registered scenario, no text", Scenario{Name: "issue-99999", Members: 1, Traffic: "etcd-kv", Duration: time.Second, QPS: 1, Clients: 1, Failpoint: "kill"},
			"1 member; etcd-kv traffic for 1s at 1 requests/s from 1 client; no watches; fault: kill at 250ms"},
		{"nothing recorded", Scenario{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.sc.WhatRan())
		})
	}
}

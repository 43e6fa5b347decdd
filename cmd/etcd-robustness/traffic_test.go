package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

func TestTrafficFlags(t *testing.T) {
	def, err := scenarios.Lookup(scenarios.BasicName)
	require.NoError(t, err)
	tests := []struct {
		name      string
		sc        scenarios.Scenario
		args      map[string]string
		traffic   string
		qps       float64
		clients   int
		placement string
		wantErr   string
	}{
		{"the scenario's", def, nil, "etcd-kv", 200, 6, "", ""},
		{"another profile at the scenario's rate level", def, map[string]string{"traffic": "etcd"}, "etcd", 500, 10, "", ""},
		{"a rate level", def, map[string]string{"rate": "high"}, "etcd-kv", 2100, 24, "", ""},
		{"a profile and a level", def, map[string]string{"traffic": "kubernetes", "rate": "low"}, "kubernetes", 100, 4, "", ""},
		{"qps and clients override the level", def, map[string]string{"rate": "high", "qps": "", "clients": ""}, "etcd-kv", 33, 3, "", ""},
		{"a scenario without a level keeps its rate", scenarios.Scenario{Traffic: "etcd-kv", QPS: 9, Clients: 2}, map[string]string{"traffic": "etcd"}, "etcd", 9, 2, "", ""},
		{"placement", def, map[string]string{"placement": ""}, "etcd-kv", 200, 6, "pinned", ""},
		{"unknown profile", def, map[string]string{"traffic": "nope"}, "", 0, 0, "", `unknown traffic profile "nope" (valid: etcd, etcd-kv, kubernetes)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := map[string]bool{}
			for k := range tc.args {
				set[k] = true
			}
			sc := tc.sc
			err := applyTrafficFlags(&sc, set, tc.args["traffic"], tc.args["rate"], 33, 3, "pinned")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.traffic, sc.Traffic)
			require.Equal(t, tc.qps, sc.QPS)
			require.Equal(t, tc.clients, sc.Clients)
			require.Equal(t, tc.placement, sc.Placement)
		})
	}
}

func TestBadTrafficFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--traffic", "nope"}, `unknown traffic profile "nope" (valid: etcd, etcd-kv, kubernetes)`},
		{[]string{"run", "--rate", "fast"}, `unknown traffic rate "fast" (valid: low, medium, high)`},
		{[]string{"run", "--placement", "anywhere"}, `unknown client placement "anywhere" (valid: mixed, pinned, spread)`},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, exitSetup, run(context.Background(), tc.args, &stdout, &stderr))
		require.Contains(t, stderr.String(), tc.want)
		require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one error line: %s", stderr.String())
	}
}

func TestListShowsTrafficProfiles(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitPass, run(context.Background(), []string{"list"}, &stdout, &stderr))
	for _, p := range []string{"etcd", "etcd-kv", "kubernetes"} {
		require.Regexp(t, `(?m)^  `+p+` +\S.* \(rates: low `, stdout.String())
	}
}

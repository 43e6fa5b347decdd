package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func TestIllegal(t *testing.T) {
	results := []validate.Result{
		{Validator: "patch", Verdict: validate.OK},
		{Validator: "linearizability", Verdict: validate.TimedOut},
		{Validator: "watch", Verdict: validate.Illegal, Checks: []validate.NamedCheck{
			{Name: "ordered", Verdict: validate.OK}, {Name: "resumable", Verdict: validate.Illegal}}},
	}
	tests := map[string]bool{
		"patch":           false,
		"linearizability": false, // timed out is not a violation
		"watch":           true,
		"watch/resumable": true,
		"watch/ordered":   false,
		"watch/reliable":  false, // not recorded
		"kubernetes":      false,
	}
	for name, want := range tests {
		require.Equal(t, want, illegal(results, name), name)
	}
}

func TestSummarizeTries(t *testing.T) {
	r, err := scenarios.LookupRegression("14370")
	require.NoError(t, err)
	tries := []tryResult{
		{runs: 2, took: 40 * time.Second, caughtBy: "patch"},
		{runs: 1, took: 20 * time.Second, caughtBy: "linearizability"},
		{runs: 10, took: 200 * time.Second},
		{runs: 3, took: 60 * time.Second, caughtBy: "patch"},
		{runs: 1, took: 21 * time.Second, caughtBy: "patch"},
	}
	require.Equal(t, "etcd #14370 on v3.5.4: caught in 4 of 5 tries; runs until caught: 2, 1, >10, 3, 1 (median 2); median time until caught 40s; caught by patch (3), linearizability (1)",
		summarizeTries(r, "v3.5.4", 10, tries))
	// Not caught in most tries: the median is not a number of runs.
	require.Contains(t, summarizeTries(r, "v3.5.4", 10, []tryResult{{runs: 10}, {runs: 10}, {runs: 1, took: time.Second, caughtBy: "patch"}}),
		"caught in 1 of 3 tries; runs until caught: >10, >10, 1 (median more than 10); median time until caught not caught")
}

func TestRegressionUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: etcd-robustness regression"},
		{[]string{"123"}, `unknown regression "123"`},
		{[]string{"--fixed", "--etcd-version", "v3.5.4", "14370"}, "that release has etcd #14370 (fixed in v3.5.5)"},
		{[]string{"--fixed", "--tries", "5", "14370"}, "--tries is for a release with the bug"},
		{[]string{"--etcd-version", "3.x", "14370"}, "invalid etcd version"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"regression"}, tt.args...), &out, &errb)
		require.Equal(t, exitSetup, code, tt.args)
		require.Contains(t, errb.String(), tt.want)
	}
	var out, errb bytes.Buffer
	require.Equal(t, exitPass, run(context.Background(), []string{"regression", "--list"}, &out, &errb))
	require.Contains(t, out.String(), "17780  revision goes down after a crash during compaction  bug v3.5.13, fixed v3.5.14  scenario issue-17780")
}

// TestRegressionFixedRelease: --fixed runs the regression's fixed run,
// which for #18089 is v3.5.18 (v3.5.16 and v3.5.17 still have #19179,
// which its target sends), and the first fixed release elsewhere.
func TestRegressionFixedRelease(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		issue, want string
	}{
		{"18089", "v3.5.18"},
		{"19179", "v3.5.18"},
		{"13766", "v3.5.3"},
		{"15271", "v3.5.8"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		a, code := parseRegression([]string{"--fixed", "--results-dir", dir, tt.issue}, &out, &errb)
		require.Equal(t, exitPass, code, errb.String())
		require.Equal(t, tt.want, a.version, tt.issue)
		require.True(t, a.fixed)
		require.Equal(t, 20, a.runs)
	}
	var out, errb bytes.Buffer
	require.Equal(t, exitPass, run(context.Background(), []string{"regression", "--list"}, &out, &errb))
	require.Contains(t, out.String(), "bug v3.5.12, fixed v3.5.16 (--fixed runs v3.5.18)")
}

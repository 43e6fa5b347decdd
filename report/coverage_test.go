package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/validate"
)

// summary counts, for every stage and named check, the runs in which it
// checked something; one that checked nothing in any run is called out.
func TestCoverage(t *testing.T) {
	k8s := func(leader int) validate.Result {
		return validate.Result{Validator: "kubernetes", Verdict: validate.OK, Checked: 3 + leader, CheckedWhat: "items",
			Checks: []validate.NamedCheck{{Name: "k8s-list-pages", Verdict: validate.OK, Checked: 3}, {Name: "k8s-require-leader", Verdict: validate.OK, Checked: leader}}}
	}
	old := validate.Result{Validator: "kubernetes", Verdict: validate.OK} // before stages said what they checked
	rowOf := func(results ...validate.Result) Row { return Row{Checks: RowChecks(results)} }
	rows := []Row{rowOf(k8s(0)), rowOf(k8s(0)), rowOf(k8s(2)), rowOf(old)}
	cov := Coverage(rows)
	require.Equal(t, []CheckCoverage{
		{Name: "kubernetes", Runs: 4, Checked: 3, Unknown: 1},
		{Name: "kubernetes/k8s-list-pages", Runs: 3, Checked: 3},
		{Name: "kubernetes/k8s-require-leader", Runs: 3, Checked: 1},
	}, cov)

	var b bytes.Buffer
	require.NoError(t, WriteCoverage(&b, Coverage([]Row{rowOf(k8s(0)), rowOf(k8s(0))})))
	require.Contains(t, b.String(), "kubernetes/k8s-require-leader  0 of 2 (never exercised)")
	require.Contains(t, b.String(), "kubernetes/k8s-list-pages      2 of 2\n")
}

func TestDraws(t *testing.T) {
	rows := []Row{
		{Outcome: "PASS", Members: 3, Traffic: "etcd", FaultNames: []string{"kill", "kill", "pause-leader"}},
		{Outcome: "FAIL", Members: 3, Traffic: "kubernetes", FaultNames: []string{"kill"}, Auth: "jwt"},
		{Outcome: "PASS", Members: 1, Traffic: "etcd", TLS: true},
	}
	require.Equal(t, []DrawCount{
		{What: "members", Value: "3", Runs: 2, Passed: 1},
		{What: "members", Value: "1", Runs: 1, Passed: 1},
		{What: "tls", Value: "off", Runs: 2, Passed: 1},
		{What: "tls", Value: "on", Runs: 1, Passed: 1},
		{What: "auth", Value: "off", Runs: 2, Passed: 2},
		{What: "auth", Value: "jwt", Runs: 1, Passed: 0},
		{What: "traffic", Value: "etcd", Runs: 2, Passed: 2},
		{What: "traffic", Value: "kubernetes", Runs: 1, Passed: 0},
		{What: "fault", Value: "kill", Runs: 2, Passed: 1},
		{What: "fault", Value: "pause-leader", Runs: 1, Passed: 1},
	}, Draws(rows))
	var b strings.Builder
	require.NoError(t, WriteDraws(&b, Draws(rows)))
	require.Contains(t, b.String(), "fault    kill          2     1")
}

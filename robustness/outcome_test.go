package robustness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func TestOutcomeOf(t *testing.T) {
	ok := validate.Result{Validator: "linearizability", Verdict: validate.OK, Message: "fine"}
	illegal := validate.Result{Validator: "linearizability", Verdict: validate.Illegal, Message: "lost write"}
	timedOut := validate.Result{Validator: "linearizability", Verdict: validate.TimedOut, Message: "slow"}
	empty := validate.Result{Validator: "linearizability", Verdict: validate.Inconclusive, Message: "empty"}
	injected := history.Injection{Name: "kill", Targets: []string{"member-0"}}
	notInjected := history.Injection{Name: "raftBeforeSave", Error: "not triggered"}
	tests := []struct {
		name       string
		results    []validate.Result
		injections []history.Injection
		want       Outcome
		// verdict is part of the whole one-line verdict (summary.json's),
		// headline the first line the CLI prints.
		verdict, headline string
	}{
		{"all ok", []validate.Result{ok}, []history.Injection{injected}, Pass, "PASS: linearizability ok: fine", "PASS: 0 operations; all 1 stages ok"},
		{"violation", []validate.Result{ok, illegal}, []history.Injection{injected}, Fail, "FAIL: linearizability ok: fine; linearizability illegal: lost write", "FAIL: linearizability: lost write"},
		{"violation even if the fault was not injected", []validate.Result{illegal}, []history.Injection{notInjected}, Fail, "fault raftBeforeSave not injected: not triggered", "FAIL: linearizability: lost write"},
		{"timeout is not a pass", []validate.Result{timedOut}, []history.Injection{injected}, Inconclusive, "INCONCLUSIVE: linearizability timed out: slow", "INCONCLUSIVE: linearizability timed out: slow"},
		{"empty history is not a pass", []validate.Result{empty}, nil, Inconclusive, "INCONCLUSIVE", "INCONCLUSIVE: linearizability: empty"},
		{"fault not injected is not a pass", []validate.Result{ok}, []history.Injection{notInjected}, Inconclusive, "INCONCLUSIVE", "INCONCLUSIVE: fault raftBeforeSave not injected: not triggered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Outcome: OutcomeOf(tc.results, tc.injections), Results: tc.results, Injections: tc.injections}
			require.Equal(t, tc.want, r.Outcome)
			require.Contains(t, r.Verdict(), tc.verdict)
			require.NotContains(t, r.Verdict(), "\n")
			require.Equal(t, tc.headline, r.Headline())
		})
	}
}

// Each fault gets the recovery stage's window after the one before healed,
// and the traffic runs that long after the last one: the schedule never
// leaves the stage nothing to judge.
func TestFaultSpacing(t *testing.T) {
	s := time.Second
	healed := []history.Injection{{Name: "a", Start: 2 * s, End: 4 * s}}
	tests := []struct {
		name  string
		due   time.Duration
		prior []history.Injection
		want  time.Duration
	}{
		{"first fault: when due", 2 * s, nil, 2 * s},
		{"due after the gap: when due", 9 * s, healed, 9 * s},
		{"due inside the gap: after it", 5 * s, healed, 4*s + faultGap},
		{"a fault that never healed sets no gap", 5 * s, []history.Injection{{Name: "a", Start: 2 * s, Error: "x"}}, 5 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, nextFaultAt(tc.due, tc.prior))
			require.Equal(t, tc.want, trafficEndAt(tc.due, tc.prior))
		})
	}
	require.GreaterOrEqual(t, faultGap, validate.RecoveryWindow, "the gap covers the recovery stage's window")
	require.GreaterOrEqual(t, validate.RecoveryWindow, validate.RecoveryWatchBound)
}

package report

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

// Original is what a replay keeps of the run it replays: the plan (the
// scenario as it ran, its releases and seed) and what came of it.
type Original struct {
	// Dir is the original report's directory.
	Dir          string              `json:"dir"`
	Scenario     scenarios.Scenario  `json:"scenario"`
	EtcdVersions []string            `json:"etcd_versions"`
	Seed         int64               `json:"seed"`
	Injections   []history.Injection `json:"injections"`
	Outcome      string              `json:"outcome"`
	Stats        history.Stats       `json:"stats"`
}

// LoadOriginal reads what a replay of the report in dir needs. A report
// without its summary still gives the plan; its outcome is then unknown.
func LoadOriginal(dir string) (Original, error) {
	rec, err := Load(dir)
	if err != nil {
		return Original{}, err
	}
	o := Original{Dir: dir, Scenario: rec.Scenario, EtcdVersions: rec.EtcdVersions, Seed: rec.Seed, Injections: rec.Injections}
	if sum, err := LoadSummary(dir); err == nil {
		o.Outcome, o.Stats = sum.Outcome, sum.Stats
	}
	return o, nil
}

// Replay compares a replayed run with its original. The plan (the draws,
// the traffic's choices, the fault schedule and the kinds of target) is
// the same by construction; timing is not, on real processes, so the
// members a fault hit and what came of the run may differ.
type Replay struct {
	Of string `json:"of"`
	// SamePlan is whether the replay ran the same scenario: every draw,
	// every fault and its place in the schedule, and the clients'
	// placement.
	SamePlan bool `json:"same_plan"`
	// PlanDiff names what differs when SamePlan is false.
	PlanDiff        string `json:"plan_diff,omitempty"`
	OriginalOutcome string `json:"original_outcome,omitempty"`
	Outcome         string `json:"outcome"`
	// OriginalOperations and Operations are the two runs' operation counts.
	OriginalOperations int             `json:"original_operations"`
	Operations         int             `json:"operations"`
	Faults             []ReplayedFault `json:"faults"`
}

// ReplayedFault is one fault of the schedule in both runs.
type ReplayedFault struct {
	Name            string   `json:"name"`
	OriginalTargets []string `json:"original_targets"`
	Targets         []string `json:"targets"`
	OriginalError   string   `json:"original_error,omitempty"`
	Error           string   `json:"error,omitempty"`
}

// CompareReplay compares the replay (its scenario as it ran, its
// injections, outcome and stats) with the original.
func CompareReplay(o Original, sc scenarios.Scenario, injections []history.Injection, outcome string, stats history.Stats) Replay {
	r := Replay{Of: o.Dir, OriginalOutcome: o.Outcome, Outcome: outcome, OriginalOperations: o.Stats.Operations, Operations: stats.Operations}
	r.PlanDiff = planDiff(o.Scenario, sc)
	r.SamePlan = r.PlanDiff == ""
	for i := range max(len(o.Injections), len(injections)) {
		var f ReplayedFault
		if i < len(o.Injections) {
			f.Name, f.OriginalTargets, f.OriginalError = o.Injections[i].Name, o.Injections[i].Targets, o.Injections[i].Error
		}
		if i < len(injections) {
			f.Name, f.Targets, f.Error = injections[i].Name, injections[i].Targets, injections[i].Error
		}
		r.Faults = append(r.Faults, f)
	}
	return r
}

// planDiff names the scenario fields that differ, or "".
func planDiff(a, b scenarios.Scenario) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var diff []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			diff = append(diff, va.Type().Field(i).Name)
		}
	}
	return strings.Join(diff, ", ")
}

// Lines says, for a person, what was replayed and how the two runs compare.
func (r Replay) Lines() []string {
	plan := "the same plan (draws, faults and schedule, client placement)"
	if !r.SamePlan {
		plan = "a plan that differs in " + r.PlanDiff
	}
	orig := r.OriginalOutcome
	if orig == "" {
		orig = "an unknown outcome (no summary.json)"
	}
	out := []string{
		fmt.Sprintf("replay of %s: %s; the original ended %s with %d operations, this run %s with %d", r.Of, plan, orig, r.OriginalOperations, r.Outcome, r.Operations),
	}
	for _, f := range r.Faults {
		line := fmt.Sprintf("  %s: hit %s, then %s", f.Name, targets(f.OriginalTargets, f.OriginalError), targets(f.Targets, f.Error))
		out = append(out, line)
	}
	return out
}

func targets(t []string, err string) string {
	if err != "" {
		return "not injected (" + FirstSentence(err, 80) + ")"
	}
	if len(t) == 0 {
		return "nothing"
	}
	return strings.Join(t, ", ")
}

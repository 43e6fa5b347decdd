// Package validate checks a run's record against etcd's guarantees, in
// stages. Each stage is a Validator; Stages is the one ordered list that
// both a run and `check DIR` use, from the evidence (the committed raft log
// the members persisted, and how each etcd process ended) through the
// patch (what the log settles about requests of unknown outcome, and that
// every committed request was sent) to the guarantees: linearizability,
// watch, stale reads, the final read, the Kubernetes contract,
// convergence, recovery and health. Stages says what each one checks.
//
// Later stages read what earlier ones derived (the Check). A stage that
// cannot finish says why and is never OK; one that had nothing to check
// says so, with Result.Checked zero. A run passes only if every stage says
// OK. The verdict never depends on Options.Visualize: that only asks the
// linearizability stage to hand the report porcupine's view of a window
// of the history after the verdict is reached.
package validate

import (
	"context"
	"time"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// Verdict is a validator's answer.
type Verdict string

const (
	// OK: the history satisfies the guarantee.
	OK Verdict = "ok"
	// Illegal: the history violates the guarantee. This is a bug in etcd (or
	// in the model).
	Illegal Verdict = "illegal"
	// TimedOut: the check did not finish in time. Never a pass.
	TimedOut Verdict = "timed out"
	// Inconclusive: the check could not show anything, e.g. the history is
	// empty or the evidence it needs is missing. Never a pass.
	Inconclusive Verdict = "inconclusive"
)

// Input is everything the checks read: what the clients recorded, the
// faults, and what the members persisted and ended with.
type Input struct {
	Clients    []history.Client    `json:"clients"`
	Injections []history.Injection `json:"injections"`
	// FinalRead is the ID of the client that read every key once the faults
	// were over; -1 if the run made no final read.
	FinalRead int `json:"final_read_client"`
	// Persisted is the committed raft log, from the members' WALs; nil if
	// it could not be read (EvidenceError says why).
	Persisted     *evidence.Log `json:"persisted,omitempty"`
	EvidenceError string        `json:"evidence_error,omitempty"`
	// EndStates are each member's revision, compact revision and hash of
	// the key space when traffic was over.
	EndStates []evidence.MemberState `json:"end_states,omitempty"`
	// Watches are every watch stream the watchers opened, with every
	// response they received.
	Watches []history.Watch `json:"watches,omitempty"`
	// Probes are the polls of every member's health endpoints.
	Probes []history.Probe `json:"probes,omitempty"`
	// Exits are every end of a member's etcd process during the run, and
	// the panic or fatal lines the members logged, with what the harness
	// knew of each (see history.MemberExit). The crash stage reads them.
	Exits []history.MemberExit `json:"exits,omitempty"`
	// Releases are the etcd releases the members ran (the record keeps
	// them apart, as etcd_versions; robustness.Check copies them here).
	// The replay applies the committed log by their applier's rules
	// (model.RulesOf); none are the current releases' rules.
	Releases []string `json:"-"`
}

// Result is one validator's verdict on a history.
type Result struct {
	Validator string  `json:"validator"`
	Verdict   Verdict `json:"verdict"`
	// Message explains the verdict in one line.
	Message string `json:"message"`
	// Took is how long the stage ran.
	Took time.Duration `json:"took"`
	// Explanation explains a violation to a person, in several sentences
	// that name the operations involved; empty when there is none.
	Explanation string `json:"explanation,omitempty"`
	// Checked is how many items the stage checked, and CheckedWhat names
	// them ("operations", "watch streams", "members", ...). Zero means the
	// stage had nothing to check, and its message says so: a PASS never
	// hides a stage that checked nothing.
	Checked     int    `json:"checked"`
	CheckedWhat string `json:"checked_what,omitempty"`
	// Checks are the named checks of a stage that runs several (watch,
	// kubernetes, crash), each with its own verdict and count.
	Checks []NamedCheck `json:"checks,omitempty"`
	// Involved are the sources of the operations that pin a violation down,
	// as Op.Source names them ("client 3 #17", "wal index 812"), first the
	// one the explanation starts from. The report shows them as recorded.
	Involved []string `json:"involved,omitempty"`

	// What the stage found, handed to the report so that the report never
	// checks anything again. None of it is saved in summary.json.

	// History is what history.html shows of the linearizability check:
	// the operations, the states they start from and porcupine's search
	// over them (see HistoryView). Only the linearizability stage sets it,
	// after its verdict: for a violation, and for a pass when asked to
	// (Options.Visualize).
	History *HistoryView `json:"-"`
	// WatchViolation is the watch stage's first violation, with the
	// responses and replayed events around it; nil when it found none.
	WatchViolation *WatchFinding `json:"-"`
}

// NamedCheck is one named check of a stage: its verdict, and how many
// items it checked. Checked zero means it had nothing to check (its
// message says why), which `summary` counts apart from checks that ran.
type NamedCheck struct {
	Name    string  `json:"name"`
	Verdict Verdict `json:"verdict"`
	Checked int     `json:"checked"`
	Message string  `json:"message,omitempty"`
}

// Passed reports whether the verdict is OK.
func (r Result) Passed() bool { return r.Verdict == OK }

// Check is the input and what the stages derived from it so far.
type Check struct {
	Input
	// Patched is the history the linearizability check reads; the patch
	// stage sets it.
	Patched *Patched
	// Replayed is the store's state at each revision (Replayed[r] at
	// revision r; index 0 unused), from applying the committed log to the
	// model; nil when the log is missing, incomplete or holds a request the
	// model cannot apply. The patch stage sets it.
	Replayed []model.State
	// Events are the watch events of the replayed committed log, in
	// revision order, as model.State.Apply produced them; nil when
	// Replayed is nil. The patch stage sets them.
	Events []model.Event
	// Auth are the auth states of the replayed committed log, in log
	// order, the new cluster's first; nil when Replayed is nil. The patch
	// stage sets them.
	Auth []AuthAt
	// Violated names the first stage that found a violation, once one
	// has: the run fails whatever later stages find, so the longest
	// searches after it are shortened (FoundSearchTimeout).
	Violated string
}

// FoundSearchTimeout bounds the linearizability stage's search once an
// earlier stage found a violation: the run fails on it already, and a
// history that lost a write can send porcupine searching for as long as
// it is let. 1 s, not more: with a write lost from a 60 s scale run's
// log, the replay is shifted past it, the log's order fails from there
// on, and the windows' search cannot decide it in any time the check's
// 10% share of the traffic leaves (3 s made that check take 10.4%).
const FoundSearchTimeout = time.Second

// Validator checks one guarantee, or derives what later ones need.
type Validator interface {
	Name() string
	Validate(ctx context.Context, c *Check) Result
}

// Options tune the stages.
type Options struct {
	// CheckTimeout bounds the linearizability search; zero means
	// DefaultLinearizabilityTimeout.
	CheckTimeout time.Duration
	// Visualize asks the linearizability stage for what history.html
	// draws also when the history is linearizable (a violation always gets
	// it). It never changes a verdict: `run --keep` and `check` decide
	// alike.
	Visualize bool
}

// Stages is the ordered list of validators, the same for a run and for a
// saved report checked again.
func Stages(o Options) []Validator {
	return []Validator{
		EvidenceStage{},
		Crash{}, // every etcd process that ended, or logged a panic or fatal line, did so by the harness or a fault that declares it
		PatchStage{},
		Linearizability{Timeout: o.CheckTimeout, Visualize: o.Visualize},
		Watch{},     // every watch stream against the replayed log: ordered, unique, atomic, reliable, resumable, bookmarkable, caught up
		StaleRead{}, // serializable reads, left out of linearizability, against the replayed log
		FinalRead{},
		Kubernetes{},  // Kubernetes' contract: list pages, watch progress and gaps, optimistic updates, RequireLeader
		Convergence{}, // every member ended at one revision, compact revision and HashKV
		Recovery{},    // after each healed fault: writes, throughput and watches come back within bounds
		Health{},      // /readyz, /livez, /health agree with what the members did and what was done to them
	}
}

// Run checks in through every stage in order and returns each stage's
// result.
func Run(ctx context.Context, in Input, o Options) []Result {
	return All(ctx, in, Stages(o)...)
}

// All runs the given validators in order over one Check.
func All(ctx context.Context, in Input, validators ...Validator) []Result {
	c := &Check{Input: in}
	results := make([]Result, 0, len(validators))
	for _, v := range validators {
		start := time.Now()
		r := v.Validate(ctx, c)
		r.Validator = v.Name()
		r.Took = time.Since(start)
		if r.Verdict == Illegal && c.Violated == "" {
			c.Violated = r.Validator
		}
		results = append(results, r)
	}
	return results
}

// Package validate checks a recorded history against etcd's guarantees. Each
// guarantee is a Validator; the runner runs them all and a run passes only if
// every one says OK.
package validate

import (
	"context"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/history"
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
	// Inconclusive: the history cannot show anything, e.g. it is empty or
	// has no successful write. Never a pass.
	Inconclusive Verdict = "inconclusive"
)

// Input is what validators look at.
type Input struct {
	Clients    []history.Client
	Injections []history.Injection
}

// Result is one validator's verdict on a history.
type Result struct {
	Validator string  `json:"validator"`
	Verdict   Verdict `json:"verdict"`
	// Message explains the verdict in one line.
	Message string `json:"message"`
	// Linearization holds porcupine's search, for the visualization in the
	// report. Only the linearizability validator sets it.
	Linearization *porcupine.LinearizationInfo `json:"-"`
}

// Passed reports whether the verdict is OK.
func (r Result) Passed() bool { return r.Verdict == OK }

// Validator checks one guarantee.
type Validator interface {
	Name() string
	Validate(ctx context.Context, in Input) Result
}

// All runs every validator in order.
func All(ctx context.Context, in Input, validators ...Validator) []Result {
	results := make([]Result, 0, len(validators))
	for _, v := range validators {
		r := v.Validate(ctx, in)
		r.Validator = v.Name()
		results = append(results, r)
	}
	return results
}

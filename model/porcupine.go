package model

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Step applies one recorded operation to a model state and returns every
// state etcd may be in afterwards; none means the operation is impossible
// from s. A failed request may or may not have been applied, so it yields
// both outcomes.
func Step(s State, req Request, resp Response) []State {
	next, want := s.Apply(req)
	if resp.Failed() {
		if next.Equal(s) {
			return []State{s}
		}
		return []State{s, next}
	}
	if want.Equal(resp) {
		return []State{next}
	}
	return nil
}

// Porcupine is the etcd model in porcupine's terms. Operation inputs are
// Request values and outputs are Response values.
var Porcupine = (&porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{InitialState()} },
	Step: func(state, input, output interface{}) []interface{} {
		states := Step(state.(State), input.(Request), output.(Response))
		out := make([]interface{}, len(states))
		for i, s := range states {
			out[i] = s
		}
		return out
	},
	Equal: func(a, b interface{}) bool { return a.(State).Equal(b.(State)) },
	Hash:  func(s interface{}) uint64 { return s.(State).Hash() },
	DescribeOperation: func(input, output interface{}) string {
		return Describe(input.(Request), output.(Response))
	},
	DescribeState: func(s interface{}) string { return s.(State).String() },
}).ToModel()

// Describe renders an operation for a person: the request, then what came
// back. A plain get that finds nothing says so.
func Describe(req Request, resp Response) string {
	out := fmt.Sprintf("%s -> %s", req, resp)
	if !resp.Failed() && resp.Txn != nil && len(resp.Txn.Results) == 1 && len(resp.Txn.Results[0].KVs) == 0 &&
		req.Type == Txn && len(req.Txn.Conditions) == 0 && len(req.Txn.Then) == 1 && req.Txn.Then[0].Type == OpRange {
		out += ", not found"
	}
	return out
}

package model

import (
	"context"
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Step applies one recorded operation to a model state and returns every
// state etcd may be in afterwards; none means the operation is impossible
// from s.
//   - A response etcd gave must be the one the model gives.
//   - A request of unknown outcome may or may not have been applied, so it
//     yields both states.
//   - A request known to be applied, with its response unknown, yields the
//     state after it; when the evidence gives the revisions before and
//     after it (AppliedTo and Revision), only there.
//   - A definite error leaves the state as it was. It must be the error the
//     model predicts, unless it is a refusal the model cannot predict
//     (Declined).
func Step(s State, req Request, resp Response) []State {
	switch resp.Status {
	case StatusOK:
		// Every response header carries the store's revision, which is the
		// state's or, after a write, the next one. Checking it first
		// rejects most impossible orders without applying anything.
		local := LocalHeader(req)
		if !local && resp.Revision != s.Revision && resp.Revision != s.Revision+1 {
			return nil
		}
		next, want, _ := s.Apply(req)
		if local {
			want.Revision = resp.Revision
		}
		if want.Equal(resp) {
			return []State{next}
		}
		return nil
	case StatusUnknown:
		next, want, _ := s.Apply(req)
		if next.Equal(s) || want.Error == errEarlyExpiry {
			return []State{s}
		}
		return []State{s, next}
	case StatusApplied:
		if resp.AppliedTo != 0 && resp.AppliedTo != s.Revision {
			return nil
		}
		next, want, _ := s.Apply(req)
		if want.Error == errEarlyExpiry || (resp.Revision != 0 && next.Revision != resp.Revision) {
			return nil
		}
		return []State{next}
	case StatusFailed:
		_, want, _ := s.Apply(req)
		if (want.Status == StatusFailed && want.Error == resp.Error) || Declined(resp.Error) {
			return []State{s}
		}
		if req.Type == LeaseKeepAlive && resp.Error != "" && s.leaseKeysPermission(req, PermWrite) == resp.Error {
			return []State{s} // refused by a leader (State.permission)
		}
		return nil
	}
	panic(fmt.Sprintf("model: unknown response status %d", resp.Status))
}

// LocalHeader reports whether etcd fills the request's response header on
// the answering member, apart from the answer itself, so that its revision
// may lag the state the answer comes from: a lease keepalive, time-to-live
// or leases list. Step does not compare that revision.
func LocalHeader(req Request) bool {
	switch req.Type {
	case LeaseKeepAlive, LeaseTimeToLive, LeaseLeases:
		return true
	}
	return false
}

// Porcupine is the etcd model in porcupine's terms. Operation inputs are
// Request values and outputs are Response values.
var Porcupine = nondeterministic.ToModel()

// nondeterministic is the model before ToModel: Step gives each state's
// next states.
var nondeterministic = &porcupine.NondeterministicModel{
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
}

// The power-set model ToModel builds keeps a set of states and merges
// each step's next states by comparing every pair (porcupine's merge), and
// compares two sets the same way. With many states (writes of unknown
// outcome each double them) that is quadratic: 3 s of a window drawn for
// history.html went into it, on a 60 s record. These do the same with the
// states' hashes first: the same sets, in the same order (the first of
// equal states is kept), so the verdicts are the same
// (TestPorcupineSetsAsMerge).
func init() {
	step := func(ctx context.Context, state, input, output interface{}) (bool, interface{}) {
		req, resp := input.(Request), output.(Response)
		var next []interface{}
		seen := map[uint64][]int{}
		for _, st := range state.([]interface{}) {
			if ctx.Err() != nil {
				return false, nil
			}
			for _, n := range Step(st.(State), req, resp) {
				h := n.Hash()
				dup := false
				for _, i := range seen[h] {
					if next[i].(State).Equal(n) {
						dup = true
						break
					}
				}
				if !dup {
					seen[h] = append(seen[h], len(next))
					next = append(next, n)
				}
			}
		}
		if ctx.Err() != nil {
			return false, nil
		}
		return len(next) > 0, next
	}
	Porcupine.StepContext = step
	Porcupine.Step = func(state, input, output interface{}) (bool, interface{}) {
		return step(context.Background(), state, input, output)
	}
	// Both sets are merged: equal when each state of one is in the other.
	Porcupine.Equal = func(a, b interface{}) bool {
		as, bs := a.([]interface{}), b.([]interface{})
		if len(as) != len(bs) {
			return false
		}
		byHash := make(map[uint64][]State, len(bs))
		for _, s := range bs {
			st := s.(State)
			byHash[st.Hash()] = append(byHash[st.Hash()], st)
		}
		for _, s := range as {
			st, found := s.(State), false
			for _, o := range byHash[st.Hash()] {
				if st.Equal(o) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}

// Describe renders an operation for a person: the request, then what came
// back. A plain get that finds nothing says so.
func Describe(req Request, resp Response) string {
	out := fmt.Sprintf("%s -> %s", req, resp)
	if !resp.Failed() && resp.Txn != nil && len(resp.Txn.Results) == 1 && len(resp.Txn.Results[0].KVs) == 0 && resp.Txn.Results[0].Count == 0 &&
		req.Type == Txn && len(req.Txn.Conditions) == 0 && len(req.Txn.Then) == 1 && req.Txn.Then[0].Type == OpRange {
		out += ", not found"
	}
	return out
}

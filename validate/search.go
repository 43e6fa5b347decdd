package validate

import (
	"context"
	"math/bits"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// The windows' search. The windows (window.go, cut.go) are searched by a
// search of their own rather than by porcupine's: the same problem (is
// there an order of the operations, each at a point between its call and
// its return, that the model accepts from one of the start states), the
// same model (windowStep, which windowModel gives porcupine too), and the
// same algorithm, a depth-first search over the operations that may come
// next, remembering the (operations placed, state) pairs already
// explored, as porcupine's (Lowe's, after Wing and Gong). It differs in two
// ways:
//
//   - It follows single states, trying each state a step may lead to in
//     turn, where porcupine's NondeterministicModel follows the set of
//     them. The pairs it remembers are then of one state.
//   - A read may be placed at once. At a point where a read (an answered
//     operation that is not a write, or a refusal: one that leaves every
//     state as it was) may come next and the model accepts it, the search
//     places it there and tries nothing else from that point. That loses
//     no order: take any order that completes from there, with the read
//     further on. Move the read to the front. It was accepted where it
//     was and changed nothing there, so every operation after the point
//     sees the same states as before; it is accepted at the front (that
//     was checked); and real time holds, since an operation moved earlier
//     can only break it with one that returned before its call, and every
//     such operation is placed already (that is what "may come next"
//     means). So an order completes from the point with the read first
//     whenever one completes from it at all.
//
// Porcupine, without the second rule, tries every subset of the reads
// running at one time at every point; at 2,000 requests a second a window
// of a hundred operations then has more orders than it can exhaust in
// seconds, which is what a violation needs. Both rules keep the search
// exact: it answers Ok exactly when porcupine would, given the time
// (TestWindowSearchAgreesWithPorcupine).

// searchStates bounds the pairs the search remembers (its memory).
const searchStates = 4 << 20

// searchResult is the windows' search's answer: longest is the longest
// order it placed (indices into the operations), for the explanation.
type searchResult struct {
	result  porcupine.CheckResult
	longest []int
}

// windowSearch searches ops from any of states (see above) within timeout.
func windowSearch(ctx context.Context, states []model.State, ops []porcupine.Operation, timeout time.Duration) searchResult {
	s := newSearcher(ops, time.Now().Add(timeout), ctx)
	for _, st := range states {
		if s.dfs(st) {
			return searchResult{result: porcupine.Ok, longest: s.path}
		}
		if s.stopped {
			return searchResult{result: porcupine.Unknown, longest: s.longest}
		}
	}
	return searchResult{result: porcupine.Illegal, longest: s.longest}
}

// windowStep is what windowModel's Step does for one state: a barrier
// (the window's end) is accepted in the state it names only; a runningOp
// (cut.go) and a maybeOp (window.go) as their comments say; any other
// operation as model.Step says.
func windowStep(s model.State, input, output interface{}) []model.State {
	switch in := input.(type) {
	case barrier:
		if s.Equal(in.want) {
			return []model.State{s}
		}
		return nil
	case runningOp:
		next := model.Step(s, in.req, output.(model.Response))
		if s.Revision >= in.pin {
			next = append(next, s) // it took effect before the window
		}
		return next
	case maybeOp:
		next := model.Step(s, in.req, output.(model.Response))
		if s.Revision <= in.pin {
			next = append(next, s) // it takes effect after the window
		}
		return next
	}
	return model.Step(s, input.(model.Request), output.(model.Response))
}

// leavesEvery says whether op leaves every state as it was where the model
// accepts it: a refusal, or an answered read (a keepalive raises a
// deadline, and is not one).
func leavesEvery(op porcupine.Operation) bool {
	req, ok := op.Input.(model.Request)
	if !ok {
		return false
	}
	switch resp := op.Output.(model.Response); resp.Status {
	case model.StatusFailed:
		return true
	case model.StatusOK:
		return !req.IsWrite() && req.Type != model.LeaseKeepAlive
	}
	return false
}

type searcher struct {
	ops      []porcupine.Operation
	order    []int // op indices by call
	read     []bool
	next     []int // the unplaced operations in call order, linked: next[k], prev[k] are
	prev     []int // positions in order; len(order) ends it, head is next[len]
	placed   bitset
	path     []int
	longest  []int
	memo     map[uint64][]memoEntry
	states   int
	steps    int
	deadline time.Time
	ctx      context.Context
	stopped  bool
}

type memoEntry struct {
	placed bitset
	state  model.State
}

func newSearcher(ops []porcupine.Operation, deadline time.Time, ctx context.Context) *searcher {
	n := len(ops)
	s := &searcher{ops: ops, order: make([]int, n), read: make([]bool, n), next: make([]int, n+1), prev: make([]int, n+1),
		placed: newBitset(n), memo: map[uint64][]memoEntry{}, deadline: deadline, ctx: ctx}
	for i := range s.order {
		s.order[i] = i
		s.read[i] = leavesEvery(ops[i])
	}
	sort.SliceStable(s.order, func(a, b int) bool { return ops[s.order[a]].Call < ops[s.order[b]].Call })
	// A circular list over positions 0..n-1 with n as its head.
	for k := 0; k <= n; k++ {
		s.next[k], s.prev[k] = (k+1)%(n+1), (k+n)%(n+1)
	}
	return s
}

// candidates are the unplaced operations that may come next: every
// unplaced operation that returned before one's call is placed (ties in
// time overlap, as porcupine orders calls before returns). Scanning in
// call order, only earlier calls can have returned before a call, so the
// scan stops at the first call after the least return seen.
func (s *searcher) candidates(out []int) []int {
	n := len(s.order)
	minRet := int64(1<<63 - 1)
	for k := s.next[n]; k != n; k = s.next[k] {
		op := &s.ops[s.order[k]]
		if op.Call > minRet {
			break
		}
		out = append(out, k)
		minRet = min(minRet, op.Return)
	}
	return out
}

func (s *searcher) place(k int) {
	s.next[s.prev[k]], s.prev[s.next[k]] = s.next[k], s.prev[k]
	s.placed.set(s.order[k])
	s.path = append(s.path, s.order[k])
	if len(s.path) > len(s.longest) {
		s.longest = append(s.longest[:0], s.path...)
	}
}

func (s *searcher) unplace(k int) {
	s.next[s.prev[k]], s.prev[s.next[k]] = k, k
	s.placed.clear(s.order[k])
	s.path = s.path[:len(s.path)-1]
}

// seen reports whether (placed, state) was explored already, and
// remembers it if not.
func (s *searcher) seen(state model.State) bool {
	key := s.placed.hash() ^ state.Hash()
	for _, e := range s.memo[key] {
		if e.placed.equal(s.placed) && e.state.Equal(state) {
			return true
		}
	}
	s.memo[key] = append(s.memo[key], memoEntry{s.placed.clone(), state})
	s.states++
	return false
}

// dfs reports whether the unplaced operations have an order from state.
func (s *searcher) dfs(state model.State) bool {
	if len(s.path) == len(s.ops) {
		return true
	}
	if s.steps++; s.steps&255 == 0 && (time.Now().After(s.deadline) || s.ctx.Err() != nil) || s.states > searchStates {
		s.stopped = true
	}
	if s.stopped || s.seen(state) {
		return false
	}
	cands := s.candidates(nil)
	for _, k := range cands {
		op := s.ops[s.order[k]]
		if !s.read[s.order[k]] {
			continue
		}
		if next := windowStep(state, op.Input, op.Output); len(next) > 0 {
			s.place(k)
			if s.dfs(state) {
				return true // the whole order stays in path
			}
			s.unplace(k)
			return false
		}
	}
	for _, k := range cands {
		op := s.ops[s.order[k]]
		for _, next := range windowStep(state, op.Input, op.Output) {
			s.place(k)
			if s.dfs(next) {
				return true
			}
			s.unplace(k)
			if s.stopped {
				return false
			}
		}
	}
	return false
}

// bitset is a set of operation indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)   { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int) { b[i/64] &^= 1 << (i % 64) }
func (b bitset) clone() bitset {
	return append(bitset(nil), b...)
}
func (b bitset) equal(o bitset) bool {
	for i := range b {
		if b[i] != o[i] {
			return false
		}
	}
	return true
}
func (b bitset) hash() uint64 {
	h := uint64(0x9E3779B97F4A7C15)
	for i, w := range b {
		h = bits.RotateLeft64(h^(w+uint64(i)), 29) * 0xff51afd7ed558ccd
	}
	return h
}

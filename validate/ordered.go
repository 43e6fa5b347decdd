package validate

import (
	"sort"
	"time"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// byRevision tries to show the patched history linearizable without a
// search. When the committed log replays, the state at every revision is
// known, and most operations name their revision: a response's header, or
// the revisions the patch pinned. Then this order is a candidate: by
// revision, at each revision the write that made it first, then the
// operations that saw it, by return time. It is a linearization of the
// history when:
//   - every revision from the first to the last has exactly one write, and
//     each write takes the state before its revision to the state at it;
//   - every other operation's response is the model's at its revision;
//   - no operation returned before another one that comes earlier in the
//     order was called.
//
// byRevision reports true only with such a witness; false says nothing
// either way (an operation without a known revision, a revision with two
// writes), and porcupine decides. So it can only make a pass faster, never
// turn a violation into one.
func byRevision(ops []Op, states []model.State) bool {
	if len(states) < 2 {
		return false
	}
	type slot struct {
		rev   int64
		write bool
		op    *Op
	}
	slots := make([]slot, 0, len(ops))
	writers := make([]int, len(states))
	for i := range ops {
		o := &ops[i]
		if o.Open {
			return false
		}
		rev := o.Response.Revision
		if rev < 1 || rev >= int64(len(states)) {
			return false
		}
		switch {
		case o.Response.Status == model.StatusApplied && o.Response.AppliedTo == 0:
			return false // applied somewhere, revision unknown
		case rev > 1 && accepts(states[rev-1], states[rev], o):
			slots = append(slots, slot{rev, true, o})
			writers[rev]++
		case accepts(states[rev], states[rev], o):
			slots = append(slots, slot{rev, false, o})
		default:
			return false
		}
	}
	for r := 2; r < len(states); r++ {
		if writers[r] != 1 {
			return false
		}
	}
	sort.Slice(slots, func(i, j int) bool {
		a, b := slots[i], slots[j]
		if a.rev != b.rev {
			return a.rev < b.rev
		}
		if a.write != b.write {
			return a.write
		}
		return a.op.Return < b.op.Return
	})
	// Real time: nothing later in the order may have returned before an
	// earlier operation was called.
	minReturnAfter := time.Duration(1<<63 - 1)
	for i := len(slots) - 1; i >= 0; i-- {
		if minReturnAfter < slots[i].op.Call {
			return false
		}
		minReturnAfter = min(minReturnAfter, slots[i].op.Return)
	}
	return true
}

// accepts reports whether o, applied to from, is legal and leads to to.
func accepts(from, to model.State, o *Op) bool {
	for _, next := range model.Step(from, o.Request, o.Response) {
		if next.Equal(to) {
			return true
		}
	}
	return false
}

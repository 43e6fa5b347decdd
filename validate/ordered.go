package validate

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// The witness shows the patched history linearizable without a search. The
// patch stage proposes one order (planWitness); byRevision checks it.
//
// The order follows the committed log. Every request that is not read-only
// (a put, delete, write transaction, lease grant or revoke, compaction,
// also one that changes nothing, like a delete of nothing or a transaction
// whose compare failed) goes through raft, so an operation that took
// effect, or was refused when applied, is one log entry: it claims that
// entry, and one whose entry changed the store goes there. Every other
// operation (a read, a keepalive, a time-to-live, a request refused before
// raft, one whose entry changed nothing) is placed between two entries,
// where the revision its response names was current and where real time
// allows. Operations of unknown outcome that claim no entry go last.
//
// Writes of unknown outcome the patch leaves open. settle (patch.go)
// leaves a write of unknown outcome open when the evidence does not say
// whether it took effect: a lease revoke when the log is incomplete, does
// not replay or has a copy past the commit index (else the log's one
// effective revoke of the lease stands for it, and it is left out); a copy
// in a group of identical requests one copy of which etcd refused with an
// error it may give after committing (group.maybeCommitted); identical
// requests without a unique value (deletes, compactions, transactions
// that write no value) that have a copy past the commit index, or whose
// copies differ in user (else pinIdentical settles them, also when the log
// holds only some); a write whose value is only past the commit index;
// and, when the log is incomplete, any write missing from it (then the log
// does not replay, and there is no witness at all). The witness places each open
// write itself, in one pass and without a search, as one of:
//   - at an entry: after the answered and applied operations have claimed
//     the entries their revisions pin, the open copies of one request, in
//     call order, each take the first entry of an identical request, in
//     log order, that changed the store when replayed and that no
//     operation claims. A revoke's effective copy is claimed before, by
//     an acknowledged revoke or by a server operation (the leader's
//     expiry; or, while a client's revoke of the lease is open, one open
//     operation that stands for the expiry or that client's), so a
//     client's open revoke goes in none.
//   - in none: a copy left without such an entry took no effect. It goes
//     after every other operation, in call order, and is walked there as
//     a step that leaves the state as it was, which model.Step always
//     allows an unknown outcome.
//
// Call order is enough: the copies are identical and open (each may take
// effect at any time after its call, and returns after everything), so the
// only real-time bound on a copy at an entry is that it was called before
// every operation that must follow that entry (those at later revisions,
// the claimants of later entries) returned, a bound that can only grow
// along the log. Giving the earliest calls the earliest free entries places
// a copy at every free entry whenever any assignment does: if the i-th
// earliest copy was called too late for the i-th free entry, the first i
// free entries need i copies called earlier than it, and there are i-1.
// Then, and when an entry that changed the store has no open copy at all,
// the plan or the walk fails (as for a request no client sent), and
// porcupine decides.
//
// Why this cannot hide a violation: the placement is only a proposal.
// witnessed walks the whole order, every operation of the patched history
// exactly once (open ones included, at their entry or last as a step of no
// effect), through model.Step from the initial state, and checks real time
// with every open operation returning after all others, as porcupine is
// told. An order it accepts is therefore a path of porcupine's search over
// the same operations: the history is linearizable whatever the
// placement. A wrong placement (a copy at an entry it did not make, or in
// none when it took effect) can only make a step or the real-time check
// fail; then porcupine searches. That every entry that changed the store
// is claimed by exactly one operation (claim refuses an entry claimed
// already) keeps the order the log's, so the witness finds orders that
// exist; it is not what the pass rests on, which is the walk.

// maxTries bounds the places tried for one operation that claims no entry.
const maxTries = 32

// free is an operation planWitness places between entries (in a slot).
type free struct {
	op        int
	lo, hi, p int // allowed slots and the preferred one
	t, tries  int // the next offset's index; slots tried
}

// byRevision reports whether the order planWitness gave the operations
// (their place) is a linearization of them: see witnessed. The witness
// applies the operations themselves, from the initial state, and needs no
// replayed state.
func byRevision(ops []Op) bool { return witnessed(ops) == "" }

// witnessed checks the order planWitness gave the operations (their place),
// from scratch and without trusting the plan, and says why it is no
// linearization of them, or "" when it is one:
//   - starting from model.InitialState, each operation in that order is
//     accepted by model.Step from the state the ones before it led to
//     (where Step allows several states, one is chosen and the walk goes
//     on from it, which is one path porcupine's search may take);
//   - no operation returned before one that comes earlier in the order was
//     called (an open operation returns after everything).
//
// A write of unknown outcome the plan placed in none is walked too, last,
// as a step that leaves the state as it was; one placed at an entry takes
// the state after it (see choose). Nothing is left out of the walk.
//
// The order holds every operation exactly once (it is ops sorted by place),
// lease deadlines come from the operations' own call times, and ties in
// time count as overlapping, all as porcupine is told by
// PorcupineOperations. So "" means porcupine's search has a path to the
// end: the history is linearizable. Anything else says nothing either way
// (no plan, an entry no operation claimed, a place where the model
// disagrees), and porcupine decides. The witness can only make a pass
// faster, never turn a violation into one.
func witnessed(ops []Op) string {
	if len(ops) == 0 {
		return "no operations"
	}
	order := make([]*Op, len(ops))
	for i := range ops {
		if ops[i].place == 0 {
			return fmt.Sprintf("%s has no place", ops[i].Source)
		}
		order[i] = &ops[i]
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].place < order[j].place })
	state := model.InitialState()
	for _, o := range order {
		next := model.Step(state, o.Request, o.Response)
		if len(next) == 0 {
			return fmt.Sprintf("%s (%s) is not accepted at place %d, at revision %d", o.Source, model.Describe(o.Request, o.Response), o.place, state.Revision)
		}
		state = choose(next, state, o.applied)
	}
	// Real time: nothing later in the order may have returned before an
	// earlier operation was called.
	minReturnAfter := time.Duration(math.MaxInt64)
	for i := len(order) - 1; i >= 0; i-- {
		if o := order[i]; minReturnAfter < o.Call {
			return fmt.Sprintf("%s (%s), at place %d, was called at %s, after an operation later in the order returned (at %s)",
				o.Source, model.Describe(o.Request, o.Response), o.place, o.Call, minReturnAfter)
		}
		minReturnAfter = min(minReturnAfter, returned(order[i]))
	}
	return ""
}

// choose picks one of the states Step allowed: one that differs from the
// state before when the operation took effect at its log entry, else the
// state before if allowed, else the first.
func choose(next []model.State, before model.State, applied bool) model.State {
	for _, s := range next {
		if s.Equal(before) != applied {
			return s
		}
	}
	return next[0]
}

// returned is when o returned, for real time: an open operation never did.
func returned(o *Op) time.Duration {
	if o.Open {
		return math.MaxInt64
	}
	return o.Return
}

// planWitness gives every operation of ops its place in a candidate order
// (see witnessed), or says why it found none. Past most problems it goes
// on, so that every operation still has a place, in an order that then
// fails the walk near the problem (what the windowed search needs); past
// an entry two operations claim, or one no operation claims, it gives
// up, and no place is set, or only some. The log must replay (revs.effective is set). A plan is only a
// proposal: witnessed checks it again, from scratch.
//
// Slot s is the point after the first s entries of the log (slot 0: before
// any). An operation that went through raft claims its entry, matched by
// identity: a server operation (the leader's revoke of an expired lease,
// the only kind the patch makes) the entry it was made from; an answered one
// an unclaimed entry whose replay succeeded, left the revision its response
// names and, for a transaction, moved the revision exactly if it wrote; one
// the patch settled as applied an entry with the revisions it pinned; one
// of unknown outcome an entry that changed the store; a refused one an
// entry whose replay was refused too. Among identical requests with
// identical effects, which copy takes which entry does not matter to the
// state; they claim in call order. Every entry that changed the store when
// replayed must be claimed (a request committed that no client sent has no
// operation, which the patch finds illegal: the plan fails there, and
// porcupine decides). An operation whose entry changed the store is
// placed there. Every other one (a read, a keepalive, a time-to-live, one
// whose entry changed nothing, a compaction, whose answer may name a later
// revision than it was applied at) goes in a slot: among those real time
// allows (given the entries placed and the other operations whose answers
// name their revision) and, for an answer that names its revision, those
// at that revision, the latest, or failing Step there, the nearest of at
// most maxTries where Step accepts it; operations in one slot by return
// time. Operations of unknown outcome that claim no entry go last: in none
// (see "Writes of unknown outcome the patch leaves open" above, for the
// rule and why it cannot hide a violation).
func planWitness(ops []Op, log *evidence.Log, revs revisions) (why string) {
	if revs.effective == nil || len(ops) == 0 {
		return "the log does not replay"
	}
	// Past a problem the plan goes on as best it can, so that every
	// operation still gets a place: the order then fails the walk there,
	// and the windowed search (window.go) searches only around it. The
	// first problem is what the plan returns.
	note := func(s string) {
		if why == "" {
			why = s
		}
	}
	n := len(log.Entries)
	changed := make([]bool, n)
	byID := map[string][]int{}
	for i, e := range log.Entries {
		if e.Request == nil || e.Request.ReadOnly() {
			continue
		}
		r := e.Request
		changed[i] = revs.effective[i] && (revs.after[i] != revs.before[i] || r.LeaseGrant != nil || r.LeaseRevoke != nil || r.Compaction != nil)
		id, _ := identity(*r, 0)
		byID[id] = append(byID[id], i)
	}
	claimant := make([]int, n) // 1 + index into ops; -1: a free operation's
	entryOf := make([]int, len(ops))
	for i := range entryOf {
		entryOf[i] = -1
	}
	claim := func(oi, e int) bool {
		if claimant[e] != 0 {
			return false
		}
		claimant[e], entryOf[oi] = oi+1, e
		return true
	}
	var clientRaft []int
	for i := range ops {
		o := &ops[i]
		switch {
		case o.entry > 0:
			if !claim(i, o.entry-1) {
				return fmt.Sprintf("%s claims log entry %d, which another operation claimed", o.Source, o.entry-1)
			}
		case o.claim != "":
			clientRaft = append(clientRaft, i)
		}
	}
	// Answered and applied operations first, as their revisions pin them;
	// then those of unknown outcome; then refused ones. In call order.
	rank := func(o *Op) int {
		switch o.Response.Status {
		case model.StatusOK, model.StatusApplied:
			return 0
		case model.StatusUnknown:
			return 1
		}
		return 2
	}
	sort.SliceStable(clientRaft, func(a, b int) bool {
		x, y := &ops[clientRaft[a]], &ops[clientRaft[b]]
		if rx, ry := rank(x), rank(y); rx != ry {
			return rx < ry
		}
		return x.Call < y.Call
	})
	for _, oi := range clientRaft {
		o := &ops[oi]
		entries := byID[o.claim]
		first := func(ok func(e int) bool) bool {
			for _, e := range entries {
				if claimant[e] == 0 && ok(e) {
					return claim(oi, e)
				}
			}
			return false
		}
		switch r := o.Response; {
		case r.Status == model.StatusOK && o.Request.Type == model.Compact:
			// etcd answers a compaction with the revision current when it
			// answers, which may be past the one it was applied at: it
			// takes its entry, but goes where its revision was current.
			if !first(func(e int) bool { return revs.after[e] <= r.Revision && revs.effective[e] }) {
				note(fmt.Sprintf("%s (%s) has no unclaimed log entry at revision %d or before", o.Source, o.Request, r.Revision))
				continue
			}
			claimant[entryOf[oi]], entryOf[oi] = -1, -1
		case r.Status == model.StatusOK:
			// Entries are in log order, so their revisions ascend.
			k := sort.Search(len(entries), func(k int) bool { return revs.after[entries[k]] >= r.Revision })
			entries = entries[k:]
			// A transaction's answer says whether it wrote, so whether it
			// moved the revision: identical requests, one that deleted a
			// key and one that found it gone, take the matching entries.
			wrote := len(writtenKeys(o.Request, r)) > 0
			if !first(func(e int) bool {
				return revs.after[e] == r.Revision && revs.effective[e] && (o.Request.Txn == nil || wrote == (revs.after[e] > revs.before[e]))
			}) {
				note(fmt.Sprintf("%s (%s) has no unclaimed log entry at revision %d", o.Source, o.Request, r.Revision))
				// Best effort: an identical request's entry, whatever its
				// revision, where the walk will refuse it.
				all := byID[o.claim]
				for _, e := range all {
					if claimant[e] == 0 && revs.effective[e] {
						claim(oi, e)
						break
					}
				}
			}
		case r.Status == model.StatusApplied:
			pinned := func(e int) bool {
				return r.AppliedTo == 0 || (revs.before[e] == r.AppliedTo && revs.after[e] == r.Revision)
			}
			if !first(func(e int) bool { return pinned(e) && revs.effective[e] }) && !first(pinned) {
				note(fmt.Sprintf("%s (%s) has no unclaimed log entry at the revisions pinned", o.Source, o.Request))
				first(func(e int) bool { return revs.effective[e] })
			}
		case r.Status == model.StatusUnknown:
			// An open write: the first free identical entry that changed
			// the store, in call order; failing that, in none (last).
			first(func(e int) bool { return changed[e] })
		case r.Status == model.StatusFailed:
			first(func(e int) bool { return !revs.effective[e] })
		}
	}
	// An operation whose entry changed nothing (a transaction whose compare
	// failed, a refusal) saw one state, which holds from the last entry
	// that changed the store to the next: it is placed like a read, in
	// that stretch, rather than at its entry.
	for e, c := range claimant {
		if c > 0 && !changed[e] {
			claimant[e], entryOf[c-1] = -1, -1
		}
	}
	for e := range changed {
		if changed[e] && claimant[e] == 0 {
			return fmt.Sprintf("no operation claims log entry %d (%s), which changed the store", e, describeRecord(*log.Entries[e].Request))
		}
	}

	// Real time bounds each free operation's slot: after every claimed
	// entry whose operation returned before it was called, before every one
	// called after it returned.
	preMaxCall := make([]time.Duration, n+1) // over claimants of entries < s
	sufMinRet := make([]time.Duration, n+1)  // over claimants of entries >= s
	preMaxCall[0] = math.MinInt64
	for e := 0; e < n; e++ {
		preMaxCall[e+1] = preMaxCall[e]
		if c := claimant[e]; c > 0 {
			preMaxCall[e+1] = max(preMaxCall[e+1], ops[c-1].Call)
		}
	}
	sufMinRet[n] = math.MaxInt64
	for e := n - 1; e >= 0; e-- {
		sufMinRet[e] = sufMinRet[e+1]
		if c := claimant[e]; c > 0 {
			sufMinRet[e] = min(sufMinRet[e], returned(&ops[c-1]))
		}
	}
	slotRev := func(s int) int64 {
		if s == 0 {
			return 1
		}
		return revs.after[s-1]
	}
	// The revisions after each entry ascend: slots at revision r are
	// [firstAt(r), firstAt(r+1)).
	firstAt := func(r int64) int { return sort.Search(n+1, func(s int) bool { return slotRev(s) >= r }) }

	// next is the next slot to try: p, p+1, p-1, p+2, p-2, ... within
	// [lo, hi], at most maxTries in all.
	next := func(f *free) (int, bool) {
		for f.tries < maxTries {
			d := (f.t + 1) / 2
			if f.t%2 == 0 {
				d = -d
			}
			f.t++
			if f.p-abs(d) < f.lo && f.p+abs(d) > f.hi {
				return 0, false
			}
			if s := f.p + d; s >= f.lo && s <= f.hi {
				f.tries++
				return s, true
			}
		}
		return 0, false
	}
	buckets := make([][]*free, n+1)
	var frees []*free
	var last []int // operations of unknown outcome that claim nothing
	for i := range ops {
		o := &ops[i]
		if entryOf[i] >= 0 {
			o.applied = changed[entryOf[i]]
			continue
		}
		switch o.Response.Status {
		case model.StatusApplied:
			if o.Response.Revision != o.Response.AppliedTo {
				note(fmt.Sprintf("%s (%s) was applied at revision %d, yet claims no log entry", o.Source, o.Request, o.Response.Revision))
			}
		case model.StatusUnknown:
			last = append(last, i)
			continue
		}
		f := &free{op: i}
		f.lo = sort.Search(n+1, func(s int) bool { return sufMinRet[s] >= o.Call })
		ret := returned(o)
		f.hi = sort.Search(n+1, func(s int) bool { return preMaxCall[s] > ret }) - 1
		// The latest slot real time allows keeps free operations in real
		// time order among themselves: one that returned before another
		// was called cannot get a later slot. An answer that names its
		// revision (a header not filled apart) narrows that to the slots
		// at that revision.
		if r, ok := pinnedRevision(o); ok {
			f.lo, f.hi = max(f.lo, firstAt(r)), min(f.hi, firstAt(r+1)-1)
		}
		if f.lo > f.hi {
			note(fmt.Sprintf("real time and revision %d leave %s (%s) no slot", o.Response.Revision, o.Source, o.Request))
			x := min(max(f.hi, 0), n)
			f.lo, f.hi = x, x
		}
		f.p = f.hi
		frees = append(frees, f)
	}
	// An operation whose answer names no revision (a keepalive, a
	// time-to-live, a refusal) also keeps real time with those that do:
	// after the slots of those that returned before it was called, before
	// those of the ones called after it returned.
	var pinned []*free
	for _, f := range frees {
		if _, ok := pinnedRevision(&ops[f.op]); ok {
			pinned = append(pinned, f)
		}
	}
	byCall := append([]*free(nil), pinned...)
	sort.Slice(byCall, func(a, b int) bool { return ops[byCall[a].op].Call < ops[byCall[b].op].Call })
	sufMinP := make([]int, len(byCall)+1)
	sufMinP[len(byCall)] = n
	for k := len(byCall) - 1; k >= 0; k-- {
		sufMinP[k] = min(sufMinP[k+1], byCall[k].p)
	}
	byRet := append([]*free(nil), pinned...)
	sort.Slice(byRet, func(a, b int) bool { return returned(&ops[byRet[a].op]) < returned(&ops[byRet[b].op]) })
	preMaxP := make([]int, len(byRet)+1)
	for k, f := range byRet {
		preMaxP[k+1] = max(preMaxP[k], f.p)
	}
	for _, f := range frees {
		o := &ops[f.op]
		if _, ok := pinnedRevision(o); !ok {
			ret := returned(o)
			after := sort.Search(len(byCall), func(k int) bool { return ops[byCall[k].op].Call > ret })
			before := sort.Search(len(byRet), func(k int) bool { return returned(&ops[byRet[k].op]) >= o.Call })
			if lo, hi := max(f.lo, preMaxP[before]), min(f.hi, sufMinP[after]); lo <= hi {
				f.lo, f.hi, f.p = lo, hi, hi
			}
		}
		s, _ := next(f)
		buckets[s] = append(buckets[s], f)
	}

	// Walk the log: in each slot try the operations that want it, then
	// apply the entry's claimant. A slot already passed is tried against
	// the state saved there.
	placed := make([][]int, n+1)
	saved := make([]model.State, n+1)
	state := model.InitialState()
	for s := 0; s <= n; s++ {
		bucket := buckets[s]
		sort.SliceStable(bucket, func(a, b int) bool { return returned(&ops[bucket[a].op]) < returned(&ops[bucket[b].op]) })
		for _, f := range bucket {
			o := &ops[f.op]
			for at := s; ; {
				from := state
				if at < s {
					from = saved[at]
				}
				if st := model.Step(from, o.Request, o.Response); len(st) > 0 {
					placed[at] = append(placed[at], f.op)
					if at == s {
						state = choose(st, state, false)
					}
					break
				}
				var ok bool
				if at, ok = next(f); !ok {
					note(fmt.Sprintf("%s (%s -> %s) fits in none of the slots tried", o.Source, o.Request, o.Response))
					placed[s] = append(placed[s], f.op)
					break
				}
				if at > s {
					buckets[at] = append(buckets[at], f)
					break
				}
			}
		}
		saved[s] = state
		if s == n {
			break
		}
		if c := claimant[s]; c > 0 {
			o := &ops[c-1]
			st := model.Step(state, o.Request, o.Response)
			if len(st) == 0 {
				note(fmt.Sprintf("%s (%s -> %+v) is not accepted at its log entry %d (revisions %d to %d) from revision %d", o.Source, o.Request, o.Response, s, revs.before[s], revs.after[s], state.Revision))
				if o.applied {
					state, _, _ = state.Apply(o.Request)
				}
				continue
			}
			state = choose(st, state, o.applied)
		}
	}

	if w := keepFreeOrder(ops, frees, placed, saved); w != "" {
		note(w)
	}

	nth := 0
	put := func(i int) { nth++; ops[i].place = nth }
	for s := 0; s <= n; s++ {
		ps := placed[s]
		sort.SliceStable(ps, func(a, b int) bool { return returned(&ops[ps[a]]) < returned(&ops[ps[b]]) })
		for _, i := range ps {
			put(i)
		}
		if s < n && claimant[s] > 0 {
			put(claimant[s] - 1)
		}
	}
	sort.SliceStable(last, func(a, b int) bool { return ops[last[a]].Call < ops[last[b]].Call })
	for _, i := range last {
		put(i)
	}
	return why
}

// maxRepairRounds bounds the rounds keepFreeOrder makes.
const maxRepairRounds = 64

// keepFreeOrder keeps real time among the free operations once the walk has
// placed them (placed[s] holds those in slot s): one that returned before
// another was called must not be in a later slot (within a slot they go by
// return time, so the same slot is fine). The bounds each free operation
// got before the walk (its lo and hi) keep it in order with the entries'
// claimants, and its first choice, the latest slot they allow, would keep
// the free ones in order too; but the walk moves an operation off that
// slot, down or up, where the model refuses it there. A time-to-live that
// lists a key is accepted only until a put takes the key off the lease, so
// it can land well below where an operation that returned just before it
// was called sits (the measured failure on a 60 s run: two time-to-lives
// of different leases, the first one's member-local header pinning no
// revision, 0.16 ms apart). So: while some operation is in a later slot
// than the earliest slot of those called after it returned, it moves down
// to the latest slot at or below that one, and at or above its lo, where
// Step accepts it from the state the walk saved there. Slots only go down,
// so this ends; an operation with nowhere to go leaves the plan without an
// order, and porcupine decides. A move is only a proposal, like the rest
// of the plan: witnessed checks the order again.
func keepFreeOrder(ops []Op, frees []*free, placed [][]int, saved []model.State) (why string) {
	slot := make(map[int]int, len(frees)) // op index -> slot
	for s, ps := range placed {
		for _, i := range ps {
			slot[i] = s
		}
	}
	byCall := append([]*free(nil), frees...)
	sort.Slice(byCall, func(a, b int) bool { return ops[byCall[a].op].Call < ops[byCall[b].op].Call })
	sufMin := make([]int, len(byCall)+1)
	for round := 0; round < maxRepairRounds; round++ {
		sufMin[len(byCall)] = math.MaxInt
		for k := len(byCall) - 1; k >= 0; k-- {
			sufMin[k] = min(sufMin[k+1], slot[byCall[k].op])
		}
		moved := false
		for _, f := range frees {
			o := &ops[f.op]
			ret := returned(o)
			k := sort.Search(len(byCall), func(k int) bool { return ops[byCall[k].op].Call > ret })
			ub, from := sufMin[k], slot[f.op]
			if from <= ub {
				continue
			}
			to := -1
			for at, tries := ub, 0; at >= f.lo && tries < maxTries; at, tries = at-1, tries+1 {
				if len(model.Step(saved[at], o.Request, o.Response)) > 0 {
					to = at
					break
				}
			}
			if to < 0 {
				if why == "" {
					why = fmt.Sprintf("%s (%s -> %s) returned before an operation in slot %d was called, and fits in none of the slots tried at or below it", o.Source, o.Request, o.Response, ub)
				}
				continue
			}
			placed[from] = slices.DeleteFunc(placed[from], func(i int) bool { return i == f.op })
			placed[to] = append(placed[to], f.op)
			slot[f.op], moved = to, true
		}
		if !moved {
			return why
		}
	}
	return fmt.Sprintf("real time among the operations placed between entries did not settle in %d rounds", maxRepairRounds)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// pinnedRevision is the revision current when o took effect, when its
// answer names it (a header filled apart, a keepalive's or time-to-live's,
// does not), or the patch pinned it to an entry that did not move it.
func pinnedRevision(o *Op) (int64, bool) {
	switch r := o.Response; {
	case r.Status == model.StatusOK && !model.LocalHeader(o.Request):
		return r.Revision, true
	case r.Status == model.StatusApplied && r.AppliedTo != 0 && r.AppliedTo == r.Revision:
		return r.Revision, true
	}
	return 0, false
}

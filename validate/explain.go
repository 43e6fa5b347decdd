package validate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// An explanation names what differs. For the operation the check could not
// place it computes the model's answer where the operation's revision pins
// it (see pinnedState), else from the states the checker's longest order
// reaches, and lists the fields that differ (model.Diff), expected against
// got. The familiar diagnoses (two writes at one revision, a revision that
// goes back, a stale read, a compare-and-set that wins on a stale
// revision) are given only when the differing fields say so.

// maxAlternatives bounds the states the checker's longest order is
// described with.
const maxAlternatives = 8

// explainer builds one explanation.
type explainer struct {
	c        *Check
	ops      []porcupine.Operation
	stuck    int
	b        strings.Builder
	involved []string
}

// explainStuck says in words, with etcd's revisions, why ops[stuck], the
// operation the check could not place, is wrong: what it returned, what
// the model answers instead and which fields differ, and the operations
// that pin it down. longest is the longest order of operations the checker
// found (indices into ops), nil if none. It also returns the sources of
// the operations it names, ops[stuck]'s first.
func explainStuck(c *Check, ops []porcupine.Operation, stuck int, longest []int) (string, []string) {
	e := &explainer{c: c, ops: ops, stuck: stuck}
	op := ops[stuck]
	req, resp := op.Input.(model.Request), op.Output.(model.Response)
	e.name(stuck)
	fmt.Fprintf(&e.b, "%s (%v) was called at %s", req, op.Metadata, at(op.Call))
	if resp.Status == model.StatusOK {
		fmt.Fprintf(&e.b, " and returned %s at %s.", resp, at(op.Return))
	} else {
		fmt.Fprintf(&e.b, " (%s).", resp)
	}
	state, pinned := e.reference(req, resp, longest)
	if resp.Status != model.StatusOK && resp.Status != model.StatusFailed {
		return e.b.String(), e.involved // no answer to compare
	}
	_, want, _ := state.Apply(req)
	if model.LocalHeader(req) {
		want.Revision = resp.Revision
	}
	diff := model.Diff(want, resp)
	switch {
	case len(diff) > 0:
		fmt.Fprintf(&e.b, " Expected against got: %s.", strings.Join(diff, "; "))
	case pinned:
		fmt.Fprintf(&e.b, " That is what it returned: the answer is right from the state at revision %d, so what is wrong is where that state is in time.", state.Revision)
	}
	if resp.Status != model.StatusOK {
		return e.b.String(), e.involved
	}
	onlyRevision := !slices.ContainsFunc(diff, func(d string) bool { return !strings.HasPrefix(d, "header.revision:") })
	if onlyRevision {
		e.twoWrites(req, resp)
		e.revisionBack(req, resp)
	} else {
		e.staleRead(req, resp, want, state.Revision)
		e.staleCompare(req, resp, state, diff)
	}
	return e.b.String(), e.involved
}

// reference writes which state the model's answer comes from and returns
// it: the replayed state the operation's revision pins, else the first of
// the states the checker's longest order reaches (the initial state when
// it ordered nothing). pinned says which.
func (e *explainer) reference(req model.Request, resp model.Response, longest []int) (state model.State, pinned bool) {
	if s, rev, what, ok := pinnedState(e.c, req, resp); ok {
		_, want, _ := s.Apply(req)
		fmt.Fprintf(&e.b, " At revision %d, %s, the replayed committed log is at %s; there the model answers %s.", rev, what, describeKeys(s, req), want)
		return s, true
	}

	states := []model.State{model.InitialState()}
	for _, i := range longest {
		next := stepAll(states, e.ops[i])
		if len(next) == 0 {
			break
		}
		states = next[:min(len(next), maxAlternatives)]
	}
	var alts []string
	for _, s := range states {
		alts = append(alts, describeKeys(s, req))
	}
	_, want, _ := states[0].Apply(req)
	fmt.Fprintf(&e.b, " After the %d operation(s) the checker could order, etcd could only be at %s; from there the model answers %s.",
		len(longest), strings.Join(alts, ", or "), want)
	return states[0], false
}

// pinnedState is the replayed state (Check.Replayed) an answer's revision
// pins, when it pins one: for a read, the state at the revision its header
// names; for a write, the state just before it, which is the last state at
// the revision before its header's when it moved the revision, and the
// state at its header's revision when it did not. Which of the two a write
// had is what its answer says (it wrote, or not), unless the model's
// answer from only the other gives the header's revision. It also says
// what the revision is. ok is false for an answer that pins no revision
// (an error, an unknown outcome, a header filled apart from the answer) or
// one the replay does not reach.
func pinnedState(c *Check, req model.Request, resp model.Response) (model.State, int64, string, bool) {
	rev := resp.Revision
	replayed := func(r int64) bool { return r >= 1 && r < int64(len(c.Replayed)) }
	if c.Replayed == nil || resp.Status != model.StatusOK || model.LocalHeader(req) {
		return model.State{}, 0, "", false
	}
	if !req.IsWrite() {
		if !replayed(rev) {
			return model.State{}, 0, "", false
		}
		return c.Replayed[rev], rev, "the revision its answer names", true
	}
	type candidate struct {
		state model.State
		rev   int64
		what  string
	}
	var moved, same []candidate
	if replayed(rev - 1) {
		if before, ok := lastStateAt(c.Persisted, rev-1); ok {
			moved = []candidate{{before, rev - 1, fmt.Sprintf("just before its write at revision %d", rev)}}
		}
	}
	if replayed(rev) {
		same = []candidate{{c.Replayed[rev], rev, "the revision its answer names, just before it"}}
	}
	cands := append(same, moved...)
	if len(writtenKeys(req, resp)) > 0 || req.Type != model.Txn {
		cands = append(moved, same...)
	}
	if len(cands) == 0 {
		return model.State{}, 0, "", false
	}
	for _, cand := range cands {
		if _, want, _ := cand.state.Apply(req); want.Status == model.StatusOK && want.Revision == rev {
			return cand.state, cand.rev, cand.what, true
		}
	}
	return cands[0].state, cands[0].rev, cands[0].what, true
}

// lastStateAt replays the committed log through the model and returns the
// state after the last entry that left the store at revision rev: the
// state a write that moved the revision past rev was applied to. ok is
// false when the log is missing or incomplete, holds a request the model
// cannot apply before that, or never reaches rev.
func lastStateAt(log *evidence.Log, rev int64) (model.State, bool) {
	if log == nil || !log.Complete {
		return model.State{}, false
	}
	state := model.InitialState()
	for _, e := range log.Entries {
		if e.Request == nil {
			continue
		}
		req, err := model.RequestFromRecord(*e.Request)
		if err != nil {
			return model.State{}, false
		}
		next, _, _ := state.Apply(req)
		if next.Revision > rev {
			return state, state.Revision == rev
		}
		state = next
	}
	return state, state.Revision == rev
}

// twoWrites says that another write was acknowledged at the revision the
// stuck write was, when it wrote.
func (e *explainer) twoWrites(req model.Request, resp model.Response) {
	if len(writtenKeys(req, resp)) == 0 {
		return
	}
	if o := e.other(func(o porcupine.Operation, r model.Response) bool {
		return r.Revision == resp.Revision && len(writtenKeys(o.Input.(model.Request), r)) > 0
	}); o >= 0 {
		fmt.Fprintf(&e.b, " %s was also acknowledged at revision %d, at %s. A revision holds exactly one write, so one of the two was lost.",
			e.name(o), resp.Revision, at(e.ops[o].Return))
	}
}

// revisionBack says that an answer with a higher revision had returned
// before the stuck operation was called, and, for a read, what it read
// that the state at that revision no longer held.
func (e *explainer) revisionBack(req model.Request, resp model.Response) {
	if model.LocalHeader(req) {
		return
	}
	stuck := e.ops[e.stuck]
	o, later := -1, resp.Revision
	for i, op := range e.ops {
		r := op.Output.(model.Response)
		if i == e.stuck || r.Status != model.StatusOK || model.LocalHeader(op.Input.(model.Request)) || op.Return >= stuck.Call {
			continue
		}
		if r.Revision > later || (o >= 0 && r.Revision == later && op.Return < e.ops[o].Return) {
			o, later = i, r.Revision
		}
	}
	if o < 0 {
		return
	}
	fmt.Fprintf(&e.b, " Before it was called, %s had already returned revision %d, at %s. etcd's revision never goes back, so an answer at revision %d after that is stale, or the writes in between were lost.",
		e.name(o), later, at(e.ops[o].Return), resp.Revision)
	if req.IsWrite() || e.c.Replayed == nil || later >= int64(len(e.c.Replayed)) {
		return
	}
	_, want, _ := e.c.Replayed[later].Apply(req)
	want.Revision = resp.Revision
	e.staleRead(req, resp, want, later)
}

// staleRead says which keys a read returned older than the state at
// revision rev held them (want is the model's answer there), or left out
// though they existed: a key it returned whose mod revision is lower than
// want's, or one of want's that it left out though it returned at least
// as many keys before it. A read that differs otherwise (a count, more, a
// value at the same mod revision) is not stale, and is not called so.
func (e *explainer) staleRead(req model.Request, resp, want model.Response, rev int64) {
	if req.IsWrite() || resp.Txn == nil || want.Txn == nil || len(resp.Txn.Results) != len(want.Txn.Results) {
		return
	}
	stuck := e.ops[e.stuck]
	for i, w := range want.Txn.Results {
		got := resp.Txn.Results[i]
		returned := map[string]model.KeyValue{}
		for _, kv := range got.KVs {
			returned[kv.Key] = kv
		}
		for j, kv := range w.KVs {
			g, ok := returned[kv.Key]
			switch {
			case ok && g.ModRevision < kv.ModRevision:
				fmt.Fprintf(&e.b, " It read %s=%s@%d, but ", g.Key, g.Value, g.ModRevision)
			case !ok && j < len(got.KVs):
				fmt.Fprintf(&e.b, " It did not return %s, but ", kv.Key)
			default:
				continue
			}
			if o := e.writer(kv); o >= 0 {
				fmt.Fprintf(&e.b, "%s had written %s at revision %d, acknowledged at %s", e.name(o), kv.Key, kv.ModRevision, at(e.ops[o].Return))
				if e.ops[o].Return < stuck.Call {
					e.b.WriteString(", before the read was called")
				}
			} else {
				fmt.Fprintf(&e.b, "at revision %d %s was %s@%d", rev, kv.Key, kv.Value, kv.ModRevision)
			}
			e.b.WriteString(": the read is stale.")
		}
	}
}

// staleCompare says, for a transaction that succeeded where the model's
// fails, which of its mod revision compares the state it was applied to
// had already moved past, and which write moved it.
func (e *explainer) staleCompare(req model.Request, resp model.Response, state model.State, diff []string) {
	if resp.Txn == nil || !resp.Txn.Succeeded || !slices.Contains(diff, "succeeded: want false, got true") {
		return
	}
	stuck := e.ops[e.stuck]
	for _, c := range conditions(req) {
		if c.Target != model.TargetMod || c.Result != model.Equal || c.End != "" {
			continue
		}
		kv, exists := state.Get(c.Key)
		if exists && kv.ModRevision == c.Operand || !exists && c.Operand == 0 {
			continue
		}
		fmt.Fprintf(&e.b, " Its compare mod(%s)==%d succeeded, but ", c.Key, c.Operand)
		o := -1
		if exists {
			o = e.writer(kv)
		}
		switch {
		case !exists:
			fmt.Fprintf(&e.b, "at revision %d %s did not exist", state.Revision, c.Key)
		case o >= 0:
			fmt.Fprintf(&e.b, "%s had changed %s at revision %d, acknowledged at %s", e.name(o), c.Key, kv.ModRevision, at(e.ops[o].Return))
			if e.ops[o].Return < stuck.Call {
				e.b.WriteString(", before the compare-and-set was called")
			}
		default:
			fmt.Fprintf(&e.b, "at revision %d %s had mod revision %d", state.Revision, c.Key, kv.ModRevision)
		}
		e.b.WriteString(": it won on a stale revision.")
	}
}

// other is the operation besides the stuck one, answered with success,
// that matches and returned first; -1 if none.
func (e *explainer) other(match func(o porcupine.Operation, r model.Response) bool) int {
	found := -1
	for i, o := range e.ops {
		if r := o.Output.(model.Response); i != e.stuck && r.Status == model.StatusOK && match(o, r) && (found < 0 || o.Return < e.ops[found].Return) {
			found = i
		}
	}
	return found
}

// writer is the operation that wrote kv: the one whose request puts kv's
// value to its key (every written value is unique), else one answered at
// kv's mod revision that says it wrote the key, or one the log shows
// applied there whose request puts the key; -1 if none.
func (e *explainer) writer(kv model.KeyValue) int {
	puts := func(req model.Request, match func(op model.Op) bool) bool {
		if req.Txn == nil {
			return false
		}
		return slices.ContainsFunc(req.Txn.Then, match) || slices.ContainsFunc(req.Txn.Else, match)
	}
	if kv.Value != "" {
		for i, o := range e.ops {
			if i != e.stuck && puts(o.Input.(model.Request), func(op model.Op) bool {
				return op.Type == model.OpPut && op.Key == kv.Key && op.Value == kv.Value
			}) {
				return i
			}
		}
	}
	for i, o := range e.ops {
		req, r := o.Input.(model.Request), o.Output.(model.Response)
		switch {
		case i == e.stuck || r.Revision != kv.ModRevision:
		case r.Status == model.StatusOK && slices.Contains(writtenKeys(req, r), kv.Key):
			return i
		case r.Status == model.StatusApplied && puts(req, func(op model.Op) bool { return op.Type == model.OpPut && op.Key == kv.Key }):
			return i
		}
	}
	return -1
}

// name renders ops[i] as an explanation names it and counts it among the
// operations involved.
func (e *explainer) name(i int) string {
	op := e.ops[i]
	if src := source(op); !slices.Contains(e.involved, src) {
		e.involved = append(e.involved, src)
	}
	return fmt.Sprintf("%s (%v)", op.Input.(model.Request), op.Metadata)
}

func at(d int64) time.Duration { return time.Duration(d).Round(time.Millisecond) }

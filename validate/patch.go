package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// Op is one operation of the patched history, as the model reads it.
type Op struct {
	ClientID int
	Call     time.Duration
	// Return is when the operation returned, or the bound the evidence puts
	// on when it took effect. It is meaningless when Open is set.
	Return time.Duration
	// Open means the operation may take effect at any time after Call,
	// even after every other operation.
	Open     bool
	Request  model.Request
	Response model.Response
	// Source says where the operation comes from, for a person: "client 3
	// #17", or "wal index 812" for a request no client sent.
	Source string

	// What the witness (ordered.go) reads: claim is the identity of a
	// client's request that goes through raft (see identity); entry is 1 +
	// the index of the log entry a server operation was made from; place is
	// the operation's rank in the candidate order, from 1 (0: none); and
	// applied says that the operation took effect at its log entry.
	claim   string
	entry   int
	place   int
	applied bool
}

// Patched is the history the linearizability check reads: the clients'
// operations with what the evidence settled, and the requests etcd
// committed that no client sent.
type Patched struct {
	Ops []Op
	// Applied and NotApplied count the operations of unknown outcome that
	// the evidence settled; Open counts those it could not.
	Applied, NotApplied, Open int
	// Server counts committed requests that no client sent.
	Server int
	// Unsupported lists requests the model cannot check yet; while there
	// are any, the linearizability check cannot pass: it would have checked
	// less than the history holds.
	Unsupported []string
	// DroppedReads counts reads that tell nothing: their outcome is
	// unknown, or etcd declined them.
	DroppedReads int
	// SerializableReads counts serializable reads, left out: the member
	// that answers one may lag, so it does not constrain the current
	// state. StaleRead checks them against the replayed log.
	SerializableReads int
	// MemberLocal counts requests one member answers alone, outside raft,
	// left out: defragmentations (they change nothing the model holds) and
	// lease lists (a member's lessor, which may lag).
	MemberLocal int
	// noWitness says why the patch found no candidate order for the
	// witness (ordered.go); empty when it found one.
	noWitness string
}

// PatchStage settles requests of unknown outcome with what the members
// persisted. Every written value is unique, so a value identifies its
// request:
//   - a write whose value is in the committed log was applied: it keeps its
//     place, and its return is bounded by the first response whose revision
//     includes it (replaying the log through the model gives that revision);
//   - a write whose value is in no member's WAL, when the log is complete,
//     was never applied: it is dropped;
//   - a request without a value (a delete) is settled by counting: if the
//     log holds exactly as many copies as were acknowledged, none of the
//     unknown ones was applied, and if it holds one more for each unknown
//     one, all were.
//
// Settling only ever narrows what the model may assume, so it cannot hide a
// violation. The stage itself finds two: an acknowledged write that is in no
// member's complete WAL (a lost write), and one request committed twice.
type PatchStage struct{}

// Name implements Validator.
func (PatchStage) Name() string { return "patch" }

// Validate implements Validator.
func (PatchStage) Validate(ctx context.Context, c *Check) Result {
	p, ops := derive(c.Clients)
	c.Patched = p
	if c.Persisted == nil {
		for _, o := range ops {
			p.Ops = append(p.Ops, o.Op)
		}
		p.Open = countOpen(ops)
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("no persisted log to settle with (%s): %d writes of unknown outcome stay open",
			firstNonEmpty(c.EvidenceError, "not collected"), p.Open)}
	}
	findings, why, replayed, events := settle(p, ops, c.Persisted)
	c.Replayed, c.Events = replayed, events
	msg := fmt.Sprintf("settled %d writes of unknown outcome with %d committed entries: %d applied, %d never applied, %d left open; %d committed requests no client sent",
		p.Applied+p.NotApplied, len(c.Persisted.Entries), p.Applied, p.NotApplied, p.Open, p.Server)
	if p.SerializableReads > 0 {
		msg += fmt.Sprintf("; %d serializable reads left to the stale-read stage", p.SerializableReads)
	}
	if p.MemberLocal > 0 {
		msg += fmt.Sprintf("; %d answers one member gives alone (lease list, defragment) not checked", p.MemberLocal)
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: strings.Join(findings, "; "), Explanation: strings.Join(why, " ")}
	}
	if !c.Persisted.Complete {
		msg += fmt.Sprintf("; the log starts at index %d, so a write missing from it may still have been applied", c.Persisted.FirstIndex)
	}
	return Result{Verdict: OK, Message: msg}
}

// derive reads every client operation as the model sees it. Reads that
// tell nothing are dropped.
func derive(clients []history.Client) (*Patched, []derived) {
	p := &Patched{}
	var ops []derived
	for _, cl := range clients {
		for i, rec := range cl.Operations {
			req, resp, err := model.FromRecord(rec)
			if err != nil {
				if rec.Request.ReadOnly() && rec.Outcome() == history.Unknown {
					p.DroppedReads++ // tells nothing, whatever its kind
				} else {
					p.Unsupported = append(p.Unsupported, fmt.Sprintf("client %d #%d: %v", cl.ID, i, err))
				}
				continue
			}
			if req.Type == model.Defragment || req.Type == model.LeaseLeases {
				p.MemberLocal++
				continue
			}
			if req.Serializable() {
				p.SerializableReads++
				continue
			}
			declined := resp.Status == model.StatusFailed && model.Declined(resp.Error)
			if rec.Request.ReadOnly() && (resp.Status == model.StatusUnknown || declined) {
				p.DroppedReads++
				continue
			}
			if declined {
				// Nothing was applied and nothing was answered: a write
				// the model need not place. Its value must never appear.
				continue
			}
			ops = append(ops, derived{
				Op: Op{ClientID: cl.ID, Call: rec.Call, Return: rec.Return, Open: resp.Status == model.StatusUnknown,
					Request: req, Response: resp, Source: fmt.Sprintf("client %d #%d", cl.ID, i)},
				rec: rec,
			})
		}
	}
	return p, ops
}

type derived struct {
	Op
	rec history.Operation
	// drop: settled as never applied.
	drop bool
}

func countOpen(ops []derived) int {
	n := 0
	for _, o := range ops {
		if o.Open {
			n++
		}
	}
	return n
}

// identity is how a request is matched against the log: its first written
// value when it writes one; a lease grant's ID, unique per run (lease is
// the ID the grant's answer gave, for a grant that let the server choose,
// else 0); else the whole request. A compaction names a revision several
// requests may name, and a revoke is also what the leader commits when a
// lease expires, so neither is unique.
func identity(r history.Request, lease int64) (key string, unique bool) {
	if vs := r.PutValues(); len(vs) > 0 {
		return vs[0], true
	}
	if g := r.LeaseGrant; g != nil && (g.ID != 0 || lease != 0) {
		return fmt.Sprintf("lease grant %d", max(g.ID, lease)), true
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain data always marshals
	}
	return string(b), false
}

// settle fills p.Ops from ops and the committed log, and returns the
// violations the log itself shows, their explanations, and the replayed
// states and events.
func settle(p *Patched, ops []derived, log *evidence.Log) (findings, why []string, replayed []model.State, events []model.Event) {
	revs, replayed, events := replay(log)
	seen := newObservers(ops)

	committed := map[string][]int{} // identity -> indices into log.Entries
	for i, e := range log.Entries {
		if e.Request != nil && !e.Request.ReadOnly() {
			id, _ := identity(*e.Request, 0)
			committed[id] = append(committed[id], i)
		}
	}
	uncommitted := map[string]int{}
	for _, e := range log.Uncommitted {
		if e.Request != nil {
			id, _ := identity(*e.Request, 0)
			uncommitted[id]++
		}
	}
	groups := map[string]*group{}
	var order []string
	for i, o := range ops {
		// A keepalive goes to the leader's lessor, not through raft: the
		// log says nothing of it, and one of unknown outcome stays open.
		if o.rec.Request.ReadOnly() || o.rec.Request.LeaseKeepAlive != nil {
			continue
		}
		var lease int64
		if o.Request.Lease != nil {
			lease = o.Request.Lease.ID
		}
		id, unique := identity(o.rec.Request, lease)
		ops[i].claim = id
		g := groups[id]
		if g == nil {
			g = &group{unique: unique, revoke: o.rec.Request.LeaseRevoke != nil}
			groups[id] = g
			order = append(order, id)
		}
		switch o.Response.Status {
		case model.StatusOK:
			g.acked = append(g.acked, i)
			g.revokeAcked = g.revokeAcked || g.revoke
		case model.StatusUnknown:
			g.unknown = append(g.unknown, i)
		case model.StatusFailed:
			g.maybeCommitted = true
			g.failed = append(g.failed, i)
		}
	}

	for _, id := range order {
		g := groups[id]
		entries := committed[id]
		unique := g.unique
		if unique {
			switch took := tookEffect(log, entries, revs); {
			case len(took) > 1:
				idx := make([]string, len(took))
				for i, e := range took {
					idx[i] = fmt.Sprint(log.Entries[e].Index)
				}
				what, source := describeRecord(*log.Entries[took[0]].Request), "sent by no client"
				if len(g.acked)+len(g.unknown) > 0 {
					source = ops[firstOf(g.acked, g.unknown)].Source
				}
				findings = append(findings, fmt.Sprintf("%s was committed and took effect %d times (raft indices %s): one request applied more than once",
					what, len(took), strings.Join(idx, ", ")))
				why = append(why, fmt.Sprintf("%s (%s) is identified by a value or lease ID no other request uses, yet the committed raft log holds it %d times, at indices %s, and each copy changed the store when replayed, so etcd applied it %d times; a request is applied at most once.",
					what, source, len(took), strings.Join(idx, ", "), len(took)))
			case len(entries) == 0 && len(g.acked) > 0 && log.Complete && uncommitted[id] == 0:
				o := ops[g.acked[0]]
				findings = append(findings, fmt.Sprintf("%s was acknowledged at revision %d by %s but is in no member's WAL: an acknowledged write was lost",
					describeRecord(o.rec.Request), o.Response.Revision, o.Source))
				why = append(why, lostWrite(o, log, revs))
			}
		}
		if took := tookEffect(log, entries, revs); unique && len(took) == 1 && len(g.acked)+len(g.unknown) == 0 &&
			len(g.failed) == 1 && ops[g.failed[0]].Response.Error == model.ErrLeaseExists {
			// The only client copy of a grant was refused as "lease
			// already exists", yet its lease ID, used by no other request,
			// was granted once in the log: clientv3 retries a grant, and
			// the error answers the retry. The grant was applied, where
			// the log says. (Any other refused request found in the log
			// stays refused, for the model to judge.)
			o := &ops[g.failed[0]]
			o.Response = revs.applied(took[0])
			o.Return = bound(o.Call, seen.first(revs.shownBy(took[0])))
			o.Open = o.Return < 0
			p.Applied++
		}
		for _, i := range g.unknown {
			o := &ops[i]
			switch {
			case g.maybeCommitted, g.revoke:
				// A revoke's copies in the log may also be the leader's
				// expiry of the lease: counting settles nothing.
				// A definite error may have come after committing: the
				// counts below would not hold.
			case unique && len(entries) == 1:
				// Replaying the log gives the revisions around it (when
				// known), which pin its place in any order.
				o.Response = revs.applied(entries[0])
				o.Return = bound(o.Call, seen.first(revs.shownBy(entries[0])))
				o.Open = o.Return < 0
				p.Applied++
				continue
			case unique && len(entries) == 0 && uncommitted[id] == 0 && log.Complete,
				!unique && len(entries) == len(g.acked) && uncommitted[id] == 0 && log.Complete:
				o.drop = true
				p.NotApplied++
				continue
			case !unique && len(entries) == len(g.acked)+len(g.unknown):
				o.Response = model.Response{Status: model.StatusApplied}
				o.Open = true
				p.Applied++
				continue
			}
			p.Open++
		}
		if !unique && !g.maybeCommitted && !g.revoke && len(g.unknown) > 0 && len(entries) == len(g.acked)+len(g.unknown) {
			pinIdentical(ops, g, entries, revs, seen)
		}
	}
	for _, o := range ops {
		if o.drop {
			continue
		}
		p.Ops = append(p.Ops, o.Op)
	}
	p.Ops = append(p.Ops, serverOps(p, log, revs, seen, committed, groups)...)
	p.noWitness = planWitness(p.Ops, log, revs)
	return findings, why, replayed, events
}

// lostWrite explains an acknowledged write missing from a complete log, and
// names the entry that holds its revision instead.
func lostWrite(o derived, log *evidence.Log, revs revisions) string {
	s := fmt.Sprintf("%s (%s) was acknowledged at revision %d at %s", describeRecord(o.rec.Request), o.Source,
		o.Response.Revision, o.Return.Round(time.Millisecond))
	if o.rec.Response != nil && o.rec.Response.Header.MemberID != 0 {
		s += fmt.Sprintf(" by member %x", o.rec.Response.Header.MemberID)
	}
	s += fmt.Sprintf(". The committed raft log read from the members' WALs is complete (%d entries from index %d) and no entry carries its value, so no member kept it.",
		len(log.Entries), log.FirstIndex)
	for i, rev := range revs.after {
		if rev == o.Response.Revision && log.Entries[i].Request != nil {
			s += fmt.Sprintf(" Revision %d is held by raft index %d instead, %s.", rev, log.Entries[i].Index, describeRecord(*log.Entries[i].Request))
			break
		}
	}
	return s + " An acknowledged write must survive any crash, so it was lost."
}

// pinIdentical gives the applied copies of one request without a unique
// value (say, delete(k) sent by several clients) the revisions their log
// entries were applied at. The copies are identical, so which copy went to
// which entry does not matter to the state; the entries left once the
// acknowledged copies have taken the revisions they reported go to the
// unknown copies in order of their calls, earliest first, which is a
// feasible assignment whenever any is. Without a full match nothing is
// pinned, and the copies stay open.
func pinIdentical(ops []derived, g *group, entries []int, revs revisions, seen observers) {
	// An acknowledged copy reported the revision after it and whether it
	// wrote; that takes one entry with that revision after it and the same
	// effect.
	type effect struct {
		after int64
		wrote bool
	}
	left := map[effect][]int{}
	for _, e := range entries {
		if revs.after[e] < 0 || revs.before[e] < 0 {
			return
		}
		k := effect{revs.after[e], revs.after[e] != revs.before[e]}
		left[k] = append(left[k], e)
	}
	for _, i := range g.acked {
		k := effect{ops[i].Response.Revision, ops[i].rec.Wrote()}
		if len(left[k]) == 0 {
			return
		}
		left[k] = left[k][1:]
	}
	var free []int
	for _, es := range left {
		free = append(free, es...)
	}
	sort.Ints(free) // raft order
	unknown := append([]int(nil), g.unknown...)
	sort.Slice(unknown, func(i, j int) bool { return ops[unknown[i]].Call < ops[unknown[j]].Call })
	for k, i := range unknown {
		o := &ops[i]
		o.Response = revs.applied(free[k])
		o.Return = bound(o.Call, seen.first(revs.shownBy(free[k])))
		o.Open = o.Return < 0
	}
}

// serverOps are the committed requests no client sent (a lease revoked by
// expiry, a compaction by the server), as operations of their own that may
// have taken effect at any time until their revision was seen.
func serverOps(p *Patched, log *evidence.Log, revs revisions, seen observers, committed map[string][]int, groups map[string]*group) []Op {
	var out []Op
	// Walk the log in order so that the operations come out in raft order.
	used := map[string]int{}
	for i, e := range log.Entries {
		if e.Request == nil || e.Request.ReadOnly() {
			continue
		}
		if e.Request.LeaseRevoke != nil {
			id, _ := identity(*e.Request, 0)
			used[id]++
			if op, ok := expiryOp(log, revs, seen, groups[id], i, used[id]); ok {
				op.entry = i + 1
				p.Server++
				out = append(out, op)
			}
			continue
		}
		id, unique := identity(*e.Request, 0)
		clientOps := 0
		if g := groups[id]; g != nil {
			if g.maybeCommitted {
				continue
			}
			clientOps = len(g.acked) + len(g.unknown)
		}
		// The first clientOps copies of a request belong to its clients.
		if used[id]++; used[id] <= clientOps {
			continue
		}
		req, err := model.RequestFromRecord(*e.Request)
		if err != nil {
			p.Unsupported = append(p.Unsupported, fmt.Sprintf("wal index %d: %v", e.Index, err))
			continue
		}
		op := Op{ClientID: -1, Request: req, Response: model.Response{Status: model.StatusApplied},
			Source: fmt.Sprintf("wal index %d, sent by no client", e.Index), Open: true, entry: i + 1}
		if unique {
			// Only this entry carries the value: its revisions are known.
			op.Response = revs.applied(i)
			if op.Return = bound(0, seen.first(revs.shownBy(i))); op.Return >= 0 {
				op.Open = false
			}
		}
		p.Server++
		out = append(out, op)
	}
	return out
}

// expiryOp decides whether the revoke at log entry i is one no client sent,
// the leader's revoke of an expired lease, and makes it an operation. In a
// replayed log, of the copies of one revoke only the first to find the
// lease takes effect; the others change nothing and are left out. The one
// that takes effect is a client's if a client's revoke was answered with
// success; it may be a client's if one is of unknown outcome, and then it
// is an operation that may have been an expiry, without a deadline check;
// else it is the leader's expiry, which may not take effect before the
// lease's deadline, bounded by the first response that shows a later
// revision. Without a replay every copy beyond the answered ones is an
// operation that may be an expiry, at any time. g is what the clients know
// of the revoke; the entry is its copy-th copy in the log.
func expiryOp(log *evidence.Log, revs revisions, seen observers, g *group, i, copy int) (Op, bool) {
	e := log.Entries[i]
	src := fmt.Sprintf("wal index %d, sent by no client", e.Index)
	open := Op{ClientID: -1, Request: model.LeaseExpiryRequest(e.Request.LeaseRevoke.ID, 0),
		Response: model.Response{Status: model.StatusApplied}, Open: true, Source: src + " (or by a client whose revoke's outcome is unknown)"}
	if revs.effective == nil || revs.before[i] < 0 {
		answered := 0
		if g != nil {
			answered = len(g.acked)
		}
		return open, copy > answered
	}
	if !revs.effective[i] {
		return Op{}, false
	}
	if g != nil && g.revokeAcked {
		return Op{}, false
	}
	if g != nil && len(g.unknown) > 0 {
		return open, true
	}
	op := Op{ClientID: -1, Response: revs.applied(i), Source: src}
	// The first response at a later revision than the revoke's came after it.
	after := revs.after[i]
	if after == revs.before[i] {
		after++
	}
	before := bound(0, seen.first(after))
	op.Request = model.LeaseExpiryRequest(e.Request.LeaseRevoke.ID, max(before, 0))
	op.Return, op.Open = before, before < 0
	return op, true
}

// group is what the clients know of one request identity.
type group struct {
	unique         bool  // the request writes a value, which identifies it
	revoke         bool  // a lease revoke, which the leader also commits on expiry
	acked, unknown []int // indices into ops
	// revokeAcked: a client's revoke was answered with success.
	revokeAcked bool
	// maybeCommitted: a definite error that etcd may have returned after
	// committing the request (an error of the apply step), so counting
	// copies in the log does not settle anything.
	maybeCommitted bool
	failed         []int // indices into ops of the refused copies
}

// tookEffect returns the entries (indices into log.Entries) whose request
// changed the store when the log was replayed: a write that moved the
// revision, or a lease grant that found no lease with its ID. A copy that
// did nothing (a retried grant refused as "lease already exists", a
// transaction whose compare failed the second time) was committed but not
// applied twice. When the log does not replay, only puts are counted, as a
// put always takes effect.
func tookEffect(log *evidence.Log, entries []int, revs revisions) []int {
	var out []int
	for _, e := range entries {
		r := log.Entries[e].Request
		switch {
		case revs.effective == nil:
			if r.Put != nil {
				out = append(out, e)
			}
		case revs.effective[e] && (r.LeaseGrant != nil || revs.after[e] > revs.before[e]):
			out = append(out, e)
		}
	}
	return out
}

func firstOf(a, b []int) int {
	if len(a) > 0 {
		return a[0]
	}
	return b[0]
}

// bound is the return time of an applied operation first shown by a
// response that returned at seen (negative: never shown).
func bound(call, seen time.Duration) time.Duration {
	if seen < 0 {
		return -1
	}
	return max(call, seen)
}

// revisions are the store's revisions before and after each entry of the
// committed log, or -1 where they are unknown.
type revisions struct {
	before, after []int64
	// effective says, when the whole log replays, whether each entry's
	// request succeeded when applied (a revoke that found its lease).
	effective []bool
}

// replay applies the committed log to the model and returns the store's
// revisions around each entry, -1 where they are unknown: after a request
// the model cannot apply, or everywhere when the log does not start at
// index 1. When the whole log replays, it also returns the state at every
// revision and the events of every write, in revision order.
func replay(log *evidence.Log) (revisions, []model.State, []model.Event) {
	revs := revisions{before: make([]int64, len(log.Entries)), after: make([]int64, len(log.Entries)), effective: make([]bool, len(log.Entries))}
	state := model.InitialState()
	ok := log.Complete
	var states []model.State
	var events []model.Event
	if ok {
		states = []model.State{{}, state} // index 0 unused: revisions start at 1
	}
	for i, e := range log.Entries {
		revs.before[i], revs.after[i] = -1, -1
		if ok {
			revs.before[i] = state.Revision
		}
		if ok && e.Request != nil {
			req, err := model.RequestFromRecord(*e.Request)
			if err != nil {
				ok = false
				revs.before[i] = -1
				continue
			}
			var evs []model.Event
			var resp model.Response
			state, resp, evs = state.Apply(req)
			revs.effective[i] = resp.Status == model.StatusOK
			events = append(events, evs...)
			if state.Revision == int64(len(states)) {
				states = append(states, state)
			}
		}
		if ok {
			revs.after[i] = state.Revision
		}
	}
	if !ok {
		states, events, revs.effective = nil, nil, nil
	}
	return revs, states, events
}

// shownBy is the lowest revision a response can carry only once entry i
// was applied: the revision it made, or, for an entry that did not move
// the revision (a lease grant, a compaction, a no-op), the next one, as
// a response at its own revision may predate it. -1 if unknown.
func (r revisions) shownBy(i int) int64 {
	switch {
	case r.after[i] < 0 || r.before[i] < 0:
		return -1
	case r.after[i] > r.before[i]:
		return r.after[i]
	}
	return r.after[i] + 1
}

// applied is the response of a request the log shows applied at entry i.
func (r revisions) applied(i int) model.Response {
	resp := model.Response{Status: model.StatusApplied}
	if r.after[i] >= 0 && r.before[i] >= 0 {
		resp.Revision, resp.AppliedTo = r.after[i], r.before[i]
	}
	return resp
}

// observers answer: when did a response first show revision rev or later?
type observers struct {
	revs    []int64         // ascending
	returns []time.Duration // returns[i]: the earliest return among responses at revs[i] or later
}

func newObservers(ops []derived) observers {
	type obs struct {
		rev int64
		ret time.Duration
	}
	var all []obs
	for _, o := range ops {
		if o.Response.Status == model.StatusOK {
			all = append(all, obs{o.Response.Revision, o.Return})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rev < all[j].rev })
	out := observers{revs: make([]int64, len(all)), returns: make([]time.Duration, len(all))}
	for i := len(all) - 1; i >= 0; i-- {
		out.revs[i] = all[i].rev
		out.returns[i] = all[i].ret
		if i+1 < len(all) {
			out.returns[i] = min(out.returns[i], out.returns[i+1])
		}
	}
	return out
}

// first is the earliest return of a response at rev or later, or -1 if
// none (or rev is unknown).
func (o observers) first(rev int64) time.Duration {
	if rev < 0 {
		return -1
	}
	i := sort.Search(len(o.revs), func(i int) bool { return o.revs[i] >= rev })
	if i == len(o.revs) {
		return -1
	}
	return o.returns[i]
}

func describeRecord(r history.Request) string {
	req, err := model.RequestFromRecord(r)
	if err != nil {
		return r.Kind()
	}
	return req.String()
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

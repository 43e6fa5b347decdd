package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
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
	// #17", or "wal index 812" for a request of etcd's own (the leader's
	// revoke of an expired lease).
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
// operations with what the evidence settled, and the leader's revokes of
// expired leases, the only committed requests of etcd's own that change
// the store.
type Patched struct {
	Ops []Op
	// Applied and NotApplied count the operations of unknown outcome that
	// the evidence settled; Open counts those it could not. Applied also
	// counts the refused lease requests the log shows applied (Resent).
	Applied, NotApplied, Open int
	// Server counts the leader's revokes of expired leases, made operations
	// of their own.
	Server int
	// StoodFor counts the clients' revokes of unknown outcome that the log's
	// one effective revoke of their lease (an operation of its own, or a
	// client's acknowledged revoke) stands for: see settle. They are left
	// out of the history, and counted among the settled.
	StoodFor int
	// Resent counts lease grants and revokes a client saw refused that the
	// log shows applied by an earlier attempt clientv3 had resent (see
	// PatchStage).
	Resent int
	// Internal counts the committed entries that carry no client request,
	// by evidence.Entry.Kind ("empty", "conf-change", "member-attr",
	// "lease-checkpoint", ..., and "other" for data that does not decode).
	Internal map[string]int
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
	// declined are the writes etcd declined (model.Declined), which derive
	// leaves out of the history: the patch brings back a lease grant or
	// revoke among them that the log shows applied by an earlier attempt.
	declined []derived
}

// PatchStage settles requests of unknown outcome with what the members
// persisted, and checks that every committed request was sent. Every
// written value is unique, so a value identifies its request:
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
// Only etcd's own requests may be in the log unsent: a lease revoke by the
// leader's expiry (an operation of its own, which may not take effect
// before the lease's deadline), lease checkpoints, and the internal
// requests that do not touch the key space (cluster version, member
// attributes, downgrade, alarms, v2 store, conf changes, a leader's
// empty entry, and the authentications clientv3 sends on its own, kind
// "auth"), which are counted by kind in the message and ignored. An auth
// admin request (a user, role or permission change, enabling auth) is a
// client's, matched against what the clients sent like a delete.
//
// A committed entry etcd's applier refuses (model.RefusedAtApply: its
// user lacked the permission, or its auth revision was older than the
// store's) is replayed as etcd applies it: no effect, the revision
// unchanged. It is not matched against the clients' requests: clientv3
// resends a request refused for an old auth revision, so the log may hold
// it twice, and only the applied copy counts.
// Every other committed request must have been sent, as often as it is in
// the log. What the clients sent is read from the raw record (every
// operation of every client, also those the model leaves out), and each
// sent request accounts for committed copies so:
//   - a put, delete, write transaction or compaction for one copy, unless
//     etcd refused it with an error it gives before proposing
//     (model.RefusedBeforeProposal): then for none. clientv3 never resends
//     these once etcd may have them (their retry policy is non-repeatable),
//     and etcd proposes what it is sent once;
//   - a lease grant or revoke for any number of copies: clientv3 resends
//     them on Unavailable (the repeatable policy), and the error recorded
//     is only the last attempt's. A resent copy changes nothing when
//     applied (a grant refused as existing, a revoke that finds no lease);
//     at most one copy of a grant may take effect.
//
// A lease revoke no client sent is the leader's expiry: one that takes
// effect is checked against the lease's deadline; one that takes no effect
// is allowed when a grant of its lease took effect before it, as the
// leader's expiry loop proposes a revoke again when the first has not been
// applied within its retry interval, or when leadership moves before it is
// (lessor.expireExists, EtcdServer.revokeExpiredLeases in etcd v3.6), but a
// lessor only holds, and so only revokes, a lease granted in the log: an
// ineffective revoke of a lease never granted before it, that no client
// sent, is a violation. A grant no client sent is always one (etcd grants
// no lease of its own), unless a client sent a grant with no ID whose
// answer, so the ID etcd chose, is unknown.
//
// A lease grant or revoke a client saw refused, that the log shows applied
// once, is the client's, applied where the log says (its return bounded by
// the first response that shows it), when no client's copy was answered or
// is of unknown outcome and its refusal may answer a resent attempt: a
// grant refused as "lease already exists" or declined (say, "no leader");
// a revoke declined, or refused as "requested lease not found" with an
// ineffective copy after the effective one (the resent attempt's, which
// gave that answer), provided the effective copy may have come after the
// client's call (no response that returned before the call shows it).
// Otherwise the effective revoke stays the leader's expiry, and the
// refusal stays for the model to judge.
//
// Settling only ever narrows what the model may assume, so it cannot hide a
// violation. The stage itself finds these (Illegal, with the operations and
// log entries involved): an acknowledged write that is in no member's
// complete WAL (a lost write); a committed request no client sent, or sent
// fewer times than it is committed; a write refused before proposal that
// the log holds; and a grant that took effect more than once.
//
// A committed entry that does not decode (kind "other") may hold any
// request, so the log cannot be matched against the clients' requests in
// full, nor replayed past it: the stage is then Inconclusive (unless it
// found a violation in the entries that decode), and a write missing from
// the log is not taken as never applied, nor an acknowledged one as lost.
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
		p.noWitness = "no committed log to order by"
		return Result{Verdict: Inconclusive, CheckedWhat: "committed entries",
			Message: fmt.Sprintf("no persisted log to settle with (%s): %d writes of unknown outcome stay open",
				firstNonEmpty(c.EvidenceError, "not collected"), p.Open)}
	}
	s := settle(p, ops, c.Clients, c.Persisted, model.RulesOf(c.Releases))
	c.Replayed, c.Events, c.Auth = s.replayed, s.events, s.auth
	if f, ok := replayShift(ops, c.Persisted, s.revs, c.EndStates); ok {
		// The cause first: what follows from revisions is shifted by it.
		s.findings = append([]finding{f}, s.findings...)
	}
	res := Result{Checked: s.matched, CheckedWhat: "committed entries"}
	if len(s.findings) > 0 {
		var msgs, why []string
		seen := map[string]bool{}
		for _, f := range s.findings {
			msgs, why = append(msgs, f.msg), append(why, f.why)
			for _, src := range f.involved {
				if !seen[src] {
					seen[src] = true
					res.Involved = append(res.Involved, src)
				}
			}
		}
		res.Verdict, res.Message, res.Explanation = Illegal, strings.Join(msgs, "; "), strings.Join(why, " ")
		return res
	}
	var msg string
	if s.matched == 0 {
		msg = "nothing to check: no committed entry holds a client request; "
	}
	var stoodFor string
	if p.StoodFor > 0 {
		stoodFor = fmt.Sprintf(", %d revokes stood for by the log's one effective revoke of their lease", p.StoodFor)
	}
	msg += fmt.Sprintf("settled %d writes of unknown outcome with %d committed entries: %d applied, %d never applied%s, %d left open; matched %d committed requests against what the clients sent, all accounted for (%d lease expiries by the leader",
		p.Applied-p.Resent+p.NotApplied+p.StoodFor, len(c.Persisted.Entries), p.Applied-p.Resent, p.NotApplied, stoodFor, p.Open, s.matched, p.Server)
	if p.Resent > 0 {
		msg += fmt.Sprintf(", %d refused lease requests applied by an attempt clientv3 resent", p.Resent)
	}
	msg += ")"
	if s.refused > 0 {
		msg += fmt.Sprintf("; %d committed entries refused at apply by auth or a NOSPACE alarm (no effect, as etcd applies them)", s.refused)
	}
	if internal := internalKinds(p.Internal); internal != "" {
		msg += "; ignored " + internal
	}
	if p.SerializableReads > 0 {
		msg += fmt.Sprintf("; %d serializable reads left to the stale-read stage", p.SerializableReads)
	}
	if p.MemberLocal > 0 {
		msg += fmt.Sprintf("; %d answers one member gives alone (lease list, defragment) not checked", p.MemberLocal)
	}
	if !c.Persisted.Complete {
		msg += fmt.Sprintf("; the log starts at index %d, so a write missing from it may still have been applied", c.Persisted.FirstIndex)
	}
	if n := p.Internal[evidence.KindOther]; n > 0 {
		res.Verdict = Inconclusive
		res.Message = fmt.Sprintf("%d committed entries could not be decoded (first at raft index %d), so the log cannot be matched against the clients' requests in full, nor replayed past them; %s",
			n, s.firstOther, msg)
		return res
	}
	res.Verdict, res.Message = OK, msg
	return res
}

// internalKinds names how many internal entries of each kind p ignored,
// kinds in name order: "9 internal entries (1 cluster-version, 3
// conf-change, 1 empty, 4 member-attr)". Entries that do not decode are
// named apart.
func internalKinds(kinds map[string]int) string {
	var names []string
	for k := range kinds {
		if k != evidence.KindOther {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	n := 0
	for i, k := range names {
		n += kinds[k]
		names[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	return fmt.Sprintf("%d internal entries (%s)", n, strings.Join(names, ", "))
}

// derive reads every client operation as the model sees it. Reads that
// tell nothing are dropped, and writes etcd declined go to p.declined.
func derive(clients []history.Client) (*Patched, []derived) {
	p := &Patched{}
	n := 0
	for _, cl := range clients {
		n += len(cl.Operations)
	}
	ops := make([]derived, 0, n) // allocated once, not grown by doubling
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
			o := derived{
				Op: Op{ClientID: cl.ID, Call: rec.Call, Return: rec.Return, Open: resp.Status == model.StatusUnknown,
					Request: req, Response: resp, Source: fmt.Sprintf("client %d #%d", cl.ID, i)},
				rec: rec,
			}
			if declined {
				// Nothing was applied and nothing was answered: a write
				// the model need not place. Its value must never appear,
				// unless it is a lease request an earlier attempt of which
				// was applied (settle).
				o.declined, o.drop = true, true
				p.declined = append(p.declined, o)
				continue
			}
			ops = append(ops, o)
		}
	}
	return p, ops
}

type derived struct {
	Op
	rec history.Operation
	// drop: settled as never applied, or declined.
	drop bool
	// declined: etcd declined it (model.Declined); it is in the history
	// only if the patch finds it applied.
	declined bool
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
	// The user and auth revision are left out: a committed entry's header
	// names no user while auth is disabled, whoever sent it, and carries
	// an auth revision the client never knew.
	r.User, r.AuthRevision = "", 0
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain data always marshals
	}
	return string(b), false
}

// finding is one violation the patch found: a line for the message, an
// explanation for a person, and the sources of the operations and entries
// involved, the one the explanation starts from first.
type finding struct {
	msg, why string
	involved []string
}

// settled is what settle found besides the patched history.
type settled struct {
	findings []finding
	replayed []model.State
	events   []model.Event
	auth     []AuthAt
	// refused counts the committed entries etcd's applier refused
	// (revisions.refused).
	refused int
	// matched counts the committed entries holding a request that changes
	// something, each matched against what the clients sent.
	matched int
	// firstOther is the raft index of the first entry that did not decode.
	firstOther uint64
	// revs are the replay's revisions around each entry.
	revs revisions
}

// settle fills p.Ops from ops and the committed log, and returns the
// violations the log itself shows, the replayed states and events, and
// what it matched. The log is replayed by the applier's rules.
func settle(p *Patched, ops []derived, clients []history.Client, log *evidence.Log, rules model.Rules) settled {
	var out settled
	revs, replayed, events, auth := replay(log, rules)
	out.replayed, out.events, out.auth, out.revs = replayed, events, auth, revs
	p.Internal = map[string]int{}
	for _, e := range log.Entries {
		if e.Request == nil {
			if e.Kind == evidence.KindOther && p.Internal[e.Kind] == 0 {
				out.firstOther = e.Index
			}
			p.Internal[e.Kind]++
		}
	}
	// Absence from the log means never applied only when the log is
	// complete and every entry of it decodes.
	complete := log.Complete && p.Internal[evidence.KindOther] == 0
	// A lease request etcd declined may have been applied by an earlier
	// attempt clientv3 resent: it takes part, dropped unless settled so.
	for _, d := range p.declined {
		if d.rec.Request.LeaseGrant != nil || d.rec.Request.LeaseRevoke != nil {
			ops = append(ops, d)
		}
	}
	seen := newObservers(ops)

	committed := map[string][]int{}     // identity -> indices into log.Entries
	refusedCopies := map[string][]int{} // identity -> entries refused at apply
	var committedOrder []string
	for i, e := range log.Entries {
		if e.Request != nil && revs.refused[i] != "" {
			if id, unique := identity(*e.Request, 0); unique {
				refusedCopies[id] = append(refusedCopies[id], i)
			}
			// Refused at apply, it changed nothing, and clientv3 resends
			// a request refused for an old auth revision with a new token
			// (its retry interceptor's shouldRefreshToken): the copy that
			// counts is the one applied. The client's answer, if it is
			// this refusal, is the model's to judge. (A write refused
			// under a NOSPACE alarm is not resent: its client saw the
			// error, which derive makes an unknown outcome, settled as
			// never applied when no other copy is in the log.)
			out.refused++
			continue
		}
		if e.Request != nil && !e.Request.ReadOnly() {
			id, _ := identity(*e.Request, 0)
			if committed[id] == nil {
				committedOrder = append(committedOrder, id)
			}
			committed[id] = append(committed[id], i)
			out.matched++
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
		switch {
		case o.declined:
			g.declined = append(g.declined, i)
		case o.Response.Status == model.StatusOK:
			g.acked = append(g.acked, i)
			g.revokeAcked = g.revokeAcked || g.revoke
		case o.Response.Status == model.StatusUnknown:
			g.unknown = append(g.unknown, i)
		case o.Response.Status == model.StatusFailed:
			g.maybeCommitted = true
			g.failed = append(g.failed, i)
		}
	}

	out.findings = unsent(log, revs, committed, committedOrder, clients)

	taken := map[int]bool{} // entries a refused lease request was settled to
	for _, id := range order {
		g := groups[id]
		entries := committed[id]
		unique := g.unique
		took := tookEffect(log, entries, revs)
		switch {
		case unique && len(took) > 1 && log.Entries[took[0]].Request.LeaseGrant != nil:
			// (A put or transaction committed twice was sent fewer times
			// than it is committed: unsent names it.)
			out.findings = append(out.findings, grantTwice(log, took, ops, g))
		case unique && len(entries) == 0 && len(g.acked) > 0 && complete && uncommitted[id] == 0 && len(refusedCopies[id]) > 0:
			out.findings = append(out.findings, refusedAcked(ops[g.acked[0]], log, revs, refusedCopies[id]))
		case unique && len(entries) == 0 && len(g.acked) > 0 && complete && uncommitted[id] == 0:
			o := ops[g.acked[0]]
			out.findings = append(out.findings, finding{
				msg: fmt.Sprintf("%s was acknowledged at revision %d by %s but is in no member's WAL: an acknowledged write was lost",
					describeRecord(o.rec.Request), o.Response.Revision, o.Source),
				why:      lostWrite(o, log, revs),
				involved: []string{o.Source},
			})
		}
		if len(g.acked)+len(g.unknown) == 0 {
			switch {
			case unique && len(took) == 1 && log.Entries[took[0]].Request.LeaseGrant != nil:
				// No client copy of the grant was answered, yet its lease
				// ID, used by no other request, was granted once in the
				// log: clientv3 resends a grant, and the error answers a
				// later attempt (refused as existing: one committed after
				// the grant; declined: one never proposed). The grant was
				// applied, where the log says.
				if i, ok := resentGrant(ops, g); ok {
					settleResent(p, &ops[i], took[0], revs, seen)
				}
			case g.revoke && revs.effective != nil:
				if i, e, ok := resentRevoke(ops, g, log, entries, revs, seen); ok {
					settleResent(p, &ops[i], e, revs, seen)
					taken[e] = true
				}
			}
		}
		// A revoke of unknown outcome: a lease is granted once in a run (a
		// second grant of its ID is a finding, grantTwice), so the complete
		// log holds at most one revoke of it that took effect. If this copy
		// took effect, it is that entry, which has its operation already:
		// the client's acknowledged revoke, or the operation serverOps
		// makes of it, pinned at the entry's revisions and open to being
		// any client's (expiryOp, as this group has copies of unknown
		// outcome). Else it changed nothing. Either way the copy adds no
		// effect of its own, and is left out.
		standIn := g.revoke && complete && uncommitted[id] == 0 && revs.effective != nil
		// Identical requests without a unique value, only some of whose
		// copies of unknown outcome the complete log holds: pinIdentical
		// places the earliest called at the free entries, the others in
		// none.
		partial := !unique && !g.maybeCommitted && !g.revoke && complete && uncommitted[id] == 0 &&
			len(entries) > len(g.acked) && len(entries) < len(g.acked)+len(g.unknown) && sameRequests(ops, g.unknown)
		for _, i := range g.unknown {
			o := &ops[i]
			switch {
			case standIn:
				o.drop = true
				p.StoodFor++
				continue
			case partial:
				continue // settled below, by pinIdentical
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
			case unique && len(entries) == 0 && uncommitted[id] == 0 && complete,
				!unique && len(entries) == len(g.acked) && uncommitted[id] == 0 && complete:
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
		if partial {
			if applied, ok := pinIdentical(ops, g, entries, revs, seen); ok {
				p.Applied += applied
				p.NotApplied += len(g.unknown) - applied
			} else {
				p.Open += len(g.unknown)
			}
		}
	}
	p.Ops = make([]Op, 0, len(ops)) // room for every client operation, grown once more for the server's
	for _, o := range ops {
		if o.drop {
			continue
		}
		p.Ops = append(p.Ops, o.Op)
	}
	p.Ops = append(p.Ops, serverOps(p, log, revs, seen, groups, taken)...)
	p.noWitness = planWitness(p.Ops, log, revs)
	return out
}

// settleResent makes o, a lease request a client saw refused, the request
// applied at log entry e by an earlier attempt clientv3 resent, its return
// bounded by the first response that shows it.
func settleResent(p *Patched, o *derived, e int, revs revisions, seen observers) {
	o.Response = revs.applied(e)
	o.Return = bound(o.Call, seen.first(revs.shownBy(e)))
	o.Open = o.Return < 0
	o.drop = false
	p.Applied++
	p.Resent++
}

// resentGrant picks, among the refused copies of a grant no copy of which
// was answered, the one that may have been applied by an earlier attempt:
// one refused as "lease already exists" (its last attempt was committed
// after the grant) or declined (its last attempt was never proposed); the
// first called.
func resentGrant(ops []derived, g *group) (int, bool) {
	best := -1
	for _, i := range append(append([]int(nil), g.failed...), g.declined...) {
		if o := ops[i]; o.declined || o.Response.Error == model.ErrLeaseExists {
			if best < 0 || o.Call < ops[best].Call {
				best = i
			}
		}
	}
	return best, best >= 0
}

// resentRevoke picks, among the refused copies of a revoke no copy of
// which was answered, the one applied at the revoke's only effective copy
// in the log by an earlier attempt, and that copy: one declined, or one
// refused as "requested lease not found" (an apply-time answer) with an
// ineffective copy after the effective one to give that answer; called
// before any response that shows the effective copy returned. The first
// called of those.
func resentRevoke(ops []derived, g *group, log *evidence.Log, entries []int, revs revisions, seen observers) (op, entry int, ok bool) {
	effective, after := -1, 0
	for _, e := range entries {
		switch {
		case revs.effective[e] && effective >= 0:
			return 0, 0, false // taken twice: not one request's
		case revs.effective[e]:
			effective = e
		case effective >= 0:
			after++
		}
	}
	if effective < 0 {
		return 0, 0, false
	}
	shown := seen.first(revs.shownBy(effective))
	best := -1
	for _, i := range append(append([]int(nil), g.failed...), g.declined...) {
		o := ops[i]
		if !o.declined && (o.Response.Error != model.ErrLeaseNotFound || after == 0) {
			continue
		}
		if shown >= 0 && shown < o.Call {
			continue // shown before the client called: not its attempt
		}
		if best < 0 || o.Call < ops[best].Call {
			best = i
		}
	}
	return best, effective, best >= 0
}

// grantTwice explains a lease grant that took effect more than once.
func grantTwice(log *evidence.Log, took []int, ops []derived, g *group) finding {
	idx := make([]string, len(took))
	var involved []string
	for i, e := range took {
		idx[i] = fmt.Sprint(log.Entries[e].Index)
	}
	what, source := describeRecord(*log.Entries[took[0]].Request), "sent by no client"
	var all []int
	for _, copies := range [][]int{g.acked, g.unknown, g.failed, g.declined} {
		all = append(all, copies...)
	}
	if len(all) > 0 {
		source = ops[all[0]].Source
		involved = append(involved, source)
	}
	for _, e := range took {
		involved = append(involved, walSource(log, e))
	}
	return finding{
		msg: fmt.Sprintf("%s was committed and took effect %d times (raft indices %s): one request applied more than once",
			what, len(took), strings.Join(idx, ", ")),
		why: fmt.Sprintf("%s (%s) is identified by a lease ID no other request uses, yet the committed raft log holds it %d times, at indices %s, and each copy changed the store when replayed, so etcd applied it %d times; a request is applied at most once.",
			what, source, len(took), strings.Join(idx, ", "), len(took)),
		involved: involved,
	}
}

func walSource(log *evidence.Log, e int) string {
	return fmt.Sprintf("wal index %d", log.Entries[e].Index)
}

// sender is one client operation that sent a request through raft, as
// the raw record holds it.
type sender struct {
	source string // "client 3 #17"
	// refused is the error etcd refused it with before proposing it
	// (model.RefusedBeforeProposal), or "".
	refused string
}

// sentRequests is what the clients sent through raft, by identity, read
// from the raw record: every operation of every client, also those the
// model leaves out (declined, unsupported). copies is how many committed
// copies of each identity the requests account for: one for each that etcd
// may have proposed, none for one refused before proposal. (For a lease
// grant or revoke, which clientv3 resends, the count is not a limit.)
// anonymous counts the lease grants that let etcd choose the ID and whose
// answer, so the ID, is unknown.
func sentRequests(clients []history.Client) (senders map[string][]sender, copies map[string]int, anonymous int) {
	senders, copies = map[string][]sender{}, map[string]int{}
	for _, cl := range clients {
		for i, rec := range cl.Operations {
			r := rec.Request
			if r.ReadOnly() || r.LeaseKeepAlive != nil || r.Kind() == "" {
				continue // not proposed to raft
			}
			var lease int64
			if g := r.LeaseGrant; g != nil {
				if rec.Response != nil && rec.Response.LeaseGrant != nil {
					lease = rec.Response.LeaseGrant.ID
				}
				if g.ID == 0 && lease == 0 {
					anonymous++
					continue
				}
			}
			id, _ := identity(r, lease)
			s := sender{source: fmt.Sprintf("client %d #%d", cl.ID, i)}
			if rec.Outcome() == history.Failed && model.RefusedBeforeProposal(rec.Error.Message) {
				s.refused = rec.Error.Message
			} else {
				copies[id]++
			}
			senders[id] = append(senders[id], s)
		}
	}
	return senders, copies, anonymous
}

// unsent checks every committed request against what the clients sent
// (the rules are PatchStage's): a put, delete, write transaction or
// compaction committed more times than it was sent and not refused before
// proposal; a lease grant of an ID no client sent a grant for; and a lease
// revoke no client sent that changed nothing although no grant of its
// lease took effect before it. order lists the identities in committed in
// log order.
func unsent(log *evidence.Log, revs revisions, committed map[string][]int, order []string, clients []history.Client) []finding {
	senders, copies, anonymous := sentRequests(clients)
	granted := map[int64]int{} // lease ID -> the first entry whose grant of it took effect
	if revs.effective != nil {
		for i, e := range log.Entries {
			if r := e.Request; r != nil && r.LeaseGrant != nil && revs.effective[i] {
				if _, ok := granted[r.LeaseGrant.ID]; !ok {
					granted[r.LeaseGrant.ID] = i
				}
			}
		}
	}
	var out []finding
	for _, id := range order {
		entries := committed[id]
		r := *log.Entries[entries[0]].Request
		sent := senders[id]
		switch {
		case r.LeaseGrant != nil:
			if len(sent) == 0 && anonymous == 0 {
				out = append(out, notSent(log, r, entries, fmt.Sprintf(
					"etcd grants no lease of its own, and clientv3 resends a grant a client sent with its ID, which the record would hold; no client sent a grant of lease %d.", r.LeaseGrant.ID)))
			}
		case r.LeaseRevoke != nil:
			if len(sent) > 0 || revs.effective == nil {
				continue // a client's, resent; or, unknown, the leader's
			}
			var bad []int
			for _, e := range entries {
				if g, ok := granted[r.LeaseRevoke.ID]; !revs.effective[e] && (!ok || g > e) {
					bad = append(bad, e)
				}
			}
			if len(bad) > 0 {
				out = append(out, notSent(log, r, bad, fmt.Sprintf(
					"The leader proposes a revoke of its own only for an expired lease its lessor holds, and a lessor holds only a lease granted in the log, yet no grant of lease %d took effect before it.", r.LeaseRevoke.ID)))
			}
		case len(entries) > copies[id]:
			if len(sent) == 0 {
				out = append(out, notSent(log, r, entries,
					"etcd commits a put, delete, transaction, compaction or auth admin request only when a client sends one (the harness starts the members without auto-compaction), so it applied a request nobody sent."))
				continue
			}
			out = append(out, overCommitted(log, r, entries, sent, copies[id]))
		}
	}
	return out
}

// notSent explains committed copies of a request no client sent.
func notSent(log *evidence.Log, r history.Request, entries []int, reason string) finding {
	what, at := describeRecord(r), rafts(log, entries)
	f := finding{
		msg: fmt.Sprintf("%s was committed at %s, but no client sent it", what, at),
		why: fmt.Sprintf("The committed raft log holds %s at %s, but no client's record holds this request, answered, refused or of unknown outcome. %s",
			what, at, reason),
	}
	for _, e := range entries {
		f.involved = append(f.involved, walSource(log, e))
	}
	return f
}

// overCommitted explains a put, delete, transaction or compaction
// committed more times than its senders account for (copies).
func overCommitted(log *evidence.Log, r history.Request, entries []int, sent []sender, copies int) finding {
	what, at := describeRecord(r), rafts(log, entries)
	var f finding
	for _, s := range sent {
		f.involved = append(f.involved, s.source)
	}
	if len(f.involved) > 10 {
		f.involved = f.involved[:10]
	}
	for _, e := range entries {
		f.involved = append(f.involved, walSource(log, e))
	}
	const noResend = "clientv3 never resends a put, delete, transaction or compaction once etcd may have it (its retry policy for them is non-repeatable)"
	if copies == 0 && len(sent) == 1 {
		s := sent[0]
		f.msg = fmt.Sprintf("%s (%s) was refused with '%s', an error etcd gives before proposing, yet %s holds it", what, s.source, s.refused, at)
		f.why = fmt.Sprintf("%s (%s) was refused with '%s', which etcd returns before it proposes a request to raft; %s, so no attempt of it was proposed. Yet the committed raft log holds it at %s: etcd applied a write it had refused.",
			what, s.source, s.refused, noResend, at)
		return f
	}
	if copies == 0 {
		f.msg = fmt.Sprintf("%s was sent %s (%s), refused each time with an error etcd gives before proposing, yet %s holds it", what, times(len(sent)), senderList(sent), at)
		f.why = fmt.Sprintf("%s was sent %s (%s), each time refused with an error etcd returns before it proposes a request to raft; %s, so no attempt of it was proposed. Yet the committed raft log holds it at %s: etcd applied a write it had refused.",
			what, times(len(sent)), senderList(sent), noResend, at)
		return f
	}
	extra := len(entries) - copies
	more := fmt.Sprintf("%d more copies were", extra)
	if extra == 1 {
		more = "1 more copy was"
	}
	f.msg = fmt.Sprintf("%s was sent %s (%s) but committed %s, at %s", what, times(len(sent)), senderList(sent), times(len(entries)), at)
	f.why = fmt.Sprintf("%s was sent %s (%s) and committed %s, at %s; %s, and etcd proposes a request it is sent once, so each copy sent accounts for one committed copy at most (none when refused before proposal): %s committed than were sent.",
		what, times(len(sent)), senderList(sent), times(len(entries)), at, noResend, more)
	return f
}

// senderList names the senders, at most 5, with the refusals.
func senderList(sent []sender) string {
	var names []string
	for i, s := range sent {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(sent)-5))
			break
		}
		if s.refused != "" {
			names = append(names, fmt.Sprintf("%s, refused before proposal with '%s'", s.source, s.refused))
		} else {
			names = append(names, s.source)
		}
	}
	return strings.Join(names, "; ")
}

// rafts names log entries by raft index: "raft index 4", "raft indexes 2
// and 4", "raft indexes 2, 4 and 6"; at most 10.
func rafts(log *evidence.Log, entries []int) string {
	if len(entries) == 1 {
		return fmt.Sprintf("raft index %d", log.Entries[entries[0]].Index)
	}
	var idx []string
	for i, e := range entries {
		if i == 10 {
			break
		}
		idx = append(idx, fmt.Sprint(log.Entries[e].Index))
	}
	if more := len(entries) - len(idx); more > 0 {
		return fmt.Sprintf("raft indexes %s and %d more", strings.Join(idx, ", "), more)
	}
	return fmt.Sprintf("raft indexes %s and %s", strings.Join(idx[:len(idx)-1], ", "), idx[len(idx)-1])
}

// times says a count in words: "once", "twice", "3 times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
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

// refusedAcked is an acknowledged write whose every committed copy (the
// entries at refused, indices into log.Entries) the replay refuses at
// apply: it is in the log, so it was not lost, but etcd answered it as
// applied where the model's rules (replayed with the user and auth
// revision the entry's header carries) refuse it: etcd applied what the
// model refuses, or acknowledged a write it did not apply.
func refusedAcked(o derived, log *evidence.Log, revs revisions, refused []int) finding {
	var copies []string
	for _, i := range refused {
		e := log.Entries[i]
		copies = append(copies, fmt.Sprintf("raft index %d (user %q, auth revision %d): %s", e.Index, e.Request.User, e.Request.AuthRevision, revs.refused[i]))
	}
	by := ""
	if o.rec.Response != nil && o.rec.Response.Header.MemberID != 0 {
		by = fmt.Sprintf(" by member %x", o.rec.Response.Header.MemberID)
	}
	involved := []string{o.Source}
	for _, i := range refused {
		involved = append(involved, walSource(log, i))
	}
	return finding{
		msg: fmt.Sprintf("%s was acknowledged at revision %d%s (%s), but the replay refuses its only committed copy at apply (%s): etcd applied a write the model refuses, or acknowledged one it did not apply",
			describeRecord(o.rec.Request), o.Response.Revision, by, o.Source, strings.Join(copies, "; ")),
		why: fmt.Sprintf("%s (%s) was acknowledged at revision %d at %s%s. The committed raft log is complete and holds the request %s: %s. "+
			"Replaying the log, the model's applier refuses every copy with the error given, as etcd's applier refuses a request after commit, with no effect; "+
			"yet the client was told it was applied. Either etcd applied it (its permission check, or its auth revision check, decided otherwise than the model's), "+
			"or it answered success for a write it did not apply. It is not a lost write: the log holds it.",
			describeRecord(o.rec.Request), o.Source, o.Response.Revision, o.Return.Round(time.Millisecond), by, times(len(refused)), strings.Join(copies, "; ")),
		involved: involved,
	}
}

// pinIdentical gives the applied copies of one request without a unique
// value (say, delete(k) sent by several clients) the revisions their log
// entries were applied at. The copies are identical, so which copy went to
// which entry does not matter to the state; the entries left once the
// acknowledged copies have taken the revisions they reported go to the
// unknown copies in order of their calls, earliest first, which is a
// feasible assignment whenever any is. Without a full match nothing is
// pinned, and the copies stay open.
//
// With fewer free entries than copies of unknown outcome (the log complete,
// no copy past the commit index), the earliest called copies take the
// free entries, in log order, and the others are settled as never applied
// (dropped). Every entry is some copy's, and a copy not in the log took no
// effect; so in any linearization that agrees with the log, the free
// entries take effect in log order (their pinned revisions ascend; entries
// at one revision with identical requests and answers are interchangeable)
// at points t_1 <= ... <= t_m, each made by a different copy called before
// it. Then at least j copies were called before t_j, so the j-th earliest
// call is before t_j too: the copies are identical (sameRequests) and of
// unknown outcome, open to the end, so their calls are all that tells
// them apart, and giving entry j to the j-th earliest copy and no effect
// to the rest is a linearization too. The settled history has one exactly
// when one that agrees with the log exists. It returns how many copies
// it settled as applied, and false when it pinned nothing.
func pinIdentical(ops []derived, g *group, entries []int, revs revisions, seen observers) (int, bool) {
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
			return 0, false
		}
		k := effect{revs.after[e], revs.after[e] != revs.before[e]}
		left[k] = append(left[k], e)
	}
	for _, i := range g.acked {
		k := effect{ops[i].Response.Revision, ops[i].rec.Wrote()}
		if len(left[k]) == 0 {
			return 0, false
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
	if len(free) > len(unknown) {
		return 0, false
	}
	for k, i := range unknown {
		o := &ops[i]
		if k >= len(free) {
			o.drop = true
			continue
		}
		o.Response = revs.applied(free[k])
		o.Return = bound(o.Call, seen.first(revs.shownBy(free[k])))
		o.Open = o.Return < 0
	}
	return len(free), true
}

// sameRequests says whether the operations sent one request, user and
// auth revision included, which identity leaves out: copies that differ
// only there may not be interchangeable under auth.
func sameRequests(ops []derived, idx []int) bool {
	for _, i := range idx[1:] {
		if !reflect.DeepEqual(ops[i].Request, ops[idx[0]].Request) {
			return false
		}
	}
	return true
}

// serverOps are the committed requests of etcd's own that change the
// store, as operations of their own: the leader's revokes of expired
// leases (see expiryOp), in raft order. taken are the entries a client's
// refused revoke was settled to (see PatchStage); none of them is an
// expiry. Every other request in the log is a client's, or changes
// nothing (see unsent).
func serverOps(p *Patched, log *evidence.Log, revs revisions, seen observers, groups map[string]*group, taken map[int]bool) []Op {
	var out []Op
	used := map[string]int{}
	for i, e := range log.Entries {
		if e.Request == nil || e.Request.LeaseRevoke == nil {
			continue
		}
		id, _ := identity(*e.Request, 0)
		used[id]++
		if taken[i] {
			continue
		}
		if op, ok := expiryOp(log, revs, seen, groups[id], i, used[id]); ok {
			op.entry = i + 1
			p.Server++
			out = append(out, op)
		}
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
// else (also when a client's revoke was refused, and the patch did not
// find it applied there by an attempt clientv3 resent) it is the leader's
// expiry, which may not take effect before the lease's deadline, bounded by
// the first response that shows a later revision. Without a replay every copy beyond the answered ones is an
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
		// Whoever sent it, the replayed log pins where it took effect.
		open.Response = revs.applied(i)
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
	// declined are indices into ops of the copies of a lease request etcd
	// declined (model.Declined), dropped unless the patch settles one as
	// applied by an earlier attempt.
	declined []int
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
	// refused is, for each entry the replay reached, the error etcd's
	// applier refuses it with after it was committed
	// (model.RefusedAtApply: an auth check), or "".
	refused []string
}

// replay applies the committed log to the model and returns the store's
// revisions around each entry, -1 where they are unknown: after a request
// the model cannot apply or an entry that does not decode (which may hold
// one), or everywhere when the log does not start at index 1. When the whole log replays, it also returns the state at every
// revision and the events of every write, in revision order.
//
// It also returns the auth states the log went through (AuthAt), the
// first being the new cluster's, while the replay reached them. The model
// applies the entries by the members' applier rules.
func replay(log *evidence.Log, rules model.Rules) (revisions, []model.State, []model.Event, []AuthAt) {
	revs := revisions{before: make([]int64, len(log.Entries)), after: make([]int64, len(log.Entries)), effective: make([]bool, len(log.Entries)),
		refused: make([]string, len(log.Entries))}
	state := model.InitialStateWith(rules)
	ok := log.Complete
	var states []model.State
	var events []model.Event
	var auth []AuthAt
	nospace := map[uint64]bool{} // members with a NOSPACE alarm raised
	if ok {
		states = []model.State{{}, state} // index 0 unused: revisions start at 1
		auth = []AuthAt{{Revision: state.Revision, State: state}}
	}
	for i, e := range log.Entries {
		revs.before[i], revs.after[i] = -1, -1
		if ok {
			revs.before[i] = state.Revision
		}
		if ok && e.Request == nil && e.Kind == evidence.KindOther {
			ok = false
			revs.before[i] = -1
			continue
		}
		switch e.Alarm {
		case "ACTIVATE NOSPACE":
			nospace[e.AlarmMember] = true
		case "DEACTIVATE NOSPACE":
			delete(nospace, e.AlarmMember)
		}
		if ok && e.Request != nil {
			req, err := model.RequestFromRecord(*e.Request)
			if err != nil {
				ok = false
				revs.before[i] = -1
				continue
			}
			if len(nospace) > 0 && capped(req) {
				// etcd's capped applier refuses it without effect while
				// a NOSPACE alarm is raised (apply.go's applierV3Capped).
				revs.refused[i], revs.after[i] = model.ErrNoSpace, state.Revision
				continue
			}
			var evs []model.Event
			var resp model.Response
			prev := state
			state, resp, evs = state.Apply(req)
			revs.effective[i] = resp.Status == model.StatusOK
			if resp.Status == model.StatusFailed && model.RefusedAtApply(resp.Error) {
				revs.refused[i] = resp.Error
			}
			if state.AuthRevision() != prev.AuthRevision() || state.AuthEnabled() != prev.AuthEnabled() {
				auth = append(auth, AuthAt{Revision: state.Revision, Index: e.Index, State: state})
			}
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
		states, events, revs.effective, auth = nil, nil, nil, nil
	}
	return revs, states, events, auth
}

// capped reports whether etcd's capped applier refuses req: a put, a
// transaction with a put in either branch (at any depth: its quota cost is
// not zero), a lease grant.
func capped(req model.Request) bool {
	switch req.Type {
	case model.LeaseGrant:
		return true
	case model.Txn:
		return txnPuts(req.Txn)
	}
	return false
}

func txnPuts(t *model.TxnRequest) bool {
	for _, ops := range [][]model.Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Type == model.OpPut || (op.Type == model.OpTxn && txnPuts(op.Txn)) {
				return true
			}
		}
	}
	return false
}

// AuthAt is an auth state of the replayed log: the state an entry that
// changed auth left (or the new cluster's), with the store's revision at
// the time and the entry's raft index (0 for the first).
type AuthAt struct {
	Revision int64
	Index    uint64
	State    model.State
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

package validate

import (
	"slices"
	"sort"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// The watch check "permitted": with auth enabled, etcd checks a watch's
// permission once, when it creates the watch. Its gRPC watch server
// (etcdserver/api/v3rpc/watch.go, recvLoop, in v3.5.35, v3.6.16 and
// v3.7.3 alike) asks the auth store whether the stream's user may read the
// whole range [key, range_end) (IsRangePermitted, an empty key standing
// for "\x00") and either creates the watch or answers with a created and
// canceled response whose cancel reason is "permission denied". Its send
// loop never checks again.
//
// So a change of permission during a watch does not touch it: a watch
// created while its user could read the range goes on delivering every
// event in it after the permission is revoked, the role taken away or the
// user deleted, and one refused stays refused after the permission is
// granted. The check holds etcd to exactly that: it judges each watch by
// the auth state at its creation alone, and an event after a later revoke
// is no violation. A watch the harness opens again after a stream error is
// a new creation, judged by its own.
//
// Which auth state did the member have at the creation? The created
// response's header carries the member's revision R, read just after the
// check, so the member had applied no entry past the last one before
// revision R+1. It had applied at least every entry up to the revision its
// earlier answers showed (the highest header revision of any response by
// the same member, to any client, that returned before the watch was
// called: a member's applied state only moves forward). The candidate
// auth states are those in effect anywhere between the two; a watch is
// flagged only when every candidate agrees: none lets the user read the
// range yet the watch delivered an event, or every one lets it and the
// watch was refused with "permission denied".

// shown is one answer of a member: when it returned, and the highest
// revision that member showed up to then.
type shown struct {
	at  time.Duration
	rev int64
}

// indexAuth keeps the replayed auth states and, when auth was enabled at
// some point, every member's answers by return time.
func (env *watchEnv) indexAuth(c *Check) {
	env.auth = c.Auth
	if !slices.ContainsFunc(env.auth, func(a AuthAt) bool { return a.State.AuthEnabled() }) {
		return
	}
	env.floor = map[uint64][]shown{}
	add := func(member uint64, at time.Duration, rev int64) {
		if member != 0 && rev > 0 {
			env.floor[member] = append(env.floor[member], shown{at, rev})
		}
	}
	for _, cl := range c.Clients {
		for _, op := range cl.Operations {
			if op.Response != nil {
				add(op.Response.Header.MemberID, op.Return, op.Response.Header.Revision)
			}
		}
	}
	for _, w := range c.Watches {
		for _, r := range w.Responses {
			add(r.Header.MemberID, r.Time, r.Header.Revision)
		}
	}
	for m, ss := range env.floor {
		sort.Slice(ss, func(i, j int) bool { return ss[i].at < ss[j].at })
		for i := 1; i < len(ss); i++ {
			ss[i].rev = max(ss[i].rev, ss[i-1].rev)
		}
		env.floor[m] = ss
	}
}

// memberFloor is the highest revision member showed in an answer that
// returned before t, 1 if none.
func (env *watchEnv) memberFloor(member uint64, t time.Duration) int64 {
	ss := env.floor[member]
	i := sort.Search(len(ss), func(i int) bool { return ss[i].at >= t })
	if i == 0 {
		return 1
	}
	return ss[i-1].rev
}

// authBetween is every auth state in effect at some point of the log
// while the store's revision was from lo to hi.
func (env *watchEnv) authBetween(lo, hi int64) []model.State { return authBetween(env.auth, lo, hi) }

// authBetween is every state of auth (in log order) in effect at some
// point of the log while the store's revision was from lo to hi: the last
// one set before the log reached revision lo, and every one set at
// revision lo to hi.
func authBetween(auth []AuthAt, lo, hi int64) []model.State {
	var out []model.State
	for i, a := range auth {
		if a.Revision > hi {
			break
		}
		if next := i + 1; next == len(auth) || auth[next].Revision >= lo {
			out = append(out, a.State)
		}
	}
	return out
}

// checkPermitted is the check "permitted" on one stream; it returns the
// finding and how many items it read (the creation and the events), 0
// when auth was not enabled in any candidate state.
func (env *watchEnv) checkPermitted(w *history.Watch) (*WatchFinding, int) {
	if env.floor == nil {
		return nil, 0
	}
	created := slices.IndexFunc(w.Responses, func(r history.WatchResponse) bool { return r.Created })
	if created < 0 {
		return nil, 0
	}
	cr := w.Responses[created]
	lo := min(env.memberFloor(cr.Header.MemberID, w.Call), cr.Header.Revision)
	cands := env.authBetween(lo, cr.Header.Revision)
	if !slices.ContainsFunc(cands, model.State.AuthEnabled) {
		return nil, 0
	}
	key := w.Request.Key
	if key == "" {
		key = "\x00" // as etcd's watch server sets it
	}
	can := func(s model.State) bool { return s.CanRead(w.User, key, w.Request.RangeEnd) }
	n := 1
	for _, r := range w.Responses {
		n += len(r.Events)
	}
	switch {
	case cr.Canceled && cr.CancelReason == model.ErrPermissionDenied:
		if !slices.ContainsFunc(cands, func(s model.State) bool { return !can(s) }) {
			return watchFindingAt(created, cr.Header.Revision, "watch %d of user %q on %s was refused with %q, but the user could read the range in every auth state the member can have had at revision %d (from revision %d on)",
				w.ID, w.User, watchShowRange(w.Request), cr.CancelReason, cr.Header.Revision, lo), n
		}
	case !slices.ContainsFunc(cands, can):
		for i, r := range w.Responses {
			if len(r.Events) > 0 {
				return watchFindingAt(i, evRev(r.Events[0]), "watch %d of user %q on %s delivered %s, but the user could not read the range in any auth state the member can have had when it created the watch (revisions %d to %d)",
					w.ID, w.User, watchShowRange(w.Request), watchShowEvent(r.Events[0]), lo, cr.Header.Revision), n
			}
		}
	}
	return nil, n
}

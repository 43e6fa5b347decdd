package validate

import (
	"fmt"
	"time"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// earlyExpiry looks for a leader's expiry that took effect before a
// deadline etcd had acknowledged: a lease granted once, renewed by a
// keepalive that etcd answered with a TTL, then revoked by an expiry the
// evidence shows applied before the TTL ran out after that renewal. It
// returns the first it finds.
//
// It decides nothing the search would not: in every order of the history
// the grant comes first (nothing else creates the lease), the keepalive
// before the expiry (after it etcd would have answered TTL 0), and the
// expiry last, where the model (State.Apply, the one semantics) refuses
// it. So one such triple makes the whole history illegal, and finding it
// directly turns what could be a long search, or a search that times out,
// into a FAIL that names the lease. Leases granted more than once, or
// granted by a request of unknown outcome too, are left to the search, as
// are renewals and expiries of unknown outcome.
//
// An early expiry is what etcd #15247 looked like: a leader that was
// blocked (on a WAL write, say) or paused for longer than a TTL still held
// itself primary when it ran again, and its lessor, which never saw the
// renewals a newer leader answered in the meantime, revoked the lease.
func earlyExpiry(ops []Op) (earlyRevoke, bool) {
	type lease struct {
		grants []*Op
		renews []*Op
		// open: a grant of unknown outcome, which may have made another
		// lease of the same ID.
		open bool
	}
	leases := map[int64]*lease{}
	var expiries []*Op
	get := func(id int64) *lease {
		l := leases[id]
		if l == nil {
			l = &lease{}
			leases[id] = l
		}
		return l
	}
	for i := range ops {
		o := &ops[i]
		r := o.Request.Lease
		if r == nil {
			continue
		}
		if o.Open || o.Response.Status == model.StatusUnknown {
			if o.Request.Type == model.LeaseGrant {
				get(r.ID).open = true
			}
			continue
		}
		switch {
		case o.Request.Type == model.LeaseGrant && took(o.Response):
			get(r.ID).grants = append(get(r.ID).grants, o)
		case o.Request.Type == model.LeaseKeepAlive && o.Response.Status == model.StatusOK &&
			o.Response.Lease != nil && o.Response.Lease.TTL > 0:
			get(r.ID).renews = append(get(r.ID).renews, o)
		case o.Request.Type == model.LeaseRevoke && r.Expiry && r.Before > 0 && took(o.Response):
			expiries = append(expiries, o)
		}
	}
	for _, e := range expiries {
		l := leases[e.Request.Lease.ID]
		if l == nil || len(l.grants) != 1 || l.open {
			continue
		}
		g := l.grants[0]
		granted, _, _ := model.InitialState().Apply(g.Request)
		// The grant promises the lease until its TTL runs out, and each
		// keepalive etcd answered with a TTL until that runs out again.
		for _, k := range append([]*Op{g}, l.renews...) {
			s, ttl := granted, g.Request.Lease.TTL
			if k != g {
				if k.Call < g.Call {
					continue
				}
				var resp model.Response
				s, resp, _ = granted.Apply(k.Request)
				ttl = resp.Lease.TTL
			}
			if _, resp, _ := s.Apply(e.Request); resp.Status != model.StatusFailed {
				continue
			}
			what, What := "a keepalive", "A keepalive"
			if k == g {
				what, What = "the grant", "The grant"
			}
			before := e.Request.Lease.Before
			deadline := k.Call + time.Duration(ttl)*time.Second
			msg := fmt.Sprintf("lease %d was revoked by the leader's expiry (%s), applied by %s, %s before %s: %s (%s) sent at %s was answered with TTL %ds",
				e.Request.Lease.ID, e.Source, before, (deadline - before).Round(time.Millisecond), deadline, what, k.Source, k.Call, ttl)
			expl := fmt.Sprintf("Lease %d was granted by %s with TTL %ds. %s, %s, sent at %s, was answered with a TTL of %ds, so etcd promised to keep the lease until at least %s. "+
				"The committed log holds the leader's expiry of it (%s), and the evidence shows it applied by %s, %s before that promise ran out. "+
				"No order of the history explains it: the grant comes first, the keepalive before the revoke (after it etcd answers TTL 0), and an expiry before the deadline is not etcd's behavior. "+
				"This is what etcd #15247 looked like: a leader blocked or paused for longer than the TTL, whose lessor never saw the renewals a newer leader answered, revoking the lease once it runs again.",
				e.Request.Lease.ID, g.Source, g.Request.Lease.TTL, What, k.Source, k.Call, ttl, deadline, e.Source, before, (deadline - before).Round(time.Millisecond))
			involved := []string{g.Source, e.Source}
			if k != g {
				involved = []string{g.Source, k.Source, e.Source}
			}
			return earlyRevoke{msg, expl, involved}, true
		}
	}
	return earlyRevoke{}, false
}

// earlyRevoke is what earlyExpiry found: the message, the explanation and
// the sources of the grant, the renewal and the expiry.
type earlyRevoke struct {
	message, explanation string
	involved             []string
}

// took says an operation took effect: etcd answered it, or the evidence
// shows it applied.
func took(r model.Response) bool {
	return r.Status == model.StatusOK || r.Status == model.StatusApplied
}

package validate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Bounds of the health stage. They were chosen from real 3-member runs on
// v3.7.3 (kill, pause-leader, blackhole-member, isolate-leader; the
// harness's prober polls every 250 ms with a 1 s timeout) and from
// cluster.TestProberSeesFaults:
//   - a paused or cut-off member's /readyz failed from its first poll
//     after the fault was in place, except one poll called within 250 ms of
//     a cut, which still said ok (a ReadIndex already under way when the
//     links were cut). HealthFaultGrace is four times that;
//   - members the fault did not touch reported not ready for at most one
//     poll (1 s: a timed-out poll, or 503 "leader changed") while a new
//     leader was elected, and served no request through consensus then.
//     etcd elects within about 2 election timeouts (1 s each by default).
//     HealthNotReadyBound is two of those plus one probe timeout.
const (
	// HealthFaultGrace is how long after the harness first saw a member
	// down, paused or cut off from a majority its readiness probes may
	// still say ready.
	HealthFaultGrace = time.Second
	// HealthNotReadyBound is how long a member may report not ready (or
	// not live) while it serves requests.
	HealthNotReadyBound = 3 * time.Second
	// healthProbeGap splits a stretch of failed probes: past it, no probe
	// spoke for the member (the prober itself was late).
	healthProbeGap = 1500 * time.Millisecond
)

// Health checks the members' health endpoints against what the members did
// and what the harness did to them (Input.Probes; see cluster.Prober for
// what /readyz, /livez and /health check in each release).
//
// A readiness probe is a poll of /readyz, or of /health on a release that
// does not serve /readyz; a liveness probe is a poll of /livez. A probe
// says ready (live) when it got 200 within its timeout; any other outcome
// (503, no answer, refused) says not ready. Answers 404 (endpoint not
// served) are ignored. Two guarantees are checked:
//
//  1. A faulted member does not say it is ready: no readiness probe that
//     was sent at least HealthFaultGrace after the member was down (no
//     process), paused (SIGSTOP) or cut off from a majority (its peer
//     links cut), and during which the member stayed so (Probe.Fault, read
//     at call and at return), got 200. The fault's start is the first
//     probe that saw it, or the Effect of an injection on the member that
//     came between that probe and the one before (Effect is taken once
//     the fault is in place).
//  2. A serving member does not say it is not ready: no member reported
//     not ready through a stretch [s, e] (failed readiness probes of an
//     unfaulted member with no other answer between them, in the order
//     they were answered: from the first one's call, or the answer before
//     it if later, to the last one's answer; see notOKStretches) while it
//     served, through consensus, a request sent at s+HealthNotReadyBound
//     or later and answered by e: a successful linearizable Range, Put,
//     DeleteRange or Txn whose response header names the member. The same
//     holds for liveness probes and any successful request. A request sent
//     while a fault aimed at the member was under way (from the
//     injection's start until it healed and the cluster recovered) is not
//     judged: then a readiness probe may time out while a request with a
//     longer deadline is served (a gofail sleep slows every apply; a
//     member restarted after a panic catches up a backlog), and that says
//     nothing against /readyz. The stage's message counts them.
//
// With no probe at all (a record from before probes), the verdict is
// Inconclusive.
type Health struct{}

// Name implements Validator.
func (Health) Name() string { return "health" }

// probeKind is a probe's kind: readiness or liveness.
func probeKind(p history.Probe) string {
	if p.Endpoint == "/livez" {
		return "live"
	}
	return "ready"
}

// faulted reports whether the probe ran while the harness held its member
// down, paused or cut off.
func faulted(p history.Probe) bool {
	switch p.Fault {
	case history.FaultDown, history.FaultPaused, history.FaultMinority:
		return true
	}
	return false
}

// served is one request a member answered.
type served struct {
	op        history.Operation
	ref       string
	consensus bool
}

// Validate implements Validator.
func (Health) Validate(_ context.Context, c *Check) Result {
	if len(c.Probes) == 0 {
		return Result{Verdict: Inconclusive, Message: "no health probe was recorded, so the members' health endpoints were not checked", CheckedWhat: "probes"}
	}
	byMember := map[string][]history.Probe{}
	ids := map[string]uint64{}
	for _, p := range c.Probes {
		if !p.Served() {
			continue
		}
		byMember[p.Member] = append(byMember[p.Member], p)
		if p.MemberID != 0 {
			ids[p.Member] = p.MemberID
		}
	}
	members := make([]string, 0, len(byMember))
	for m := range byMember {
		members = append(members, m)
	}
	sort.Strings(members)
	if len(members) == 0 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("none of %d health probes reached an endpoint the member serves", len(c.Probes)), CheckedWhat: "probes"}
	}
	servedBy := map[uint64][]served{}
	for _, cl := range c.Clients {
		for i, op := range cl.Operations {
			if op.Error != nil || op.Response == nil || op.Response.Header.MemberID == 0 {
				continue
			}
			r := op.Request
			consensus := r.Put != nil || r.DeleteRange != nil || r.Txn != nil || (r.Range != nil && !r.Range.Serializable)
			id := op.Response.Header.MemberID
			servedBy[id] = append(servedBy[id], served{op: op, ref: fmt.Sprintf("%s (client %d #%d)", describeRecord(op.Request), cl.ID, i), consensus: consensus})
		}
	}

	var violations []string
	var explanation string
	var faultedChecked, readiness, liveness int
	var longest time.Duration
	underFault := 0
	longestAt := ""
	var noID []string
	for _, m := range members {
		probes := byMember[m]
		sort.SliceStable(probes, func(i, j int) bool { return probes[i].Call < probes[j].Call })
		// Guarantee 1: when did the fault each probe saw begin?
		since := make([]time.Duration, len(probes))
		for i, p := range probes {
			since[i] = p.Call
			if i > 0 && probes[i-1].Fault == p.Fault {
				since[i] = since[i-1]
				continue
			}
			// An injection on this member that took effect after the
			// probe before, which saw another state, began this one.
			for _, inj := range c.Injections {
				if inj.Effect > 0 && inj.Effect <= p.Call && (i == 0 || inj.Effect > probes[i-1].Call) && slices.Contains(inj.Targets, m) {
					since[i] = min(since[i], inj.Effect)
				}
			}
		}
		for i, p := range probes {
			if probeKind(p) == "live" {
				liveness++
			} else {
				readiness++
			}
			if probeKind(p) != "ready" || !faulted(p) || p.Call < since[i]+HealthFaultGrace {
				continue
			}
			faultedChecked++
			if p.OK() {
				violations = append(violations, fmt.Sprintf("%s said ready at %v while %s since %v", m, p.Call.Round(time.Millisecond), p.Fault, since[i].Round(time.Millisecond)))
				if explanation == "" {
					explanation = fmt.Sprintf("%s answered %s with %d %q to a poll sent at %v and answered at %v. The harness had held it %s since %v at the latest (%s), and it stayed so until the answer came, "+
						"so it could not serve a linearizable request, yet it said it was ready, %v after the fault began (grace %v).%s",
						m, p.Endpoint, p.Status, p.Body, p.Call.Round(time.Millisecond), p.Return.Round(time.Millisecond), p.Fault, since[i].Round(time.Millisecond),
						faultMeaning(p.Fault), (p.Call - since[i]).Round(time.Millisecond), HealthFaultGrace, injectionsAt(c.Injections, m, p.Call))
				}
			}
		}
		// Guarantee 2.
		id, ok := ids[m]
		if !ok {
			noID = append(noID, m)
			continue
		}
		for _, kind := range []string{"ready", "live"} {
			for _, st := range notOKStretches(probes, kind) {
				s, e := st.From, st.To
				for _, sv := range servedBy[id] {
					if kind == "ready" && !sv.consensus {
						continue
					}
					if sv.op.Call < s || sv.op.Return > e {
						continue
					}
					if aimedAt(c.Injections, m, sv.op.Call) {
						underFault++
						continue
					}
					if d := sv.op.Call - s; d > longest {
						longest, longestAt = d, fmt.Sprintf("%s, %s from %v", m, kind, s.Round(time.Millisecond))
					}
					if sv.op.Call < s+HealthNotReadyBound {
						continue
					}
					word := map[string]string{"ready": "not ready", "live": "not live"}[kind]
					violations = append(violations, fmt.Sprintf("%s said %s from %v to %v while it served %s", m, word, s.Round(time.Millisecond), e.Round(time.Millisecond), sv.ref))
					if explanation == "" {
						explanation = fmt.Sprintf("%s (member %x) said it was %s in every one of %d polls from %v to %v (first: %s; last: %s). "+
							"Yet it served %s, sent at %v, %v into that stretch, and answered at %v, at revision %d: the member was able to serve%s while its endpoint said it could not, for longer than %v.%s",
							m, id, word, len(st.Probes), s.Round(time.Millisecond), e.Round(time.Millisecond), describeProbe(st.Probes[0]), describeProbe(st.Probes[len(st.Probes)-1]),
							sv.ref, sv.op.Call.Round(time.Millisecond), (sv.op.Call - s).Round(time.Millisecond), sv.op.Return.Round(time.Millisecond),
							sv.op.Response.Header.Revision, map[string]string{"ready": " a request through consensus", "live": ""}[kind], HealthNotReadyBound, injectionsAt(c.Injections, m, s))
					}
				}
			}
		}
	}
	if len(violations) > 0 {
		msg := violations[0]
		if len(violations) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(violations)-1)
		}
		return Result{Verdict: Illegal, Message: msg, Explanation: explanation, Checked: len(c.Probes), CheckedWhat: "probes"}
	}
	msg := fmt.Sprintf("%d readiness and %d liveness probes of %d members: %d readiness probes sent %v or more into a fault (down, paused or cut off) all said not ready; "+
		"no member said not ready or not live for %v while serving requests",
		readiness, liveness, len(members), faultedChecked, HealthFaultGrace, HealthNotReadyBound)
	if longestAt != "" {
		msg += fmt.Sprintf(" (longest: a request sent %v into a stretch, %s)", longest.Round(time.Millisecond), longestAt)
	}
	if underFault > 0 {
		msg += fmt.Sprintf("; %d requests a member served while it said not ready or not live were sent during a fault aimed at it, and not judged", underFault)
	}
	if len(noID) > 0 {
		return Result{Verdict: Inconclusive, Message: msg + fmt.Sprintf("; but the raft ID of %s is unknown, so the requests it served were not compared with its probes", strings.Join(noID, ", ")), Checked: len(c.Probes), CheckedWhat: "probes"}
	}
	return Result{Verdict: OK, Message: msg, Checked: len(c.Probes), CheckedWhat: "probes"}
}

// stretch is a time a member said it was not ready (or not live): from
// From to To, every probe of the kind that answered said so, and Probes
// are those that did.
type stretch struct {
	From, To time.Duration
	Probes   []history.Probe
}

// notOKStretches are the stretches an unfaulted member said it was not
// ready (kind "ready") or not live ("live"). Polls overlap, so they are
// taken in the order they were answered: a stretch is a run of failed
// probes of the member while the harness held it in no fault, with no
// other answer between them. It begins at the first one's call, or at
// the answer before it if that came later (a poll that hung for long says
// nothing about the time before another poll's answer), and ends at the
// last one's answer. A gap of more than healthProbeGap between a probe's
// call and the answer before it (the prober was late) splits a stretch.
func notOKStretches(probes []history.Probe, kind string) []stretch {
	var ps []history.Probe
	for _, p := range probes {
		if probeKind(p) == kind {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Return < ps[j].Return })
	var out []stretch
	var cur *stretch
	boundary := time.Duration(-1) // the last answer that ended a stretch
	var prev time.Duration
	for i, p := range ps {
		if i > 0 && p.Call-prev > healthProbeGap && cur != nil {
			out = append(out, *cur)
			cur = nil
		}
		prev = p.Return
		if p.OK() || p.Fault != history.FaultNone {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
			boundary = p.Return
			continue
		}
		if cur == nil {
			cur = &stretch{From: max(p.Call, boundary)}
		}
		cur.From = min(cur.From, max(p.Call, boundary))
		cur.To = p.Return
		cur.Probes = append(cur.Probes, p)
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

func describeProbe(p history.Probe) string {
	what := p.Error
	if p.Status != 0 {
		what = fmt.Sprintf("%d %q", p.Status, p.Body)
	}
	return fmt.Sprintf("%s at %v: %s", p.Endpoint, p.Call.Round(time.Millisecond), what)
}

func faultMeaning(f string) string {
	switch f {
	case history.FaultDown:
		return "no etcd process ran"
	case history.FaultPaused:
		return "its process was SIGSTOPped"
	case history.FaultMinority:
		return "its peer links were cut so that it could not reach a majority of the members"
	}
	return f
}

// aimedAt reports whether an injection that targeted member was under way
// at t: from its start until it healed and the cluster recovered.
func aimedAt(injs []history.Injection, member string, t time.Duration) bool {
	for _, inj := range injs {
		if inj.Start <= t && t <= inj.End && slices.Contains(inj.Targets, member) {
			return true
		}
	}
	return false
}

// injectionsAt names the injections that targeted member and were under
// way at t.
func injectionsAt(injs []history.Injection, member string, t time.Duration) string {
	var names []string
	for _, inj := range injs {
		if inj.Start <= t && t <= inj.End {
			for _, tg := range inj.Targets {
				if tg == member {
					names = append(names, fmt.Sprintf("%s (took effect at %v, healed and recovered by %v)", inj.Name, inj.Effect.Round(time.Millisecond), inj.End.Round(time.Millisecond)))
				}
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " Fault: " + strings.Join(names, ", ") + "."
}

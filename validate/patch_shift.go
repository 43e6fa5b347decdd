package validate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/evidence"
)

// replayShift finds where the replay of the committed log and etcd part
// ways, which the patch then names first, as the cause of what follows:
// every check after it reads revisions the replay computed, so an early
// lease expiry, a stale read or a list page that does not match may be an
// effect of the shift, not a finding of its own.
//
// The evidence is exact. A put's answer carries the revision the put made
// on the member that answered, so an acknowledged put (outside a
// transaction) whose value is in one applied committed entry only must be
// replayed at that revision. The first such put, in log order, that the
// replay applies at another revision is where the replay is behind (etcd
// applied a write there that the model refused at apply, or applied one
// the log does not show) or ahead (the model applied one etcd refused);
// the entries between it and the last put before it that agreed are named,
// provided the shift lasts (the next put the same member answered is off
// the same way, or a member ended past the replay),
// those the replay refused first when it is behind. A member whose end
// state is past the replayed log's last revision is the same shift seen at
// the end. Members ending below it are not taken as evidence: a member may
// still have been applying when it was asked.
//
// It needs the whole log replayed (revs.effective set); otherwise it finds
// nothing.
func replayShift(ops []derived, log *evidence.Log, revs revisions, ends []evidence.MemberState) (finding, bool) {
	if log == nil || revs.effective == nil {
		return finding{}, false
	}
	last := int64(-1)
	for i := len(revs.after) - 1; i >= 0; i-- {
		if revs.after[i] >= 0 {
			last = revs.after[i]
			break
		}
	}
	applied := map[string]int{} // put value -> applied committed entries holding it
	entryOf := map[string]int{} // put value -> the put entry holding it
	for i, e := range log.Entries {
		if e.Request == nil || revs.refused[i] != "" {
			continue
		}
		for _, v := range e.Request.PutValues() {
			applied[v]++
		}
		if e.Request.Put != nil {
			entryOf[e.Request.Put.Value] = i
		}
	}
	type point struct {
		entry int // index into log.Entries
		op    int // index into ops
		delta int64
	}
	var pts []point
	for k, o := range ops {
		r := o.rec
		if r.Request.Put == nil || r.Response == nil || r.Error != nil || applied[r.Request.Put.Value] != 1 {
			continue
		}
		i, ok := entryOf[r.Request.Put.Value]
		if !ok || revs.after[i] < 0 {
			continue
		}
		pts = append(pts, point{i, k, r.Response.Header.Revision - revs.after[i]})
	}
	slices.SortStableFunc(pts, func(a, b point) int { return a.entry - b.entry })
	var past []string
	for _, s := range ends {
		if s.Error == "" && last >= 0 && s.Revision > last {
			past = append(past, fmt.Sprintf("%s ended at revision %d", s.Member, s.Revision))
		}
	}
	// A shift lasts: the next acknowledged put the same member answered
	// is off the same way (or, for the last one, a member ended past the
	// replay). One answer off alone is the linearizability stage's to
	// judge, with the rest of the history.
	member := func(p point) uint64 { return ops[p.op].rec.Response.Header.MemberID }
	first := -1
	for k, p := range pts {
		if p.delta == 0 {
			continue
		}
		next := slices.IndexFunc(pts[k+1:], func(q point) bool { return member(q) == member(p) })
		if next < 0 && len(past) > 0 || next >= 0 && (pts[k+1+next].delta > 0) == (p.delta > 0) && pts[k+1+next].delta != 0 {
			first = k
			break
		}
	}
	if first < 0 && len(past) == 0 {
		return finding{}, false
	}
	var end string
	if len(past) > 0 {
		end = fmt.Sprintf("%s, past the replay's last revision %d", strings.Join(past, ", "), last)
	}
	if first < 0 {
		return finding{
			msg: fmt.Sprintf("the replay of the committed log ends behind the members: %s, so etcd applied writes the model refused at apply (or the log does not hold); later findings computed from revisions may follow from it", end),
			why: fmt.Sprintf("Replaying the complete committed log through the model reaches revision %d, but %s. No acknowledged put tells where the two parted. "+
				"Every later check reads the replay's revisions, so what it finds after that point may be an effect of this shift.", last, end),
		}, true
	}
	p := pts[first]
	o := ops[p.op]
	e := log.Entries[p.entry]
	lo := -1 // the entry of the last put before it that agreed
	for _, q := range pts[:first] {
		if q.delta == 0 {
			lo = q.entry
		}
	}
	side, n := "behind", p.delta
	if n < 0 {
		side, n = "ahead of", -n
	}
	by := ""
	if id := o.rec.Response.Header.MemberID; id != 0 {
		by = fmt.Sprintf(" by member %x", id)
	}
	where := fmt.Sprintf("before raft index %d", e.Index)
	if lo >= 0 {
		where = fmt.Sprintf("between raft index %d (the last acknowledged put before it that agreed) and %d", log.Entries[lo].Index, e.Index)
	}
	suspects := shiftSuspects(log, revs, lo, p.entry, p.delta > 0)
	msg := fmt.Sprintf("the replay of the committed log is %s %s etcd from raft index %d on: %s (%s) was answered at revision %d%s, the replay applies it at revision %d",
		revisionCount(n), side, e.Index, describeRecord(o.rec.Request), o.Source, o.rec.Response.Header.Revision, by, revs.after[p.entry])
	if suspects != "" {
		msg += "; " + where + " " + suspects
	}
	if end != "" {
		msg += "; " + end
	}
	msg += "; later findings computed from revisions may follow from it"
	why := fmt.Sprintf("%s (%s) was acknowledged at %s%s with revision %d, the revision the put made there. Its value is in one applied committed entry only, raft index %d, "+
		"and replaying the complete committed log through the model applies that entry at revision %d: the replay is %s %s the member %s. ",
		describeRecord(o.rec.Request), o.Source, o.Return.Round(time.Millisecond), by, o.rec.Response.Header.Revision, e.Index, revs.after[p.entry], revisionCount(n), side, where)
	if p.delta > 0 {
		why += "So etcd applied a write there that the model refused at apply (a permission or auth revision check decided otherwise), or the members applied different writes. "
	} else {
		why += "So the model applied a write there that etcd refused. "
	}
	if suspects != "" {
		why += "In that range the replay " + suspects + ". "
	}
	if end != "" {
		why += "At the end of the run " + end + ". "
	}
	why += "Every later check reads the replay's revisions, so what it finds after that point (an early lease expiry, a stale read, a list page, an optimistic update) may be an effect of this shift, not a finding of its own."
	return finding{msg: msg, why: why, involved: []string{o.Source, walSource(log, p.entry)}}, true
}

// shiftSuspects names the entries between log.Entries[lo] and [hi]
// (exclusive; lo -1 for the start) that may have made the shift: when the
// replay is behind, those it refused at apply; else those it applied that
// moved the revision. At most five are named.
func shiftSuspects(log *evidence.Log, revs revisions, lo, hi int, behind bool) string {
	var names []string
	n := 0
	for i := lo + 1; i < hi; i++ {
		e := log.Entries[i]
		if e.Request == nil {
			continue
		}
		var name string
		switch {
		case behind && revs.refused[i] != "":
			name = fmt.Sprintf("raft index %d, %s by %q (%s)", e.Index, describeRecord(*e.Request), e.Request.User, revs.refused[i])
		case !behind && revs.after[i] > revs.before[i]:
			name = fmt.Sprintf("raft index %d, %s by %q", e.Index, describeRecord(*e.Request), e.Request.User)
		default:
			continue
		}
		n++
		if len(names) < 5 {
			names = append(names, name)
		}
	}
	if n == 0 {
		return ""
	}
	verb := "applied"
	if behind {
		verb = "refused at apply"
	}
	s := fmt.Sprintf("%s %d entries: %s", verb, n, strings.Join(names, "; "))
	if n > len(names) {
		s += fmt.Sprintf("; and %d more", n-len(names))
	}
	return s
}

func revisionCount(n int64) string {
	if n == 1 {
		return "1 revision"
	}
	return fmt.Sprintf("%d revisions", n)
}

package validate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/etcd-robustness/etcd-robustness/evidence"
)

// Convergence checks that the members ended in one state. Each member's end
// state (Input.EndStates) is what it answered to HashKV at revision 0, once
// traffic and the final read were over: its current revision R, its compact
// revision C, and the hash of its key space at R (every key-value revision
// at or below R that compaction at C keeps).
//
// Raft applies one log in one order on every member, so:
//   - two members that ended at the same revision R and the same compact
//     revision C must have the same hash: a different hash is a violation
//     (the members applied the same log into different key spaces);
//   - no member may end past the committed log: a revision higher than the
//     last one the replayed committed log (Check.Replayed, from the
//     members' WALs) reaches is a revision no committed entry made.
//
// Members that ended at different revisions (or at one revision with
// different compact revisions) are not compared: a member may still have
// been applying when it was asked, and a hash at one revision says nothing
// about a hash at another. The verdict is then Inconclusive, as it is when
// a member's end state is missing or could not be taken; it is never a
// pass.
type Convergence struct{}

// Name implements Validator.
func (Convergence) Name() string { return "convergence" }

// Validate implements Validator.
func (Convergence) Validate(_ context.Context, c *Check) Result {
	states := c.EndStates
	if len(states) == 0 {
		return Result{Verdict: Inconclusive, Message: "no member's end state was recorded, so the members' end states were not compared"}
	}
	var missing []string
	var ok []evidence.MemberState
	for _, s := range states {
		if s.Error != "" {
			missing = append(missing, fmt.Sprintf("%s: %s", s.Member, s.Error))
			continue
		}
		ok = append(ok, s)
	}
	if c.Replayed != nil {
		last := int64(len(c.Replayed) - 1)
		for _, s := range ok {
			if s.Revision > last {
				return Result{Verdict: Illegal, Checked: len(states), CheckedWhat: "members",
					Message: fmt.Sprintf("%s ended at revision %d, past the committed log, which ends at revision %d", s.Member, s.Revision, last),
					Explanation: fmt.Sprintf("%s answered HashKV at the end of the run with revision %d (compact revision %d, hash %d). "+
						"The committed raft log read from the members' WALs is complete, and replaying it reaches revision %d only, "+
						"so %s applied writes that no member's log holds as committed.", s.Member, s.Revision, s.CompactRevision, s.Hash, last, s.Member)}
			}
		}
	}
	// Group the members by where they ended.
	groups := map[endPoint][]evidence.MemberState{}
	for _, s := range ok {
		k := endPoint{s.Revision, s.CompactRevision}
		groups[k] = append(groups[k], s)
	}
	keys := make([]endPoint, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].rev < keys[j].rev || keys[i].rev == keys[j].rev && keys[i].compact < keys[j].compact
	})
	for _, k := range keys {
		g := groups[k]
		for _, s := range g[1:] {
			if s.Hash != g[0].Hash {
				return Result{Verdict: Illegal, Checked: len(states), CheckedWhat: "members",
					Message: fmt.Sprintf("%s and %s both ended at revision %d (compact revision %d) with different key spaces: hash %d and %d",
						g[0].Member, s.Member, k.rev, k.compact, g[0].Hash, s.Hash),
					Explanation: fmt.Sprintf("At the end of the run, after traffic and the final read, %s and %s each answered HashKV at their current revision. "+
						"Both were at revision %d with compact revision %d, so both had applied the same committed entries, "+
						"yet the hash of %s's key space is %d and %s's is %d: they hold different keys or values at the same revision. %s",
						g[0].Member, s.Member, k.rev, k.compact, g[0].Member, g[0].Hash, s.Member, s.Hash, describeStates(states))}
			}
		}
	}
	if len(missing) > 0 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("the end state of %d of %d members is missing, so not every member was compared (%s); %s",
			len(missing), len(states), strings.Join(missing, "; "), describeStates(states))}
	}
	if len(groups) > 1 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("members ended at different revisions, so their hashes are not comparable (a member may still have been applying): %s",
			describeStates(states))}
	}
	k := keys[0]
	g := groups[k]
	return Result{Verdict: OK, Message: fmt.Sprintf("all %d members ended at revision %d, compact revision %d, with one key-space hash %d",
		len(g), k.rev, k.compact, g[0].Hash), Checked: len(g), CheckedWhat: "members"}
}

// endPoint is where a member ended: its revision and compact revision.
type endPoint struct{ rev, compact int64 }

// describeStates lists every member's end state.
func describeStates(states []evidence.MemberState) string {
	var parts []string
	for _, s := range states {
		if s.Error != "" {
			parts = append(parts, fmt.Sprintf("%s: no end state (%s)", s.Member, s.Error))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s at revision %d, compact revision %d, hash %d", s.Member, s.Revision, s.CompactRevision, s.Hash))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ") + "."
}

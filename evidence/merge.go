package evidence

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
)

// Log is the committed raft log as the members' WALs agree on it.
type Log struct {
	// Entries are the committed entries in index order, FirstIndex..CommitIndex, without gaps.
	Entries     []Entry `json:"entries"`
	FirstIndex  uint64  `json:"first_index"`
	CommitIndex uint64  `json:"commit_index"`
	// Complete is true when Entries start at index 1, so no committed entry was lost to a
	// snapshot or a purged WAL file.
	Complete bool `json:"complete"`
	// Replaced is how many of Entries, at the start, only the members'
	// logs that received snapshots replaced hold (MemberWAL.Replaced).
	Replaced uint64 `json:"replaced,omitempty"`
	// Uncommitted are entries some WAL holds past CommitIndex: they may or may not have been
	// committed.
	Uncommitted []Entry `json:"uncommitted,omitempty"`
	// Conflicts name indices at or below CommitIndex where two members' WALs hold different
	// entries that raft forbids: two members whose commit index covers the index disagree
	// on it, or a member holds there an entry of a term whose leader must have held the
	// committed one (see Merge). Each one is evidence of a safety violation.
	Conflicts []string `json:"conflicts,omitempty"`
	// Members describe each member's WAL (without its entries).
	Members []MemberWAL `json:"members"`
}

// Merge builds the committed log from the members' WALs. It returns an error when no WAL was
// readable or the committed range has a gap that no WAL covers; the caller treats that as
// "evidence unavailable".
//
// The committed range starts at the lowest index any readable WAL holds at
// or below the commit index, and ends at the commit index, the highest any
// member persisted. The logs that received snapshots replaced
// (MemberWAL.Replaced) hold only committed entries: each takes part as a
// member whose commit index covers its entries, and they move the start
// down as far as they hold every index below it (Log.Replaced). On error the returned Log still describes the members
// and the commit index, but holds no entries.
//
// Uncommitted lists each distinct entry (index, term, data) found past the
// commit index once, ordered by index, then term; it leaves out the tail of
// a member whose entry at the commit index has another term than the
// committed one, since raft's log matching rules out that any of it was
// committed (for instance the tail of a deposed leader). When members whose commit
// index covers an index hold different entries there, Entries has the one
// with the highest term, and Conflicts says which member holds which.
//
// Conflicts also holds breaches of raft's leader completeness: an entry
// committed in term C is in the log of every leader of a term above C. A
// member may hold, past its own commit index, an entry of a lower term than
// the committed one (a stale tail that was never committed), or of a higher
// term T2 whose leader was elected before the committed entry was committed
// (raft's figure 8: an entry of an earlier term is committed only in a later
// term, together with an entry of that term). So a member that holds an
// entry of term T2 at index i, where the members whose commit index covers
// i agree on an entry of a lower term T, is a conflict when T2 is above B:
// the lowest HardState term among the members whose commit index covers i.
// B bounds C, because a member persists a commit index in a term at least
// that of the leader that told it, which had committed i by then. A leader
// of term T2 > B created the entry at i, so it lacked the committed entry
// there. Between T and B the merge cannot tell (the member's last hard
// state is all a WAL read keeps), and reports nothing. Consecutive indices
// of one member are reported once.
func Merge(wals []MemberWAL) (Log, error) {
	var out Log
	var readable, replaced []memberLog
	var unreadable []string
	for _, w := range wals {
		m := w
		m.Entries = nil
		m.Replaced = slices.Clone(w.Replaced)
		for i := range m.Replaced {
			m.Replaced[i].Entries = nil
		}
		out.Members = append(out.Members, m)
		if w.Error != "" {
			unreadable = append(unreadable, w.Member+": "+w.Error)
			continue
		}
		readable = append(readable, newMemberLog(w))
		out.CommitIndex = max(out.CommitIndex, w.Commit)
		for _, r := range w.Replaced {
			replaced = append(replaced, newMemberLog(MemberWAL{
				Member: fmt.Sprintf("%s (its log before the snapshot at %d)", w.Member, r.Snapshot),
				Term:   r.Term, Commit: r.Commit, SnapshotIndex: r.From - 1, Entries: r.Entries,
			}))
		}
	}
	if len(readable) == 0 {
		if len(wals) == 0 {
			return out, errors.New("merge WALs: no WAL given")
		}
		return out, fmt.Errorf("merge WALs: no member's WAL was readable: %s", strings.Join(unreadable, "; "))
	}

	first, ok := firstHeld(readable, out.CommitIndex)
	if !ok {
		// No WAL holds a committed entry. The entries up to the newest
		// snapshot are lost to it; any after it, up to the commit index,
		// are a gap.
		var snap uint64
		for _, m := range readable {
			snap = max(snap, m.snapshotIndex)
		}
		first = min(snap, out.CommitIndex) + 1
		if first <= out.CommitIndex {
			return out, fmt.Errorf("merge WALs: committed indices %d..%d are in no member's WAL",
				first, out.CommitIndex)
		}
	}

	// The logs that received snapshots replaced hold only committed
	// entries: they take part in every index they hold, and extend the
	// committed range down as far as they leave no index out.
	readable = append(readable, replaced...)
	if ok && len(replaced) > 0 {
		below := first
		for first > 1 && holds(readable, first-1) {
			first--
		}
		out.Replaced = below - first
	}

	held := 0
	for _, m := range readable {
		held = max(held, len(m.ents))
	}
	entries := make([]Entry, 0, min(uint64(held), out.CommitIndex+1-first))
	var conflicts []string
	var lacks []lack
	for idx := first; idx <= out.CommitIndex; idx++ {
		e, conflict, ok := pick(readable, idx)
		if !ok {
			end := idx
			for end < out.CommitIndex && !holds(readable, end+1) {
				end++
			}
			return out, fmt.Errorf("merge WALs: committed indices %d..%d (of %d..%d) are in no member's WAL",
				idx, end, first, out.CommitIndex)
		}
		if conflict != "" {
			conflicts = append(conflicts, conflict)
		} else {
			lacks = append(lacks, lacking(readable, idx)...)
		}
		e.raw = ""
		entries = append(entries, e)
	}
	out.Entries = entries
	out.FirstIndex = first
	out.Complete = first == 1
	out.Conflicts = append(conflicts, describeLacks(lacks)...)
	var last *Entry
	if len(entries) > 0 {
		last = &entries[len(entries)-1]
	}
	out.Uncommitted = uncommitted(readable, out.CommitIndex, last)
	return out, nil
}

// memberLog gives access by index to one member's entries.
type memberLog struct {
	name          string
	term          uint64 // of the last hard state
	commit        uint64
	snapshotIndex uint64
	ents          []Entry // sorted by index
	contiguous    bool    // ents[k].Index == ents[0].Index+k
}

func newMemberLog(w MemberWAL) memberLog {
	m := memberLog{name: w.Member, term: w.Term, commit: w.Commit, snapshotIndex: w.SnapshotIndex, ents: w.Entries}
	if !slices.IsSortedFunc(m.ents, byIndex) {
		m.ents = slices.Clone(m.ents)
		slices.SortStableFunc(m.ents, byIndex)
	}
	m.contiguous = true
	for k := range m.ents {
		if m.ents[k].Index != m.ents[0].Index+uint64(k) {
			m.contiguous = false
			break
		}
	}
	return m
}

func byIndex(a, b Entry) int {
	switch {
	case a.Index < b.Index:
		return -1
	case a.Index > b.Index:
		return 1
	}
	return 0
}

// get returns the member's entry at idx, if it holds one.
func (m *memberLog) get(idx uint64) (*Entry, bool) {
	if len(m.ents) == 0 || idx < m.ents[0].Index {
		return nil, false
	}
	if m.contiguous {
		k := idx - m.ents[0].Index
		if k >= uint64(len(m.ents)) {
			return nil, false
		}
		return &m.ents[k], true
	}
	k, found := slices.BinarySearchFunc(m.ents, idx, func(e Entry, i uint64) int {
		switch {
		case e.Index < i:
			return -1
		case e.Index > i:
			return 1
		}
		return 0
	})
	if !found {
		return nil, false
	}
	return &m.ents[k], true
}

// firstHeld is the lowest index at or below commit that some member holds.
func firstHeld(ms []memberLog, commit uint64) (uint64, bool) {
	var first uint64
	found := false
	for _, m := range ms {
		if len(m.ents) == 0 {
			continue
		}
		if i := m.ents[0].Index; i <= commit && (!found || i < first) {
			first, found = i, true
		}
	}
	return first, found
}

func holds(ms []memberLog, idx uint64) bool {
	for i := range ms {
		if _, ok := ms[i].get(idx); ok {
			return true
		}
	}
	return false
}

// pick chooses the committed entry at idx. Members whose commit index covers
// idx know their entry there is committed; they must all agree, or conflict
// describes how they differ. When none of them holds idx, the entry with the
// highest term any member holds is taken.
func pick(ms []memberLog, idx uint64) (chosen Entry, conflict string, ok bool) {
	type holder struct {
		name string
		e    *Entry
	}
	var committed, any []holder
	for i := range ms {
		e, held := ms[i].get(idx)
		if !held {
			continue
		}
		h := holder{ms[i].name, e}
		any = append(any, h)
		if ms[i].commit >= idx {
			committed = append(committed, h)
		}
	}
	from := committed
	if len(from) == 0 {
		from = any
	}
	if len(from) == 0 {
		return Entry{}, "", false
	}
	best := from[0].e
	for _, h := range from[1:] {
		if h.e.Term > best.Term {
			best = h.e
		}
	}
	if len(committed) < 2 {
		return *best, "", true
	}

	// Group the members whose commit covers idx by the entry they hold.
	type variant struct {
		e       *Entry
		members []string
	}
	var variants []variant
	for _, h := range committed {
		matched := false
		for v := range variants {
			if sameEntry(variants[v].e, h.e) {
				variants[v].members = append(variants[v].members, h.name)
				matched = true
				break
			}
		}
		if !matched {
			variants = append(variants, variant{h.e, []string{h.name}})
		}
	}
	if len(variants) == 1 {
		return *best, "", true
	}
	parts := make([]string, len(variants))
	for v, vr := range variants {
		parts[v] = fmt.Sprintf("%s hold %s", strings.Join(vr.members, ", "), describe(vr.e))
	}
	return *best, fmt.Sprintf("index %d: %s", idx, strings.Join(parts, "; ")), true
}

// lack is one breach of leader completeness at one index: holder holds an
// entry of holderTerm there, above bound, where by (whose commit index
// covers the index) holds the committed entry of a lower term.
type lack struct {
	idx          uint64
	term         uint64 // the committed entry's
	by           string // a member whose commit index covers idx and that holds the entry
	byCommit     uint64
	bound        uint64 // the lowest hard state term of the members whose commit covers idx
	holder       string
	holderTerm   uint64
	holderCommit uint64
}

// lacking finds the members past whose commit index idx is, that hold at
// idx an entry of a term above the committed entry's and above the bound on
// the term it was committed in (see Merge). The members whose commit index
// covers idx agree on their entry there (pick found no conflict).
func lacking(ms []memberLog, idx uint64) []lack {
	var committed *Entry
	var by *memberLog
	for i := range ms {
		if ms[i].commit < idx {
			continue
		}
		if e, ok := ms[i].get(idx); ok && committed == nil {
			committed, by = e, &ms[i]
		}
	}
	if committed == nil {
		return nil
	}
	// The bound on the term the entry was committed in. A hard state whose
	// term is below the entry's (a WAL built by hand without one) bounds
	// nothing.
	var bound uint64
	for i := range ms {
		if m := &ms[i]; m.commit >= idx && m.term >= committed.Term && (bound == 0 || m.term < bound) {
			bound = m.term
		}
	}
	if bound == 0 {
		return nil
	}
	var out []lack
	for i := range ms {
		m := &ms[i]
		if m.commit >= idx {
			continue
		}
		if e, ok := m.get(idx); ok && e.Term > committed.Term && e.Term > bound {
			out = append(out, lack{idx: idx, term: committed.Term, by: by.name, byCommit: by.commit, bound: bound,
				holder: m.name, holderTerm: e.Term, holderCommit: m.commit})
		}
	}
	return out
}

// describeLacks words the breaches of leader completeness, one per run of
// consecutive indices of one holder, in the order the runs begin.
func describeLacks(lacks []lack) []string {
	type run struct {
		first lack
		last  uint64
	}
	var runs []*run
	open := map[string]*run{} // holder -> its latest run
	for _, l := range lacks {
		if r := open[l.holder]; r != nil && r.last+1 == l.idx {
			r.last = l.idx
			continue
		}
		r := &run{first: l, last: l.idx}
		runs = append(runs, r)
		open[l.holder] = r
	}
	out := make([]string, 0, len(runs))
	for _, r := range runs {
		l := r.first
		s := fmt.Sprintf("raft index %d was committed at term %d by %s (commit index %d), but %s holds term %d > %d there (its commit index is %d): "+
			"the index was committed by term %d (the lowest hard state term of a member whose commit index covers it), "+
			"so a leader of term %d lacked a committed entry (raft's leader completeness)",
			l.idx, l.term, l.by, l.byCommit, l.holder, l.holderTerm, l.term, l.holderCommit, l.bound, l.holderTerm)
		if n := r.last - l.idx; n > 0 {
			s += fmt.Sprintf("; so does %s at the next %d %s, to raft index %d", l.holder, n, plural(n, "index", "indices"), r.last)
		}
		out = append(out, s)
	}
	return out
}

// sameEntry reports whether a and b are the same entry: same term, and the
// same data. Entries read by ReadWAL are compared byte for byte; entries
// built by hand are compared by their decoded kind and request.
func sameEntry(a, b *Entry) bool {
	if a.Index != b.Index || a.Term != b.Term || a.Kind != b.Kind {
		return false
	}
	if a.raw != "" && b.raw != "" {
		return a.raw == b.raw
	}
	return reflect.DeepEqual(a.Request, b.Request)
}

// describe is a short human-readable form of an entry for conflict reports.
func describe(e *Entry) string {
	s := fmt.Sprintf("term %d ", e.Term)
	if e.Request != nil {
		b, err := json.Marshal(e.Request)
		if err != nil {
			s += "request"
		} else {
			const maxLen = 200
			if len(b) > maxLen {
				b = append(b[:maxLen:maxLen], "..."...)
			}
			s += string(b)
		}
	} else {
		s += e.Kind
	}
	if e.raw != "" {
		s += fmt.Sprintf(" (data crc32 %08x)", crc32.ChecksumIEEE([]byte(e.raw)))
	}
	return s
}

// uncommitted lists each distinct entry past commit once, by index then
// term. A member's entries past commit are left out when its entry at commit
// has another term than the committed one (last): by log matching, none of
// them can have been committed.
func uncommitted(ms []memberLog, commit uint64, last *Entry) []Entry {
	var out []Entry
	seen := map[uint64][]int{} // index -> positions in out
	for i := range ms {
		m := &ms[i]
		if last != nil {
			if e, ok := m.get(last.Index); ok && e.Term != last.Term {
				continue
			}
		}
		for k := range m.ents {
			e := &m.ents[k]
			if e.Index <= commit {
				continue
			}
			if !slices.ContainsFunc(seen[e.Index], func(p int) bool { return sameEntry(&out[p], e) }) {
				seen[e.Index] = append(seen[e.Index], len(out))
				out = append(out, *e)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		if c := byIndex(a, b); c != 0 {
			return c
		}
		switch {
		case a.Term < b.Term:
			return -1
		case a.Term > b.Term:
			return 1
		}
		return 0
	})
	for i := range out {
		out[i].raw = ""
	}
	return out
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

package evidence

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// member is one member's WAL in a Merge test: written with ops, or missing.
type member struct {
	name    string
	ops     []op
	missing bool
}

func m(name string, ops ...op) member { return member{name: name, ops: ops} }

// afterSnapshot is a WAL that jumps from the bootstrap entries to a snapshot
// at 8 (term 2), then holds 9..12 at term, committed to 12.
func afterSnapshot(term uint64, prefix string) []op {
	return []op{
		save(hs(2, 4), boot()...),
		snap(8, 2),
		save(hs(term, 12), puts(9, 12, term, prefix)...),
	}
}

func TestMerge(t *testing.T) {
	full := func(commit uint64) []op {
		return []op{save(hs(2, 4), boot()...), save(hs(2, commit), puts(5, 10, 2, "v")...)}
	}
	tests := []struct {
		name    string
		members []member

		wantEntries     []string
		wantFirst       uint64
		wantCommit      uint64
		wantComplete    bool
		wantUncommitted []string
		// wantReplaced is Log.Replaced.
		wantReplaced uint64
		// wantConflicts are substrings, one per expected conflict.
		wantConflicts [][]string
		wantErr       string
	}{
		{
			name:        "members agree, one lags",
			members:     []member{m("a", full(10)...), m("b", full(8)...), m("c", save(hs(2, 4), boot()...))},
			wantEntries: join(bootSigs(), putSigs(5, 10, 2, "v")),
			wantFirst:   1, wantCommit: 10, wantComplete: true,
		},
		{
			// a led term 2 and appended 5..10 but only 5 was committed; b
			// and c went on in term 3. a's entries 6..10 are neither
			// committed nor can ever have been: its entry at 8 is of term 2.
			name: "deposed leader",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 5), puts(5, 10, 2, "a")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 5), put(5, 2, "a5")),
					save(hs(3, 8), noop(6, 3), put(7, 3, "b7"), put(8, 3, "b8"))),
				m("c", save(hs(2, 4), boot()...), save(hs(2, 5), put(5, 2, "a5")),
					save(hs(3, 7), noop(6, 3), put(7, 3, "b7"), put(8, 3, "b8"))),
			},
			wantEntries: join(bootSigs(), []string{"5/2:put k=a5", "6/3:empty", "7/3:put k=b7", "8/3:put k=b8"}),
			wantFirst:   1, wantCommit: 8, wantComplete: true,
		},
		{
			name: "uncommitted tail",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 9, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 5), puts(5, 8, 2, "v")...)),
				m("c", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
			wantUncommitted: putSigs(7, 9, 2, "v"),
		},
		{
			name: "different uncommitted entries at one index",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 6), put(5, 2, "v5"), put(6, 2, "v6"), put(7, 2, "x"))),
				m("b", save(hs(2, 4), boot()...), save(hs(3, 6), put(5, 2, "v5"), put(6, 2, "v6"), put(7, 3, "y"))),
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
			wantUncommitted: []string{"7/2:put k=x", "7/3:put k=y"},
		},
		{
			name: "conflicting committed entry, same term",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 6), put(5, 2, "v5"), put(6, 2, "other"))),
				m("c", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
			wantConflicts: [][]string{{"index 6:", "a, c hold term 2", `"value":"v6"`, "b hold term 2", `"value":"other"`}},
		},
		{
			name: "conflicting committed entry, different terms",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(3, 6), put(5, 2, "v5"), noop(6, 3))),
			},
			wantEntries: join(bootSigs(), []string{"5/2:put k=v5", "6/3:empty"}),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
			wantConflicts: [][]string{{"index 6:", "a hold term 2", "b hold term 3 empty"}},
		},
		{
			// a committed 5..6 in term 2 and its hard state is of term 2, so
			// the entry at 6 was committed by term 2. b holds an entry of
			// term 3 there: a leader of term 3 did not hold it.
			name: "a higher term at a committed index, past the holder's commit",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(3, 4), put(5, 2, "v5"), put(6, 3, "x"), put(7, 3, "y"))),
				m("c", save(hs(2, 4), boot()...), save(hs(2, 6), puts(5, 6, 2, "v")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
			wantConflicts: [][]string{{"raft index 6 was committed at term 2 by a (commit index 6), but b holds term 3 > 2 there (its commit index is 4)",
				"committed by term 2", "a leader of term 3 lacked a committed entry"}},
		},
		{
			// The same, but b's entry at 6 is of a lower term than the
			// committed one: a stale tail b never committed.
			name: "a lower term at a committed index, past the holder's commit",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(3, 6), put(5, 2, "v5"), put(6, 3, "v6"))),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 4), put(5, 2, "v5"), put(6, 2, "x"), put(7, 2, "y"))),
				m("c", save(hs(2, 4), boot()...), save(hs(3, 6), put(5, 2, "v5"), put(6, 3, "v6"))),
			},
			wantEntries: join(bootSigs(), []string{"5/2:put k=v5", "6/3:put k=v6"}),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
		},
		{
			// Raft's figure 8: b led term 3 and appended 5 alone; a, leader
			// of term 4, committed its own entry of term 2 at 5 with one
			// of term 4 at 6. b's higher term at 5 is no breach: term 3
			// came before the commit, which a persisted in term 4.
			name: "a higher term at an index committed in a later term",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(4, 6), put(5, 2, "v5"), put(6, 4, "v6"))),
				m("b", save(hs(2, 4), boot()...), save(hs(3, 4), put(5, 3, "x"))),
				m("c", save(hs(2, 4), boot()...), save(hs(4, 6), put(5, 2, "v5"), put(6, 4, "v6"))),
			},
			wantEntries: join(bootSigs(), []string{"5/2:put k=v5", "6/4:put k=v6"}),
			wantFirst:   1, wantCommit: 6, wantComplete: true,
		},
		{
			name: "member after a snapshot, another covers the gap",
			members: []member{
				m("a", afterSnapshot(2, "v")...),
				m("b", full(10)...),
			},
			wantEntries: join(bootSigs(), putSigs(5, 12, 2, "v")),
			wantFirst:   1, wantCommit: 12, wantComplete: true,
		},
		{
			name:        "member after a snapshot, alone",
			members:     []member{m("a", afterSnapshot(2, "v")...)},
			wantEntries: putSigs(9, 12, 2, "v"),
			wantFirst:   9, wantCommit: 12, wantComplete: false,
		},
		{
			name: "member after a snapshot, the other does not cover the gap",
			members: []member{
				m("a", afterSnapshot(2, "v")...),
				m("b", save(hs(2, 4), boot()...)),
			},
			wantErr: "committed indices 5..8 (of 1..12) are in no member's WAL",
		},
		{
			// 5..8 are committed (a's commit is 12) but only b and c hold
			// them, and neither knows them committed: the higher term wins.
			name: "committed entries only on members that do not know it",
			members: []member{
				m("a", afterSnapshot(3, "v")...),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 4), puts(5, 8, 2, "old")...)),
				m("c", save(hs(2, 4), boot()...), save(hs(3, 4), puts(5, 8, 3, "new")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 8, 3, "new"), putSigs(9, 12, 3, "v")),
			wantFirst:   1, wantCommit: 12, wantComplete: true,
		},
		{
			// Both received snapshots (a at 12, b at 8): their logs from
			// before hold 1..8 and 1..4, committed, so the log starts at 1.
			name: "every member received a snapshot, their old logs cover the start",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 8), puts(5, 8, 2, "v")...), snap(12, 2), save(hs(2, 14), puts(13, 14, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), snap(8, 2), save(hs(2, 14), puts(9, 14, 2, "v")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 14, 2, "v")),
			wantFirst:   1, wantCommit: 14, wantComplete: true, wantReplaced: 8,
		},
		{
			// a knew 8 committed before the snapshot at 12 replaced its
			// log; b holds another entry there, committed too.
			name: "an old log replaced by a snapshot disagrees at a committed index",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 8), puts(5, 8, 2, "v")...), snap(12, 2), save(hs(2, 14), puts(13, 14, 2, "v")...)),
				m("b", save(hs(2, 4), boot()...), save(hs(2, 14), puts(5, 7, 2, "v")...), save(hs(2, 14), put(8, 2, "other")), save(hs(2, 14), puts(9, 14, 2, "v")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 7, 2, "v"), []string{"8/2:put k=other"}, putSigs(9, 14, 2, "v")),
			wantFirst:   1, wantCommit: 14, wantComplete: true,
			wantConflicts: [][]string{{"index 8:", "a (its log before the snapshot at 12) hold term 2", `"value":"v8"`, "b hold term 2", `"value":"other"`}},
		},
		{
			// a held 5..8 of term 2 past its commit (4) when the snapshot
			// at 8 of term 3 replaced them: they are not taken as
			// committed; c's entries of term 3 are.
			name: "an old log's entries past its commit are not taken",
			members: []member{
				m("a", save(hs(2, 4), boot()...), save(hs(2, 4), puts(5, 8, 2, "stale")...), snap(8, 3), save(hs(3, 12), puts(9, 12, 3, "v")...)),
				m("c", save(hs(2, 4), boot()...), save(hs(3, 4), puts(5, 8, 3, "new")...)),
			},
			wantEntries: join(bootSigs(), putSigs(5, 8, 3, "new"), putSigs(9, 12, 3, "v")),
			wantFirst:   1, wantCommit: 12, wantComplete: true,
		},
		{
			// a's old log holds 1..4, but nothing holds 5..8: the log
			// starts after the snapshot, as without the old log.
			name: "an old log that does not reach the rest",
			members: []member{
				m("a", afterSnapshot(2, "v")...),
				m("b", afterSnapshot(2, "v")...),
			},
			wantEntries: putSigs(9, 12, 2, "v"),
			wantFirst:   9, wantCommit: 12, wantComplete: false,
		},
		{
			name:        "one member unreadable",
			members:     []member{m("a", full(10)...), {name: "b", missing: true}},
			wantEntries: join(bootSigs(), putSigs(5, 10, 2, "v")),
			wantFirst:   1, wantCommit: 10, wantComplete: true,
		},
		{
			name:    "no member readable",
			members: []member{{name: "a", missing: true}, {name: "b", missing: true}},
			wantErr: "no member's WAL was readable: a: ",
		},
		{
			name:    "no WAL given",
			wantErr: "no WAL given",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wals []MemberWAL
			for _, mb := range tt.members {
				dataDir := filepath.Join(t.TempDir(), "absent")
				if !mb.missing {
					dataDir = writeWAL(t, mb.ops...)
				}
				w := ReadWAL(zaptest.NewLogger(t), mb.name, dataDir)
				require.Equal(t, mb.missing, w.Error != "", "ReadWAL %s: %s", mb.name, w.Error)
				wals = append(wals, w)
			}

			got, err := Merge(wals)
			require.Len(t, got.Members, len(tt.members))
			for i, mw := range got.Members {
				require.Equal(t, tt.members[i].name, mw.Member)
				require.Nil(t, mw.Entries)
				require.Equal(t, wals[i].Error, mw.Error)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, got.Entries)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantEntries, sigs(got.Entries))
			require.Equal(t, tt.wantFirst, got.FirstIndex)
			require.Equal(t, tt.wantCommit, got.CommitIndex)
			require.Equal(t, tt.wantComplete, got.Complete)
			require.Equal(t, tt.wantReplaced, got.Replaced)
			if tt.wantUncommitted == nil {
				require.Empty(t, got.Uncommitted)
			} else {
				require.Equal(t, tt.wantUncommitted, sigs(got.Uncommitted))
			}
			require.Len(t, got.Conflicts, len(tt.wantConflicts), "conflicts: %q", got.Conflicts)
			for i, subs := range tt.wantConflicts {
				for _, s := range subs {
					require.Contains(t, got.Conflicts[i], s)
				}
			}

			// The log survives a JSON round trip (the report stores it).
			b, err := json.Marshal(got)
			require.NoError(t, err)
			var back Log
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, got, back)
		})
	}
}

// TestMergeHandBuilt: Merge also works on MemberWALs built by hand (no raw
// data), comparing entries by their decoded request.
func TestMergeHandBuilt(t *testing.T) {
	e := func(i, term uint64, val string) Entry {
		if val == "" {
			return Entry{Index: i, Term: term, Kind: KindEmpty}
		}
		r := put(i, term, val)
		return decodeEntry(&r)
	}
	strip := func(es ...Entry) []Entry {
		for i := range es {
			es[i].raw = ""
		}
		return es
	}
	// Entry stays comparable: callers may use == or map keys.
	require.True(t, Entry{Index: 1} == Entry{Index: 1})

	a := MemberWAL{Member: "a", Term: 2, Commit: 3, Entries: strip(e(1, 1, ""), e(2, 1, "x"), e(3, 2, "y"))}
	b := MemberWAL{Member: "b", Term: 2, Commit: 3, Entries: strip(e(1, 1, ""), e(2, 1, "x"), e(3, 2, "z"), e(4, 2, "w"))}
	got, err := Merge([]MemberWAL{a, b})
	require.NoError(t, err)
	require.Equal(t, []string{"1/1:empty", "2/1:put k=x", "3/2:put k=y"}, sigs(got.Entries))
	require.Equal(t, []string{"4/2:put k=w"}, sigs(got.Uncommitted))
	require.Len(t, got.Conflicts, 1)
	require.Contains(t, got.Conflicts[0], "index 3:")

	// A member past its commit holding higher terms at committed indices,
	// 2..3: one conflict for the run. A hard state without a term (0, as
	// built here for a) bounds nothing; b's does.
	a = MemberWAL{Member: "a", Commit: 3, Entries: strip(e(1, 1, ""), e(2, 1, "x"), e(3, 1, "y"))}
	b = MemberWAL{Member: "b", Term: 1, Commit: 3, Entries: strip(e(1, 1, ""), e(2, 1, "x"), e(3, 1, "y"))}
	d := MemberWAL{Member: "d", Term: 2, Commit: 1, Entries: strip(e(1, 1, ""), e(2, 2, "p"), e(3, 2, "q"))}
	got, err = Merge([]MemberWAL{a, d})
	require.NoError(t, err)
	require.Empty(t, got.Conflicts)
	got, err = Merge([]MemberWAL{a, b, d})
	require.NoError(t, err)
	require.Equal(t, []string{"1/1:empty", "2/1:put k=x", "3/1:put k=y"}, sigs(got.Entries))
	require.Equal(t, []string{"raft index 2 was committed at term 1 by a (commit index 3), but d holds term 2 > 1 there (its commit index is 1): " +
		"the index was committed by term 1 (the lowest hard state term of a member whose commit index covers it), " +
		"so a leader of term 2 lacked a committed entry (raft's leader completeness); so does d at the next 1 index, to raft index 3"}, got.Conflicts)

	// A gap inside the committed range.
	c := MemberWAL{Member: "c", Commit: 5, Entries: strip(e(1, 1, ""), e(2, 1, "x"), e(5, 2, "v"))}
	_, err = Merge([]MemberWAL{c})
	require.ErrorContains(t, err, "committed indices 3..4 (of 1..5) are in no member's WAL")
}

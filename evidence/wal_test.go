package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func TestReadWAL(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
		// damage, if set, changes the written data dir before it is read.
		damage func(t *testing.T, dataDir string)
		// dataDir, if set, replaces the written data dir.
		dataDir func(t *testing.T) string

		wantEntries  []string
		wantCommit   uint64
		wantTerm     uint64
		wantSnapshot uint64
		// wantReplaced are the logs received snapshots replaced
		// (replacedSig), with their entries.
		wantReplaced []string
		wantErr      string
	}{
		{
			name:        "new cluster",
			ops:         []op{save(hs(2, 4), boot()...)},
			wantEntries: bootSigs(), wantCommit: 4, wantTerm: 2,
		},
		{
			// The leader of term 2 appended 5..8 and had only 5 committed
			// when it was deposed; the leader of term 3 overwrote 6 and 7
			// on it, which also drops 8.
			name: "deposed leader's uncommitted tail is overwritten",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 5), puts(5, 8, 2, "old")...),
				save(hs(3, 5), noop(6, 3)),
				save(hs(3, 7), put(7, 3, "new7")),
			},
			wantEntries: join(bootSigs(), []string{"5/2:put k=old5", "6/3:empty", "7/3:put k=new7"}),
			wantCommit:  7, wantTerm: 3,
		},
		{
			name: "uncommitted tail past commit is kept",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 6), puts(5, 9, 2, "v")...),
			},
			wantEntries: join(bootSigs(), putSigs(5, 9, 2, "v")),
			wantCommit:  6, wantTerm: 2,
		},
		{
			// etcd snapshotted its own state at 8 but kept every WAL file:
			// the entries before the marker agree with it and are kept.
			name: "local snapshot, all files kept",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 10), puts(5, 10, 2, "v")...),
				snap(8, 2),
				save(hs(2, 12), puts(11, 12, 2, "v")...),
			},
			wantEntries: join(bootSigs(), putSigs(5, 12, 2, "v")),
			wantCommit:  12, wantTerm: 2,
		},
		{
			// The member was down while the others moved on; the leader sent
			// it a snapshot at 20. Its log jumps from 4 to 21.
			name: "snapshot received after falling behind",
			ops: []op{
				save(hs(2, 4), boot()...),
				snap(20, 3),
				save(hs(3, 22), puts(21, 22, 3, "v")...),
			},
			wantEntries: putSigs(21, 22, 3, "v"), wantCommit: 22, wantTerm: 3, wantSnapshot: 20,
			wantReplaced: []string{"1..4 term 2 commit 4, replaced at 20: " + strings.Join(bootSigs(), " ")},
		},
		{
			// Twice: the hard state written with a received snapshot
			// (commit 20) is not the old log's; the old log's entries
			// past the commit it had persisted (7, 8) are not taken.
			name: "snapshots received twice",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 6), puts(5, 8, 2, "v")...),
				snap(20, 3),
				save(hs(3, 20)),
				save(hs(3, 22), puts(21, 22, 3, "w")...),
				snap(30, 4),
				save(hs(4, 31), put(31, 4, "x")),
			},
			wantEntries: []string{"31/4:put k=x"}, wantCommit: 31, wantTerm: 4, wantSnapshot: 30,
			wantReplaced: []string{
				"1..6 term 2 commit 6, replaced at 20: " + strings.Join(join(bootSigs(), putSigs(5, 6, 2, "v")), " "),
				"21..22 term 3 commit 22, replaced at 30: " + strings.Join(putSigs(21, 22, 3, "w"), " "),
			},
		},
		{
			// The member held 5..8 of term 2, uncommitted; the leader of
			// term 3 sent a snapshot at 6 whose entry 6 has term 3, so the
			// member replaced its log. Its old 5 and 6 are not trusted.
			name: "snapshot received over a diverged log",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 4), puts(5, 8, 2, "stale")...),
				snap(6, 3),
				save(hs(3, 8), puts(7, 8, 3, "new")...),
			},
			wantEntries: putSigs(7, 8, 3, "new"), wantCommit: 8, wantTerm: 3, wantSnapshot: 6,
			wantReplaced: []string{"1..4 term 2 commit 4, replaced at 6: " + strings.Join(bootSigs(), " ")},
		},
		{
			name:    "missing data dir",
			dataDir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nothing-here") },
			wantErr: "no WAL",
		},
		{
			name: "empty WAL dir",
			dataDir: func(t *testing.T) string {
				d := t.TempDir()
				require.NoError(t, os.MkdirAll(filepath.Join(d, "member", "wal"), 0o755))
				return d
			},
			wantErr: "no .wal file",
		},
		{
			name: "corrupt record",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 6), put(5, 2, "corrupt-me"), put(6, 2, "v6")),
			},
			damage: func(t *testing.T, dataDir string) {
				p := onlyWALFile(t, dataDir)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				i := bytes.Index(b, []byte("corrupt-me"))
				require.Positive(t, i)
				b[i] ^= 0xff
				require.NoError(t, os.WriteFile(p, b, 0o600))
			},
			wantErr: "crc mismatch",
		},
		{
			name: "garbage WAL file",
			dataDir: func(t *testing.T) string {
				d := t.TempDir()
				walDir := filepath.Join(d, "member", "wal")
				require.NoError(t, os.MkdirAll(walDir, 0o755))
				garbage := bytes.Repeat([]byte("this is not a WAL record"), 100)
				require.NoError(t, os.WriteFile(filepath.Join(walDir, "0000000000000000-0000000000000000.wal"), garbage, 0o600))
				return d
			},
			wantErr: "read",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dataDir string
			if tt.dataDir != nil {
				dataDir = tt.dataDir(t)
			} else {
				dataDir = writeWAL(t, tt.ops...)
			}
			if tt.damage != nil {
				tt.damage(t, dataDir)
			}
			got := ReadWAL(zaptest.NewLogger(t), "m", dataDir)
			require.Equal(t, "m", got.Member)
			if tt.wantErr != "" {
				require.Contains(t, strings.ToLower(got.Error), strings.ToLower(tt.wantErr))
				require.Empty(t, got.Entries)
				return
			}
			require.Empty(t, got.Error)
			require.Equal(t, tt.wantEntries, sigs(got.Entries))
			require.Equal(t, tt.wantCommit, got.Commit)
			require.Equal(t, tt.wantTerm, got.Term)
			require.Equal(t, uint64(1), got.Vote)
			require.Equal(t, tt.wantSnapshot, got.SnapshotIndex)
			var replaced []string
			for _, r := range got.Replaced {
				replaced = append(replaced, replacedSig(r))
			}
			require.Equal(t, tt.wantReplaced, replaced)
		})
	}
}

// replacedSig is a readable form of a Replaced with its entries.
func replacedSig(r Replaced) string {
	return fmt.Sprintf("%d..%d term %d commit %d, replaced at %d: %s", r.From, r.To, r.Term, r.Commit, r.Snapshot, strings.Join(sigs(r.Entries), " "))
}

// TestReadWALReleasedFiles: etcd cut the WAL into several files, took a
// snapshot and released (deleted) the files that only hold entries below it.
// The WAL is then read from the snapshot marker.
func TestReadWALReleasedFiles(t *testing.T) {
	old := wal.SegmentSizeBytes
	wal.SegmentSizeBytes = 1024 // cut a new file every few entries
	t.Cleanup(func() { wal.SegmentSizeBytes = old })

	ops := []op{save(hs(2, 4), boot()...)}
	for i := uint64(5); i <= 200; i += 5 {
		ops = append(ops, save(hs(2, i+4), puts(i, i+4, 2, "v")...))
	}
	ops = append(ops, snap(150, 2), save(hs(2, 210), puts(205, 210, 2, "v")...))
	dataDir := writeWAL(t, ops...)
	walDir := filepath.Join(dataDir, "member", "wal")

	full := ReadWAL(zaptest.NewLogger(t), "m", dataDir)
	require.Empty(t, full.Error)
	require.Equal(t, uint64(0), full.SnapshotIndex, "all files are there: read from the start")
	require.Equal(t, join(bootSigs(), putSigs(5, 210, 2, "v")), sigs(full.Entries))

	// Release like wal.ReleaseLockTo(150): keep the last file whose first
	// index is at or below 150, and every later one.
	names := walFiles(t, dataDir)
	require.Greater(t, len(names), 3, "the WAL should have been cut")
	keep := 0
	for i, n := range names {
		var seq, index uint64
		_, err := fmt.Sscanf(n, "%016x-%016x.wal", &seq, &index)
		require.NoError(t, err)
		if index <= 150 {
			keep = i
		}
	}
	require.Positive(t, keep)
	for _, n := range names[:keep] {
		require.NoError(t, os.Remove(filepath.Join(walDir, n)))
	}

	got := ReadWAL(zaptest.NewLogger(t), "m", dataDir)
	require.Empty(t, got.Error)
	require.Equal(t, uint64(150), got.SnapshotIndex)
	require.Equal(t, putSigs(151, 210, 2, "v"), sigs(got.Entries))
	require.Empty(t, got.Replaced, "no replaced log is read from a WAL whose first files are gone")
	require.Equal(t, uint64(210), got.Commit)
}

// TestReadWALTornLastRecord: a member killed in the middle of a write leaves
// a torn last record. ReadWAL must return what precedes it, exactly what
// etcd keeps when it repairs the WAL at restart, and leave the files as they
// are.
func TestReadWALTornLastRecord(t *testing.T) {
	big := strings.Repeat("x", 4096)
	tests := []struct {
		name        string
		ops         []op
		tear        func(t *testing.T, path string, end int64)
		wantEntries []string
		wantCommit  uint64
	}{
		{
			name: "truncated last entry",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 6), puts(5, 6, 2, "v")...),
				save(raftpb.HardState{}, put(7, 2, "torn")),
			},
			tear: func(t *testing.T, path string, end int64) {
				require.NoError(t, os.Truncate(path, end-4))
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantCommit:  6,
		},
		{
			name: "truncated last hard state",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 5), puts(5, 6, 2, "v")...),
				save(hs(2, 6)),
			},
			tear: func(t *testing.T, path string, end int64) {
				require.NoError(t, os.Truncate(path, end-4))
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantCommit:  5,
		},
		{
			name: "unwritten sector in last entry",
			ops: []op{
				save(hs(2, 4), boot()...),
				save(hs(2, 6), puts(5, 6, 2, "v")...),
				save(raftpb.HardState{}, put(7, 2, big)),
			},
			tear: func(t *testing.T, path string, end int64) {
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				i := int64(bytes.Index(b, []byte(big)))
				require.Positive(t, i)
				// Zero a whole 512-byte sector inside the value, as if the
				// disk had not written it.
				sector := (i/512 + 2) * 512
				require.Less(t, sector+512, i+int64(len(big)))
				f, err := os.OpenFile(path, os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = f.WriteAt(make([]byte, 512), sector)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			},
			wantEntries: join(bootSigs(), putSigs(5, 6, 2, "v")),
			wantCommit:  6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := writeWAL(t, tt.ops...)
			path := onlyWALFile(t, dataDir)
			tt.tear(t, path, dataEnd(t, path))
			before := hashDir(t, dataDir)

			got := ReadWAL(zaptest.NewLogger(t), "m", dataDir)
			require.Empty(t, got.Error)
			require.Equal(t, tt.wantEntries, sigs(got.Entries))
			require.Equal(t, tt.wantCommit, got.Commit)
			require.Equal(t, before, hashDir(t, dataDir), "ReadWAL changed the data dir")

			// What etcd does at restart, on a copy: a read in write mode
			// fails on the torn record, wal.Repair truncates it, and the
			// next read succeeds. ReadWAL must agree with the result.
			walDir := copyDir(t, filepath.Join(dataDir, "member", "wal"))
			lg := zaptest.NewLogger(t)
			w, err := wal.Open(lg, walDir, walpb.Snapshot{})
			require.NoError(t, err)
			_, _, _, err = w.ReadAll()
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the WAL should be torn in etcd's eyes")
			require.NoError(t, w.Close())
			require.True(t, wal.Repair(lg, walDir))
			w, err = wal.Open(lg, walDir, walpb.Snapshot{})
			require.NoError(t, err)
			_, st, ents, err := w.ReadAll()
			require.NoError(t, err)
			require.NoError(t, w.Close())

			require.Equal(t, st.Commit, got.Commit)
			require.Equal(t, st.Term, got.Term)
			require.Len(t, got.Entries, len(ents))
			for i, e := range ents {
				require.Equal(t, e.Index, got.Entries[i].Index)
				require.Equal(t, e.Term, got.Entries[i].Term)
				require.Equal(t, string(e.Data), got.Entries[i].raw)
			}
		})
	}
}

// TestDecodeEntry covers every kind of entry etcd v3.4 to v3.7 writes.
func TestDecodeEntry(t *testing.T) {
	marshal := func(m interface{ Marshal() ([]byte, error) }) []byte {
		b, err := m.Marshal()
		require.NoError(t, err)
		return b
	}
	normal := func(m interface{ Marshal() ([]byte, error) }) raftpb.Entry {
		return raftpb.Entry{Index: 9, Term: 3, Type: raftpb.EntryNormal, Data: marshal(m)}
	}
	memberAttrV2 := &pb.Request{ID: 7, Method: "PUT", Path: "/0/members/8e9e05c52164694d/attributes",
		Val: `{"name":"m0","clientURLs":["http://127.0.0.1:2379"]}`}
	tests := []struct {
		name string
		e    raftpb.Entry
		want string // sig
	}{
		{"empty", raftpb.Entry{Index: 9, Term: 3}, "9/3:empty"},
		{"put", put(9, 3, "x"), "9/3:put k=x"},
		{"delete", normal(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}), "9/3:del k"},
		{"txn", normal(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{
			RequestPut: &pb.PutRequest{Key: []byte("k")}}}}}}), "9/3:txn"},
		{"lease grant", normal(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{TTL: 5, ID: 1}}), "9/3:request"},
		{"compaction", normal(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 3}}), "9/3:request"},
		{"conf change", conf(9, 3), "9/3:conf-change"},
		{"conf change v2", raftpb.Entry{Index: 9, Term: 3, Type: raftpb.EntryConfChangeV2,
			Data: marshal(&raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: 4}}})},
			"9/3:conf-change"},
		{"member attributes (v3.5+)", normal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1},
			ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{Member_ID: 1}}), "9/3:member-attr"},
		{"cluster version (v3.5+)", normal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1},
			ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "3.6.0"}}), "9/3:cluster-version"},
		{"member attributes (v3.4, bare v2 request)", normal(memberAttrV2), "9/3:member-attr"},
		{"cluster version (v3.4, bare v2 request)", normal(&pb.Request{ID: 8, Method: "PUT", Path: "/0/version", Val: "3.4.0"}),
			"9/3:cluster-version"},
		{"member attributes (wrapped v2 request)", normal(&pb.InternalRaftRequest{ID: 7, V2: memberAttrV2}), "9/3:member-attr"},
		{"v2 sync (v3.4)", normal(&pb.Request{ID: 9, Method: "SYNC", Time: 1234}), "9/3:v2"},
		{"v2 put (v3.4)", normal(&pb.Request{ID: 9, Method: "PUT", Path: "/foo", Val: "bar"}), "9/3:v2"},
		{"alarm", normal(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE}}), "9/3:alarm"},
		// An admin request is a client's, recorded as one; an
		// authentication is clientv3's own, which the record does not hold.
		{"auth admin request", normal(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "u"}}), "9/3:request"},
		{"auth status", normal(&pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}), "9/3:auth"},
		{"authenticate", normal(&pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "u"}}), "9/3:auth"},
		{"lease checkpoint", normal(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
			Checkpoints: []*pb.LeaseCheckpoint{{ID: 1, Remaining_TTL: 5}}}}), "9/3:lease-checkpoint"},
		{"downgrade", normal(&pb.InternalRaftRequest{DowngradeInfoSet: &membershippb.DowngradeInfoSetRequest{Enabled: true}}), "9/3:downgrade"},
		{"garbage", raftpb.Entry{Index: 9, Term: 3, Data: []byte{0xff, 0xff, 0xff}}, "9/3:other"},
		{"garbage conf change", raftpb.Entry{Index: 9, Term: 3, Type: raftpb.EntryConfChange, Data: []byte{0xff, 0xff, 0xff}}, "9/3:other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeEntry(&tt.e)
			require.Equal(t, tt.want, sig(got))
			require.Equal(t, string(tt.e.Data), got.raw)
		})
	}
}

func walFiles(t testing.TB, dataDir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dataDir, "member", "wal"))
	require.NoError(t, err)
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".wal") {
			names = append(names, de.Name())
		}
	}
	slices.Sort(names)
	return names
}

func onlyWALFile(t *testing.T, dataDir string) string {
	t.Helper()
	names := walFiles(t, dataDir)
	require.Len(t, names, 1)
	return filepath.Join(dataDir, "member", "wal", names[0])
}

// dataEnd is the offset just past the last record of a WAL file (the rest
// is preallocated zeros). Records are 8-byte aligned.
func dataEnd(t testing.TB, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	last := len(b) - 1
	for last >= 0 && b[last] == 0 {
		last--
	}
	require.Positive(t, last)
	return (int64(last) + 1 + 7) / 8 * 8
}

// hashDir maps every file under dir to its SHA-256.
func hashDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = sha256.Sum256(b)
		return nil
	}))
	return out
}

// copyDir copies the regular files of dir into a new temp dir.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "wal")
	require.NoError(t, os.MkdirAll(dst, 0o755))
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600))
	}
	return dst
}

// TestConfChangeEncodings: the bootstrap conf change a member writes for
// itself is encoded differently by v3.6.16 (it writes the zero ID) and
// v3.7.3 (it leaves it out); the bytes below are member-1's first entry
// in each release's WAL of one mixed cluster (2026-12-02). They are the
// same change, so they are the same entry; a change to another node, or
// with another context, is not.
func TestConfChangeEncodings(t *testing.T) {
	hexEntry := func(h string) *Entry {
		b, err := hex.DecodeString(h)
		require.NoError(t, err)
		e := decodeEntry(&raftpb.Entry{Index: 1, Term: 1, Type: raftpb.EntryConfChange, Data: b})
		return &e
	}
	const ctx = "22527b226964223a323239373936313637363239393439363631342c227065657255524c73223a5b22687474703a2f2f3132372e302e302e313a3336303639225d2c226e616d65223a226d656d6265722d31227d"
	v37 := hexEntry("100018a6d9abfa82fffff11f" + ctx)
	v36 := hexEntry("0800100018a6d9abfa82fffff11f" + ctx)
	require.Equal(t, KindConfChange, v37.Kind)
	require.True(t, sameEntry(v36, v37), "one change, two encodings")
	otherNode := hexEntry("0800100018a6d9abfa82fffff11e" + ctx)
	require.False(t, sameEntry(v36, otherNode), "another node")
	otherCtx := hexEntry("0800100018a6d9abfa82fffff11f" + strings.Replace(ctx, "2d31", "2d32", 1))
	require.False(t, sameEntry(v36, otherCtx), "another context")
	removal := hexEntry("0800100118a6d9abfa82fffff11f" + ctx)
	require.False(t, sameEntry(v36, removal), "another type")
}

// A committed auth admin request is decoded with the user and auth
// revision its header carries, so the patch stage can replay it and match
// it against the admin client's record.
func TestDecodeAuthEntry(t *testing.T) {
	normal := func(m *pb.InternalRaftRequest) raftpb.Entry {
		b, err := m.Marshal()
		require.NoError(t, err)
		return raftpb.Entry{Index: 9, Term: 3, Type: raftpb.EntryNormal, Data: b}
	}
	e := normal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1, Username: "root", AuthRevision: 7},
		AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{Key: []byte("a/"), RangeEnd: []byte("a0"), PermType: authpb.READ}}})
	got := decodeEntry(&e)
	require.NotNil(t, got.Request)
	require.Equal(t, history.Request{User: "root", AuthRevision: 7, Auth: &history.AuthRequest{Op: history.AuthRoleGrantPermission, Role: "r",
		Key: "a/", RangeEnd: "a0", PermType: "READ"}}, *got.Request)
	put := normal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 2, Username: "alice", AuthRevision: 9}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}})
	got = decodeEntry(&put)
	require.Equal(t, "alice", got.Request.User)
	require.Equal(t, uint64(9), got.Request.AuthRevision)
}

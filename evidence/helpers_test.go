package evidence

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"
)

// op is one write to a member's WAL, as etcd's raft loop would make it.
type op func(t testing.TB, w *wal.WAL)

// save persists entries, then the hard state (wal.WAL.Save).
func save(st raftpb.HardState, ents ...raftpb.Entry) op {
	return func(t testing.TB, w *wal.WAL) {
		require.NoError(t, w.Save(st, ents))
	}
}

// snap writes a snapshot marker (wal.WAL.SaveSnapshot).
func snap(index, term uint64) op {
	return func(t testing.TB, w *wal.WAL) {
		require.NoError(t, w.SaveSnapshot(walpb.Snapshot{Index: index, Term: term,
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}))
	}
}

func hs(term, commit uint64) raftpb.HardState {
	return raftpb.HardState{Term: term, Vote: 1, Commit: commit}
}

func put(index, term uint64, val string) raftpb.Entry {
	r := pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: index*1000 + term},
		Put: &pb.PutRequest{Key: []byte("k"), Value: []byte(val)}}
	data, err := r.Marshal()
	if err != nil {
		panic(err)
	}
	return raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryNormal, Data: data}
}

// puts are entries from..to of one term, putting "<prefix><index>".
func puts(from, to, term uint64, prefix string) []raftpb.Entry {
	var out []raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, put(i, term, fmt.Sprintf("%s%d", prefix, i)))
	}
	return out
}

func noop(index, term uint64) raftpb.Entry {
	return raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryNormal}
}

func conf(index, term uint64) raftpb.Entry {
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: index}
	data, err := cc.Marshal()
	if err != nil {
		panic(err)
	}
	return raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryConfChange, Data: data}
}

// boot are the entries a new 3-member cluster starts with: three conf
// changes at term 1, then the first leader's empty entry at term 2.
func boot() []raftpb.Entry {
	return []raftpb.Entry{conf(1, 1), conf(2, 1), conf(3, 1), noop(4, 2)}
}

func cat(parts ...[]raftpb.Entry) []raftpb.Entry {
	var out []raftpb.Entry
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// writeWAL creates a member data dir in a new temp dir and applies ops to
// its WAL, which it closes. It returns the data dir.
func writeWAL(t testing.TB, ops ...op) string {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	walDir := filepath.Join(dataDir, "member", "wal")
	md, err := (&pb.Metadata{NodeID: 1, ClusterID: 2}).Marshal()
	require.NoError(t, err)
	w, err := wal.Create(zaptest.NewLogger(t), walDir, md)
	require.NoError(t, err)
	for _, o := range ops {
		o(t, w)
	}
	require.NoError(t, w.Close())
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "member", "snap"), 0o755))
	return dataDir
}

// sig is a compact, readable form of an entry for expectations.
func sig(e Entry) string {
	s := fmt.Sprintf("%d/%d:", e.Index, e.Term)
	switch {
	case e.Request == nil:
		return s + e.Kind
	case e.Request.Put != nil:
		return s + "put " + e.Request.Put.Key + "=" + e.Request.Put.Value
	case e.Request.DeleteRange != nil:
		return s + "del " + e.Request.DeleteRange.Key
	case e.Request.Txn != nil:
		return s + "txn"
	}
	return s + "request"
}

func sigs(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, sig(e))
	}
	return out
}

// putSigs are the sigs of puts(from, to, term, prefix).
func putSigs(from, to, term uint64, prefix string) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%d/%d:put k=%s%d", i, term, prefix, i))
	}
	return out
}

func bootSigs() []string {
	return []string{"1/1:conf-change", "2/1:conf-change", "3/1:conf-change", "4/2:empty"}
}

func join(parts ...[]string) []string {
	out := []string{}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

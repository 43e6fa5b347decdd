package evidence

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

// TestReadWALRealCluster runs ~200 puts, some deletes and txns against a
// real 3-member cluster, SIGKILLs the leader in the middle and restarts it,
// then reads every member's WAL. Every acknowledged write must be in the
// committed log exactly once, at the revision etcd answered.
func TestReadWALRealCluster(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCluster(ctx, t, bins.Etcd)
	w := newWorkload(ctx, t, c)

	w.puts(100)
	w.deletesAndTxn()

	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	require.NoError(t, leader.Kill())
	w.puts(50) // some may fail or time out while a new leader is elected
	require.NoError(t, leader.Start(ctx))
	require.NoError(t, leader.WaitHealthy(ctx))
	w.puts(50)
	w.deletesAndTxn()
	require.NoError(t, c.Close())

	log := readAndMerge(t, c)
	for _, mw := range log.Members {
		require.Zero(t, mw.SnapshotIndex, "%s: no snapshot was taken", mw.Member)
	}
	w.check(log)
}

// TestReadWALRealClusterSnapshotCatchUp: with small --snapshot-count and
// snapshot catch-up settings, a follower killed for a while is sent a
// snapshot when it comes back, so its WAL jumps over the entries it missed.
// The other members' WALs still cover them: the log is complete.
func TestReadWALRealClusterSnapshotCatchUp(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCluster(ctx, t, bins.Etcd, "--snapshot-count=20", catchUpFlag(t, bins)+"=10")
	w := newWorkload(ctx, t, c)

	w.puts(50)
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	var follower *cluster.Member
	for _, m := range c.Members() {
		if m != leader {
			follower = m
			break
		}
	}
	require.NoError(t, follower.Kill())
	w.puts(100)
	w.deletesAndTxn()
	require.NoError(t, follower.Start(ctx))
	require.NoError(t, follower.WaitHealthy(ctx))
	w.puts(50)
	require.NoError(t, c.Close())

	log := readAndMerge(t, c)
	for _, mw := range log.Members {
		if mw.Member == follower.Name() {
			require.Positive(t, mw.SnapshotIndex, "%s should have been sent a snapshot", mw.Member)
			require.NotEmpty(t, mw.Replaced, "%s's log from before the snapshot is kept", mw.Member)
			require.Equal(t, uint64(1), mw.Replaced[0].From)
		} else {
			require.Zero(t, mw.SnapshotIndex, "%s keeps its whole WAL", mw.Member)
		}
	}
	w.check(log)
}

// catchUpFlag is the release's flag for the snapshot catch-up entries; the
// test skips if it has none.
func catchUpFlag(t *testing.T, bins etcdbuild.Binaries) string {
	t.Helper()
	help, _ := exec.Command(bins.Etcd, "--help").CombinedOutput()
	for _, f := range []string{"--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries"} {
		if strings.Contains(string(help), f) {
			return f
		}
	}
	t.Skipf("etcd %s has no flag to set the snapshot catch-up entries", bins.Version)
	return ""
}

func startCluster(ctx context.Context, t *testing.T, etcd string, extraArgs ...string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(ctx, cluster.Config{Size: 3, EtcdPaths: []string{etcd}, Dir: t.TempDir(),
		Logger: zaptest.NewLogger(t), ExtraArgs: extraArgs})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readAndMerge(t *testing.T, c *cluster.Cluster) Log {
	t.Helper()
	var wals []MemberWAL
	for _, m := range c.Members() {
		mw := ReadWAL(zaptest.NewLogger(t), m.Name(), m.DataDir())
		require.Empty(t, mw.Error, "%s", m.Name())
		t.Logf("%s: snapshot index %d, %d entries, commit %d, term %d",
			mw.Member, mw.SnapshotIndex, len(mw.Entries), mw.Commit, mw.Term)
		wals = append(wals, mw)
	}
	log, err := Merge(wals)
	require.NoError(t, err)
	require.True(t, log.Complete, "first index %d", log.FirstIndex)
	require.Equal(t, uint64(1), log.FirstIndex)
	require.Empty(t, log.Conflicts)
	require.Len(t, log.Entries, int(log.CommitIndex))
	kinds := map[string]int{}
	for i, e := range log.Entries {
		require.Equal(t, uint64(i+1), e.Index)
		if e.Request == nil {
			require.NotEqual(t, KindOther, e.Kind, "entry %d does not decode", e.Index)
			kinds[e.Kind]++
		} else {
			kinds["request"]++
		}
	}
	t.Logf("committed entries by kind: %v", kinds)
	return log
}

// workload writes unique values and remembers what etcd acknowledged.
type workload struct {
	ctx context.Context
	t   *testing.T
	cli *clientv3.Client
	n   int
	// acked maps each acknowledged write (a put's value, or the txn's or
	// delete's tag) to the revision etcd answered.
	acked map[string]int64
}

func newWorkload(ctx context.Context, t *testing.T, c *cluster.Cluster) *workload {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return &workload{ctx: ctx, t: t, cli: cli, acked: map[string]int64{}}
}

func (w *workload) key(i int) string { return fmt.Sprintf("key-%d", i%10) }

// puts writes n unique values; a put that fails or times out is an unknown
// outcome, not an error.
func (w *workload) puts(n int) {
	failed := 0
	for range n {
		w.n++
		val := fmt.Sprintf("value-%d", w.n)
		ctx, cancel := context.WithTimeout(w.ctx, 2*time.Second)
		resp, err := w.cli.Put(ctx, w.key(w.n), val)
		cancel()
		if err != nil {
			failed++
			continue
		}
		w.acked[val] = resp.Header.Revision
	}
	w.t.Logf("%d puts, %d not acknowledged", n, failed)
}

// deletesAndTxn deletes two keys and runs a txn that puts a unique value
// and deletes a key when a key exists.
func (w *workload) deletesAndTxn() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	for range 2 {
		w.n++
		resp, err := w.cli.Delete(ctx, w.key(w.n))
		require.NoError(w.t, err)
		if resp.Deleted > 0 { // deleting nothing makes no revision
			w.acked["delete "+w.key(w.n)+fmt.Sprintf(" at %d", resp.Header.Revision)] = resp.Header.Revision
		}
	}
	w.n++
	val := fmt.Sprintf("txn-value-%d", w.n)
	resp, err := w.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(w.key(w.n)), ">", 0)).
		Then(clientv3.OpPut(w.key(w.n), val), clientv3.OpDelete(w.key(w.n+1))).
		Else(clientv3.OpPut(w.key(w.n), val)).
		Commit()
	require.NoError(w.t, err)
	w.acked[val] = resp.Header.Revision
}

// check replays the committed log (puts, single-key deletes, and txns that
// compare a key's version) to find the revision each entry produced, and
// compares it with what etcd acknowledged.
func (w *workload) check(log Log) {
	t := w.t
	rev := int64(1)
	exists := map[string]bool{}
	produced := map[string][]int64{} // write -> revisions it was committed at
	var putRevs []int64              // revisions of acknowledged puts, in log order
	apply := func(ops []history.RequestOp) (wrote bool, tags []string) {
		for _, op := range ops {
			switch {
			case op.Put != nil:
				exists[op.Put.Key] = true
				wrote = true
				tags = append(tags, op.Put.Value)
			case op.DeleteRange != nil:
				require.Empty(t, op.DeleteRange.RangeEnd)
				if exists[op.DeleteRange.Key] {
					delete(exists, op.DeleteRange.Key)
					wrote = true
				}
			default:
				t.Fatalf("unexpected op %+v", op)
			}
		}
		return wrote, tags
	}
	for _, e := range log.Entries {
		if e.Request == nil {
			continue
		}
		r := e.Request
		var ops []history.RequestOp
		switch {
		case r.Put != nil:
			ops = []history.RequestOp{{Put: r.Put}}
		case r.DeleteRange != nil:
			ops = []history.RequestOp{{DeleteRange: r.DeleteRange}}
		case r.Txn != nil:
			require.Len(t, r.Txn.Compare, 1)
			cmp := r.Txn.Compare[0]
			require.Equal(t, "VERSION", cmp.Target)
			require.Equal(t, "GREATER", cmp.Result)
			ops = r.Txn.Failure
			if exists[cmp.Key] { // version > 0
				ops = r.Txn.Success
			}
		default:
			t.Fatalf("unexpected committed request at %d: %+v", e.Index, r)
		}
		key := ""
		if r.DeleteRange != nil {
			key = r.DeleteRange.Key
		}
		wrote, tags := apply(ops)
		if !wrote {
			continue
		}
		rev++
		for _, tag := range tags {
			produced[tag] = append(produced[tag], rev)
			if _, ok := w.acked[tag]; ok && r.Put != nil {
				putRevs = append(putRevs, w.acked[tag])
			}
		}
		if key != "" {
			tag := "delete " + key + fmt.Sprintf(" at %d", rev)
			produced[tag] = append(produced[tag], rev)
		}
	}

	puts := 0
	for tag, ackRev := range w.acked {
		require.Equal(t, []int64{ackRev}, produced[tag], "%s: committed once, at the revision etcd answered", tag)
		if strings.HasPrefix(tag, "value-") {
			puts++
		}
	}
	require.Greater(t, puts, 150, "most puts should have been acknowledged")
	require.Len(t, putRevs, puts)
	require.True(t, slices.IsSorted(putRevs), "acknowledged puts are committed in the order of their revisions")
	t.Logf("%d committed entries, %d acknowledged writes checked, last revision %d", len(log.Entries), len(w.acked), rev)
}

package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// TestAgreesWithModel sends every kind of request to a real etcd and checks
// that the translated response is exactly what the model predicts, so the
// client and the model speak the same language.
func TestAgreesWithModel(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()

	c, err := New(cl.Endpoints(), 0, history.NewClock(), 0)
	require.NoError(t, err)
	defer c.Close()

	requests := []history.Request{
		history.Get("a"),
		history.Put("a", "1"),
		history.Put("b", "2"),
		history.Put("c", "3"),
		history.Get("a"),
		history.Range("a", "c"),
		history.RangeAll(),
		history.CompareAndSet("a", 2, "4"), // succeeds
		history.CompareAndSet("a", 2, "5"), // fails, reads a
		history.CompareAndSet("d", 0, "6"), // creates d
		history.CompareAndSet("d", 0, "7"), // fails: d exists
		history.Delete("zz"),               // deletes nothing
		history.Delete("b"),                // deletes b
		history.RangeAll(),
	}
	state := model.InitialState()
	for _, req := range requests {
		op := c.Do(ctx, req)
		require.Nil(t, op.Error, "%s", req.Kind())
		mreq, got, err := model.FromRecord(op)
		require.NoError(t, err)
		next, want, _ := state.Apply(mreq)
		require.True(t, want.Equal(got), "%s: etcd said %s, the model %s", mreq, got, want)
		state = next
		h := op.Response.Header
		require.NotZero(t, h.ClusterID, "the header is recorded whole")
		require.NotZero(t, h.MemberID)
		require.NotZero(t, h.RaftTerm)
	}
	// Every field etcd sends is kept, the ones the model ignores too.
	last := c.History().Operations[len(requests)-1].Response.Range
	require.Equal(t, int64(3), last.Count)
	require.Equal(t, history.KeyValue{Key: "a", Value: "4", CreateRevision: 2, ModRevision: 5, Version: 2}, last.KVs[0])

	// Definite errors, as a real etcd returns them.
	future := c.Do(ctx, history.Request{Range: &history.RangeRequest{Key: "a", Revision: 1000}})
	require.Equal(t, &history.Error{Code: "OutOfRange", Message: "etcdserver: mvcc: required revision is a future revision", Outcome: history.Failed}, future.Error)
	require.Nil(t, c.Do(ctx, history.Request{Compaction: &history.CompactionRequest{Revision: 5}}).Error)
	compacted := c.Do(ctx, history.Request{Range: &history.RangeRequest{Key: "a", Revision: 3}})
	require.Equal(t, &history.Error{Code: "OutOfRange", Message: "etcdserver: mvcc: required revision has been compacted", Outcome: history.Failed}, compacted.Error)
	noLease := c.Do(ctx, history.Request{Put: &history.PutRequest{Key: "a", Value: "9", Lease: 12345}})
	require.Equal(t, history.Failed, noLease.Error.Outcome, "%v", noLease.Error)
	require.Equal(t, "etcdserver: requested lease not found", noLease.Error.Message)
	ops := c.History().Operations
	require.Len(t, ops, len(requests)+4, "every request is recorded")
	for i := 1; i < len(ops); i++ {
		require.LessOrEqual(t, ops[i].Call, ops[i].Return)
		require.LessOrEqual(t, ops[i-1].Return, ops[i].Call, "one request at a time, in order")
	}

	// A request to a dead cluster fails and is recorded as failed.
	require.NoError(t, cl.Close())
	short, err := New(cl.Endpoints(), 1, history.NewClock(), 500*time.Millisecond)
	require.NoError(t, err)
	defer short.Close()
	op := short.Do(ctx, history.Put("a", "8"))
	require.NotNil(t, op.Error)
	require.Equal(t, history.Unknown, op.Error.Outcome, "a timeout leaves the outcome unknown: %v", op.Error)
	require.Len(t, short.History().Operations, 1)
}

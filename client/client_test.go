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

	requests := []model.Request{
		model.GetRequest("a"),
		model.PutRequest("a", "1"),
		model.PutRequest("b", "2"),
		model.PutRequest("c", "3"),
		model.GetRequest("a"),
		model.RangeRequest("a", "c"),
		model.RangeAllRequest(),
		model.CompareAndSetRequest("a", 2, "4"), // succeeds
		model.CompareAndSetRequest("a", 2, "5"), // fails, reads a
		model.CompareAndSetRequest("d", 0, "6"), // creates d
		model.CompareAndSetRequest("d", 0, "7"), // fails: d exists
		model.DeleteRequest("zz"),               // deletes nothing
		model.DeleteRequest("b"),                // deletes b
		model.RangeAllRequest(),
	}
	state := model.InitialState()
	for _, req := range requests {
		got := c.Do(ctx, req)
		require.False(t, got.Failed(), "%s: %s", req, got.Error)
		next, want := state.Apply(req)
		require.True(t, want.Equal(got), "%s: etcd said %s, the model %s", req, got, want)
		state = next
	}
	ops := c.History().Operations
	require.Len(t, ops, len(requests), "every request is recorded")
	for i := 1; i < len(ops); i++ {
		require.LessOrEqual(t, ops[i].Call, ops[i].Return)
		require.LessOrEqual(t, ops[i-1].Return, ops[i].Call, "one request at a time, in order")
	}

	// A request to a dead cluster fails and is recorded as failed.
	require.NoError(t, cl.Close())
	short, err := New(cl.Endpoints(), 1, history.NewClock(), 500*time.Millisecond)
	require.NoError(t, err)
	defer short.Close()
	resp := short.Do(ctx, model.PutRequest("a", "8"))
	require.True(t, resp.Failed())
	require.Len(t, short.History().Operations, 1)
}

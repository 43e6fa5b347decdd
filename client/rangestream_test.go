package client

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// A RangeStream answers as Range does once its chunks are merged (etcd
// v3.7); etcd before v3.7 has no such method, and the read is recorded
// with an unknown outcome, which the model leaves out.
func TestRangeStream(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(t *testing.T, etcd string) *Client {
		cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
		require.NoError(t, err)
		t.Cleanup(func() { cl.Close() })
		c, err := New(cl.Endpoints(), 0, history.NewClock(), 0)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("v3.7", func(t *testing.T) {
		if v := bins.Version; strings.HasPrefix(v, "v3.4.") || strings.HasPrefix(v, "v3.5.") || strings.HasPrefix(v, "v3.6.") {
			t.Skipf("etcd %s has no RangeStream", bins.Version)
		}
		c := start(t, bins.Etcd)
		state := model.InitialState()
		do := func(req history.Request) history.Operation {
			op := c.Do(ctx, req)
			require.Nil(t, op.Error, "%s", req.Kind())
			mreq, got, err := model.FromRecord(op)
			require.NoError(t, err)
			next, want, _ := state.Apply(mreq)
			require.True(t, want.Equal(got), "%s: etcd said %s, the model %s", mreq, got, want)
			state = next
			return op
		}
		for i := range 45 {
			do(history.Put(fmt.Sprintf("k/%02d", i), fmt.Sprintf("v%d", i)))
		}
		do(history.Delete("k/07"))
		for _, r := range []history.RangeRequest{
			{Key: "k/", RangeEnd: "k0"},
			{Key: "k/", RangeEnd: "k0", Limit: 15},
			{Key: "k/", RangeEnd: "k0", Limit: 40},
			{Key: "k/", RangeEnd: "k0", CountOnly: true},
			{Key: "k/", RangeEnd: "k0", KeysOnly: true},
			{Key: "k/", RangeEnd: "k0", Serializable: true},
			{Key: "k/", RangeEnd: "k0", Revision: 20},
			{Key: "k/03"},
			{Key: "k/07"},
		} {
			plain := do(history.Request{Range: &r})
			s := r
			s.Stream = true
			stream := do(history.Request{Range: &s})
			require.Equal(t, "range_stream", stream.Request.Kind())
			want, got := *plain.Response.Range, *stream.Response.Range
			require.Positive(t, got.Chunks, "%+v", r)
			got.Chunks = 0
			require.Equal(t, want, got, "%+v: the merged chunks are the range's answer", r)
			require.Equal(t, plain.Response.Header.Revision, stream.Response.Header.Revision)
			require.NotZero(t, stream.Response.Header.MemberID, "the last chunk's header is filled")
			if r.Limit == 0 && r.RangeEnd != "" && !r.CountOnly {
				require.GreaterOrEqual(t, stream.Response.Range.Chunks, 2, "%+v: etcd sends 44 keys in more than one chunk", r)
			}
		}
	})
	t.Run("v3.6", func(t *testing.T) {
		old, err := etcdbuild.Provision(ctx, "v3.6.16", etcdbuild.Options{Logger: zaptest.NewLogger(t)})
		require.NoError(t, err)
		c := start(t, old.Etcd)
		op := c.Do(ctx, history.Request{Range: &history.RangeRequest{Key: "k/", RangeEnd: "k0", Stream: true}})
		require.NotNil(t, op.Error)
		require.Equal(t, "Unimplemented", op.Error.Code, "%v", op.Error)
		require.Equal(t, history.Unknown, op.Error.Outcome, "a read without an answer is left out")
	})
}

// A RangeStreamResponse is decoded from the wire: field 1, the
// RangeResponse, merged if it occurs twice; other fields skipped.
func TestDecodeRangeStreamResponse(t *testing.T) {
	inner := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 7, MemberId: 3}, Count: 2, More: true}
	b, err := inner.Marshal()
	require.NoError(t, err)
	wire := append([]byte{0x0a, byte(len(b))}, b...)
	wire = append(wire, 0x10, 0x05)             // an unknown varint field 2
	wire = append(wire, 0x1a, 0x02, 0xff, 0xff) // an unknown bytes field 3
	got, err := decodeRangeStreamResponse(wire)
	require.NoError(t, err)
	require.Equal(t, int64(7), got.Header.Revision)
	require.Equal(t, int64(2), got.Count)
	require.True(t, got.More)
	_, err = decodeRangeStreamResponse([]byte{0x0a, 0x09, 0x01})
	require.Error(t, err, "a length past the end")

	m := &pb.RangeResponse{}
	mergeRangeChunk(m, &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("a")}}})
	mergeRangeChunk(m, &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("b")}}, Header: &pb.ResponseHeader{Revision: 9}, Count: 5, More: true})
	require.Len(t, m.Kvs, 2)
	require.Equal(t, int64(9), m.Header.Revision)
	require.Equal(t, int64(5), m.Count)
	require.True(t, m.More)
}

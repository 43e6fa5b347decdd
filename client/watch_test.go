package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/metadata"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

func TestCreateRequest(t *testing.T) {
	got := createRequest(history.WatchRequest{Key: "a", RangeEnd: "b", StartRevision: 7, PrevKV: true,
		ProgressNotify: true, Filters: []string{"NODELETE"}, Fragment: true, RequireLeader: true})
	require.Equal(t, &pb.WatchCreateRequest{Key: []byte("a"), RangeEnd: []byte("b"), StartRevision: 7, PrevKv: true,
		ProgressNotify: true, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}, Fragment: true}, got)
	require.Nil(t, createRequest(history.WatchRequest{Key: "a"}).RangeEnd, "a single key has no range end")
	require.Equal(t, []byte{0}, createRequest(history.WatchRequest{Key: "", RangeEnd: "\x00"}).RangeEnd, "every key")
}

func TestWithRequireLeader(t *testing.T) {
	for _, ctx := range []context.Context{
		context.Background(),
		metadata.NewOutgoingContext(context.Background(), metadata.Pairs("other", "x")),
	} {
		md, ok := metadata.FromOutgoingContext(withRequireLeader(ctx))
		require.True(t, ok)
		require.Equal(t, []string{"true"}, md.Get("hasleader"))
	}
}

func TestResponseFromPB(t *testing.T) {
	got := responseFromPB(&pb.WatchResponse{
		Header:  &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 9, RaftTerm: 3},
		WatchId: 4, Fragment: true, CompactRevision: 5, Canceled: true, CancelReason: "why",
		Events: []*mvccpb.Event{
			{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 8, ModRevision: 9, Version: 2, Lease: 6},
				PrevKv: &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("0"), CreateRevision: 8, ModRevision: 8, Version: 1}},
			{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 9}},
		},
	})
	require.Equal(t, history.WatchResponse{
		Header:  history.Header{ClusterID: 1, MemberID: 2, Revision: 9, RaftTerm: 3},
		WatchID: 4, Fragment: true, CompactRevision: 5, Canceled: true, CancelReason: "why",
		Events: []history.WatchEvent{
			{Type: "PUT", KV: history.KeyValue{Key: "a", Value: "1", CreateRevision: 8, ModRevision: 9, Version: 2, Lease: 6},
				PrevKV: &history.KeyValue{Key: "a", Value: "0", CreateRevision: 8, ModRevision: 8, Version: 1}},
			{Type: "DELETE", KV: history.KeyValue{Key: "b", ModRevision: 9}},
		},
	}, got)
}

func TestProgress(t *testing.T) {
	tests := []struct {
		name string
		resp []history.WatchResponse
		want int64
	}{
		{"nothing", nil, 0},
		{"created only", []history.WatchResponse{{Created: true, Header: history.Header{Revision: 9}}}, 0},
		{"events", []history.WatchResponse{{Header: history.Header{Revision: 12}, Events: []history.WatchEvent{
			{KV: history.KeyValue{ModRevision: 5}}, {KV: history.KeyValue{ModRevision: 7}}}}}, 7},
		{"progress notification", []history.WatchResponse{{Header: history.Header{Revision: 12}}}, 12},
		{"progress then older event", []history.WatchResponse{{Header: history.Header{Revision: 12}},
			{Events: []history.WatchEvent{{KV: history.KeyValue{ModRevision: 7}}}}}, 12},
		{"error", []history.WatchResponse{{Header: history.Header{Revision: 12}, Error: &history.Error{}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Progress(history.Watch{Responses: tt.resp}))
		})
	}
}

func TestMemberRevision(t *testing.T) {
	s := &Stream{clock: history.NewClock(), notify: make(chan struct{}, 1)}
	require.Zero(t, s.MemberRevision(), "nothing received")
	for _, tc := range []struct {
		resp history.WatchResponse
		want int64
	}{
		{history.WatchResponse{Created: true, Header: history.Header{Revision: 459}}, 459},
		{history.WatchResponse{Header: history.Header{Revision: 461}, Events: []history.WatchEvent{{KV: history.KeyValue{ModRevision: 460}}}}, 461},
		{history.WatchResponse{Header: history.Header{Revision: 12}}, 461}, // an older header does not lower it
	} {
		s.record(tc.resp)
		require.Equal(t, tc.want, s.MemberRevision())
	}
}

// TestWatchRecordsWhatEtcdSent watches a real etcd from a past revision,
// writes, asks for progress, and checks the record: creation, every event
// with its previous value, and a progress notification at the last
// revision.
func TestWatchRecordsWhatEtcdSent(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	clock := history.NewClock()
	c, err := New(cl.Endpoints(), 0, clock, 0)
	require.NoError(t, err)
	defer c.Close()
	w, err := NewWatcher(cl.Endpoints(), 1, clock)
	require.NoError(t, err)
	defer w.Close()

	put := c.Do(ctx, history.Put("key-1", "v1")) // revision 2
	require.Nil(t, put.Error)
	s := w.Open(ctx, 0, history.WatchRequest{Key: "key-", RangeEnd: "key.", StartRevision: 1, PrevKV: true, RequireLeader: true}, -1)
	require.Nil(t, c.Do(ctx, history.Put("key-1", "v2")).Error) // revision 3
	require.Nil(t, c.Do(ctx, history.Put("other", "x")).Error)  // revision 4, not watched
	require.Nil(t, c.Do(ctx, history.Delete("key-1")).Error)    // revision 5
	require.Eventually(t, func() bool {
		_ = s.RequestProgress()
		rs := s.Record().Responses
		return len(rs) > 0 && rs[len(rs)-1].IsProgressNotify() && rs[len(rs)-1].Header.Revision == 5
	}, 10*time.Second, 100*time.Millisecond)
	s.Close("done")

	rec := s.Record()
	require.Equal(t, "done", rec.EndReason)
	require.Equal(t, 1, rec.ClientID)
	require.Equal(t, -1, rec.ResumedFrom)
	require.NotEmpty(t, rec.ProgressRequests)
	require.True(t, rec.Responses[0].Created)
	var events []history.WatchEvent
	for _, r := range rec.Responses {
		require.Nil(t, r.Error)
		require.NotZero(t, r.Header.MemberID)
		events = append(events, r.Events...)
	}
	require.Equal(t, []history.WatchEvent{
		{Type: "PUT", KV: history.KeyValue{Key: "key-1", Value: "v1", CreateRevision: 2, ModRevision: 2, Version: 1}},
		{Type: "PUT", KV: history.KeyValue{Key: "key-1", Value: "v2", CreateRevision: 2, ModRevision: 3, Version: 2},
			PrevKV: &history.KeyValue{Key: "key-1", Value: "v1", CreateRevision: 2, ModRevision: 2, Version: 1}},
		{Type: "DELETE", KV: history.KeyValue{Key: "key-1", ModRevision: 5},
			PrevKV: &history.KeyValue{Key: "key-1", Value: "v2", CreateRevision: 2, ModRevision: 3, Version: 2}},
	}, events)
	require.Equal(t, int64(5), Progress(rec))
}

// TestWatchBreaksWhenTheMemberStops records a stream error, not a hang,
// when the member goes away.
func TestWatchBreaksWhenTheMemberStops(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	w, err := NewWatcher(cl.Endpoints(), 0, history.NewClock())
	require.NoError(t, err)
	defer w.Close()
	s := w.Open(ctx, 0, history.WatchRequest{Key: "a"}, -1)
	require.Eventually(t, s.Created, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, cl.Members()[0].Kill())
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end when its member was killed")
	}
	rec := s.Record()
	require.Equal(t, "error", rec.EndReason)
	require.NotNil(t, rec.Responses[len(rec.Responses)-1].Error)
}

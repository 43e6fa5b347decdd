package traffic

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

func TestWatchRangeEnd(t *testing.T) {
	for _, tt := range []struct{ prefix, want string }{
		{"", allKeys},
		{allKeys, allKeys},
		{"key-", "key."},
		{"/registry/", "/registry0"},
		{"a\xff", "b"},
	} {
		require.Equal(t, tt.want, watchRangeEnd(tt.prefix), tt.prefix)
	}
}

func TestPlanIsDeterministicAndCoversTheKinds(t *testing.T) {
	a := plan(rand.New(rand.NewSource(7)), 4, WatchedKeys("etcd-kv"), 10*time.Second)
	b := plan(rand.New(rand.NewSource(7)), 4, WatchedKeys("etcd-kv"), 10*time.Second)
	require.Equal(t, a, b, "the same seed plans the same watches")
	kinds := map[startKind]bool{}
	var prevKV, notify, leader, filtered, single, midRun bool
	for _, ws := range a {
		for _, s := range ws {
			kinds[s.start] = true
			prevKV = prevKV || s.prevKV
			notify = notify || s.progressNotify
			leader = leader || s.requireLeader
			filtered = filtered || len(s.filters) > 0
			single = single || s.end == ""
			midRun = midRun || s.at > 0
			require.LessOrEqual(t, s.at, 10*time.Second)
		}
	}
	require.Len(t, kinds, 5, "from now, first, past, future, and list-then-watch")
	require.True(t, prevKV && notify && leader && filtered && single && midRun)
	// A profile without a key space of its own watches every key.
	for _, ws := range plan(rand.New(rand.NewSource(1)), 1, WatchedKeys("unknown"), time.Second) {
		for _, s := range ws {
			require.Equal(t, allKeys, s.key)
			require.Equal(t, allKeys, s.end)
		}
	}
}

func TestResumeRequest(t *testing.T) {
	req := history.WatchRequest{Key: "a", RangeEnd: "b", PrevKV: true}
	created := history.WatchResponse{Created: true, Header: history.Header{Revision: 4}}
	broken := history.WatchResponse{Error: &history.Error{Code: "Unavailable"}}
	event := func(rev int64) history.WatchResponse {
		return history.WatchResponse{Header: history.Header{Revision: rev}, Events: []history.WatchEvent{{KV: history.KeyValue{ModRevision: rev}}}}
	}
	tests := []struct {
		name  string
		resp  []history.WatchResponse
		start int64
		ok    bool
	}{
		{"never opened: the same again", []history.WatchResponse{broken}, 0, true},
		{"created, nothing seen: after the creation revision", []history.WatchResponse{created, broken}, 5, true},
		{"after the last event", []history.WatchResponse{created, event(7), broken}, 8, true},
		{"after the last progress notification", []history.WatchResponse{created, event(7), {Header: history.Header{Revision: 9}}, broken}, 10, true},
		{"compacted: from the compact revision", []history.WatchResponse{{Canceled: true, CompactRevision: 6}}, 6, true},
		{"canceled otherwise: not resumed", []history.WatchResponse{created, {Canceled: true, CancelReason: "x"}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := resumeRequest(req, history.Watch{Responses: tt.resp})
			require.Equal(t, tt.ok, ok)
			if ok {
				want := req
				want.StartRevision = tt.start
				require.Equal(t, want, got)
			}
		})
	}
}

// TestWatchersCatchUp runs the watchers against a real cluster under a
// little traffic, then checks that every watch caught up to the last
// revision and that every event it delivered was written.
func TestWatchersCatchUp(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	clock := history.NewClock()
	c, err := client.New(cl.Endpoints(), 0, clock, 0)
	require.NoError(t, err)
	defer c.Close()
	ws, err := StartWatchers(ctx, WatchConfig{Profile: "etcd-kv", Members: cl.Endpoints(), Endpoints: cl.Endpoints(),
		Seed: 3, Clock: clock, FirstID: 100, Duration: time.Second, ProgressRequestInterval: 50 * time.Millisecond,
		Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	var last int64
	for i := range 40 {
		op := c.Do(ctx, history.Put("key-"+string(rune('0'+i%3)), "v"+string(rune('a'+i))))
		require.Nil(t, op.Error)
		last = op.Response.Header.Revision
		time.Sleep(30 * time.Millisecond)
	}
	start := time.Now()
	watches, lists := ws.Finish(last, 5*time.Second)
	require.Less(t, time.Since(start), 6*time.Second)
	require.NotEmpty(t, lists, "list-then-watch reads are recorded")
	require.Greater(t, len(watches), 10)
	for _, w := range watches {
		require.Equal(t, "done", w.EndReason, "watch %d %+v", w.ID, w.Request)
		require.Equal(t, last, w.Target)
		require.True(t, client.Progress(w) >= last || w.Request.StartRevision > last, "watch %d reached %d", w.ID, client.Progress(w))
		for _, r := range w.Responses {
			for _, e := range r.Events {
				require.LessOrEqual(t, e.KV.ModRevision, last)
			}
		}
	}
}

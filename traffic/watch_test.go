package traffic

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	a := plan(rand.New(rand.NewSource(8)), 4, WatchedKeys("etcd-kv"), 10*time.Second, true)
	b := plan(rand.New(rand.NewSource(8)), 4, WatchedKeys("etcd-kv"), 10*time.Second, true)
	require.Equal(t, a, b, "the same seed plans the same watches")
	kinds := map[startKind]bool{}
	var prevKV, notify, leader, filtered, single, midRun bool
	var firstMidRun, longBacklog, progressAtOpen, slow int
	quarters := map[time.Duration]bool{0: true, 2500 * time.Millisecond: true, 5 * time.Second: true, 7500 * time.Millisecond: true}
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
			if !quarters[s.at] && s.start == fromFirst {
				firstMidRun++
			}
			if s.start == fromPast && s.offset >= 200 {
				longBacklog++
			}
			if s.progressAtOpen {
				progressAtOpen++
				require.NotEqual(t, fromNow, s.start, "progress at open is for watches that start in the past")
				require.False(t, s.progressNotify, "so the answers to the requests can be told from periodic ones")
			}
			if s.slow {
				slow++
				require.False(t, s.requireLeader || s.progressNotify, "a slow watch's times are when it read, so no timed check applies")
			}
		}
	}
	require.Len(t, kinds, 5, "from now, first, past, future, and list-then-watch")
	require.True(t, prevKV && notify && leader && filtered && single && midRun, "prevKV %v notify %v leader %v filtered %v single %v midRun %v", prevKV, notify, leader, filtered, single, midRun)
	require.Equal(t, 4, firstMidRun, "each watcher opens a watch from revision 1 at a random time")
	require.Equal(t, 4, longBacklog, "and one with a long backlog")
	require.Equal(t, 12, progressAtOpen)
	require.Equal(t, 4, slow, "a slow watch on each watcher")
	for _, ws := range plan(rand.New(rand.NewSource(8)), 4, WatchedKeys("etcd-kv"), 10*time.Second, false) {
		for _, s := range ws {
			require.False(t, s.slow, "none when the slow watch is off")
		}
	}
	// A profile without a key space of its own watches every key.
	for _, ws := range plan(rand.New(rand.NewSource(1)), 1, WatchedKeys("unknown"), time.Second, true) {
		for _, s := range ws {
			require.Equal(t, allKeys, s.key)
			require.Equal(t, allKeys, s.end)
		}
	}
}

func TestLeaveOutFutureWatches(t *testing.T) {
	planned := plan(rand.New(rand.NewSource(8)), 4, WatchedKeys("etcd-kv"), 10*time.Second, true)
	tests := []struct {
		name       string
		avoid      []Avoidance
		wantFuture bool
	}{
		{"nothing avoided", nil, true},
		{"another bug avoided", []Avoidance{AvoidKeysOnly}, true},
		{"etcd #20221 avoided", []Avoidance{AvoidKeysOnly, AvoidFutureWatches}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := leaveOut(planned, tc.avoid)
			require.Len(t, got, len(planned), "every watcher keeps its watches")
			future := 0
			for i := range planned {
				var rest []watchSpec
				for _, s := range planned[i] {
					if s.start == fromFuture {
						future++
						if !tc.wantFuture {
							continue
						}
					}
					rest = append(rest, s)
				}
				require.Equal(t, rest, got[i], "watcher %d: the other watches as planned, in order", i)
			}
			require.Positive(t, future, "the plan has watches from future revisions to leave out")
		})
	}
}

func TestProgressAllowed(t *testing.T) {
	tests := []struct {
		name             string
		avoid            bool
		start, memberRev int64
		want             bool
	}{
		{"no avoidance, a watch ahead of the member", false, 460, 459, true},
		{"from now", true, 0, 0, true},
		{"the member has not shown its revision", true, 460, 0, false},
		{"resumed one past the member (etcd #20221 answers 459)", true, 460, 459, false},
		{"the member reached the start", true, 460, 460, true},
		{"a watch from the past", true, 100, 459, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, progressAllowed(tc.avoid, tc.start, tc.memberRev))
		})
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
		name        string
		resp        []history.WatchResponse
		pastCompact bool
		start       int64
		ok          bool
	}{
		{"never opened: the same again", []history.WatchResponse{broken}, false, 0, true},
		{"created, nothing seen: after the creation revision", []history.WatchResponse{created, broken}, false, 5, true},
		{"after the last event", []history.WatchResponse{created, event(7), broken}, false, 8, true},
		{"after the last progress notification", []history.WatchResponse{created, event(7), {Header: history.Header{Revision: 9}}, broken}, false, 10, true},
		{"compacted: from the compact revision", []history.WatchResponse{{Canceled: true, CompactRevision: 6}}, false, 6, true},
		{"compacted, etcd#18089 avoided: past the compact revision", []history.WatchResponse{{Canceled: true, CompactRevision: 6}}, true, 7, true},
		{"broken, etcd#18089 avoided: after the last event as before", []history.WatchResponse{created, event(7), broken}, true, 8, true},
		{"canceled otherwise: not resumed", []history.WatchResponse{created, {Canceled: true, CancelReason: "x"}}, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := resumeRequest(req, history.Watch{Responses: tt.resp}, tt.pastCompact)
			require.Equal(t, tt.ok, ok)
			if ok {
				want := req
				want.StartRevision = tt.start
				require.Equal(t, want, got)
			}
		})
	}
}

// oneMember starts a 1-member cluster of etcd and a recording client of
// it, both closed when the test ends.
func oneMember(ctx context.Context, t *testing.T, etcd string) (*cluster.Cluster, *history.Clock, *client.Client) {
	t.Helper()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	clock := history.NewClock()
	c, err := client.New(cl.Endpoints(), 0, clock, 0)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return cl, clock, c
}

// TestWatchersCatchUp runs the watchers against a real cluster under a
// little traffic, then checks that every watch caught up to the last
// revision and that every event it delivered was written. With etcd#15220
// avoided (AvoidProgressRequests) they still catch up, and no stream asked
// for progress before Finish began.
func TestWatchersCatchUp(t *testing.T) {
	bins := testetcd.Binaries(t)
	for _, tc := range []struct {
		name  string
		avoid []Avoidance
	}{
		{"progress requested all through", nil},
		{"etcd#15220 avoided: progress requested only while catching up", []Avoidance{AvoidProgressRequests}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cl, clock, c := oneMember(ctx, t, bins.Etcd)
			ws, err := StartWatchers(ctx, WatchConfig{Profile: "etcd-kv", Members: cl.Endpoints(), Endpoints: cl.Endpoints(),
				Seed: 3, Clock: clock, FirstID: 100, Duration: time.Second, ProgressRequestInterval: 50 * time.Millisecond,
				Logger: zaptest.NewLogger(t), Avoid: tc.avoid})
			require.NoError(t, err)
			var last int64
			for i := range 40 {
				op := c.Do(ctx, history.Put("key-"+string(rune('0'+i%3)), "v"+string(rune('a'+i))))
				require.Nil(t, op.Error)
				last = op.Response.Header.Revision
				time.Sleep(30 * time.Millisecond)
			}
			start, finishAt := time.Now(), clock.Now()
			watches, lists := ws.Finish(last, 5*time.Second)
			require.Less(t, time.Since(start), 6*time.Second)
			require.NotEmpty(t, lists, "list-then-watch reads are recorded")
			require.Greater(t, len(watches), 10)
			before := 0
			for _, w := range watches {
				require.Equal(t, "done", w.EndReason, "watch %d %+v", w.ID, w.Request)
				require.Equal(t, last, w.Target)
				require.True(t, client.Progress(w) >= last || w.Request.StartRevision > last, "watch %d reached %d", w.ID, client.Progress(w))
				for _, r := range w.Responses {
					for _, e := range r.Events {
						require.LessOrEqual(t, e.KV.ModRevision, last)
					}
				}
				for _, at := range w.ProgressRequests {
					if at < finishAt {
						before++
					}
				}
			}
			if tc.avoid == nil {
				require.Positive(t, before, "progress requested while traffic ran")
			} else {
				require.Zero(t, before, "progress requests sent while traffic ran")
			}
		})
	}
}

// slowWatchers reads etcd's gauge of watchers that are not synced: those
// catching up from a past revision and those moved aside as victims.
func slowWatchers(ctx context.Context, m *cluster.Member) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.DirectClientURL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading %s's metrics: %w", m.Name(), err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_debugging_mvcc_slow_watcher_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading %s's metrics: %w", m.Name(), err)
	}
	return 0, fmt.Errorf("%s's metrics have no slow_watcher_total", m.Name())
}

// A watch from now that reads slowly fills etcd's buffer for it, and etcd
// moves its watcher aside as a victim (the only watcher, synced at first,
// shows in the slow-watcher gauge only then). Read at full speed again, it
// gets every event in order.
func TestSlowWatchBecomesAVictimAndCatchesUp(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	clock := history.NewClock()
	w, err := client.NewWatcher(cl.Endpoints(), 100, clock)
	require.NoError(t, err)
	defer w.Close()
	s := w.Open(ctx, 0, history.WatchRequest{Key: "k/", RangeEnd: "k0", PrevKV: true}, -1)
	defer s.Close("done")
	s.SetReadDelay(DefaultSlowReadDelay)
	require.Eventually(t, s.Created, 5*time.Second, 10*time.Millisecond)

	// Values of 1 KiB fill gRPC's windows with a few hundred revisions.
	pad := strings.Repeat("x", 1024)
	var (
		mu     sync.Mutex
		puts   = map[int64]string{} // revision → value
		victim bool
	)
	var stop atomic.Bool
	defer stop.Store(true)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			c, err := client.New(cl.Endpoints(), g, clock, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; !stop.Load(); i++ {
				v := fmt.Sprintf("%d-%d-%s", g, i, pad)
				op := c.Do(ctx, history.Put(fmt.Sprintf("k/%d", i%10), v))
				if op.Error != nil {
					t.Errorf("put: %v", op.Error)
					return
				}
				mu.Lock()
				puts[op.Response.Header.Revision] = v
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !victim; {
		n, err := slowWatchers(ctx, cl.Members()[0])
		require.NoError(t, err)
		victim = n > 0
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	require.True(t, victim, "etcd moved the slow watcher aside within 30 s of writes")

	var last int64
	for rev := range puts {
		last = max(last, rev)
	}
	s.SetReadDelay(0)
	require.Eventually(t, func() bool { _ = s.RequestProgress(); return s.Progress() >= last }, 20*time.Second, 50*time.Millisecond,
		"the slow watch catches up to revision %d", last)
	rec := s.Record()
	require.Equal(t, DefaultSlowReadDelay, rec.ReadDelay)
	var got []int64
	for _, r := range rec.Responses {
		for _, e := range r.Events {
			require.True(t, puts[e.KV.ModRevision] == e.KV.Value, "the event at revision %d has the value put there", e.KV.ModRevision)
			got = append(got, e.KV.ModRevision)
		}
	}
	require.Len(t, got, len(puts), "every put, once")
	require.True(t, slices.IsSorted(got), "in order")
	// A synced watcher gets one revision per message; one moved aside gets
	// its backlog from the unsynced path, several revisions at once.
	batched := 0
	for _, r := range rec.Responses {
		if n := len(r.Events); n > 1 && r.Events[0].KV.ModRevision != r.Events[n-1].KV.ModRevision {
			batched++
		}
	}
	require.Positive(t, batched, "the backlog came from the unsynced path")
	t.Logf("%d events, the slow watch became a victim; %d messages carried several revisions", len(got), batched)
}

// The watches of a run open all through it: one from revision 1 after a
// compaction is canceled with the compact revision and resumed from it;
// watches from the past ask for progress right after they are created; the
// slow watch reads slowly, then catches up with the others.
func TestWatchersOpenThroughTheRun(t *testing.T) {
	const seed, runFor = 5, 3 * time.Second
	compactEvery := 300 * time.Millisecond
	late := 0
	for _, ws := range plan(rand.New(rand.NewSource(seed)), 2, WatchedKeys("etcd"), runFor, true) {
		for _, s := range ws {
			if s.start == fromFirst && s.at > compactEvery+200*time.Millisecond {
				late++
			}
		}
	}
	require.Positive(t, late, "seed %d plans a watch from revision 1 after the first compaction", seed)

	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, clock, c := oneMember(ctx, t, bins.Etcd)
	ws, err := StartWatchers(ctx, WatchConfig{Profile: "etcd", Members: cl.Endpoints(), Endpoints: cl.Endpoints(),
		Seed: seed, Clock: clock, FirstID: 100, Duration: runFor, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	compactions := map[int64]bool{}
	var last, seen int64
	start := time.Now()
	nextCompact := start.Add(compactEvery)
	for i := 0; time.Since(start) < runFor; i++ {
		op := c.Do(ctx, history.Put(fmt.Sprintf("key/%d/%d", i%4, i%5), fmt.Sprintf("v%d", i)))
		require.Nil(t, op.Error)
		last = op.Response.Header.Revision
		if time.Now().After(nextCompact) {
			if seen > 0 {
				op := c.Do(ctx, history.Request{Compaction: &history.CompactionRequest{Revision: seen}})
				require.Nil(t, op.Error)
				compactions[seen] = true
			}
			seen, nextCompact = last, time.Now().Add(compactEvery)
		}
		time.Sleep(5 * time.Millisecond)
	}
	watches, _ := ws.Finish(last, 10*time.Second)

	byID := map[int]history.Watch{}
	for _, w := range watches {
		byID[w.ID] = w
	}
	var compacted, resumed, askedAtOpen, answered, slow int
	for _, w := range watches {
		if n := len(w.Responses); n > 0 && w.Responses[n-1].CompactRevision > 0 {
			r := w.Responses[n-1]
			require.True(t, r.Canceled)
			require.Empty(t, r.CancelReason)
			require.True(t, compactions[r.CompactRevision], "watch %d canceled at compact revision %d, one of the test's", w.ID, r.CompactRevision)
			require.Greater(t, r.CompactRevision, w.Request.StartRevision)
			compacted++
			continue
		}
		require.Equal(t, "done", w.EndReason, "watch %d %+v", w.ID, w.Request)
		if w.ResumedFrom >= 0 {
			prev := byID[w.ResumedFrom].Responses
			if cr := prev[len(prev)-1].CompactRevision; cr > 0 {
				require.Equal(t, cr, w.Request.StartRevision, "a compacted watch resumes from the compact revision")
				resumed++
			}
		}
		if w.Request.StartRevision > 0 && len(w.ProgressRequests) > 0 && w.ProgressRequests[0]-w.Call < 50*time.Millisecond {
			askedAtOpen++
			for _, r := range w.Responses {
				if r.IsProgressNotify() {
					answered++
					break
				}
			}
		}
		if w.ReadDelay > 0 {
			slow++
			var prev int64
			for _, r := range w.Responses {
				for _, e := range r.Events {
					require.Greater(t, e.KV.ModRevision, prev, "the slow watch's events are in order")
					prev = e.KV.ModRevision
				}
			}
			require.GreaterOrEqual(t, client.Progress(w), last, "the slow watch caught up")
		}
	}
	t.Logf("%d watches: %d canceled for a compaction, %d resumed from the compact revision, %d asked for progress at once (%d got a notification), %d slow",
		len(watches), compacted, resumed, askedAtOpen, answered, slow)
	require.Positive(t, compacted, "a watch from before the compact revision is canceled")
	require.Positive(t, resumed)
	require.Positive(t, askedAtOpen)
	require.Positive(t, answered)
	require.Positive(t, slow)
}

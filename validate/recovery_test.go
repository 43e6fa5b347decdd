package validate

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// steadyTraffic is one client sending a request every `every` ms from
// from to to (ms), each answered 2 ms later: puts and gets in turn. up
// says whether the cluster answered at that time; a request it does not
// answer times out after 1 s. Every put writes revision rev+1.
func steadyTraffic(client, from, to, every int, up func(ms int) bool) []history.Operation {
	var ops []history.Operation
	rev := int64(1)
	for ms, i := from, 0; ms < to; i++ {
		put := i%2 == 0
		req := ht.Get("k")
		if put {
			req = ht.Put("k", fmt.Sprintf("%d-%d", client, i))
		}
		if !up(ms) {
			ops = append(ops, ht.Unknown(client, ms, ms+1000, req))
			ms += 1000
			continue
		}
		if put {
			rev++
			ops = append(ops, ht.Op(client, ms, ms+2, req, ht.PutOK(rev)))
		} else {
			ops = append(ops, ht.Op(client, ms, ms+2, req, ht.GetOK(rev)))
		}
		ms += every
	}
	return ops
}

func upOutside(from, to int) func(int) bool {
	return func(ms int) bool { return ms < from || ms >= to }
}

// watcher is a watch of every key from revision 1 that received progress
// notifications at the given revisions and times (ms), and asked for
// progress every 500 ms.
func watcher(client int, end int, notes ...[2]int) history.Watch {
	w := history.Watch{ID: client, ClientID: client, Request: history.WatchRequest{Key: "\x00", RangeEnd: "\x00", StartRevision: 1},
		Call: 0, End: time.Duration(end) * time.Millisecond, EndReason: "done", ResumedFrom: -1}
	w.Responses = append(w.Responses, history.WatchResponse{Time: time.Millisecond, Created: true, Header: history.Header{Revision: 1}})
	for _, n := range notes {
		w.Responses = append(w.Responses, history.WatchResponse{Time: time.Duration(n[1]) * time.Millisecond, Header: history.Header{Revision: int64(n[0])}})
	}
	for ms := 0; ms < end; ms += 500 {
		w.ProgressRequests = append(w.ProgressRequests, time.Duration(ms)*time.Millisecond)
	}
	return w
}

func TestRecovery(t *testing.T) {
	inj := history.Injection{Name: "pause-leader", Targets: []string{"member-1"}, Start: 3 * time.Second, Effect: 3100 * time.Millisecond, End: 5 * time.Second}
	// Two clients at 100 requests/s each, down while the fault lasts.
	recovered := func(to int) []history.Client {
		return ht.Clients(append(steadyTraffic(0, 0, to, 10, upOutside(3000, 5000)), steadyTraffic(1, 5, to, 10, upOutside(3000, 5000))...)...)
	}
	// The highest revision a write returned before 5 s: client 0 wrote
	// 150 puts up to 2.99 s (revision 151); so did client 1.
	const target = 151
	tests := []struct {
		name     string
		clients  []history.Client
		injs     []history.Injection
		watches  []history.Watch
		events   []model.Event
		want     Verdict
		contains []string
	}{
		{"recovered at once", recovered(10000), nil, nil, nil, OK,
			[]string{"a write sent after it succeeded", "throughput back to", "no watch was recorded"}},
		{"writes fail for 4 s after the heal", ht.Clients(append(steadyTraffic(0, 0, 10000, 10, upOutside(3000, 9000)), steadyTraffic(1, 5, 10000, 10, upOutside(3000, 9000))...)...),
			nil, nil, nil, Illegal, []string{"no write succeeded within 2s", "the first write to succeed returned only"}},
		{"no write sent after the heal", ht.Clients(func() []history.Operation {
			var ops []history.Operation
			for _, op := range append(steadyTraffic(0, 0, 10000, 10, upOutside(3000, 5000)), steadyTraffic(1, 5, 10000, 10, upOutside(3000, 5000))...) {
				if op.Call < 5*time.Second || op.Request.Range != nil {
					ops = append(ops, op)
				}
			}
			return ops
		}()...), nil, nil, nil, Inconclusive, []string{"writes not checked: no write was sent in the 2s after it", "throughput back to"}},
		{"throughput stays low", ht.Clients(append(steadyTraffic(0, 0, 3000, 10, upOutside(3000, 5000)),
			append(steadyTraffic(1, 5, 3000, 10, upOutside(3000, 5000)), steadyTraffic(2, 5000, 10000, 40, upOutside(3000, 5000))...)...)...),
			nil, nil, nil, Illegal, []string{"throughput did not return to half its baseline", "200 successful ops/s"}},
		{"the traffic ends right after the heal", ht.Clients(append(steadyTraffic(0, 0, 5300, 10, upOutside(3000, 5000)), steadyTraffic(1, 5, 5300, 10, upOutside(3000, 5000))...)...),
			nil, nil, nil, Inconclusive, []string{"throughput not checked: the traffic ended"}},
		{"the traffic ends 700 ms after the heal, recovered", ht.Clients(append(steadyTraffic(0, 0, 5700, 10, upOutside(3000, 5000)), steadyTraffic(1, 5, 5700, 10, upOutside(3000, 5000))...)...),
			nil, nil, nil, OK, []string{"in the 69"}},
		{"the fault comes too early", recovered(10000), []history.Injection{{Name: "kill", Start: 500 * time.Millisecond, Effect: 600 * time.Millisecond, End: 5 * time.Second}},
			nil, nil, Inconclusive, []string{"only 500ms of traffic before the fault"}},
		{"a fault not injected is not checked", recovered(10000), []history.Injection{{Name: "kill", Start: time.Second, Error: "no"}},
			nil, nil, Inconclusive, []string{"no fault took effect"}},
		{"a watcher catches up", recovered(10000), nil, []history.Watch{watcher(7, 10000, [2]int{target - 10, 2000}, [2]int{target + 40, 5600})}, nil, OK,
			[]string{"1 watchers caught up to revision 151 within 3s (the slowest 600ms after it)"}},
		{"a watcher catches up late", recovered(10000), nil, []history.Watch{watcher(7, 10000, [2]int{target - 10, 2000}, [2]int{target + 40, 8600})}, nil, Illegal,
			[]string{"watcher 7 showed it had caught up to revision 151 only 3.6s after the fault healed"}},
		{"a watcher that asks and never catches up", recovered(10000), nil, []history.Watch{watcher(7, 10000, [2]int{target - 10, 2000})}, nil, Illegal,
			[]string{"watcher 7 never showed it caught up"}},
		{"a watcher with no way to show it", recovered(10000), nil, []history.Watch{func() history.Watch {
			w := watcher(7, 10000)
			w.ProgressRequests = nil
			return w
		}()}, nil, Inconclusive, []string{"watchers 7 gave no progress notification or event"}},
		{"a watch refused at creation (permission denied) never watched: not judged", recovered(10000), nil, []history.Watch{func() history.Watch {
			w := watcher(7, 5600)
			w.Call = 5300 * time.Millisecond
			w.Responses = []history.WatchResponse{{Time: 5301 * time.Millisecond, Created: true, Canceled: true, CancelReason: "etcdserver: permission denied", Header: history.Header{Revision: target}}}
			return w
		}(), watcher(8, 10000, [2]int{target, 5100})}, nil, OK, []string{"1 watchers caught up"}},
		{"a refused watch does not hide the same watcher's late one", recovered(10000), nil, []history.Watch{func() history.Watch {
			w := watcher(7, 5600)
			w.Call = 5300 * time.Millisecond
			w.Responses = []history.WatchResponse{{Time: 5301 * time.Millisecond, Created: true, Canceled: true, CancelReason: "etcdserver: permission denied", Header: history.Header{Revision: target}}}
			return w
		}(), watcher(7, 10000, [2]int{target - 10, 2000}, [2]int{target + 40, 8600})}, nil, Illegal,
			[]string{"watcher 7 showed it had caught up to revision 151 only 3.6s after the fault healed"}},
		{"a watcher that stopped before is not judged", recovered(10000), nil, []history.Watch{watcher(7, 4000), watcher(8, 10000, [2]int{target, 5100})}, nil, OK,
			[]string{"1 watchers caught up"}},
		{"a watcher that stops soon after the heal, having caught up", recovered(10000), nil, []history.Watch{watcher(7, 5500, [2]int{target, 5100})}, nil, OK,
			[]string{"1 watchers caught up"}},
		{"a watcher that stops soon after the heal, not caught up", recovered(10000), nil, []history.Watch{watcher(7, 5500, [2]int{target - 1, 5100})}, nil, Inconclusive,
			[]string{"watchers 7 gave no progress notification or event to show it (or stopped watching before the bound)"}},
		{"a key watcher shows it by the last event it selects", recovered(10000), nil, []history.Watch{func() history.Watch {
			w := watcher(7, 10000)
			w.ProgressRequests = nil
			w.Request = history.WatchRequest{Key: "other", StartRevision: 1}
			w.Responses = append(w.Responses, history.WatchResponse{Time: 5200 * time.Millisecond, Header: history.Header{Revision: target + 20},
				Events: []history.WatchEvent{{Type: "PUT", KV: ht.KV("other", "x", 100)}}})
			return w
		}()}, []model.Event{{Type: model.EventPut, KV: model.KeyValue{Key: "other", ModRevision: 100}, Revision: 100}, {Type: model.EventPut, KV: model.KeyValue{Key: "k", ModRevision: 101}, Revision: 101}}, OK,
			[]string{"1 watchers caught up"}},
		{"a key watcher misses the last event it selects", recovered(10000), nil, []history.Watch{func() history.Watch {
			w := watcher(7, 10000)
			w.ProgressRequests = nil
			w.Request = history.WatchRequest{Key: "other", StartRevision: 1}
			return w
		}()}, []model.Event{{Type: model.EventPut, KV: model.KeyValue{Key: "other", ModRevision: 100}, Revision: 100}}, Illegal,
			[]string{"it never received put other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			injs := tt.injs
			if injs == nil {
				injs = []history.Injection{inj}
			}
			c := &Check{Input: Input{Clients: tt.clients, Injections: injs, FinalRead: -1, Watches: tt.watches}, Events: tt.events}
			r := Recovery{}.Validate(context.Background(), c)
			require.Equal(t, tt.want, r.Verdict, r.Message)
			for _, s := range tt.contains {
				require.Contains(t, r.Message, s)
			}
			if r.Verdict == Illegal {
				require.Contains(t, r.Explanation, "After pause-leader (member-1, took effect at 3.1s, healed and recovered by 5s)")
				t.Log(r.Explanation)
			}
		})
	}
}

// A watcher's bound grows with the backlog etcd must sync for it (1,000
// revisions per 100 ms) and with the harness's resume delay when one of
// its streams broke during the fault; nothing else moves it.
func TestWatcherDeadline(t *testing.T) {
	inj := history.Injection{Name: "kill", Start: 10 * time.Second, End: 20 * time.Second}
	seen := func(rev int64, at time.Duration) history.WatchResponse {
		return history.WatchResponse{Time: at, Header: history.Header{Revision: rev},
			Events: []history.WatchEvent{{Type: "PUT", KV: history.KeyValue{Key: "k", ModRevision: rev}}}}
	}
	tests := []struct {
		name   string
		ws     []history.Watch
		target int64
		want   time.Duration
	}{
		{"no backlog", []history.Watch{{Responses: []history.WatchResponse{seen(100, 9*time.Second)}, End: 30 * time.Second, EndReason: "done"}}, 100, 23 * time.Second},
		{"9,000 revisions behind", []history.Watch{{Responses: []history.WatchResponse{seen(1000, 9*time.Second)}, End: 30 * time.Second, EndReason: "done"}}, 10000, 23*time.Second + 900*time.Millisecond},
		{"events after the fault's start do not count as shown", []history.Watch{{Responses: []history.WatchResponse{seen(1000, 9*time.Second), seen(9000, 11*time.Second)}, End: 30 * time.Second, EndReason: "done"}}, 10000, 23*time.Second + 900*time.Millisecond},
		{"a stream broke during the fault", []history.Watch{
			{Responses: []history.WatchResponse{seen(100, 9*time.Second)}, End: 15 * time.Second, EndReason: "error"},
			{Call: 16 * time.Second, End: 30 * time.Second, EndReason: "done"}}, 100, 24 * time.Second},
		{"nothing shown before: no backlog known", []history.Watch{{End: 30 * time.Second, EndReason: "done"}}, 5000, 23 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, watcherDeadline(tt.ws, inj, tt.target))
		})
	}
}

// A fault made of steps (a downgrade's member swaps) is judged step by
// step: after each, throughput must come back to half its level in the
// 2 s before that step. The traffic below is one client whose rate falls
// from step to step (200, 143, 91, then 62 ops/s), down during each step.
func TestRecoveryPerStep(t *testing.T) {
	down := func(int) bool { return false }
	up := func(int) bool { return true }
	traffic := func(every ...int) []history.Client {
		// every[i] is the client's interval (ms) after step i (before the
		// first for i = 0); the steps are 3-5 s, 8.5-10.5 s and 14-16 s.
		bounds := []int{0, 3000, 5000, 8500, 10500, 14000, 16000, 25000}
		var ops []history.Operation
		for i := 0; i+1 < len(bounds); i++ {
			if i%2 == 1 {
				ops = append(ops, steadyTraffic(0, bounds[i], bounds[i+1], 10, down)...)
			} else {
				ops = append(ops, steadyTraffic(0, bounds[i], bounds[i+1], every[i/2], up)...)
			}
		}
		return ht.Clients(ops...)
	}
	steps := []history.FaultStep{
		{At: 2900 * time.Millisecond, What: "before: member-0 v3.6.16"},
		{Begin: 3 * time.Second, At: 5 * time.Second, What: "member-0 started on v3.5.35 and caught up: member-0 v3.5.35"},
		{Begin: 8500 * time.Millisecond, At: 10500 * time.Millisecond, What: "member-1 started on v3.5.35 and caught up: member-1 v3.5.35"},
		{Begin: 14 * time.Second, At: 16 * time.Second, What: "member-2 started on v3.5.35 and caught up: member-2 v3.5.35"},
		{At: 16500 * time.Millisecond, What: "downgrade to 3.5 finished"},
	}
	fault := func(steps []history.FaultStep) []history.Injection {
		return []history.Injection{{Name: "downgrade", Targets: []string{"member-0", "member-1", "member-2"},
			Start: 2900 * time.Millisecond, Effect: 3 * time.Second, End: 17 * time.Second, Steps: steps}}
	}
	tests := []struct {
		name     string
		clients  []history.Client
		injs     []history.Injection
		want     Verdict
		contains []string
	}{
		{"each step's drop recovers", traffic(5, 7, 11, 16), fault(steps), OK,
			[]string{"throughput back to half its level before each step within 2s after it, for each of its 3 steps"}},
		{"the same traffic, the fault judged whole (no step spans time)", traffic(5, 7, 11, 16), fault(func() []history.FaultStep {
			var moments []history.FaultStep
			for _, s := range steps {
				moments = append(moments, history.FaultStep{At: s.At, What: s.What})
			}
			return moments
		}()), Illegal, []string{"throughput did not return to half its baseline within 2s: 200 successful ops/s in the 2s before the fault"}},
		{"a single-step fault is judged as before", traffic(5, 7, 11, 16), fault(nil), Illegal,
			[]string{"in the 2s before the fault", "after it healed"}},
		{"a step leaves throughput below half", traffic(5, 7, 25, 40), fault(steps), Illegal,
			[]string{"step 2 of 3 (8.5s to 10.5s: member-1 started on v3.5.35 and caught up)", "143 successful ops/s in the 2s before the step, at most 40"}},
		{"the next step begins before the window", traffic(5, 7, 11, 16), fault([]history.FaultStep{steps[1],
			{Begin: 5200 * time.Millisecond, At: 10500 * time.Millisecond, What: "member-1 started on v3.5.35 and caught up"}, steps[3]}), Inconclusive,
			[]string{"step 1 of 3", "throughput not checked: the traffic ended or the next step or fault began 200ms after it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: tt.clients, Injections: tt.injs, FinalRead: -1}}
			r := Recovery{}.Validate(context.Background(), c)
			require.Equal(t, tt.want, r.Verdict, r.Message)
			for _, s := range tt.contains {
				require.Contains(t, r.Message, s)
			}
			if r.Verdict == Illegal {
				require.NotEmpty(t, r.Explanation)
				t.Log(r.Explanation)
			}
		})
	}
}

// lastSelected answers as a scan of every event from the log's first, on
// random events (several at a revision, as a transaction makes) and
// watches (single keys, ranges, prefixes to the end, filters, starts).
func TestLastSelectedAgreesWithAScan(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	scan := func(events []model.Event, w history.Watch, rev int64) *model.Event {
		var want *model.Event
		start := watchStart(w)
		if events == nil || start <= 0 {
			return nil
		}
		for i := range events {
			e := &events[i]
			if e.Revision > rev {
				break
			}
			if e.Revision >= start && selects(w.Request, *e) {
				want = e
			}
		}
		return want
	}
	key := func() string { return fmt.Sprintf("k%d", rng.Intn(8)) }
	for round := 0; round < 200; round++ {
		var events []model.Event
		rev := int64(1)
		for n := rng.Intn(60); n > 0; n-- {
			rev += int64(rng.Intn(2)) // some revisions hold two events
			typ := model.EventPut
			if rng.Intn(4) == 0 {
				typ = model.EventDelete
			}
			events = append(events, model.Event{Type: typ, KV: model.KeyValue{Key: key(), ModRevision: rev}, Revision: rev})
		}
		req := history.WatchRequest{Key: key(), StartRevision: int64(rng.Intn(int(rev) + 2))}
		switch rng.Intn(3) {
		case 1:
			req.RangeEnd = fmt.Sprintf("k%d", rng.Intn(9))
		case 2:
			req.RangeEnd = "\x00"
		}
		if rng.Intn(4) == 0 {
			req.Filters = []string{[]string{"NOPUT", "NODELETE"}[rng.Intn(2)]}
		}
		w := history.Watch{Request: req}
		for _, at := range []int64{0, 1, rev / 2, rev, rev + 1} {
			got, want := lastSelected(events, w, at), scan(events, w, at)
			require.True(t, got == want, "round %d, watch %+v, revision %d: %v, the scan %v", round, req, at, got, want) // the same event, not an equal one
		}
	}
	require.Nil(t, lastSelected(nil, history.Watch{Request: history.WatchRequest{Key: "k1", StartRevision: 1}}, 5))
}

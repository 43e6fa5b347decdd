package validate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// replayedOf applies writes to a fresh store, as the patch stage replays
// the committed log: the state at each revision, and the events.
func replayedOf(writes ...model.Request) ([]model.State, []model.Event) {
	s := model.InitialState()
	states := []model.State{{}, s}
	var events []model.Event
	for _, w := range writes {
		var evs []model.Event
		s, _, evs = s.Apply(w)
		events = append(events, evs...)
		if s.Revision == int64(len(states)) {
			states = append(states, s)
		}
	}
	return states, events
}

// page is a range with a limit at revision rev (0: current), answered at
// header revision hdr with count keys in all and kvs.
func page(client, call int, key, end string, limit, rev, hdr, count int64, more bool, kvs ...history.KeyValue) history.Operation {
	req := history.Request{Range: &history.RangeRequest{Key: key, RangeEnd: end, Limit: limit, Revision: rev}}
	resp := &history.Response{Header: history.Header{Revision: hdr, MemberID: 1}, Range: &history.RangeResponse{KVs: kvs, Count: count, More: more}}
	return ht.Op(client, call, call+1, req, resp)
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Watch responses, received at t ms.
func wCreated(t int, rev int64) history.WatchResponse {
	return history.WatchResponse{Time: ms(t), Header: history.Header{Revision: rev, MemberID: 1}, Created: true}
}

func wProgress(t int, rev int64, member uint64) history.WatchResponse {
	return history.WatchResponse{Time: ms(t), Header: history.Header{Revision: rev, MemberID: member}}
}

func wEvents(t int, evs ...history.WatchEvent) history.WatchResponse {
	rev := int64(0)
	for _, e := range evs {
		rev = max(rev, e.KV.ModRevision)
	}
	return history.WatchResponse{Time: ms(t), Header: history.Header{Revision: rev, MemberID: 1}, Events: evs}
}

func wCompacted(t int, rev, compact int64) history.WatchResponse {
	return history.WatchResponse{Time: ms(t), Header: history.Header{Revision: rev, MemberID: 1}, Canceled: true, CompactRevision: compact}
}

func wPut(k, v string, rev int64) history.WatchEvent {
	return history.WatchEvent{Type: "PUT", KV: ht.KV(k, v, rev)}
}

func wDel(k string, rev int64) history.WatchEvent {
	return history.WatchEvent{Type: "DELETE", KV: history.KeyValue{Key: k, ModRevision: rev}}
}

// watchOf is watch id over [key, end) from start, open from call to end ms.
func watchOf(id int, key, end string, start int64, call, stop int, rs ...history.WatchResponse) history.Watch {
	return history.Watch{ID: id, Endpoints: []string{"http://127.0.0.1:1"}, Request: history.WatchRequest{Key: key, RangeEnd: end, StartRevision: start},
		Call: ms(call), End: ms(stop), EndReason: "done", Responses: rs, ResumedFrom: -1}
}

func run(v Validator, c *Check) Result { return v.Validate(context.Background(), c) }

// The store of most cases: a=1 @2, b=2 @3, c=3 @4, delete b @5, d=4 @6.
func store() ([]model.State, []model.Event) {
	return replayedOf(model.PutRequest("a", "1"), model.PutRequest("b", "2"), model.PutRequest("c", "3"),
		model.DeleteRequest("b"), model.PutRequest("d", "4"))
}

func TestK8sListPages(t *testing.T) {
	states, events := store()
	a, b, c, d := ht.KV("a", "1", 2), ht.KV("b", "2", 3), ht.KV("c", "3", 4), ht.KV("d", "4", 6)
	tests := []struct {
		name     string
		ops      []history.Operation
		replayed bool
		want     Verdict
		msg      string
	}{
		{
			name: "a list in pages of two at revision 4 adds up to the state",
			ops: []history.Operation{
				page(0, 10, "a", "z", 2, 0, 4, 3, true, a, b),
				page(0, 20, "b\x00", "z", 2, 4, 6, 1, false, c),
			},
			replayed: true, want: OK, msg: "1 continued a list",
		},
		{
			name: "a list at revision 6 after the delete",
			ops: []history.Operation{
				page(0, 10, "a", "z", 2, 6, 6, 3, true, a, c),
				page(0, 20, "c\x00", "z", 2, 6, 6, 1, false, d),
			},
			replayed: true, want: OK,
		},
		{
			name: "the second page counts a key the first page already returned",
			ops: []history.Operation{
				page(0, 10, "a", "z", 2, 4, 4, 3, true, a, b),
				page(0, 20, "b\x00", "z", 2, 4, 6, 2, true, c),
			},
			want: Illegal, msg: "so 1 were left, but it counts 2",
		},
		{
			name: "more is set on the last page",
			ops:  []history.Operation{page(0, 10, "a", "z", 5, 4, 4, 3, true, a, b, c)},
			want: Illegal, msg: "more=true",
		},
		{
			name: "a page returns fewer keys than its limit while more keys exist",
			ops:  []history.Operation{page(0, 10, "a", "z", 3, 4, 4, 3, true, a, b)},
			want: Illegal, msg: "returned 2 keys with count 3",
		},
		{
			name:     "a page at revision 5 returns the deleted key",
			ops:      []history.Operation{page(0, 10, "a", "z", 2, 5, 6, 3, true, a, b)},
			replayed: true, want: Illegal, msg: "store held 2 there at revision 5",
		},
		{
			name:     "a page at revision 3 returns a value written later",
			ops:      []history.Operation{page(0, 10, "a", "z", 1, 3, 6, 2, true, ht.KV("a", "9", 3))},
			replayed: true, want: Illegal, msg: "returned a=9@3 as its key 1",
		},
		{
			name: "no page compared with the state without a replayed log",
			ops:  []history.Operation{page(0, 10, "a", "z", 2, 4, 4, 3, true, a, b)},
			want: Inconclusive, msg: "only checked against each other",
		},
		{
			name:     "nothing to check without lists",
			ops:      []history.Operation{ht.Op(0, 0, 1, ht.Get("a"), ht.GetOK(2, a))},
			replayed: true, want: OK, msg: "nothing to check",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: ht.Clients(tc.ops...)}}
			if tc.replayed {
				c.Replayed, c.Events = states, events
			}
			r := run(K8sListPages{}, c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
}

func TestK8sProgressAfterRequest(t *testing.T) {
	read := func(call int, rev int64, member uint64) history.Operation {
		o := ht.Op(1, call, call+5, ht.Get("a"), ht.GetOK(rev))
		o.Response.Header.MemberID = member
		return o
	}
	withRequests := func(w history.Watch, at ...int) history.Watch {
		for _, t := range at {
			w.ProgressRequests = append(w.ProgressRequests, ms(t))
		}
		return w
	}
	tests := []struct {
		name       string
		ops        []history.Operation
		watch      history.Watch
		injections []history.Injection
		want       Verdict
		msg        string
	}{
		{
			name:  "the answer is at the revision the member had served",
			ops:   []history.Operation{read(10, 7, 1)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 7, 1)), 50),
			want:  OK, msg: "1 answered",
		},
		{
			name:  "the answer is older than a read the same member served before the request",
			ops:   []history.Operation{read(10, 7, 1)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)), 50),
			want:  Illegal, msg: "member 1 answered at revision 5",
		},
		{
			name:  "a read from another member says nothing about a lagging one",
			ops:   []history.Operation{read(10, 7, 2)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)), 50),
			want:  OK,
		},
		{
			name:  "a read that returned after the request is not a bound",
			ops:   []history.Operation{read(48, 7, 1)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)), 50),
			want:  OK,
		},
		{
			name: "an unanswered request stops the pairing: the next notification may answer it",
			ops:  []history.Operation{read(60, 7, 1)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3),
				wProgress(80, 5, 1), wProgress(90, 7, 1)), 50, 70),
			want: OK, msg: "2 progress requests, 0 answered",
		},
		{
			name: "a second request after an answered one is paired",
			ops:  []history.Operation{read(60, 7, 1)},
			watch: withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3),
				wProgress(55, 5, 1), wProgress(80, 6, 1)), 50, 70),
			want: Illegal, msg: "asked for progress at 70ms",
		},
		{
			name:       "a restart between the read and the answer voids the bound",
			ops:        []history.Operation{read(10, 7, 1)},
			watch:      withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)), 50),
			injections: []history.Injection{{Name: "kill", Start: ms(20), Effect: ms(21), End: ms(40)}},
			want:       OK,
		},
		{
			name:       "a restart before the read leaves the bound",
			ops:        []history.Operation{read(10, 7, 1), read(42, 6, 1)},
			watch:      withRequests(watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)), 50),
			injections: []history.Injection{{Name: "kill", Start: ms(20), Effect: ms(21), End: ms(40)}},
			want:       Illegal, msg: "had returned at revision 6",
		},
		{
			name:  "nothing to check without progress requests",
			ops:   []history.Operation{read(10, 7, 1)},
			watch: watchOf(0, "a", "z", 0, 0, 1000, wCreated(1, 3), wProgress(60, 5, 1)),
			want:  OK, msg: "nothing to check",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: ht.Clients(tc.ops...), Watches: []history.Watch{tc.watch}, Injections: tc.injections}}
			r := run(K8sProgressAfterRequest{}, c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
}

func TestK8sFutureWatch(t *testing.T) {
	tests := []struct {
		name  string
		watch history.Watch
		want  Verdict
		msg   string
	}{
		{
			name:  "a watch from revision 10 opened at 6 reports progress from 10 on",
			watch: watchOf(0, "a", "z", 10, 0, 100, wCreated(1, 6), wProgress(20, 10, 1), wEvents(30, wPut("a", "x", 11))),
			want:  OK, msg: "1 of them in the future",
		},
		{
			name:  "a progress notification below the start revision (etcd #20221)",
			watch: watchOf(0, "a", "z", 10, 0, 100, wCreated(1, 6), wProgress(20, 9, 1)),
			want:  Illegal, msg: "progress notification at revision 9",
		},
		{
			name:  "an event below the start revision",
			watch: watchOf(0, "a", "z", 10, 0, 100, wCreated(1, 6), wEvents(30, wPut("a", "x", 8))),
			want:  Illegal, msg: "delivered PUT at revision 8",
		},
		{
			name:  "nothing to check: a watch from the current revision",
			watch: watchOf(0, "a", "z", 0, 0, 100, wCreated(1, 6), wProgress(20, 6, 1)),
			want:  OK, msg: "nothing to check",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(K8sFutureWatch{}, &Check{Input: Input{Watches: []history.Watch{tc.watch}}})
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
}

func TestK8sWatchNoGap(t *testing.T) {
	states, events := store()
	compaction := ht.Op(2, 25, 26, history.Request{Compaction: &history.CompactionRequest{Revision: 4}},
		&history.Response{Header: history.Header{Revision: 6}, Compaction: &history.CompactionResponse{}})
	tests := []struct {
		name     string
		watch    history.Watch
		replayed bool
		want     Verdict
		msg      string
	}{
		{
			name: "every event from revision 2 on, across a compaction",
			watch: watchOf(0, "a", "z", 2, 0, 100, wCreated(1, 1),
				wEvents(10, wPut("a", "1", 2)), wEvents(20, wPut("b", "2", 3), wPut("c", "3", 4)),
				wEvents(30, wDel("b", 5)), wEvents(40, wPut("d", "4", 6))),
			replayed: true, want: OK, msg: "1 open across a compaction",
		},
		{
			name: "the delete is skipped across the compaction",
			watch: watchOf(0, "a", "z", 2, 0, 100, wCreated(1, 1),
				wEvents(10, wPut("a", "1", 2)), wEvents(20, wPut("b", "2", 3), wPut("c", "3", 4)),
				wEvents(40, wPut("d", "4", 6))),
			replayed: true, want: Illegal, msg: "skipped delete b @5",
		},
		{
			name: "a progress notification vouches for an event never delivered",
			watch: watchOf(0, "c", "z", 0, 0, 100, wCreated(1, 3),
				wProgress(30, 6, 1)),
			replayed: true, want: Illegal, msg: "never delivered put c=3 @4",
		},
		{
			name: "canceled with a compact revision instead of a gap",
			watch: watchOf(0, "a", "z", 2, 0, 100, wCreated(1, 1),
				wEvents(10, wPut("a", "1", 2)), wCompacted(30, 6, 4)),
			replayed: true, want: OK, msg: "1 canceled for one",
		},
		{
			name: "a NOPUT watch needs only the delete",
			watch: func() history.Watch {
				w := watchOf(0, "a", "z", 2, 0, 100, wCreated(1, 1), wEvents(30, wDel("b", 5)), wProgress(40, 6, 1))
				w.Request.Filters = []string{"NOPUT"}
				return w
			}(),
			replayed: true, want: OK,
		},
		{
			name:  "no replayed log",
			watch: watchOf(0, "a", "z", 2, 0, 100, wCreated(1, 1), wEvents(10, wPut("a", "1", 2))),
			want:  Inconclusive, msg: "no replayed log",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: ht.Clients(compaction), Watches: []history.Watch{tc.watch}}}
			if tc.replayed {
				c.Replayed, c.Events = states, events
			}
			r := run(K8sWatchNoGap{}, c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
	r := run(K8sWatchNoGap{}, &Check{})
	require.Equal(t, OK, r.Verdict)
	require.Contains(t, r.Message, "nothing to check")
}

// update is Kubernetes' optimistic write: if mod(key)==mod then put else get.
func update(client, call int, key string, mod int64, value string, rev int64, ok bool) history.Operation {
	return ht.Op(client, call, call+5, ht.CAS(key, mod, value), ht.CASResp(rev, ok))
}

func TestK8sOptimisticUpdate(t *testing.T) {
	// a created @2, updated @3 (mod 2 -> 3), deleted @4, created @5.
	states, events := replayedOf(model.CompareAndSetRequest("a", 0, "v1"), model.CompareAndSetRequest("a", 2, "v2"),
		model.DeleteRequest("a"), model.CompareAndSetRequest("a", 0, "v3"))
	tests := []struct {
		name     string
		ops      []history.Operation
		replayed bool
		want     Verdict
		msg      string
	}{
		{
			name: "one update wins per mod revision, the other loses",
			ops: []history.Operation{
				update(0, 0, "a", 0, "v1", 2, true),
				update(0, 10, "a", 2, "v2", 3, true),
				update(1, 11, "a", 2, "v9", 3, false),
				ht.Op(0, 20, 25, ht.Del("a"), ht.DelOK(4, 1)),
				update(1, 30, "a", 0, "v3", 5, true),
			},
			replayed: true, want: OK, msg: "each (key, mod revision) won at most once",
		},
		{
			name: "two updates from mod revision 2 both win",
			ops: []history.Operation{
				update(0, 10, "a", 2, "v2", 3, true),
				update(1, 11, "a", 2, "v9", 4, true),
			},
			want: Illegal, msg: "if(mod(a)==2) succeeded 2 times",
		},
		{
			name: "two creates without a delete between them",
			ops: []history.Operation{
				update(0, 0, "a", 0, "v1", 2, true),
				update(1, 1, "a", 0, "v8", 3, true),
			},
			replayed: true, want: Illegal, msg: "created twice",
		},
		{
			// The etcd profile's txns: with a missing key the compare holds
			// and the delete finds nothing, so the key was never created.
			name: "if(mod(k)==0) then delete(k) wins again and again",
			ops: []history.Operation{
				deleteIfAbsent(0, 0, "b", 6), deleteIfAbsent(1, 10, "b", 7),
				update(0, 20, "b", 0, "v5", 8, true),
			},
			replayed: true, want: OK, msg: "1 acknowledged creates",
		},
		{
			name: "a success whose put the committed log does not hold",
			ops: []history.Operation{
				update(0, 10, "a", 2, "v7", 3, true),
			},
			replayed: true, want: Illegal, msg: "its put was not applied",
		},
		{
			name: "repeated creates cannot be checked without the log",
			ops: []history.Operation{
				update(0, 0, "a", 0, "v1", 2, true),
				update(1, 30, "a", 0, "v3", 5, true),
			},
			want: Inconclusive, msg: "2 repeated creates",
		},
		{
			name: "nothing to check: plain puts",
			ops:  []history.Operation{ht.Op(0, 0, 1, ht.Put("a", "1"), ht.PutOK(2))},
			want: OK, msg: "nothing to check",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: ht.Clients(tc.ops...)}}
			if tc.replayed {
				c.Replayed, c.Events = states, events
			}
			r := run(K8sOptimisticUpdate{}, c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
}

// deleteIfAbsent is client's txn(if mod(key)==0 then delete(key), put(other))
// that succeeded at rev.
func deleteIfAbsent(client, at int, key string, rev int64) history.Operation {
	req := history.Request{Txn: &history.TxnRequest{
		Compare: []history.Compare{{Result: "EQUAL", Target: "MOD", Key: key}},
		Success: []history.RequestOp{{DeleteRange: &history.DeleteRangeRequest{Key: key}}, {Put: &history.PutRequest{Key: "other", Value: fmt.Sprintf("o%d", rev)}}},
	}}
	return ht.Op(client, at, at+1, req, &history.Response{Header: history.Header{Revision: rev}, Txn: &history.TxnResponse{Succeeded: true,
		Responses: []history.ResponseOp{{DeleteRange: &history.DeleteRangeResponse{}}, {Put: &history.PutResponse{}}}}})
}

// probes are /readyz polls of member id every 250 ms from ms from to ms
// to, with the harness's view fault.
func probes(id uint64, from, to int, fault string) []history.Probe {
	var out []history.Probe
	for t := from; t+100 <= to; t += 250 {
		out = append(out, history.Probe{Member: "member-0", Endpoint: "/readyz", Call: ms(t), Return: ms(t + 100), Status: 503, MemberID: id, Fault: fault})
	}
	return out
}

func TestK8sRequireLeader(t *testing.T) {
	leaderWatch := func(rs ...history.WatchResponse) history.Watch {
		w := watchOf(0, "a", "z", 0, 0, 20000, append([]history.WatchResponse{wCreated(1, 2)}, rs...)...)
		w.Request.RequireLeader = true
		return w
	}
	noLeader := history.WatchResponse{Time: ms(6000), Error: &history.Error{Code: "Unavailable", Message: "etcdserver: no leader", Outcome: history.Failed}}
	cut := []Isolation{{MemberID: 1, From: ms(1000), To: ms(15000)}}
	partition := []history.Injection{{Name: "blackhole-member", Targets: []string{"member-0"}, Start: ms(900), Effect: ms(1000), End: ms(16000)}}
	minority := append(append(probes(1, 0, 1000, history.FaultNone), probes(1, 1000, 15000, history.FaultMinority)...), probes(1, 15000, 20000, history.FaultNone)...)
	tests := []struct {
		name       string
		v          K8sRequireLeader
		watch      history.Watch
		injections []history.Injection
		probes     []history.Probe
		want       Verdict
		msg        string
	}{
		{name: "canceled 5 s into the partition", v: K8sRequireLeader{Isolations: cut}, watch: leaderWatch(noLeader), want: OK, msg: "1 RequireLeader watches"},
		{name: "left hanging through the partition", v: K8sRequireLeader{Isolations: cut}, watch: leaderWatch(), want: Illegal, msg: "was not canceled by 8s"},
		{name: "canceled, and the stream ended there (as recorded)", v: K8sRequireLeader{Isolations: cut},
			watch: func() history.Watch { w := leaderWatch(noLeader); w.End = noLeader.Time; return w }(), want: OK, msg: "1 RequireLeader watches"},
		{name: "the watcher stopped reading before the bound", v: K8sRequireLeader{Isolations: cut},
			watch: func() history.Watch { w := leaderWatch(); w.End = ms(3000); return w }(), want: OK, msg: "nothing to check"},
		{name: "canceled after the bound, the stream ending there", v: K8sRequireLeader{Isolations: cut},
			watch: func() history.Watch {
				late := noLeader
				late.Time = ms(9000)
				w := leaderWatch(late)
				w.End = late.Time
				return w
			}(), want: Illegal, msg: "was not canceled by 8s"},
		{name: "the probes show the member in a minority, and the watch hangs", watch: leaderWatch(), injections: partition, probes: minority,
			want: Illegal, msg: "member 1, which was cut off from a majority from 1s to 14.85s"},
		{name: "the probes show the member in a minority, and the watch is canceled", watch: leaderWatch(noLeader), injections: partition, probes: minority,
			want: OK, msg: "1 RequireLeader watches on cut-off members"},
		{name: "the probes show another member in a minority", watch: leaderWatch(), injections: partition,
			probes: append(probes(1, 0, 20000, history.FaultNone), probes(2, 1000, 15000, history.FaultMinority)...), want: OK, msg: "nothing to check"},
		{name: "minority probes outside any injection tell nothing", watch: leaderWatch(), probes: minority, want: OK, msg: "(0 isolations seen, 0 long enough)"},
		{name: "a partition shorter than the bound asks nothing", v: K8sRequireLeader{Isolations: []Isolation{{MemberID: 1, From: ms(1000), To: ms(3000)}}},
			watch: leaderWatch(), want: OK, msg: "nothing to check"},
		{name: "without probes a partition leaves it open", watch: leaderWatch(), injections: partition, want: Inconclusive, msg: "no health probe names"},
		{name: "no partition", watch: leaderWatch(), want: OK, msg: "nothing to check"},
		{name: "no RequireLeader watch", watch: watchOf(0, "a", "z", 0, 0, 20000), injections: partition, want: OK, msg: "nothing to check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(tc.v, &Check{Input: Input{Watches: []history.Watch{tc.watch}, Injections: tc.injections, Probes: tc.probes}})
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.Contains(t, r.Message+" "+r.Explanation, tc.msg)
		})
	}
}

func TestKubernetesNamesTheFailedCheck(t *testing.T) {
	states, events := store()
	c := &Check{Input: Input{Clients: ht.Clients(
		update(0, 10, "a", 2, "v2", 3, true),
		update(1, 11, "a", 2, "v9", 4, true),
	)}, Replayed: states, Events: events}
	r := run(Kubernetes{}, c)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.Contains(t, r.Message, "k8s-optimistic-update: illegal")
	require.True(t, strings.Contains(r.Message, "k8s-list-pages: ok"), r.Message)

	r = run(Kubernetes{}, &Check{Replayed: states, Events: events})
	require.Equal(t, OK, r.Verdict, r.Message)
}

// newerBefore, which answers from a table of maxima, finds the same
// response as a scan of every response in return order would.
func TestNewerBeforeAgreesWithAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		n := 1 + rng.IntN(70)
		var ops []history.Operation
		for i := range n {
			call := rng.IntN(1000)
			o := ht.Op(i%4, call, call+rng.IntN(20), ht.Get("a"), ht.GetOK(int64(2+rng.IntN(50))))
			o.Response.Header.MemberID = 1
			ops = append(ops, o)
		}
		m := responsesByMember(ht.Clients(ops...))[1]
		for range 20 {
			at, rev, after := ms(rng.IntN(1100)), int64(rng.IntN(55)), ms(rng.IntN(1100)-100)
			var want *history.Operation
			for _, o := range m.ops {
				if o.Return > after && o.Return < at && o.Response.Header.Revision > rev {
					want = o
					break
				}
			}
			require.Same(t, want, m.newerBefore(at, rev, after), "round %d", round)
		}
	}
}

package validate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// scaleInput is a generated run at the high rate: ops puts by 12 clients
// over 10 keys, 2,000 a second, each acknowledged at its own revision by
// one of 3 members; the committed log that holds them; and streams prefix
// watches from revision 1 that each receive every event, 1 to 3 to a
// response, half with prev_kv, with a progress notification now and then.
func scaleInput(ops, streams int, seed uint64) Input {
	rng := rand.New(rand.NewPCG(seed, 1))
	members := []uint64{14003303892468668600, 3621120955411715709, 13495897493776491747}
	header := func(member int, rev int64) history.Header {
		return history.Header{ClusterID: 12907697834032067931, MemberID: members[member], Revision: rev, RaftTerm: 2}
	}
	type event struct {
		at   time.Duration
		ev   history.WatchEvent
		prev *history.KeyValue
	}
	events := make([]event, 0, ops)
	latest := map[string]history.KeyValue{}
	clients := make([]history.Client, 12)
	for c := range clients {
		clients[c].ID = c
	}
	entries := make([]evidence.Entry, 0, ops+1)
	entries = append(entries, evidence.Entry{Index: 1, Term: 2, Kind: "empty"})
	for i := range ops {
		c := i % 12
		key := fmt.Sprintf("key-%d", rng.IntN(10))
		req := history.Put(key, fmt.Sprintf("%d-%d", c, len(clients[c].Operations)))
		rev := int64(i + 2)
		call := time.Duration(i)*500*time.Microsecond + time.Duration(rng.IntN(400_000))
		ret := call + 2*time.Millisecond
		clients[c].Operations = append(clients[c].Operations, history.Operation{ClientID: c, Call: call, Return: ret, Request: req,
			Response: &history.Response{Header: header(rng.IntN(3), rev), Put: &history.PutResponse{}}})
		r := req
		entries = append(entries, evidence.Entry{Index: uint64(i + 2), Term: 2, Request: &r})
		kv := history.KeyValue{Key: key, Value: req.Put.Value, CreateRevision: rev, ModRevision: rev, Version: 1}
		var prev *history.KeyValue
		if p, ok := latest[key]; ok {
			kv.CreateRevision, kv.Version = p.CreateRevision, p.Version+1
			prev = &p
		}
		latest[key] = kv
		events = append(events, event{at: ret - time.Millisecond, ev: history.WatchEvent{Type: "PUT", KV: kv}, prev: prev})
	}
	last := int64(ops + 1)
	watches := make([]history.Watch, 0, streams)
	for s := range streams {
		member := s % 3
		prevKV := s%2 == 0
		w := history.Watch{ID: s, ClientID: 1000 + s%5, ResumedFrom: -1,
			Request: history.WatchRequest{Key: "key-", RangeEnd: "key.", StartRevision: 1, PrevKV: prevKV, ProgressNotify: true},
			End:     time.Duration(ops)*500*time.Microsecond + time.Second, EndReason: "done", Target: last}
		w.Responses = append(w.Responses, history.WatchResponse{Time: time.Millisecond, Header: header(member, 1), Created: true})
		for i := 0; i < len(events); {
			n := min(1+rng.IntN(3), len(events)-i)
			r := history.WatchResponse{Header: header(member, events[i+n-1].ev.KV.ModRevision), Events: make([]history.WatchEvent, 0, n)}
			for _, e := range events[i : i+n] {
				ev := e.ev
				if prevKV {
					ev.PrevKV = e.prev
				}
				r.Events = append(r.Events, ev)
			}
			r.Time = events[i+n-1].at + time.Millisecond
			w.Responses = append(w.Responses, r)
			i += n
			if rng.IntN(500) == 0 {
				w.Responses = append(w.Responses, history.WatchResponse{Time: r.Time + time.Millisecond, Header: header(member, r.Header.Revision), WatchID: -1})
			}
		}
		watches = append(watches, w)
	}
	return Input{Clients: clients, FinalRead: -1, Watches: watches,
		Persisted: &evidence.Log{Entries: entries, FirstIndex: 1, CommitIndex: uint64(ops + 1), Complete: true,
			Members: []evidence.MemberWAL{{Member: "member-0", Term: 2, Commit: uint64(ops + 1)}}}}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var scaleSizes = []struct{ ops, streams int }{{20_000, 10}, {100_000, 10}}

// BenchmarkWatchStage is the watch stage alone, on a generated run whose
// committed log the patch stage has replayed. events/s counts the
// delivered events checked.
func BenchmarkWatchStage(b *testing.B) {
	for _, sz := range scaleSizes {
		b.Run(fmt.Sprintf("ops=%d/streams=%d", sz.ops, sz.streams), func(b *testing.B) {
			c := &Check{Input: scaleInput(sz.ops, sz.streams, 1)}
			if r := (PatchStage{}).Validate(context.Background(), c); r.Verdict != OK {
				b.Fatal(r.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r := (Watch{}).Validate(context.Background(), c); r.Verdict != OK {
					b.Fatal(r.Message)
				}
			}
			b.ReportMetric(float64(sz.ops*sz.streams)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkKubernetesStage is the Kubernetes checks on a generated run
// whose committed log the patch stage has replayed, with half the watches
// asking for progress (answered by their progress notifications).
// events/s counts the delivered events.
func BenchmarkKubernetesStage(b *testing.B) {
	for _, sz := range scaleSizes {
		b.Run(fmt.Sprintf("ops=%d/streams=%d", sz.ops, sz.streams), func(b *testing.B) {
			c := &Check{Input: scaleInput(sz.ops, sz.streams, 1)}
			for i := range c.Watches {
				w := &c.Watches[i]
				if i%2 == 1 {
					continue
				}
				w.Request.ProgressNotify = false
				for _, r := range w.Responses {
					if r.WatchID == -1 {
						w.ProgressRequests = append(w.ProgressRequests, r.Time-10*time.Millisecond)
					}
				}
			}
			if r := (PatchStage{}).Validate(context.Background(), c); r.Verdict != OK {
				b.Fatal(r.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				r := (Kubernetes{}).Validate(context.Background(), c)
				if r.Verdict != OK || r.Checks[1].Checked == 0 {
					b.Fatal(r.Message)
				}
			}
			b.ReportMetric(float64(sz.ops*sz.streams)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkCheckGenerated is every stage on a generated run. input-MB is the
// generated history's live heap; B/op what the check allocates.
func BenchmarkCheckGenerated(b *testing.B) {
	for _, sz := range scaleSizes {
		b.Run(fmt.Sprintf("ops=%d/streams=%d", sz.ops, sz.streams), func(b *testing.B) {
			before := liveHeap()
			in := scaleInput(sz.ops, sz.streams, 1)
			input := liveHeap() - before
			took := map[string]time.Duration{}
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range Run(context.Background(), in, Options{CheckTimeout: time.Minute}) {
					if r.Verdict == Illegal || r.Verdict == TimedOut {
						b.Fatalf("%s: %s", r.Validator, r.Message)
					}
					took[r.Validator] += r.Took
				}
			}
			b.ReportMetric(float64(input)/1e6, "input-MB")
			// The stages that take longest, each on its own.
			for _, stage := range []string{"patch", "linearizability", "watch", "kubernetes"} {
				b.ReportMetric(took[stage].Seconds()/float64(b.N), stage+"-s")
			}
			runtime.KeepAlive(in)
		})
	}
}

// The benchmarks' generated run passes the watch stage, and one response
// dropped from the middle of a long stream, or one delivered twice, fails
// the check that defines it (and maybe an earlier one as well).
func TestWatchStageOnGeneratedRun(t *testing.T) {
	c := &Check{Input: scaleInput(5_000, 4, 1)}
	if r := (PatchStage{}).Validate(context.Background(), c); r.Verdict != OK {
		t.Fatal(r.Message)
	}
	if r := (Watch{}).Validate(context.Background(), c); r.Verdict != OK {
		t.Fatal(r.Message)
	}
	streams := c.Watches
	for _, tc := range []struct {
		name, want string
		edit       func(rs []history.WatchResponse) []history.WatchResponse
	}{
		{"a response dropped", "reliable", func(rs []history.WatchResponse) []history.WatchResponse {
			return append(rs[:len(rs)/2], rs[len(rs)/2+1:]...)
		}},
		{"an event twice", "unique", func(rs []history.WatchResponse) []history.WatchResponse {
			return append(rs[:len(rs)/2:len(rs)/2], append([]history.WatchResponse{rs[len(rs)/2]}, rs[len(rs)/2:]...)...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := streams[2]
			w.Responses = tc.edit(append([]history.WatchResponse(nil), w.Responses...))
			c.Watches = append(append([]history.Watch(nil), streams...), history.Watch{})
			c.Watches[2], c.Watches[len(c.Watches)-1] = w, history.Watch{ID: 99, ResumedFrom: -1, Request: history.WatchRequest{Key: "none"}}
			r := (Watch{}).Validate(context.Background(), c)
			if r.Verdict != Illegal || r.WatchViolation.Watch.ID != 2 {
				t.Fatalf("want a violation on watch 2, got %s: %s", r.Verdict, r.Message)
			}
			for _, nc := range r.Checks {
				if nc.Name == tc.want && nc.Verdict != Illegal {
					t.Fatalf("%s: %s, want illegal (the stage says %s)", nc.Name, nc.Verdict, r.Message)
				}
			}
		})
	}
}

package validate

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// generatedHistory generates n operations of etcd-kv traffic from 8 clients over
// 10 keys, half puts of unique values and half reads, each taking effect
// 100 µs after the one before, inside an interval of up to 600 µs around
// that point, and the committed log of its puts.
func generatedHistory(n int, seed int64) ([]history.Operation, *evidence.Log) {
	return generatedSpread(n, seed, 300*time.Microsecond)
}

// generatedSpread is generatedHistory with each interval reaching up to
// spread either side of the operation's point (points are 1 ms apart).
func generatedSpread(n int, seed int64, spread time.Duration) ([]history.Operation, *evidence.Log) {
	rng := rand.New(rand.NewSource(seed))
	type kvState struct {
		value                string
		create, mod, version int64
	}
	keys := map[string]kvState{}
	rev := int64(1)
	var h []history.Operation
	var puts []history.Request
	const step = 100 * time.Microsecond
	for k := 0; k < n; k++ {
		at := time.Duration(k+1) * 10 * step
		key := fmt.Sprintf("key-%d", rng.Intn(10))
		o := history.Operation{ClientID: k % 8, Call: at - time.Duration(rng.Int63n(int64(spread))), Return: at + time.Duration(rng.Int63n(int64(spread)))}
		if rng.Intn(2) == 0 {
			rev++
			v := fmt.Sprintf("%d-%d", k%8, k)
			s := keys[key]
			if s.version == 0 {
				s.create = rev
			}
			s.value, s.mod, s.version = v, rev, s.version+1
			keys[key] = s
			o.Request, o.Response = ht.Put(key, v), ht.PutOK(rev)
			puts = append(puts, o.Request)
		} else {
			o.Request = ht.Get(key)
			if s, ok := keys[key]; ok {
				o.Response = ht.GetOK(rev, ht.KVAt(key, s.value, s.create, s.mod, s.version))
			} else {
				o.Response = ht.GetOK(rev)
			}
		}
		h = append(h, o)
	}
	return h, logOf(puts...)
}

// stageInput runs the evidence and patch stages over h and log.
func stageInput(t testing.TB, h []history.Operation, log *evidence.Log) *Check {
	t.Helper()
	c := &Check{Input: Input{Clients: clients(h...), FinalRead: -1, Persisted: log}}
	for _, v := range []Validator{EvidenceStage{}, PatchStage{}} {
		r := v.Validate(context.Background(), c)
		require.Equal(t, OK, r.Verdict, "%s: %s", v.Name(), r.Message)
	}
	return c
}

// breakOrder swaps the places of the operations at places a and b (1-based
// ranks in the witness's order) and marks the plan as no witness, as if
// the plan had got them wrong: the windowed search must decide around them.
func breakOrder(c *Check, places ...[2]int) {
	byPlace := map[int]int{}
	for i := range c.Patched.Ops {
		byPlace[c.Patched.Ops[i].place] = i
	}
	for _, p := range places {
		x, y := byPlace[p[0]], byPlace[p[1]]
		c.Patched.Ops[x].place, c.Patched.Ops[y].place = c.Patched.Ops[y].place, c.Patched.Ops[x].place
	}
	c.Patched.noWitness = "test: places swapped"
}

// sourceOf finds the source of the operation that is h[k] once patched.
func sourceOf(t testing.TB, c *Check, h history.Operation) string {
	for _, o := range c.Patched.Ops {
		if o.ClientID == h.ClientID && o.Call == h.Call {
			return o.Source
		}
	}
	t.Fatalf("no operation called at %s by client %d", h.Call, h.ClientID)
	return ""
}

func TestWindowedSearch(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	h, log := generatedHistory(n, 1)
	// A stale read: a read that returned after a put of its key returned
	// shows the value before it. And a put's revision lowered.
	stale := func(h []history.Operation, at int) (int, []history.Operation) {
		for k := at; k < len(h); k++ {
			if h[k].Request.Put == nil {
				continue
			}
			key := h[k].Request.Put.Key
			for j := k + 1; j < len(h); j++ {
				if h[j].Request.Range != nil && h[j].Request.Range.Key == key && h[j].Call > h[k].Return {
					h = append([]history.Operation(nil), h...)
					o := h[j]
					o.Response = ht.GetOK(o.Response.Header.Revision) // the put's value removed: not found
					h[j] = o
					return j, h
				}
				if h[j].Request.Put != nil && h[j].Request.Put.Key == key {
					break
				}
			}
		}
		panic("no read after a put")
	}
	lowered := func(h []history.Operation, at int) (int, []history.Operation) {
		for k := at; k < len(h); k++ {
			if h[k].Request.Put != nil {
				h = append([]history.Operation(nil), h...)
				o := h[k]
				o.Response = ht.PutOK(o.Response.Header.Revision - 1)
				h[k] = o
				return k, h
			}
		}
		panic("no put")
	}
	tests := []struct {
		name string
		// inject changes the history; -1: nothing injected.
		inject func(h []history.Operation) (int, []history.Operation)
		// swapped are pairs of places to swap in the witness's order.
		swapped func(n int) [][2]int
		verdict Verdict
		// searched: the verdict names the windowed search.
		searched string
	}{
		{name: "a long passing history, in the log's order", verdict: OK, searched: "in the committed log's order"},
		{name: "a long passing history, the order wrong in three places", swapped: func(n int) [][2]int {
			return [][2]int{{100, 103}, {n / 2, n/2 + 2}, {n - 10, n - 9}}
		}, verdict: OK, searched: "windows of the committed log's order where it fails"},
		{name: "an acknowledged write removed from a read, mid-history",
			inject: func(h []history.Operation) (int, []history.Operation) { return stale(h, len(h)/2) }, verdict: Illegal, searched: "by the search over the"},
		{name: "an acknowledged put's revision lowered, mid-history",
			inject: func(h []history.Operation) (int, []history.Operation) { return lowered(h, len(h)/2) }, verdict: Illegal, searched: "by the search over the"},
		{name: "a violation outside the first window",
			inject:  func(h []history.Operation) (int, []history.Operation) { return stale(h, 3*len(h)/4) },
			swapped: func(n int) [][2]int { return [][2]int{{200, 202}} }, verdict: Illegal, searched: "by the search over the"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := h
			at := -1
			if tc.inject != nil {
				at, h = tc.inject(h)
			}
			c := stageInput(t, h, log)
			if tc.swapped != nil {
				breakOrder(c, tc.swapped(len(c.Patched.Ops))...)
			}
			start := time.Now()
			r := Linearizability{Timeout: time.Minute}.Validate(context.Background(), c)
			took := time.Since(start)
			require.Equal(t, tc.verdict, r.Verdict, r.Message)
			require.Contains(t, r.Message, tc.searched)
			require.Less(t, took, 30*time.Second, "checked in %s", took)
			t.Logf("%s in %s: %.300s", r.Verdict, took.Round(time.Millisecond), r.Message)
			if at >= 0 {
				require.NotEmpty(t, r.Explanation)
				require.Contains(t, r.Involved, sourceOf(t, c, h[at]), r.Explanation)
				require.NotNil(t, r.History)
				require.LessOrEqual(t, len(r.History.Ops), 2*MaxVisualizedOps)
			}
		})
	}
}

// A violation across a window's edge: a put that runs long, from before the
// window around the read that misses it, so the time window must start
// before its call, where the state is forced.
func TestWindowAcrossEdge(t *testing.T) {
	h, log := generatedHistory(5000, 2)
	// client 9 puts a key of its own at 100 ms, which returns at 400 ms;
	// reads by client 10 well after: one sees it, a later one does not.
	var puts []history.Request
	rev := int64(1)
	extra := []history.Operation{}
	for i := range h {
		if h[i].Request.Put != nil {
			rev++
		}
		_ = i
	}
	// Insert the long put's effect as the last revision, so the other
	// revisions stay: it takes effect at the end of the history.
	end := h[len(h)-1].Return
	put := ht.Put("own", "9-0")
	rev++
	extra = append(extra,
		history.Operation{ClientID: 9, Call: end - 300*time.Millisecond, Return: end + 100*time.Millisecond, Request: put, Response: ht.PutOK(rev)},
		history.Operation{ClientID: 10, Call: end + 10*time.Millisecond, Return: end + 20*time.Millisecond, Request: ht.Get("own"), Response: ht.GetOK(rev, ht.KV("own", "9-0", rev))},
		history.Operation{ClientID: 10, Call: end + 200*time.Millisecond, Return: end + 210*time.Millisecond, Request: ht.Get("own"), Response: ht.GetOK(rev)},
	)
	for _, e := range log.Entries {
		puts = append(puts, *e.Request)
	}
	puts = append(puts, put)
	log = logOf(puts...)
	h = append(append([]history.Operation(nil), h...), extra...)
	c := stageInput(t, h, log)
	r := Linearizability{Timeout: time.Minute}.Validate(context.Background(), c)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.Contains(t, r.Message, "by the search over the")
	require.Contains(t, r.Involved, sourceOf(t, c, extra[2]), r.Explanation)
	// The passing twin: the last read sees the put.
	h[len(h)-1].Response = ht.GetOK(rev, ht.KV("own", "9-0", rev))
	c = stageInput(t, h, log)
	breakOrder(c, [2]int{len(c.Patched.Ops) - 1, len(c.Patched.Ops)})
	r = Linearizability{Timeout: time.Minute}.Validate(context.Background(), c)
	require.Equal(t, OK, r.Verdict, r.Message)
}

func benchLinearizability(b *testing.B, n int, prepare func(h []history.Operation) []history.Operation, swapped [][2]int) {
	h, log := generatedHistory(n, 1)
	if prepare != nil {
		h = prepare(h)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := stageInput(b, h, log)
		if swapped != nil {
			breakOrder(c, swapped...)
		}
		b.StartTimer()
		r := Linearizability{Timeout: time.Minute}.Validate(context.Background(), c)
		if r.Verdict == TimedOut {
			b.Fatal(r.Message)
		}
	}
}

// BenchmarkLinearizabilityLong: 100,000 operations the witness certifies.
func BenchmarkLinearizabilityLong(b *testing.B) { benchLinearizability(b, 100_000, nil, nil) }

// BenchmarkLinearizabilityWindows: the same with the order wrong in three
// places, so porcupine searches three windows.
func BenchmarkLinearizabilityWindows(b *testing.B) {
	benchLinearizability(b, 100_000, nil, [][2]int{{100, 103}, {50_000, 50_002}, {99_990, 99_991}})
}

// BenchmarkLinearizabilityViolation: a read mid-history misses a put, found
// and explained from a time window.
func BenchmarkLinearizabilityViolation(b *testing.B) {
	benchLinearizability(b, 100_000, func(h []history.Operation) []history.Operation {
		h = append([]history.Operation(nil), h...)
		for k := len(h) / 2; k < len(h); k++ {
			if h[k].Request.Range != nil && len(h[k].Response.Range.KVs) > 0 {
				h[k].Response = ht.GetOK(h[k].Response.Header.Revision)
				return h
			}
		}
		return h
	}, nil)
}

// A leader's expiry that no answer came after (the lease expired as the
// run ended) is still pinned by the log at its revision, so it does not
// rule out every forced time but 0: the time window around a violation
// mid-history starts near it, not at the run's start. So is an expiry
// whose lease a client's revoke of unknown outcome may have revoked.
func TestWindowWithOpenExpiries(t *testing.T) {
	h, log := generatedHistory(20_000, 1)
	// Leases 7 and 8 are granted first and expire after the last put; a
	// client's revoke of lease 8 times out at the end.
	end := h[len(h)-1].Return
	g7, g8 := op(9, 0, 0, grant(7, 1), grantOK(1, 7, 1)), op(9, 0, 0, grant(8, 1), grantOK(1, 8, 1))
	g7.Return, g8.Call, g8.Return = 10*time.Microsecond, 20*time.Microsecond, 30*time.Microsecond
	h = append(h, g7, g8, unknown(10, int(end/time.Millisecond)+1, int(end/time.Millisecond)+2000, revoke(8)))
	var reqs []history.Request
	reqs = append(reqs, grant(7, 1), grant(8, 1))
	for _, e := range log.Entries {
		reqs = append(reqs, *e.Request)
	}
	reqs = append(reqs, revoke(7), revoke(8))
	log = logOf(reqs...)
	// An acknowledged put's revision lowered, mid-history.
	at := len(h) / 2
	for h[at].Request.Put == nil {
		at++
	}
	h = append([]history.Operation(nil), h...)
	h[at].Response = ht.PutOK(h[at].Response.Header.Revision - 1)
	c := stageInput(t, h, log)
	require.Equal(t, 2, c.Patched.Server, "both revokes are the leader's expiries")
	r := Linearizability{Timeout: time.Minute}.Validate(context.Background(), c)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.NotContains(t, r.Message, "forced at 0s", r.Message)
	require.Contains(t, r.Involved, sourceOf(t, c, h[at]), r.Explanation)
}

// A history the windowed search passes is drawn, for the report, along
// the log's order when its first window lies past the drawing, rather
// than searched again (which took 30 s on a 60 s run's record).
func TestWindowedPassDrawnInLogOrder(t *testing.T) {
	h, log := generatedHistory(5_000, 1)
	c := stageInput(t, h, log)
	breakOrder(c, [2]int{3000, 3002})
	r := Linearizability{Timeout: time.Minute, Visualize: true}.Validate(context.Background(), c)
	require.Equal(t, OK, r.Verdict, r.Message)
	require.Contains(t, r.Message, "windows of the committed log's order where it fails")
	require.NotNil(t, r.History)
	require.Contains(t, r.History.Description, "in the committed log's order")
	require.Len(t, r.History.Ops, MaxVisualizedOps)
}

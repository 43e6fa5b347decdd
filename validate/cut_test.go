package validate

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// In the overlapping histories below every operation runs for up to 8 ms
// either side of its point, points 1 ms apart, from 8 clients: some write
// is running at every moment, so no time but the run's start forces the
// state, and the forced time window of a violation mid-history is the
// whole history.
const overlap = 8 * time.Millisecond

// The cut window is sound: on a linearizable history, the cut window at
// any time T0 has a linearization from one of its start states (it holds
// every linearization's restriction to [T0, T1]).
func TestCutWindowHoldsEveryLinearization(t *testing.T) {
	h, log := generatedSpread(3000, 3, overlap)
	c := stageInput(t, h, log)
	ops, pos := porcupineOps(c.Patched.Ops)
	w := walkOrder(c.Patched.Ops)
	require.NotNil(t, w)
	require.Empty(t, w.bad, "the generated history is in the log's order")
	cuts, several := 0, 0
	for at := 200 * time.Millisecond; at < 2800*time.Millisecond; at += 97 * time.Millisecond {
		// The failing window stands at the first position called at or
		// after at (every position before it certified by the walk).
		limit := 0
		for p, i := range w.order {
			if o := &c.Patched.Ops[i]; o.ClientID >= 0 && o.Call >= at {
				limit = p
				break
			}
		}
		tw, _ := cutWindowAt(c.Patched.Ops, ops, pos, w, nil, limit, at, at+20*time.Millisecond)
		if tw == nil {
			continue
		}
		cuts++
		require.Positive(t, tw.running, "T0 %s: no operation running across it", at)
		if len(tw.starts) > 1 {
			several++
		}
		res, err := porcupineRun(context.Background(), windowModel(tw.states()), tw.searchOps(), 10*time.Second, false)
		require.NoError(t, err)
		require.Equal(t, porcupine.Ok, res.result, "T0 %s: %s", at, tw.describe())
	}
	require.Greater(t, cuts, 20, "too few cut windows built")
	require.Positive(t, several, "no cut window started from more than one state")
}

// A violation mid-history where writes overlap without a gap is found by
// the cut window, quickly, with its explanation; the same history without
// it passes.
func TestCutWindowFindsViolation(t *testing.T) {
	h, log := generatedSpread(20_000, 4, overlap)
	lowered := func(h []history.Operation, at int) (int, []history.Operation) { return shiftPut(h, at, -1) }
	missed := func(h []history.Operation, at int) (int, []history.Operation) {
		for k := at; k < len(h); k++ {
			if h[k].Request.Range != nil && len(h[k].Response.Range.KVs) > 0 {
				h = append([]history.Operation(nil), h...)
				h[k].Response = ht.GetOK(h[k].Response.Header.Revision)
				return k, h
			}
		}
		panic("no read that found its key")
	}
	tests := []struct {
		name   string
		inject func(h []history.Operation) (int, []history.Operation)
		// names: the explanation names the injected operation (for the
		// last, it names a read the lowered put leaves no place for).
		names bool
	}{
		{"an acknowledged put's revision lowered, mid-history", func(h []history.Operation) (int, []history.Operation) { return lowered(h, len(h)/2) }, true},
		{"a read misses a write, three quarters in (outside the first window)", func(h []history.Operation) (int, []history.Operation) { return missed(h, 3*len(h)/4) }, true},
		{"a put's revision lowered, a quarter in", func(h []history.Operation) (int, []history.Operation) { return lowered(h, len(h)/4) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, bad := tc.inject(h)
			c := stageInput(t, bad, log)
			start := time.Now()
			r := Linearizability{Timeout: 30 * time.Second}.Validate(context.Background(), c)
			took := time.Since(start)
			require.Equal(t, Illegal, r.Verdict, r.Message)
			require.Contains(t, r.Message, "running at", "not found by a cut window")
			require.Less(t, took, 10*time.Second)
			require.NotEmpty(t, r.Explanation)
			if tc.names {
				require.Contains(t, r.Involved, sourceOf(t, c, bad[at]), r.Explanation)
			}
			t.Logf("%s in %s: %.300s", r.Verdict, took.Round(time.Millisecond), r.Message)
		})
	}
	c := stageInput(t, h, log)
	r := Linearizability{Timeout: 30 * time.Second}.Validate(context.Background(), c)
	require.Equal(t, OK, r.Verdict, r.Message)
}

// A violation that spans the cut: a put answered with the next write's
// revision is itself running across T0, so it is among the operations
// that may fall on either side; no start state lets it in.
func TestCutWindowViolationAcrossT0(t *testing.T) {
	h, log := generatedSpread(3000, 5, overlap)
	k, h := shiftPut(h, len(h)/2, +1)
	c := stageInput(t, h, log)
	ops, pos := porcupineOps(c.Patched.Ops)
	w := walkOrder(c.Patched.Ops)
	require.NotNil(t, w)
	require.NotEmpty(t, w.bad)
	spans := w.windows(windowMargin)
	// T0 just after the put's call; the failing window starts at it.
	t0 := h[k].Call + time.Microsecond
	var s span
	for _, sp := range spans {
		s = sp
		break
	}
	tw, _ := cutWindowAt(c.Patched.Ops, ops, pos, w, nil, s.a, t0, h[k].Return+20*time.Millisecond)
	require.NotNil(t, tw, "no cut window at %s", t0)
	found := false
	for _, g := range tw.index[:tw.running] {
		found = found || ops[g].Call == int64(h[k].Call)
	}
	require.True(t, found, "the put is not among the operations running at T0")
	res, err := porcupineRun(context.Background(), windowModel(tw.states()), tw.searchOps(), 10*time.Second, false)
	require.NoError(t, err)
	require.Equal(t, porcupine.Illegal, res.result, tw.describe())
}

// An open write the log pins (settled as applied, but no answer after it
// bounds when) is running across T0 rather than ruling every later T0
// out: a read at the end that misses an acknowledged write is found near
// it.
func TestCutWindowWithOpenPinnedWrite(t *testing.T) {
	h, log := generatedSpread(5000, 6, overlap)
	end := int(h[len(h)-1].Return/time.Millisecond) + 1
	rev := int64(1) + int64(len(log.Entries))
	// The last acknowledged put, and a read after everything that misses it.
	k := len(h) - 1
	for h[k].Request.Put == nil {
		k--
	}
	key := h[k].Request.Put.Key
	put := ht.Put("own", "20-0")
	h = append(append([]history.Operation(nil), h...),
		unknown(20, end-3000, end+5000, put),
		op(21, end+1, end+2, ht.Get(key), ht.GetOK(rev)))
	var reqs []history.Request
	for _, e := range log.Entries {
		reqs = append(reqs, *e.Request)
	}
	log = logOf(append(reqs, put)...)
	c := stageInput(t, h, log)
	openPinned := false
	for _, o := range c.Patched.Ops {
		if o.ClientID == 20 {
			_, pinned := logPin(&o)
			openPinned = o.Open && pinned
		}
	}
	require.True(t, openPinned, "the put of unknown outcome is not open and pinned by the log")
	start := time.Now()
	r := Linearizability{Timeout: 30 * time.Second}.Validate(context.Background(), c)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.Contains(t, r.Message, "running at", r.Message)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, r.Involved, sourceOf(t, c, h[len(h)-1]), r.Explanation)
	// The window starts near the read, not at the put's call 3 s before.
	m := regexp.MustCompile(`search over the (\d+) operations called from`).FindStringSubmatch(r.Message)
	require.NotNil(t, m, r.Message)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.Less(t, n, 500, r.Message)
}

// A write of unknown outcome that the log settled as applied, whose
// return only the final read bounds (the first answer showing its
// revision), runs across the whole failing window: T0 is not taken at its
// call, seconds back, but at the window's first operation that returned
// within it, where the write is running across T0. Taken at its call, the
// time window held the whole last 3 s of the history (as on a 60 s scale
// run's record, 24,553 operations, which the search could not exhaust).
func TestCutWindowWithSettledWriteAcrossIt(t *testing.T) {
	h, log := generatedSpread(5000, 6, overlap)
	end := int(h[len(h)-1].Return/time.Millisecond) + 1
	rev := int64(1) + int64(len(log.Entries))
	// The last acknowledged put, and a read after everything that misses
	// it, at the revision the put of unknown outcome made.
	k := len(h) - 1
	for h[k].Request.Put == nil {
		k--
	}
	key := h[k].Request.Put.Key
	put := ht.Put("own", "20-0")
	h = append(append([]history.Operation(nil), h...),
		unknown(20, end-3000, end+5000, put),
		op(21, end+1, end+2, ht.Get(key), ht.GetOK(rev+1)))
	var reqs []history.Request
	for _, e := range log.Entries {
		reqs = append(reqs, *e.Request)
	}
	log = logOf(append(reqs, put)...)
	c := stageInput(t, h, log)
	settled := false
	for _, o := range c.Patched.Ops {
		if o.ClientID == 20 {
			settled = !o.Open && o.Call == time.Duration(end-3000)*time.Millisecond && o.Return >= time.Duration(end+1)*time.Millisecond
		}
	}
	require.True(t, settled, "the put of unknown outcome is not settled with its return bounded by the read")
	start := time.Now()
	r := Linearizability{Timeout: 30 * time.Second}.Validate(context.Background(), c)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.Contains(t, r.Message, "running at", r.Message)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, r.Involved, sourceOf(t, c, h[len(h)-1]), r.Explanation)
	m := regexp.MustCompile(`search over the (\d+) operations called from`).FindStringSubmatch(r.Message)
	require.NotNil(t, m, r.Message)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.Less(t, n, 500, r.Message)
}

// Once an earlier stage found a violation, the search is shortened to
// FoundSearchTimeout, and a search it cuts short says so (never a pass).
func TestSearchShortenedAfterAViolation(t *testing.T) {
	h, log := generatedSpread(20_000, 4, overlap)
	_, h = shiftPut(h, len(h)/2, -1)
	c := stageInput(t, h, log)
	c.Violated = "patch"
	// porcupine's search of the whole history, given a minute: it stops at
	// FoundSearchTimeout.
	l := Linearizability{Timeout: time.Minute, SearchOnly: true}
	start := time.Now()
	r := l.Validate(context.Background(), c)
	took := time.Since(start)
	require.Less(t, took, FoundSearchTimeout+5*time.Second, r.Message)
	require.NotEqual(t, OK, r.Verdict, r.Message)
	if r.Verdict == TimedOut {
		require.Contains(t, r.Message, "the search was given "+FoundSearchTimeout.String()+", as the patch stage had found a violation")
	}
}

// shiftPut returns a copy of h with the first acknowledged put from at on
// answered with its revision moved by d, and the put's index.
func shiftPut(h []history.Operation, at int, d int64) (int, []history.Operation) {
	for k := at; k < len(h); k++ {
		if h[k].Request.Put != nil {
			h = append([]history.Operation(nil), h...)
			h[k].Response = ht.PutOK(h[k].Response.Header.Revision + d)
			return k, h
		}
	}
	panic("no put")
}

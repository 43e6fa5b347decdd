package validate

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// replayedCheck is a Check whose replayed log is reqs applied in order
// from a fresh store, as the patch stage leaves it.
func replayedCheck(reqs ...model.Request) *Check {
	s := model.InitialState()
	c := &Check{Replayed: []model.State{{}, s}}
	for _, r := range reqs {
		var evs []model.Event
		s, _, evs = s.Apply(r)
		c.Events = append(c.Events, evs...)
		c.Replayed = append(c.Replayed, s)
	}
	return c
}

// The replayed log of the tests:
//
//	2 put key-a=1   3 put key-b=1   4 put key-a=2   5 delete key-a
//	6 put other=1   7 put key-b=2   8 put key-a=3 and key-c=1 in one txn
func testLog() *Check {
	return replayedCheck(
		model.PutRequest("key-a", "1"),
		model.PutRequest("key-b", "1"),
		model.PutRequest("key-a", "2"),
		model.DeleteRequest("key-a"),
		model.PutRequest("other", "1"),
		model.PutRequest("key-b", "2"),
		model.TxnOf(nil, []model.Op{{Type: model.OpPut, Key: "key-a", Value: "3"}, {Type: model.OpPut, Key: "key-c", Value: "1"}}, nil),
	)
}

// ev is the replayed event at key and revision as etcd delivers it, with
// its previous value when prevKV.
func ev(c *Check, key string, rev int64, prevKV bool) history.WatchEvent {
	for _, e := range c.Events {
		if e.KV.Key == key && e.Revision == rev {
			out := history.WatchEvent{Type: string(e.Type), KV: toKV(e.KV)}
			if prevKV && e.PrevKV != nil {
				p := toKV(*e.PrevKV)
				out.PrevKV = &p
			}
			return out
		}
	}
	panic("no replayed event " + key)
}

func toKV(kv model.KeyValue) history.KeyValue {
	return history.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
		Version: kv.Version, Lease: kv.Lease}
}

func created(rev int64) history.WatchResponse {
	return history.WatchResponse{Created: true, Header: history.Header{Revision: rev}}
}

func events(evs ...history.WatchEvent) history.WatchResponse {
	rev := int64(0)
	for _, e := range evs {
		rev = max(rev, e.KV.ModRevision)
	}
	return history.WatchResponse{Header: history.Header{Revision: rev}, Events: evs}
}

func fragment(evs ...history.WatchEvent) history.WatchResponse {
	r := events(evs...)
	r.Fragment = true
	return r
}

func progress(rev int64) history.WatchResponse {
	return history.WatchResponse{Header: history.Header{Revision: rev}}
}

// compactedCancel is etcd's cancellation of a watch whose next revision was
// compacted: no header revision, no reason, the compact revision.
func compactedCancel(rev int64) history.WatchResponse {
	return history.WatchResponse{Canceled: true, CompactRevision: rev}
}

func compaction(rev int64) history.Operation {
	return history.Operation{Request: history.Request{Compaction: &history.CompactionRequest{Revision: rev}}}
}

// progressAtOpen is w with a progress request sent right after it was opened.
func progressAtOpen(w history.Watch) history.Watch {
	w.Call = time.Second
	w.ProgressRequests = []time.Duration{time.Second + time.Millisecond}
	return w
}

// slowWatch is w read slowly, as the run's slow watch reads.
func slowWatch(w history.Watch) history.Watch {
	w.ReadDelay = 100 * time.Millisecond
	return w
}

// prefixWatch watches key- from start, with previous values.
func prefixWatch(start int64, resps ...history.WatchResponse) history.Watch {
	return history.Watch{ID: 1, Request: history.WatchRequest{Key: "key-", RangeEnd: "key.", StartRevision: start, PrevKV: true},
		Responses: resps, EndReason: "done", ResumedFrom: -1}
}

func TestWatch(t *testing.T) {
	c := testLog()
	e := func(key string, rev int64) history.WatchEvent { return ev(c, key, rev, true) }
	bare := func(key string, rev int64) history.WatchEvent { return ev(c, key, rev, false) }
	with := func(w history.Watch, f func(*history.Watch)) history.Watch { f(&w); return w }
	all := []history.WatchResponse{created(1), events(e("key-a", 2)), events(e("key-b", 3)), events(e("key-a", 4)),
		events(e("key-a", 5)), events(e("key-b", 7)), events(e("key-a", 8), e("key-c", 8)), progress(8)}

	tests := []struct {
		name  string
		watch history.Watch
		// want is the check that must fail; "" for none.
		want string
	}{
		{"every event from the first revision", prefixWatch(1, all...), ""},
		{"from now: created at 3", prefixWatch(0, created(3), events(e("key-a", 4)), progress(4), events(e("key-a", 5)), events(e("key-b", 7)), progress(7)), ""},
		{"from now: an event at the creation revision is allowed", prefixWatch(0, created(3), events(e("key-b", 3)), events(e("key-a", 4)), progress(4)), ""},
		{"one revision in fragments", prefixWatch(7, created(7), events(e("key-b", 7)), fragment(e("key-a", 8)), events(e("key-c", 8)), progress(8)), ""},
		{"a future watch", prefixWatch(20, created(8)), ""},
		{"single key, deletes filtered", history.Watch{ID: 2, Request: history.WatchRequest{Key: "key-a", StartRevision: 1, Filters: []string{"NODELETE"}},
			Responses: []history.WatchResponse{created(1), events(bare("key-a", 2)), events(bare("key-a", 4)), events(bare("key-a", 8)), progress(8)}, ResumedFrom: -1}, ""},
		{"previous value missing after a compaction", prefixWatch(4, created(4), events(bare("key-a", 4))), ""},

		{"key outside the range", prefixWatch(1, created(1), events(ev(c, "other", 6, true))), "filter"},
		{"filtered type", history.Watch{ID: 2, Request: history.WatchRequest{Key: "key-a", StartRevision: 4, Filters: []string{"NODELETE"}},
			Responses: []history.WatchResponse{created(1), events(bare("key-a", 4)), events(bare("key-a", 5))}, ResumedFrom: -1}, "filter"},
		{"revision goes back", prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4)), events(e("key-b", 3))), "ordered"},
		{"the same event twice", prefixWatch(1, created(1), events(e("key-a", 2), e("key-a", 2))), "unique"},
		{"a revision split without fragment", prefixWatch(7, created(7), events(e("key-b", 7)), events(e("key-a", 8)), events(e("key-c", 8))), "atomic"},
		{"a revision delivered in part", prefixWatch(7, created(7), events(e("key-b", 7)), events(e("key-a", 8))), "atomic"},
		{"an event below the start revision", prefixWatch(4, created(4), events(e("key-b", 3)), events(e("key-a", 4))), "resumable"},
		{"the first event after the start skipped", prefixWatch(3, created(3), events(e("key-a", 4))), "resumable"},
		{"an event after a progress notification past it", prefixWatch(1, created(1), events(e("key-a", 2)), progress(5), events(e("key-b", 3))), "bookmarkable"},
		{"an event at a progress notification's revision", prefixWatch(1, created(1), events(e("key-a", 2), e("key-b", 3), e("key-a", 4)), progress(5), events(e("key-a", 5))), "bookmarkable"},
		{"progress before the events it vouches for", prefixWatch(1, created(1), events(e("key-a", 2)), progress(4)), "bookmarkable"},
		{"progress on a watch from now before its events", prefixWatch(0, created(3), progress(5)), "bookmarkable"},
		{"a gap between events", prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4))), "reliable"},
		{"a put says it created an existing key", prefixWatch(4, created(4),
			events(func() history.WatchEvent { x := e("key-a", 4); x.KV.CreateRevision = 4; return x }())), "iscreate"},
		{"a put says it did not create a new key", prefixWatch(2, created(2),
			events(func() history.WatchEvent { x := e("key-a", 2); x.KV.CreateRevision = 1; return x }())), "iscreate"},
		{"a previous value that is wrong", prefixWatch(4, created(4),
			events(func() history.WatchEvent { x := e("key-a", 4); p := *x.PrevKV; p.Value = "0"; x.PrevKV = &p; return x }())), "prevkv"},
		{"a previous value not asked for", with(prefixWatch(4, created(4), events(e("key-a", 4))), func(w *history.Watch) { w.Request.PrevKV = false }), "prevkv"},
		{"a wrong value", prefixWatch(4, created(4), events(func() history.WatchEvent { x := e("key-a", 4); x.KV.Value = "x"; return x }())), "equal"},
		{"a wrong version", prefixWatch(4, created(4), events(func() history.WatchEvent { x := e("key-a", 4); x.KV.Version = 7; return x }())), "equal"},
		{"an event no write made", prefixWatch(6, created(6), events(history.WatchEvent{Type: "PUT", KV: history.KeyValue{Key: "key-z", Value: "9", CreateRevision: 6, ModRevision: 6, Version: 1}})), "equal"},
		{"an event past the committed log", prefixWatch(9, created(8), events(history.WatchEvent{Type: "PUT", KV: history.KeyValue{Key: "key-z", Value: "9", CreateRevision: 20, ModRevision: 20, Version: 1}})), "equal"},
		{"a delete delivered as a put", prefixWatch(5, created(5), events(func() history.WatchEvent { x := e("key-a", 5); x.Type = "PUT"; return x }())), "equal"},
		// Progress asked for right after a watch from the past was created,
		// while etcd is still catching it up: the answer must wait for the
		// backlog (etcd defers it), so one before the backlog is wrong.
		{"catching up: progress deferred until the backlog is sent", progressAtOpen(prefixWatch(2, created(8), events(e("key-a", 2)), events(e("key-b", 3)),
			events(e("key-a", 4)), events(e("key-a", 5)), events(e("key-b", 7)), events(e("key-a", 8), e("key-c", 8)), progress(8))), ""},
		{"catching up: progress answered before the backlog", progressAtOpen(prefixWatch(2, created(8), progress(8), events(e("key-a", 2)))), "bookmarkable"},
		// etcd v3.6.16 can send a stream-wide progress notification ahead of
		// the created response and the backlog it holds back until then;
		// it covers nothing on the watch (history.ProgressBeforeCreated).
		{"catching up: progress before the created response", progressAtOpen(prefixWatch(2, progress(8), created(8), events(e("key-a", 2)))), ""},
		{"catching up: the same progress after the created response", progressAtOpen(prefixWatch(2, created(8), progress(8), events(e("key-a", 2)))), "bookmarkable"},
		{"catching up: progress in the middle of the backlog, past it", progressAtOpen(prefixWatch(2, created(8), events(e("key-a", 2)), progress(8), events(e("key-b", 3)))), "bookmarkable"},
		// A slow watch, which etcd moved aside as a victim, gets the same
		// checks: what etcd held back for it must still all come, once, in order.
		{"slow: every event once, in order", slowWatch(prefixWatch(1, all...)), ""},
		{"slow: an event held back for the victim lost", slowWatch(prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4)), events(e("key-a", 5)))), "reliable"},
		{"slow: an event held back sent again", slowWatch(prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-b", 3)), events(e("key-b", 3)))), "unique"},
		{"slow: the held-back events after later ones", slowWatch(prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4)), events(e("key-b", 3)))), "ordered"},
		// A compaction at 4 cancels watches that still needed revision 3 or
		// below (see the loop: these cases have compactions at 4 and 6 recorded).
		{"compact: a watch from below the compact revision is canceled", prefixWatch(2, created(8), compactedCancel(4)), ""},
		{"compact: canceled after delivering events it had", prefixWatch(2, created(8), events(e("key-a", 2)), compactedCancel(4)), ""},
		{"compact: canceled with etcd's compacted error as the reason", prefixWatch(2, created(8),
			func() history.WatchResponse {
				r := compactedCancel(4)
				r.CancelReason = "etcdserver: mvcc: required revision has been compacted"
				return r
			}()), ""},
		{"compact: a compact revision that does not cancel", prefixWatch(2, created(8), func() history.WatchResponse { r := compactedCancel(4); r.Canceled = false; return r }()), "compacted"},
		{"compact: canceled for another reason", prefixWatch(2, created(8), func() history.WatchResponse { r := compactedCancel(4); r.CancelReason = "no leader"; return r }()), "compacted"},
		{"compact: a compact revision no compaction asked for", prefixWatch(2, created(8), compactedCancel(5)), "compacted"},
		{"compact: the start revision is still readable", prefixWatch(4, created(8), compactedCancel(4)), "compacted"},
		{"compact: the next revision needed is still readable", prefixWatch(2, created(8), events(e("key-a", 2), e("key-b", 3)), compactedCancel(4)), "compacted"},
		{"compact: a message after the cancel", prefixWatch(2, created(8), compactedCancel(4), compactedCancel(4)), "compacted"},
		{"compact: past the committed log", prefixWatch(2, created(8), compactedCancel(9)), "compacted"},
		{"did not catch up", with(prefixWatch(1, all[:3]...), func(w *history.Watch) { w.EndReason, w.Target, w.End = "caught-up timeout", 8, 12*time.Second }), "caught-up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := *c
			check.Watches = []history.Watch{tt.watch}
			if tt.name == "previous value missing after a compaction" {
				check.Clients = []history.Client{{ID: 9, Operations: []history.Operation{{Request: history.Request{Compaction: &history.CompactionRequest{Revision: 4}}}}}}
			}
			if strings.HasPrefix(tt.name, "compact:") {
				check.Clients = []history.Client{{ID: 9, Operations: []history.Operation{compaction(4), compaction(6), compaction(9)}}}
			}
			r := Watch{}.Validate(context.Background(), &check)
			if tt.want == "" {
				require.Equal(t, OK, r.Verdict, r.Message)
				return
			}
			require.Equal(t, Illegal, r.Verdict, r.Message)
			require.True(t, strings.HasPrefix(r.Message, tt.want+":"), "want %s, got %s", tt.want, r.Message)
			require.Contains(t, r.Explanation, "The "+tt.want+" check failed")
		})
	}
}

// Without a replayed log, the checks that need none still find
// violations, and a clean record is inconclusive, never a pass.
func TestWatchWithoutReplay(t *testing.T) {
	c := testLog()
	e := func(key string, rev int64) history.WatchEvent { return ev(c, key, rev, true) }
	noReplay := &Check{Input: Input{Watches: []history.Watch{prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4)))}}}
	r := Watch{}.Validate(context.Background(), noReplay)
	require.Equal(t, Inconclusive, r.Verdict, r.Message)
	require.Contains(t, r.Message, "reliable")
	require.Contains(t, r.Message, "ordered")

	noReplay.Watches = []history.Watch{prefixWatch(1, created(1), events(e("key-a", 4)), events(e("key-a", 2)))}
	r = Watch{}.Validate(context.Background(), noReplay)
	require.Equal(t, Illegal, r.Verdict, r.Message)
	require.True(t, strings.HasPrefix(r.Message, "ordered:"), r.Message)

	r = Watch{}.Validate(context.Background(), &Check{})
	require.Equal(t, OK, r.Verdict, "no watch traffic: nothing to check")
}

// The first failing check is named, on the first watch by ID.
func TestWatchNamesTheFirstFailingCheck(t *testing.T) {
	c := testLog()
	e := func(key string, rev int64) history.WatchEvent { return ev(c, key, rev, true) }
	gap := prefixWatch(1, created(1), events(e("key-a", 2)), events(e("key-a", 4)))
	gap.ID = 5
	back := prefixWatch(1, created(1), events(e("key-a", 4)), events(e("key-a", 2)))
	back.ID = 7
	c.Watches = []history.Watch{back, gap}
	f, _, checks := findWatchViolation(c)
	require.Equal(t, "ordered", f.Check)
	require.Equal(t, 7, f.Watch.ID)
	require.Equal(t, 2, f.Response)

	// Every named check reports its own verdict and what it read: the
	// later check the other stream fails is named too, and a check with
	// nothing to read says so.
	byName := map[string]NamedCheck{}
	for _, nc := range checks {
		byName[nc.Name] = nc
	}
	require.Len(t, checks, len(WatchCheckNames()))
	require.Equal(t, Illegal, byName["ordered"].Verdict)
	require.Equal(t, Illegal, byName["reliable"].Verdict, "watch 5 skips revision 3")
	require.Equal(t, OK, byName["filter"].Verdict)
	require.Equal(t, 4, byName["filter"].Checked, "four events over the two streams")
	require.Equal(t, 0, byName["bookmarkable"].Checked, "no progress notification")
	require.Equal(t, "nothing to check", byName["bookmarkable"].Message)

	res := Watch{}.Validate(context.Background(), c)
	require.Equal(t, Illegal, res.Verdict)
	require.Equal(t, 2, res.Checked)
	require.Equal(t, checks, res.Checks)
	require.NotNil(t, res.WatchViolation)
	require.Equal(t, 7, res.WatchViolation.Watch.ID)
}

// Every field of the model's KeyValue has a field of the same name and
// type in the record's, so equal compares each one.
func TestKeyValueFieldsMatch(t *testing.T) {
	m, h := reflect.TypeOf(model.KeyValue{}), reflect.TypeOf(history.KeyValue{})
	for i := 0; i < m.NumField(); i++ {
		f, ok := h.FieldByName(m.Field(i).Name)
		require.True(t, ok, "history.KeyValue has no %s", m.Field(i).Name)
		require.Equal(t, m.Field(i).Type, f.Type, m.Field(i).Name)
	}
}

func TestWatchRange(t *testing.T) {
	require.True(t, watchInRange(history.WatchRequest{Key: "a"}, "a"))
	require.False(t, watchInRange(history.WatchRequest{Key: "a"}, "ab"))
	require.True(t, watchInRange(history.WatchRequest{Key: "\x00", RangeEnd: "\x00"}, "anything"))
	require.True(t, watchInRange(history.WatchRequest{Key: "b", RangeEnd: "\x00"}, "c"))
	require.False(t, watchInRange(history.WatchRequest{Key: "b", RangeEnd: "\x00"}, "a"))
	require.True(t, watchInRange(history.WatchRequest{Key: "key-", RangeEnd: "key."}, "key-9"))
	require.False(t, watchInRange(history.WatchRequest{Key: "key-", RangeEnd: "key."}, "key."))
}

package validate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// logOf is a complete committed log holding reqs at raft indices 1..n.
func logOf(reqs ...history.Request) *evidence.Log {
	l := &evidence.Log{FirstIndex: 1, Complete: true}
	for i, r := range reqs {
		r := r
		l.Entries = append(l.Entries, evidence.Entry{Index: uint64(i + 1), Term: 2, Request: &r})
	}
	l.CommitIndex = uint64(len(reqs))
	return l
}

// patched runs the evidence, patch and linearizability stages.
func patched(in Input) ([]Result, *Check) {
	c := &Check{Input: in}
	var out []Result
	for _, v := range []Validator{EvidenceStage{}, PatchStage{}, Linearizability{Timeout: 10 * time.Second}} {
		r := v.Validate(context.Background(), c)
		r.Validator = v.Name()
		out = append(out, r)
	}
	return out, c
}

func verdicts(rs []Result) []Verdict {
	var out []Verdict
	for _, r := range rs {
		out = append(out, r.Verdict)
	}
	return out
}

func TestPatch(t *testing.T) {
	put, get := ht.Put, ht.Get
	tests := []struct {
		name    string
		history []history.Operation
		log     *evidence.Log
		// want: the evidence, patch and linearizability verdicts.
		want []Verdict
	}{
		{
			name: "a write of unknown outcome that was committed is applied",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				op(1, 10, 20, get("a"), getOK(2, kv("a", "1", 2))),
			},
			log:  logOf(put("a", "1")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a read of a value that was never committed",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				op(1, 10, 20, put("b", "2"), putOK(2)),
				op(1, 30, 40, get("a"), getOK(2, kv("a", "1", 2))),
			},
			log:  logOf(put("b", "2")),
			want: []Verdict{OK, OK, Illegal},
		},
		{
			name: "the same history without that read",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				op(1, 10, 20, put("b", "2"), putOK(2)),
				op(1, 30, 40, get("b"), getOK(2, kv("b", "2", 2))),
			},
			log:  logOf(put("b", "2")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a lost acknowledged write: in no member's WAL, and the final read misses it",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, put("b", "2"), putOK(3)),
				op(2, 40, 50, history.RangeAll(), getOK(2, kv("b", "2", 2))),
			},
			log:  logOf(put("b", "2")),
			want: []Verdict{OK, Illegal, Illegal},
		},
		{
			name: "the same history without the loss",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 20, 30, put("b", "2"), putOK(3)),
				op(2, 40, 50, history.RangeAll(), getOK(3, kv("a", "1", 2), kv("b", "2", 3))),
			},
			log:  logOf(put("a", "1"), put("b", "2")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a read that goes back in time among applied writes",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				unknown(1, 0, 100, put("a", "2")),
				op(2, 10, 20, get("a"), getOK(3, kv("a", "2", 3))),
				op(2, 30, 40, get("a"), getOK(2, kv("a", "1", 2))),
			},
			log:  logOf(put("a", "1"), put("a", "2")),
			want: []Verdict{OK, OK, Illegal},
		},
		{
			name: "the same reads in time",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				unknown(1, 0, 100, put("a", "2")),
				op(2, 10, 20, get("a"), getOK(2, kv("a", "1", 2))),
				op(2, 30, 40, get("a"), getOK(3, ht.KVAt("a", "2", 2, 3, 2))),
			},
			log:  logOf(put("a", "1"), put("a", "2")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "one request committed twice",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log:  logOf(put("a", "1"), put("a", "1")),
			want: []Verdict{OK, Illegal, OK},
		},
		{
			// clientv3 retries a grant; the retry is committed too and
			// refused, as the first copy had granted the lease.
			name: "a lease grant committed twice, the second copy refused",
			history: []history.Operation{
				ht.Failed(0, 0, 10, grant(7, 5), "FailedPrecondition", "etcdserver: lease already exists"),
			},
			log:  logOf(grant(7, 5), grant(7, 5)),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a lease grant that took effect twice",
			history: []history.Operation{
				ht.Failed(0, 0, 10, grant(7, 5), "FailedPrecondition", "etcdserver: lease already exists"),
			},
			log:  logOf(grant(7, 5), history.Request{LeaseRevoke: &history.LeaseRevokeRequest{ID: 7}}, grant(7, 5)),
			want: []Verdict{OK, Illegal, Illegal},
		},
		{
			// etcd commits a put only when a client sends one: the read
			// that sees it cannot be explained by an operation of the
			// server's own.
			name: "a write no client sent is in the log, and a read sees it",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(0, 20, 30, get("b"), getOK(3, kv("b", "x", 3))),
			},
			log:  logOf(put("a", "1"), put("b", "x")),
			want: []Verdict{OK, Illegal, Illegal},
		},
		{
			name: "the same history with the write sent",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 5, 100, put("b", "x")),
				op(0, 20, 30, get("b"), getOK(3, kv("b", "x", 3))),
			},
			log:  logOf(put("a", "1"), put("b", "x")),
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "members disagree on a committed entry",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
			},
			log: func() *evidence.Log {
				l := logOf(put("a", "1"))
				l.Conflicts = []string{"index 1: member-0 has term 2, member-1 has term 3"}
				return l
			}(),
			want: []Verdict{Illegal, OK, OK},
		},
		{
			name: "no evidence: the history is checked as recorded",
			history: []history.Operation{
				unknown(0, 0, 100, put("a", "1")),
				op(1, 10, 20, get("a"), getOK(2, kv("a", "1", 2))),
				op(1, 30, 40, put("b", "2"), putOK(3)),
			},
			log:  nil,
			want: []Verdict{Inconclusive, Inconclusive, OK},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := patched(Input{Clients: clients(tc.history...), FinalRead: -1, Persisted: tc.log, EvidenceError: "test"})
			require.Equal(t, tc.want, verdicts(rs), "%+v", rs)
		})
	}
}

// Dropping an acknowledged write would hide a lost write; the patch keeps
// every acknowledged write, so the loss is still found.
func TestPatchNeverDropsEvidence(t *testing.T) {
	h := []history.Operation{
		op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
		op(1, 20, 30, history.RangeAll(), getOK(1)),
	}
	rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: logOf()})
	require.Equal(t, Illegal, rs[2].Verdict, rs[2].Message)
	require.Len(t, c.Patched.Ops, 2, "the acknowledged write is still there")
	// What a wrong patch would do: without the write, the history passes.
	rs = All(context.Background(), Input{Clients: clients(h[1:]...), FinalRead: -1}, Linearizability{})
	require.NotEqual(t, Illegal, rs[0].Verdict)
}

func TestPatchSettles(t *testing.T) {
	h := []history.Operation{
		unknown(0, 0, 1000, ht.Put("a", "1")), // committed: applied, seen at 60
		unknown(1, 0, 1000, ht.Put("a", "2")), // in no WAL: never applied
		op(2, 50, 60, ht.Get("a"), getOK(2, kv("a", "1", 2))),
		op(3, 70, 80, ht.Del("b"), delOK(2, 0)),
		unknown(3, 90, 1000, ht.Del("b")), // as many deletes committed as acknowledged: never applied
		unknown(4, 90, 1000, ht.Del("a")), // one more than acknowledged: applied
		op(5, 2000, 2010, ht.Get("a"), getOK(3)),
	}
	log := logOf(ht.Put("a", "1"), ht.Del("b"), ht.Del("a"))
	rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
	require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
	p := c.Patched
	require.Equal(t, 2, p.Applied)
	require.Equal(t, 2, p.NotApplied)
	require.Equal(t, 0, p.Open)
	for _, o := range p.Ops {
		if o.Source == "client 0 #0" {
			require.False(t, o.Open)
			require.Equal(t, 60*time.Millisecond, o.Return, "bounded by the first response at its revision")
		}
	}
}

func TestPatchIncompleteLogKeepsWritesOpen(t *testing.T) {
	h := []history.Operation{
		unknown(0, 0, 100, ht.Put("a", "1")),
		op(1, 10, 20, ht.Put("b", "2"), putOK(2)),
	}
	log := logOf(ht.Put("b", "2"))
	log.Complete, log.FirstIndex = false, 5
	rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
	require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
	require.Equal(t, 1, c.Patched.Open, "a write missing from an incomplete log may still have been applied")
}

// An acknowledged delete that deleted nothing takes the log entry that
// changed nothing, not the one that deleted: the unknown copy of the same
// request did the deleting.
func TestPatchPinsIdenticalRequestsByEffect(t *testing.T) {
	h := []history.Operation{
		op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
		unknown(1, 20, 1000, ht.Del("a")),       // deleted a: 2 -> 3
		op(2, 40, 50, ht.Del("a"), delOK(3, 0)), // found nothing at 3
		op(2, 60, 70, ht.Get("a"), getOK(3)),
	}
	log := logOf(ht.Put("a", "1"), ht.Del("a"), ht.Del("a"))
	rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
	require.Equal(t, []Verdict{OK, OK, OK}, verdicts(rs), "%+v", rs)
	for _, o := range c.Patched.Ops {
		if o.Source == "client 1 #0" {
			require.Equal(t, int64(2), o.Response.AppliedTo)
			require.Equal(t, int64(3), o.Response.Revision)
		}
	}
}

func TestByRevision(t *testing.T) {
	base := func() []history.Operation {
		return []history.Operation{
			op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
			op(1, 5, 15, ht.Get("a"), getOK(2, kv("a", "1", 2))),
			op(0, 20, 30, ht.Put("a", "2"), putOK(3)),
		}
	}
	log := logOf(ht.Put("a", "1"), ht.Put("a", "2"))
	uncommitted := ht.Put("b", "9")
	log.Uncommitted = []evidence.Entry{{Index: 3, Term: 2, Request: &uncommitted}}
	tests := []struct {
		name   string
		mutate func([]history.Operation) []history.Operation
		want   bool
	}{
		{"every revision known", func(h []history.Operation) []history.Operation { return h }, true},
		// It may take effect after everything: it goes last, not applied.
		{"a write of unknown outcome left open (only past the commit index)", func(h []history.Operation) []history.Operation {
			return append(h, unknown(2, 40, 50, ht.Put("b", "9")))
		}, true},
		{"a read after the next write returned", func(h []history.Operation) []history.Operation {
			return append(h, op(3, 35, 40, ht.Get("a"), getOK(2, kv("a", "1", 2))))
		}, false},
		{"a read of a state no revision had", func(h []history.Operation) []history.Operation {
			return append(h, op(3, 35, 40, ht.Get("a"), getOK(3, kv("a", "1", 2))))
		}, false},
		// No client sent the write at revision 3: the patch finds it
		// illegal, and no operation takes its entry.
		{"a revision whose write no client sent", func(h []history.Operation) []history.Operation { return h[:2] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: clients(tc.mutate(base())...), FinalRead: -1, Persisted: log}}
			PatchStage{}.Validate(context.Background(), c)
			require.NotNil(t, c.Replayed)
			require.Equal(t, tc.want, byRevision(c.Patched.Ops))
		})
	}
}

// A read the model cannot check makes the check inconclusive: passing would
// mean having checked less than the history holds.
func TestUnsupportedReadIsNotAPass(t *testing.T) {
	h := []history.Operation{
		op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
		op(1, 20, 30, history.Request{Range: &history.RangeRequest{Key: "a", RangeEnd: "z", SortTarget: "MOD", SortOrder: "DESCEND"}}, getOK(2)),
	}
	rs, _ := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: logOf(ht.Put("a", "1"))})
	require.Equal(t, Inconclusive, rs[2].Verdict, rs[2].Message)
	require.Contains(t, rs[2].Message, "does not check")
}

func grant(id, ttl int64) history.Request {
	return history.Request{LeaseGrant: &history.LeaseGrantRequest{ID: id, TTL: ttl}}
}

// Answers the patch leaves out of linearizability are named in its message,
// so a pass never hides that they went unchecked.
func TestPatchNamesWhatItLeavesOut(t *testing.T) {
	defrag := history.Request{Defragment: &history.DefragmentRequest{}}
	stale := history.Request{Range: &history.RangeRequest{Key: "a", Serializable: true}}
	in := Input{FinalRead: -1, Clients: ht.Clients(
		op(0, 0, 10, ht.Put("a", "1"), putOK(2)),
		op(1, 20, 30, defrag, &history.Response{Header: history.Header{Revision: 2}, Defragment: &history.DefragmentResponse{}}),
		op(1, 40, 50, stale, getOK(2, kv("a", "1", 2))),
	), Persisted: logOf(ht.Put("a", "1"))}
	rs, _ := patched(in)
	require.Equal(t, OK, rs[1].Verdict, rs[1].Message)
	require.Contains(t, rs[1].Message, "1 serializable reads left to the stale-read stage")
	require.Contains(t, rs[1].Message, "1 answers one member gives alone (lease list, defragment) not checked")
}

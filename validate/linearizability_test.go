package validate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

var (
	op      = ht.Op
	unknown = ht.Unknown
	putOK   = ht.PutOK
	getOK   = ht.GetOK
	delOK   = ht.DelOK
	casResp = ht.CASResp
	kv      = ht.KV
	clients = ht.Clients
)

// linearizability runs the linearizability stage alone over a built history.
func linearizability(ctx context.Context, l Linearizability, cl []history.Client) Result {
	return All(ctx, Input{Clients: cl, FinalRead: -1}, l)[0]
}

func TestLinearizability(t *testing.T) {
	get, put, del := ht.Get, ht.Put, ht.Del
	tests := []struct {
		name    string
		history []history.Operation
		want    Verdict
	}{
		{
			name: "concurrent puts and a read that sees the later one",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 1, 9, put("a", "2"), putOK(3)),
				op(2, 2, 20, get("a"), getOK(3, ht.KVAt("a", "2", 2, 3, 2))),
				op(0, 11, 15, del("a"), delOK(4, 1)),
				op(1, 16, 18, get("a"), getOK(4)),
			},
			want: OK,
		},
		{
			name: "concurrent read may see the value before a put that has not returned",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(1, 1, 2, get("a"), getOK(2, kv("a", "1", 2))),
			},
			want: OK,
		},
		{
			name: "read revision goes backwards",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(1, 2, 3, get("a"), getOK(2, kv("a", "1", 2))),
				op(1, 4, 5, get("b"), getOK(1)),
			},
			want: Illegal,
		},
		{
			name: "acknowledged write disappears",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, put("b", "2"), putOK(3)),
				op(1, 4, 5, history.Range("a", "c"), getOK(3, kv("b", "2", 3))),
			},
			want: Illegal,
		},
		{
			name: "two acknowledged writes share a revision (etcd #14370 after a crash)",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(1, 2, 3, put("a", "2"), putOK(2)),
			},
			want: Illegal,
		},
		{
			name: "stale read after a write returned",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, put("a", "2"), putOK(3)),
				op(1, 4, 5, get("a"), getOK(3, kv("a", "1", 2))),
			},
			want: Illegal,
		},
		{
			name: "write of unknown outcome that took effect",
			history: []history.Operation{
				unknown(0, 0, 1, put("a", "1")),
				op(1, 2, 3, get("a"), getOK(2, kv("a", "1", 2))),
				op(1, 4, 5, put("a", "2"), putOK(3)),
			},
			want: OK,
		},
		{
			name: "write of unknown outcome that never took effect",
			history: []history.Operation{
				unknown(0, 0, 1, put("a", "1")),
				op(1, 2, 3, put("a", "2"), putOK(2)),
				op(1, 4, 5, get("a"), getOK(2, kv("a", "2", 2))),
			},
			want: OK,
		},
		{
			name: "write of unknown outcome that took effect late, after other writes",
			history: []history.Operation{
				unknown(0, 0, 1, put("a", "1")),
				op(1, 2, 3, put("b", "2"), putOK(2)),
				op(1, 4, 5, get("a"), getOK(3, kv("a", "1", 3))),
			},
			want: OK,
		},
		{
			name: "write of unknown outcome seen before it was called",
			history: []history.Operation{
				op(1, 0, 1, get("a"), getOK(2, kv("a", "1", 2))),
				unknown(0, 2, 3, put("a", "1")),
			},
			want: Illegal,
		},
		{
			name: "read of unknown outcome is ignored",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				unknown(1, 2, 3, get("a")),
			},
			want: OK,
		},
		{
			name: "compare-and-set succeeds only on the current mod revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, ht.CAS("a", 2, "2"), casResp(3, true)),
				op(1, 4, 5, ht.CAS("a", 2, "3"), casResp(3, false, ht.KVAt("a", "2", 2, 3, 2))),
				op(1, 6, 7, ht.CAS("b", 0, "4"), casResp(4, true)),
			},
			want: OK,
		},
		{
			name: "compare-and-set succeeds on an outdated mod revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, put("a", "2"), putOK(3)),
				op(1, 4, 5, ht.CAS("a", 2, "3"), casResp(4, true)),
			},
			want: Illegal,
		},
		{
			name: "delete of a missing key keeps the revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, del("b"), delOK(2, 0)),
				op(0, 4, 5, put("a", "2"), putOK(3)),
			},
			want: OK,
		},
		{
			name: "delete of a missing key bumps the revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, del("b"), delOK(3, 0)),
			},
			want: Illegal,
		},
		{
			name:    "empty history",
			history: nil,
			want:    Inconclusive,
		},
		{
			name: "no successful write",
			history: []history.Operation{
				op(0, 0, 1, get("a"), getOK(1)),
				unknown(0, 2, 3, put("a", "1")),
			},
			want: Inconclusive,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := linearizability(context.Background(), Linearizability{Timeout: 10 * time.Second}, clients(tc.history...))
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.NotEmpty(t, r.Message)
		})
	}
}

func TestLinearizabilityNamesTheStuckOperation(t *testing.T) {
	h := clients(
		op(0, 0, 1, ht.Put("a", "1"), putOK(2)),
		op(1, 2, 3, ht.Put("a", "2"), putOK(2)),
	)
	r := linearizability(context.Background(), Linearizability{}, h)
	require.Equal(t, Illegal, r.Verdict)
	require.Contains(t, r.Message, "put(a, 2)")
	require.Contains(t, r.Message, "by porcupine's search over 2 operations")
	require.Equal(t, []string{"client 1 #0", "client 0 #0"}, r.Involved, "the stuck operation first, then the one the explanation names")
	require.Equal(t, 2, r.Checked)
	require.Equal(t, "operations", r.CheckedWhat)
	require.NotNil(t, r.History, "a violation always gets its view")
	require.Len(t, r.History.Ops, 2)
}

func TestLinearizabilityTimeoutIsNotAPass(t *testing.T) {
	r := linearizability(context.Background(), Linearizability{Timeout: 200 * time.Millisecond}, slowToCheck())
	require.Equal(t, TimedOut, r.Verdict, r.Message)
	// It says why the witness did not decide instead.
	require.Contains(t, r.Message, "400 of unknown outcome left open; the log's order was no witness: no committed log to order by")
}

func TestPorcupineOperations(t *testing.T) {
	h := clients(
		op(0, 0, 1, ht.Put("a", "1"), putOK(2)),
		unknown(0, 2, 3, ht.Put("a", "2")),
		unknown(0, 4, 5, ht.Get("a")),
		op(0, 6, 7, ht.Get("a"), getOK(2, kv("a", "1", 2))),
		op(1, 0, 9, ht.Get("a"), getOK(2, kv("a", "1", 2))),
	)
	p, d := derive(h)
	require.Equal(t, 1, p.DroppedReads, "the read of unknown outcome is dropped")
	var patched []Op
	for _, o := range d {
		patched = append(patched, o.Op)
	}
	ops := PorcupineOperations(patched)
	require.Len(t, ops, 4)
	require.Equal(t, []int{0, 0, 1, 2}, []int{ops[0].ClientId, ops[1].ClientId, ops[2].ClientId, ops[3].ClientId},
		"after a write of unknown outcome the client moves to a new row")
	require.Greater(t, ops[1].Return, int64(9*time.Millisecond), "a write of unknown outcome stays open past the end of the history")
}

func TestLinearizabilityCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := linearizability(ctx, Linearizability{Timeout: time.Minute}, slowToCheck())
	require.Equal(t, TimedOut, r.Verdict, r.Message)
	require.Contains(t, r.Message, "cancelled")
	require.Less(t, time.Since(start), 10*time.Second, "a cancelled check returns at once")
}

// slowToCheck is a history whose search takes far longer than any test:
// 400 concurrent failed writes, then a read at a revision only some subset
// of them could reach, and a successful write.
func slowToCheck() []history.Client {
	var ops []history.Operation
	for i := 0; i < 400; i++ {
		key := string(rune('a' + i%20))
		ops = append(ops, unknown(i, 0, 1, ht.Put(key, fmt.Sprintf("%s-%d", key, i))))
	}
	ops = append(ops, op(1000, 2, 3, ht.Get("zz"), getOK(1000)))
	ops = append(ops, op(1001, 4, 5, ht.Put("zz", "x"), putOK(1001)))
	return clients(ops...)
}

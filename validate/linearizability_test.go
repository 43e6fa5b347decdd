package validate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// op builds one recorded operation; times are in milliseconds.
func op(client int, call, ret int, req model.Request, resp model.Response) history.Operation {
	return history.Operation{
		ClientID: client,
		Call:     time.Duration(call) * time.Millisecond,
		Return:   time.Duration(ret) * time.Millisecond,
		Request:  req,
		Response: resp,
	}
}

func putOK(rev int64) model.Response {
	return model.Response{Revision: rev, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{}}}}
}

func getOK(rev int64, kvs ...model.KeyValue) model.Response {
	return model.Response{Revision: rev, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{KVs: kvs}}}}
}

func delOK(rev, deleted int64) model.Response {
	return model.Response{Revision: rev, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{Deleted: deleted}}}}
}

func casResp(rev int64, succeeded bool, kvs ...model.KeyValue) model.Response {
	if succeeded {
		return putOK(rev)
	}
	return model.Response{Revision: rev, Txn: &model.TxnResponse{Succeeded: false, Results: []model.OpResult{{KVs: kvs}}}}
}

func failed() model.Response { return model.Response{Error: "context deadline exceeded"} }

func kv(k, v string, rev int64) model.KeyValue {
	return model.KeyValue{Key: k, Value: v, ModRevision: rev}
}

// clients groups operations by their ClientID.
func clients(ops ...history.Operation) []history.Client {
	byID := map[int]*history.Client{}
	var out []history.Client
	for _, o := range ops {
		if byID[o.ClientID] == nil {
			byID[o.ClientID] = &history.Client{ID: o.ClientID}
		}
		byID[o.ClientID].Operations = append(byID[o.ClientID].Operations, o)
	}
	for id := 0; id < 100; id++ {
		if c := byID[id]; c != nil {
			out = append(out, *c)
		}
	}
	return out
}

func TestLinearizability(t *testing.T) {
	get, put, del := model.GetRequest, model.PutRequest, model.DeleteRequest
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
				op(2, 2, 20, get("a"), getOK(3, kv("a", "2", 3))),
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
				op(1, 4, 5, model.RangeRequest("a", "c"), getOK(3, kv("b", "2", 3))),
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
			name: "failed write that took effect",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), failed()),
				op(1, 2, 3, get("a"), getOK(2, kv("a", "1", 2))),
				op(1, 4, 5, put("a", "2"), putOK(3)),
			},
			want: OK,
		},
		{
			name: "failed write that never took effect",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), failed()),
				op(1, 2, 3, put("a", "2"), putOK(2)),
				op(1, 4, 5, get("a"), getOK(2, kv("a", "2", 2))),
			},
			want: OK,
		},
		{
			name: "failed write that took effect late, after other writes",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), failed()),
				op(1, 2, 3, put("b", "2"), putOK(2)),
				op(1, 4, 5, get("a"), getOK(3, kv("a", "1", 3))),
			},
			want: OK,
		},
		{
			name: "failed write seen before it was called",
			history: []history.Operation{
				op(1, 0, 1, get("a"), getOK(2, kv("a", "1", 2))),
				op(0, 2, 3, put("a", "1"), failed()),
			},
			want: Illegal,
		},
		{
			name: "failed read is ignored",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(1, 2, 3, get("a"), failed()),
			},
			want: OK,
		},
		{
			name: "compare-and-set succeeds only on the current mod revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, model.CompareAndSetRequest("a", 2, "2"), casResp(3, true)),
				op(1, 4, 5, model.CompareAndSetRequest("a", 2, "3"), casResp(3, false, kv("a", "2", 3))),
				op(1, 6, 7, model.CompareAndSetRequest("b", 0, "4"), casResp(4, true)),
			},
			want: OK,
		},
		{
			name: "compare-and-set succeeds on an outdated mod revision",
			history: []history.Operation{
				op(0, 0, 1, put("a", "1"), putOK(2)),
				op(0, 2, 3, put("a", "2"), putOK(3)),
				op(1, 4, 5, model.CompareAndSetRequest("a", 2, "3"), casResp(4, true)),
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
				op(0, 2, 3, put("a", "1"), failed()),
			},
			want: Inconclusive,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Linearizability{Timeout: 10 * time.Second}.Validate(context.Background(), Input{Clients: clients(tc.history...)})
			require.Equal(t, tc.want, r.Verdict, r.Message)
			require.NotEmpty(t, r.Message)
		})
	}
}

func TestLinearizabilityNamesTheStuckOperation(t *testing.T) {
	h := clients(
		op(0, 0, 1, model.PutRequest("a", "1"), putOK(2)),
		op(1, 2, 3, model.PutRequest("a", "2"), putOK(2)),
	)
	r := Linearizability{}.Validate(context.Background(), Input{Clients: h})
	require.Equal(t, Illegal, r.Verdict)
	require.Contains(t, r.Message, "put(a, 2)")
	require.NotNil(t, r.Linearization)
}

func TestLinearizabilityTimeoutIsNotAPass(t *testing.T) {
	r := Linearizability{Timeout: 200 * time.Millisecond}.Validate(context.Background(), Input{Clients: slowToCheck()})
	require.Equal(t, TimedOut, r.Verdict, r.Message)
}

func TestPorcupineOperations(t *testing.T) {
	h := clients(
		op(0, 0, 1, model.PutRequest("a", "1"), putOK(2)),
		op(0, 2, 3, model.PutRequest("a", "2"), failed()),
		op(0, 4, 5, model.GetRequest("a"), failed()),
		op(0, 6, 7, model.GetRequest("a"), getOK(2, kv("a", "1", 2))),
		op(1, 0, 9, model.GetRequest("a"), getOK(2, kv("a", "1", 2))),
	)
	ops := PorcupineOperations(h)
	require.Len(t, ops, 4, "the failed read is dropped")
	require.Equal(t, []int{0, 0, 1, 2}, []int{ops[0].ClientId, ops[1].ClientId, ops[2].ClientId, ops[3].ClientId},
		"after a failed write the client moves to a new row")
	require.Greater(t, ops[1].Return, int64(9*time.Millisecond), "a failed write stays open past the end of the history")
}

func TestLinearizabilityCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := Linearizability{Timeout: time.Minute}.Validate(ctx, Input{Clients: slowToCheck()})
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
		ops = append(ops, op(i, 0, 1, model.PutRequest(key, fmt.Sprintf("%s-%d", key, i)), failed()))
	}
	ops = append(ops, op(1000, 2, 3, model.GetRequest("zz"), getOK(1000)))
	ops = append(ops, op(1001, 4, 5, model.PutRequest("zz", "x"), putOK(1001)))
	return clients(ops...)
}

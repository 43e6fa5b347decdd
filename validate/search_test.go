package validate

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// The windows' search answers as porcupine does, on histories with
// overlapping operations, writes of unknown outcome (several states at
// once), start states other than the initial one, pinned operations
// running at the end (maybeOp), and violations: a put's revision shifted,
// a read that misses a write, a read of the future.
func TestWindowSearchAgreesWithPorcupine(t *testing.T) {
	missed := func(h []history.Operation, at int) []history.Operation {
		for k := at; k < len(h); k++ {
			if h[k].Request.Range != nil && len(h[k].Response.Range.KVs) > 0 {
				h = append([]history.Operation(nil), h...)
				h[k].Response = ht.GetOK(h[k].Response.Header.Revision)
				return h
			}
		}
		return h
	}
	injections := []struct {
		name   string
		inject func(h []history.Operation) []history.Operation
	}{
		{"as recorded", func(h []history.Operation) []history.Operation { return h }},
		{"a put's revision lowered", func(h []history.Operation) []history.Operation { _, h = shiftPut(h, len(h)/2, -1); return h }},
		{"a put's revision raised", func(h []history.Operation) []history.Operation { _, h = shiftPut(h, len(h)/3, +1); return h }},
		{"a read misses a write", func(h []history.Operation) []history.Operation { return missed(h, len(h)/2) }},
	}
	counts := map[porcupine.CheckResult]int{}
	for seed := int64(1); seed <= 12; seed++ {
		for _, inj := range injections {
			h, log := generatedSpread(48, seed, 4*time.Millisecond)
			c := stageInput(t, inj.inject(h), log)
			ops := PorcupineOperations(c.Patched.Ops)
			rng := rand.New(rand.NewSource(seed))
			// Some writes of unknown outcome; or a pinned write running at
			// the end (its answer kept, searched as maybeOp).
			for k := range ops {
				req := ops[k].Input.(model.Request)
				if !req.IsWrite() {
					continue
				}
				switch rng.Intn(6) {
				case 0:
					ops[k].Output = model.Response{Status: model.StatusUnknown}
				case 1:
					resp := ops[k].Output.(model.Response)
					ops[k].Input = maybeOp{req: req, pin: resp.Revision}
				}
			}
			// Start from the initial state, or also from a state with one
			// more key (several start states).
			states := []model.State{model.InitialState()}
			if seed%2 == 0 {
				s, _, _ := model.InitialState().Apply(model.Request{Type: model.Txn, Txn: &model.TxnRequest{Then: []model.Op{{Type: model.OpPut, Key: "other", Value: "x"}}}})
				states = append(states, s)
			}
			want := porcupine.CheckOperationsTimeout(windowModel(states), ops, 20*time.Second)
			require.NotEqual(t, porcupine.Unknown, want, "porcupine did not finish")
			got := windowSearch(context.Background(), states, ops, 20*time.Second)
			require.Equal(t, want, got.result, "seed %d, %s", seed, inj.name)
			counts[got.result]++
			if got.result == porcupine.Illegal {
				require.Less(t, len(got.longest), len(ops), "the longest order leaves some operation out")
			}
		}
	}
	require.Positive(t, counts[porcupine.Ok], "no linearizable history among the cases")
	require.Positive(t, counts[porcupine.Illegal], "no violation among the cases")
	t.Logf("%v", counts)
}

// Reads at one revision that all run at once: porcupine tries every subset
// of them in every order it can reach; the windows' search places each
// read where the model accepts it, and finds the write that no order gets
// past (a put answered with a revision the store had passed) at once.
func TestWindowSearchManyConcurrentReads(t *testing.T) {
	var ops []porcupine.Operation
	put := func(client int, call, ret int64, key, value string, rev int64) {
		ops = append(ops, porcupine.Operation{ClientId: client, Call: call, Return: ret,
			Input:  model.Request{Type: model.Txn, Txn: &model.TxnRequest{Then: []model.Op{{Type: model.OpPut, Key: key, Value: value}}}},
			Output: model.Response{Status: model.StatusOK, Revision: rev, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{}}}}})
	}
	put(0, 0, 10, "a", "1", 2)
	// 40 reads of "a" at revision 2, all overlapping.
	s2, _, _ := model.InitialState().Apply(ops[0].Input.(model.Request))
	get := model.Request{Type: model.Txn, Txn: &model.TxnRequest{Then: []model.Op{{Type: model.OpRange, Key: "a"}}}}
	_, read, _ := s2.Apply(get)
	for k := 0; k < 40; k++ {
		ops = append(ops, porcupine.Operation{ClientId: 1 + k, Call: 20, Return: 1000, Input: get, Output: read})
	}
	put(50, 30, 900, "b", "2", 3)
	put(51, 40, 950, "c", "3", 3) // revision 3 taken twice: a violation
	start := time.Now()
	got := windowSearch(context.Background(), []model.State{model.InitialState()}, ops, 10*time.Second)
	require.Equal(t, porcupine.Illegal, got.result)
	require.Less(t, time.Since(start), time.Second)
	// Without the violation it passes.
	ops[len(ops)-1].Output = model.Response{Status: model.StatusOK, Revision: 4, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{{}}}}
	require.Equal(t, porcupine.Ok, windowSearch(context.Background(), []model.State{model.InitialState()}, ops, 10*time.Second).result)
}

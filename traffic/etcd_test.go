package traffic

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// memoryEtcd is a correct etcd in memory: the model itself, behind a lock.
type memoryEtcd struct {
	mu    sync.Mutex
	state model.State
}

type memoryClient struct {
	etcd *memoryEtcd
	rec  *history.Recorder
}

func (c *memoryClient) Do(_ context.Context, req history.Request) history.Operation {
	call := c.rec.Now()
	mreq, err := model.RequestFromRecord(req)
	if err != nil {
		panic(err)
	}
	c.etcd.mu.Lock()
	next, resp := c.etcd.state.Apply(mreq)
	c.etcd.state = next
	c.etcd.mu.Unlock()
	c.rec.Record(call, req, toRecord(req, resp), nil)
	ops := c.rec.Client().Operations
	return ops[len(ops)-1]
}

// toRecord writes the model's response the way etcd would send it.
func toRecord(req history.Request, resp model.Response) *history.Response {
	out := &history.Response{Header: history.Header{Revision: resp.Revision}}
	rng := func(res model.OpResult) *history.RangeResponse {
		r := &history.RangeResponse{Count: int64(len(res.KVs))}
		for _, kv := range res.KVs {
			r.KVs = append(r.KVs, history.KeyValue{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision})
		}
		return r
	}
	res := resp.Txn.Results
	switch {
	case req.Range != nil:
		out.Range = rng(res[0])
	case req.Put != nil:
		out.Put = &history.PutResponse{}
	case req.DeleteRange != nil:
		out.DeleteRange = &history.DeleteRangeResponse{Deleted: res[0].Deleted}
	case req.Txn != nil:
		out.Txn = &history.TxnResponse{Succeeded: resp.Txn.Succeeded}
		ops := req.Txn.Success
		if !resp.Txn.Succeeded {
			ops = req.Txn.Failure
		}
		for i, op := range ops {
			var r history.ResponseOp
			switch {
			case op.Range != nil:
				r.Range = rng(res[i])
			case op.Put != nil:
				r.Put = &history.PutResponse{}
			case op.DeleteRange != nil:
				r.DeleteRange = &history.DeleteRangeResponse{Deleted: res[i].Deleted}
			}
			out.Txn.Responses = append(out.Txn.Responses, r)
		}
	}
	return out
}

func TestEtcdKVAgainstACorrectEtcd(t *testing.T) {
	p, err := Lookup("etcd-kv")
	require.NoError(t, err)
	etcd := &memoryEtcd{state: model.InitialState()}
	clock := history.NewClock()
	const qps, clients, runFor = 400, 4, time.Second
	limiter := newLimiter(qps)
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	var wg sync.WaitGroup
	recs := make([]*history.Recorder, clients)
	for i := range recs {
		recs[i] = history.NewRecorder(i, clock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(ctx, &memoryClient{etcd: etcd, rec: recs[i]}, Env{ClientID: i, Limiter: limiter, Rand: newRand(int64(i))})
		}()
	}
	wg.Wait()
	var hs []history.Client
	for _, r := range recs {
		hs = append(hs, r.Client())
	}
	stats := history.Count(hs)
	require.InDelta(t, qps*runFor.Seconds(), stats.Operations, qps*runFor.Seconds()*0.3, "the rate limit holds")

	kinds := map[string]int{}
	values := map[string]bool{}
	casSucceeded := 0
	for _, c := range hs {
		for _, op := range c.Operations {
			kinds[op.Request.Kind()]++
			for _, v := range op.Request.PutValues() {
				require.False(t, values[v], "value %s written twice", v)
				values[v] = true
			}
			if op.Request.Txn != nil && op.Response.Txn.Succeeded {
				casSucceeded++
			}
		}
	}
	for _, k := range []string{"range", "put", "delete_range", "txn"} {
		require.Positive(t, kinds[k], "the mix sends %s", k)
	}
	require.Positive(t, casSucceeded, "compare-and-set uses revisions the client saw, so some succeed")
	r := validate.All(context.Background(), validate.Input{Clients: hs, FinalRead: -1}, validate.Linearizability{})
	require.Equal(t, validate.OK, r[0].Verdict, r[0].Message)
}

func TestLookupUnknownProfile(t *testing.T) {
	_, err := Lookup("kubernetes")
	require.ErrorContains(t, err, `unknown traffic profile "kubernetes" (valid: etcd-kv)`)
}

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

func (c *memoryClient) Do(_ context.Context, req model.Request) model.Response {
	call := c.rec.Now()
	c.etcd.mu.Lock()
	next, resp := c.etcd.state.Apply(req)
	c.etcd.state = next
	c.etcd.mu.Unlock()
	c.rec.Record(call, req, resp)
	return resp
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
			txn := op.Request.Txn
			kinds[string(txn.Then[0].Type)+map[bool]string{true: "-cas", false: ""}[len(txn.Conditions) > 0]]++
			for _, o := range txn.Then {
				if o.Type == model.OpPut {
					require.False(t, values[o.Value], "value %s written twice", o.Value)
					values[o.Value] = true
				}
			}
			if len(txn.Conditions) > 0 && op.Response.Txn.Succeeded {
				casSucceeded++
			}
		}
	}
	for _, k := range []string{"range", "put", "delete", "put-cas"} {
		require.Positive(t, kinds[k], "the mix sends %s", k)
	}
	require.Positive(t, casSucceeded, "compare-and-set uses revisions the client saw, so some succeed")
	r := validate.Linearizability{}.Validate(context.Background(), validate.Input{Clients: hs})
	require.Equal(t, validate.OK, r.Verdict, r.Message)
}

func TestLookupUnknownProfile(t *testing.T) {
	_, err := Lookup("kubernetes")
	require.ErrorContains(t, err, `unknown traffic profile "kubernetes" (valid: etcd-kv)`)
}

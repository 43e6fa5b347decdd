package traffic

import (
	"context"
	"fmt"

	"github.com/etcd-robustness/etcd-robustness/model"
)

func init() { register(EtcdKV{Keys: 10}) }

// EtcdKV is etcd-style traffic on a small key space: reads, blind puts and
// deletes, and compare-and-set transactions on the last mod revision the
// client saw for a key.
type EtcdKV struct {
	// Keys is the number of distinct keys (key-0 .. key-N-1).
	Keys int
}

// Name implements Profile.
func (EtcdKV) Name() string { return "etcd-kv" }

// The request mix, out of 100.
const (
	getWeight    = 40
	putWeight    = 30
	deleteWeight = 10
	// the remaining 20: compare-and-set
)

// Run implements Profile.
func (p EtcdKV) Run(ctx context.Context, c Doer, env Env) {
	// lastRev is the mod revision this client last saw per key (0: absent);
	// compare-and-set uses it like an optimistic-concurrency client would.
	lastRev := map[string]int64{}
	for seq := 0; ; seq++ {
		if err := env.Limiter.Wait(ctx); err != nil {
			return
		}
		key := fmt.Sprintf("key-%d", env.Rand.Intn(p.Keys))
		var req model.Request
		switch n := env.Rand.Intn(100); {
		case n < getWeight:
			req = model.GetRequest(key)
		case n < getWeight+putWeight:
			req = model.PutRequest(key, env.UniqueValue(seq))
		case n < getWeight+putWeight+deleteWeight:
			req = model.DeleteRequest(key)
		default:
			req = model.CompareAndSetRequest(key, lastRev[key], env.UniqueValue(seq))
		}
		resp := c.Do(ctx, req)
		if ctx.Err() != nil {
			return
		}
		observe(lastRev, key, req, resp)
	}
}

// observe updates what the client knows of key's mod revision.
func observe(lastRev map[string]int64, key string, req model.Request, resp model.Response) {
	if resp.Failed() || resp.Txn == nil {
		return
	}
	ops := req.Txn.Then
	if !resp.Txn.Succeeded {
		ops = req.Txn.Else
	}
	for i, op := range ops {
		switch op.Type {
		case model.OpPut:
			lastRev[key] = resp.Revision
		case model.OpDelete:
			lastRev[key] = 0
		case model.OpRange:
			lastRev[key] = 0
			if i < len(resp.Txn.Results) && len(resp.Txn.Results[i].KVs) == 1 {
				lastRev[key] = resp.Txn.Results[i].KVs[0].ModRevision
			}
		}
	}
}

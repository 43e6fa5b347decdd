package traffic

import (
	"context"
	"fmt"

	"github.com/etcd-robustness/etcd-robustness/history"
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

// Description implements Profile.
func (EtcdKV) Description() string {
	return "gets, blind puts, deletes and compare-and-set txns on 10 keys"
}

// Rates implements Profile.
func (EtcdKV) Rates() Rates {
	return Rates{Low: Rate{QPS: 100, Clients: 4}, Medium: Rate{QPS: 200, Clients: 6}, High: Rate{QPS: 2100, Clients: 24}}
}

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
		var req history.Request
		switch n := env.Rand.Intn(100); {
		case n < getWeight:
			req = history.Get(key)
		case n < getWeight+putWeight:
			req = history.Put(key, env.UniqueValue(seq))
		case n < getWeight+putWeight+deleteWeight:
			req = history.Delete(key)
		default:
			req = history.CompareAndSet(key, lastRev[key], env.UniqueValue(seq))
		}
		op := c.Do(ctx, req)
		if ctx.Err() != nil {
			return
		}
		observe(lastRev, key, op)
	}
}

// observe updates what the client knows of key's mod revision from etcd's
// answer.
func observe(lastRev map[string]int64, key string, op history.Operation) {
	r := op.Response
	if op.Error != nil || r == nil {
		return
	}
	readKV := func(rr *history.RangeResponse) {
		lastRev[key] = 0
		if rr != nil && len(rr.KVs) == 1 {
			lastRev[key] = rr.KVs[0].ModRevision
		}
	}
	switch {
	case r.Put != nil:
		lastRev[key] = r.Header.Revision
	case r.DeleteRange != nil:
		lastRev[key] = 0
	case r.Range != nil:
		readKV(r.Range)
	case r.Txn != nil && r.Txn.Succeeded:
		lastRev[key] = r.Header.Revision // the compare-and-set's put
	case r.Txn != nil && len(r.Txn.Responses) == 1:
		readKV(r.Txn.Responses[0].Range)
	}
}

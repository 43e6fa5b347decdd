package traffic

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func init() {
	register(Etcd{
		Groups: 4, KeysPerGroup: 5,
		MinTTL: 2, MaxTTL: 5, MaxLeases: 2,
		CompactEvery: [2]time.Duration{time.Second, 2 * time.Second},
		DefragEvery:  [2]time.Duration{10 * time.Second, 20 * time.Second},
	})
}

// Etcd is etcd-style traffic over all of etcd's KV and lease API: single
// keys and prefix ranges (some as streaming ranges on etcd v3.7 and
// later), reads that are linearizable or serializable, at
// the latest or a recent past revision, multi-operation transactions whose
// compares test every target with every relation, and leases that are kept
// alive for a while, revoked, or left to expire. Client 0 compacts at a
// recent revision every CompactEvery; one client (1, or 0 alone) asks its
// first endpoint's member to defragment every DefragEvery.
//
// Keys are key/<g>/<i> for g < Groups and i < KeysPerGroup; a prefix range
// reads a group (key/<g>/) or every key (key/).
type Etcd struct {
	Groups, KeysPerGroup int
	// MinTTL and MaxTTL bound a granted lease's TTL, in seconds. etcd
	// raises a TTL below its minimum (1.5 election timeouts, rounded up:
	// 2 s with the default 1 s election timeout the cluster package uses).
	MinTTL, MaxTTL int64
	// MaxLeases is the number of leases one client holds at a time.
	MaxLeases int
	// CompactEvery and DefragEvery bound the time between two compactions
	// and between two defragmentations, uniformly at random. A run's
	// Config.CompactionInterval replaces CompactEvery.
	CompactEvery, DefragEvery [2]time.Duration
}

// Name implements Profile.
func (Etcd) Name() string { return "etcd" }

// Description implements Profile.
func (Etcd) Description() string {
	return "etcd's KV and lease API: ranges with options, serializable and past-revision reads, multi-op txns on every compare, " +
		"leases kept alive, revoked or left to expire, compaction, rare defrag"
}

// Rates implements Profile.
func (Etcd) Rates() Rates {
	return Rates{Low: Rate{QPS: 100, Clients: 4}, Medium: Rate{QPS: 500, Clients: 10}, High: Rate{QPS: 2100, Clients: 24}}
}

// Run implements Profile.
func (p Etcd) Run(ctx context.Context, c Doer, env Env) {
	now := time.Now()
	p.CompactEvery = env.compactEvery(p.CompactEvery)
	cl := &etcdClient{p: p, env: env, kvs: map[string]history.KeyValue{}, leaseSeq: 1}
	if env.ClientID == 0 {
		cl.nextCompact = now.Add(jitter(env.Rand, p.CompactEvery[0], p.CompactEvery[1]))
	}
	if env.ClientID == 1 || env.Clients == 1 && env.ClientID == 0 {
		cl.nextDefrag = now.Add(jitter(env.Rand, p.DefragEvery[0], p.DefragEvery[1]))
	}
	for {
		req := cl.next(time.Now())
		op, ok := send(ctx, c, env, req)
		if !ok {
			return
		}
		cl.observe(op)
	}
}

// etcdClient is what one client of the etcd profile knows and plans.
type etcdClient struct {
	p   Etcd
	env Env
	// seq numbers the values this client writes; leaseSeq its leases.
	seq, leaseSeq int
	// rev is the highest revision etcd answered this client.
	rev int64
	// kvs is each key as this client last saw it or wrote it; a key it
	// saw absent is missing. It steers compares toward both branches.
	kvs    map[string]history.KeyValue
	leases []*heldLease
	// Compaction (client 0): when, and at which revision: the highest
	// revision seen at the previous turn, so a compaction is about one
	// turn behind the writes.
	nextCompact time.Time
	compactRev  int64
	// putRev is the revision of this client's latest plain put: a
	// revision that holds one put and no delete, where the compactor
	// compacts under etcd #18089's avoidance (AvoidCompactAtDelete).
	putRev     int64
	nextDefrag time.Time
	// noStream: a member answered a RangeStream with Unimplemented, so
	// this client sends no more.
	noStream bool
}

// heldLease is a lease this client granted and the plan for it: renewed
// every TTL/3 until keepUntil, revoked at revokeAt, or neither (left to
// expire). The client forgets it at forgetAt.
type heldLease struct {
	id, ttl                        int64
	keepUntil, nextRenew, revokeAt time.Time
	forgetAt                       time.Time
}

func (cl *etcdClient) value() string {
	cl.seq++
	return cl.env.UniqueValue(cl.seq)
}

func (cl *etcdClient) key() string {
	r := cl.env.Rand
	return "key/" + strconv.Itoa(r.Intn(cl.p.Groups)) + "/" + strconv.Itoa(r.Intn(cl.p.KeysPerGroup))
}

// prefix is a group's prefix, or now and then every key's.
func (cl *etcdClient) prefix() string {
	if cl.env.Rand.Intn(4) == 0 {
		return "key/"
	}
	return "key/" + strconv.Itoa(cl.env.Rand.Intn(cl.p.Groups)) + "/"
}

// distinctKeys returns n different keys (fewer if the key space is smaller).
func (cl *etcdClient) distinctKeys(n int) []string {
	var out []string
	for range 4 * n {
		if len(out) == n {
			break
		}
		k := cl.key()
		if !contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// pastRevision is a recent revision: usually within 50 of the latest the
// client saw, so not compacted yet, and one time in four up to 1000 back,
// which reaches below the compactor's revision (it compacts at the
// revision it saw one turn before). 0 (the latest) before the client has
// seen any.
func (cl *etcdClient) pastRevision() int64 {
	if cl.rev <= 1 {
		return 0
	}
	back := int64(50)
	if cl.env.Rand.Intn(4) == 0 {
		back = 1000
	}
	return max(1, cl.rev-cl.env.Rand.Int63n(back))
}

// next picks the next request: a lease's due renewal or revocation first,
// then a due compaction or defragmentation, else one from the mix.
func (cl *etcdClient) next(now time.Time) history.Request {
	if req, ok := cl.leaseDue(now); ok {
		return req
	}
	if !cl.nextCompact.IsZero() && !now.Before(cl.nextCompact) {
		cl.nextCompact = now.Add(jitter(cl.env.Rand, cl.p.CompactEvery[0], cl.p.CompactEvery[1]))
		rev := cl.compactRev
		cl.compactRev = cl.rev
		if cl.env.Avoids(AvoidCompactAtDelete) {
			cl.compactRev = cl.putRev
		}
		if rev > 0 {
			return history.Request{Compaction: &history.CompactionRequest{Revision: rev}}
		}
	}
	if !cl.nextDefrag.IsZero() && !now.Before(cl.nextDefrag) {
		cl.nextDefrag = now.Add(jitter(cl.env.Rand, cl.p.DefragEvery[0], cl.p.DefragEvery[1]))
		return history.Request{Defragment: &history.DefragmentRequest{}}
	}
	r := cl.env.Rand
	switch n := r.Intn(100); {
	case n < 20:
		return history.Get(cl.key())
	case n < 25:
		return history.Request{Range: &history.RangeRequest{Key: cl.key(), Serializable: true}}
	case n < 30:
		return history.Request{Range: &history.RangeRequest{Key: cl.key(), Revision: cl.pastRevision(), Serializable: r.Intn(2) == 0}}
	case n < 38:
		return cl.rangePrefix()
	case n < 56:
		return history.Put(cl.key(), cl.value())
	case n < 62:
		return cl.putWithLease(now)
	case n < 67:
		return history.Delete(cl.key())
	case n < 69:
		p := cl.prefix()
		return history.Request{DeleteRange: &history.DeleteRangeRequest{Key: p, RangeEnd: prefixEnd(p)}}
	case n < 91:
		return cl.txn()
	case n < 95:
		if len(cl.leases) < cl.p.MaxLeases {
			return cl.grant()
		}
		return cl.putWithLease(now)
	default:
		return cl.timeToLive()
	}
}

// rangePrefix reads a prefix with some of etcd's range options.
func (cl *etcdClient) rangePrefix() history.Request {
	r := cl.env.Rand
	p := cl.prefix()
	req := &history.RangeRequest{Key: p, RangeEnd: prefixEnd(p)}
	if r.Intn(2) == 0 {
		req.Limit = 1 + r.Int63n(int64(cl.p.KeysPerGroup))
	}
	switch r.Intn(5) {
	case 0:
		req.KeysOnly = !cl.env.Avoids(AvoidKeysOnly)
	case 1:
		req.CountOnly = true
	}
	req.Serializable = r.Intn(4) == 0
	if r.Intn(5) == 0 {
		req.Revision = cl.pastRevision()
	}
	// A quarter go as KV.RangeStream, until a member says it has no such
	// method (etcd before v3.7).
	req.Stream = !cl.noStream && r.Intn(4) == 0
	return history.Request{Range: req}
}

// putWithLease puts with one of the client's leases; a plain put if it
// holds none. The lease may have expired already: etcd then refuses.
func (cl *etcdClient) putWithLease(now time.Time) history.Request {
	req := history.Put(cl.key(), cl.value())
	if len(cl.leases) > 0 {
		req.Put.Lease = cl.leases[cl.env.Rand.Intn(len(cl.leases))].id
	}
	return req
}

// ttlRange is the range lease TTLs are drawn from: the profile's own, or,
// when floor is above its MinTTL, one as wide from floor up.
func (p Etcd) ttlRange(floor int64) (lo, hi int64) {
	if floor <= p.MinTTL {
		return p.MinTTL, p.MaxTTL
	}
	return floor, floor + p.MaxTTL - p.MinTTL
}

func (cl *etcdClient) grant() history.Request {
	id := cl.env.UniqueLeaseID(cl.leaseSeq)
	cl.leaseSeq++
	lo, hi := cl.p.ttlRange(cl.env.MinLeaseTTL)
	ttl := lo + cl.env.Rand.Int63n(hi-lo+1)
	return history.Request{LeaseGrant: &history.LeaseGrantRequest{ID: id, TTL: ttl}}
}

// timeToLive asks about a held lease, or one that never existed (the
// client's lease number 0, which it never grants).
func (cl *etcdClient) timeToLive() history.Request {
	id := cl.env.UniqueLeaseID(0)
	if len(cl.leases) > 0 && cl.env.Rand.Intn(5) > 0 {
		id = cl.leases[cl.env.Rand.Intn(len(cl.leases))].id
	}
	keys := cl.env.Rand.Intn(2) == 0 && !cl.env.Avoids(AvoidLeaseKeys) &&
		(!cl.env.Avoids(AvoidLeaseKeysUnreadable) || ReadsEveryKey(cl.env.ClientID))
	return history.Request{LeaseTimeToLive: &history.LeaseTimeToLiveRequest{ID: id, Keys: keys}}
}

// leaseDue returns a held lease's due renewal or revocation, and forgets
// leases past their time.
func (cl *etcdClient) leaseDue(now time.Time) (history.Request, bool) {
	kept := cl.leases[:0]
	var req history.Request
	found := false
	for _, l := range cl.leases {
		switch {
		case found:
		case !l.revokeAt.IsZero() && !now.Before(l.revokeAt):
			req, found = history.Request{LeaseRevoke: &history.LeaseRevokeRequest{ID: l.id}}, true
			continue // revoked: forgotten whatever the answer
		case now.Before(l.keepUntil) && !now.Before(l.nextRenew):
			l.nextRenew = now.Add(time.Duration(l.ttl) * time.Second / 3)
			req, found = history.Request{LeaseKeepAlive: &history.LeaseKeepAliveRequest{ID: l.id}}, true
		case !now.Before(l.forgetAt):
			continue
		}
		kept = append(kept, l)
	}
	clear(cl.leases[len(kept):])
	cl.leases = kept
	return req, found
}

// txn is a transaction of one or two compares and up to three operations
// on each branch; the keys a branch puts are distinct, as etcd requires.
// Half the success branches and a third of the failure branches then read
// back a key they wrote (readBack).
func (cl *etcdClient) txn() history.Request {
	r := cl.env.Rand
	t := &history.TxnRequest{}
	success := cl.distinctKeys(1 + r.Intn(3))
	for range 1 + r.Intn(2) {
		k := cl.key()
		if r.Intn(2) == 0 {
			k = success[r.Intn(len(success))]
		}
		t.Compare = append(t.Compare, cl.compare(k))
	}
	for _, k := range success {
		switch n := r.Intn(20); {
		case n < 12:
			put := &history.PutRequest{Key: k, Value: cl.value()}
			if n == 0 && len(cl.leases) > 0 && !cl.env.Avoids(AvoidTxnLeases) {
				put.Lease = cl.leases[r.Intn(len(cl.leases))].id
			}
			t.Success = append(t.Success, history.RequestOp{Put: put})
		case n < 15:
			t.Success = append(t.Success, history.RequestOp{DeleteRange: &history.DeleteRangeRequest{Key: k}})
		default:
			t.Success = append(t.Success, history.RequestOp{Range: &history.RangeRequest{Key: k}})
		}
	}
	for _, k := range cl.distinctKeys(r.Intn(3)) {
		if r.Intn(3) == 0 {
			t.Failure = append(t.Failure, history.RequestOp{Put: &history.PutRequest{Key: k, Value: cl.value()}})
		} else {
			t.Failure = append(t.Failure, history.RequestOp{Range: &history.RangeRequest{Key: k}})
		}
	}
	if r.Intn(2) == 0 {
		t.Success = cl.readBack(t.Success)
	}
	if r.Intn(3) == 0 {
		t.Failure = cl.readBack(t.Failure)
	}
	if cl.env.NestedTxns && !cl.env.Avoids(AvoidNestedTxns) && r.Intn(3) == 0 {
		if n, ok := cl.nested(success); ok {
			t.Success = append(t.Success, n)
		}
	}
	if cl.env.Avoids(AvoidTxnRanges) && txnWrites(t) {
		// As etcd's removeNeedlessRangeReqs does on the members that did
		// not propose it: the outer branches' ranges go.
		t.Success, t.Failure = withoutRanges(t.Success), withoutRanges(t.Failure)
	}
	return history.Request{Txn: t}
}

// txnWrites reports whether a txn puts or deletes in either branch, at any
// depth.
func txnWrites(t *history.TxnRequest) bool {
	for _, ops := range [][]history.RequestOp{t.Success, t.Failure} {
		for _, o := range ops {
			if o.Put != nil || o.DeleteRange != nil || (o.Txn != nil && txnWrites(o.Txn)) {
				return true
			}
		}
	}
	return false
}

func withoutRanges(ops []history.RequestOp) []history.RequestOp {
	return slices.DeleteFunc(ops, func(o history.RequestOp) bool { return o.Range != nil })
}

// nested is a nested transaction on a key the outer branch does not
// touch (etcd refuses a key put twice, or put and deleted, across levels):
// if a compare on it holds, a put, else a get.
func (cl *etcdClient) nested(outer []string) (history.RequestOp, bool) {
	k := cl.key()
	if slices.Contains(outer, k) {
		return history.RequestOp{}, false
	}
	return history.RequestOp{Txn: &history.TxnRequest{
		Compare: []history.Compare{cl.compare(k)},
		Success: []history.RequestOp{{Put: &history.PutRequest{Key: k, Value: cl.value()}}},
		Failure: []history.RequestOp{{Range: &history.RangeRequest{Key: k}}},
	}}, true
}

// readBack appends to a branch an operation on a key the branch wrote
// before it, which etcd then answers from the transaction's own writes: a
// get of a key put or deleted, a prefix range over it, or a second delete
// of a deleted key (a second put, or a put after a delete, would be a
// duplicate key, which etcd refuses). A branch that writes nothing is
// returned unchanged.
func (cl *etcdClient) readBack(ops []history.RequestOp) []history.RequestOp {
	var written []history.RequestOp
	for _, o := range ops {
		if o.Put != nil || o.DeleteRange != nil {
			written = append(written, o)
		}
	}
	if len(written) == 0 {
		return ops
	}
	r := cl.env.Rand
	w := written[r.Intn(len(written))]
	var key string
	if w.Put != nil {
		key = w.Put.Key
	} else {
		key = w.DeleteRange.Key
	}
	switch n := r.Intn(10); {
	case n < 5:
		return append(ops, history.RequestOp{Range: &history.RangeRequest{Key: key}})
	case n < 8:
		p := key[:strings.LastIndexByte(key, '/')+1] // the key's group
		rr := &history.RangeRequest{Key: p, RangeEnd: prefixEnd(p)}
		if r.Intn(2) == 0 {
			rr.CountOnly = true
		}
		return append(ops, history.RequestOp{Range: rr})
	case w.DeleteRange != nil:
		return append(ops, history.RequestOp{DeleteRange: &history.DeleteRangeRequest{Key: key}})
	}
	return append(ops, history.RequestOp{Range: &history.RangeRequest{Key: key}})
}

var (
	compareTargets = []string{"VALUE", "VERSION", "CREATE", "MOD", "LEASE"}
	// compareResults: EQUAL twice, so that compares on what the client
	// saw hold often enough.
	compareResults = []string{"EQUAL", "EQUAL", "NOT_EQUAL", "LESS", "GREATER"}
)

// compare tests key against what the client last saw of it, exactly or
// off by one, so that both branches are taken.
func (cl *etcdClient) compare(key string) history.Compare {
	r := cl.env.Rand
	kv := cl.kvs[key]
	c := history.Compare{Key: key, Target: compareTargets[r.Intn(len(compareTargets))], Result: compareResults[r.Intn(len(compareResults))]}
	off := func(n int64) int64 {
		if r.Intn(3) == 0 {
			n += r.Int63n(3) - 1
		}
		return max(0, n)
	}
	switch c.Target {
	case "VALUE":
		c.Value = kv.Value
		if r.Intn(4) == 0 {
			c.Value = cl.env.UniqueValue(0) // a value never written
		}
	case "VERSION":
		c.Version = off(kv.Version)
	case "CREATE":
		c.CreateRevision = off(kv.CreateRevision)
	case "MOD":
		c.ModRevision = off(kv.ModRevision)
	case "LEASE":
		c.Lease = kv.Lease
		if len(cl.leases) > 0 && r.Intn(3) == 0 {
			c.Lease = cl.leases[r.Intn(len(cl.leases))].id
		}
	}
	return c
}

// observe learns from etcd's answer: the revision, the keys it read or
// wrote, the lease it granted.
func (cl *etcdClient) observe(op history.Operation) {
	if op.Error != nil && op.Error.Code == "Unimplemented" && op.Request.Range != nil && op.Request.Range.Stream {
		cl.noStream = true
	}
	if op.Error != nil || op.Response == nil {
		return
	}
	resp := op.Response
	rev := resp.Header.Revision
	cl.rev = max(cl.rev, rev)
	req := op.Request
	switch {
	case req.Range != nil:
		cl.observeRange(req.Range, resp.Range)
	case req.Put != nil:
		cl.observePut(req.Put, rev)
		cl.putRev = rev
	case req.DeleteRange != nil:
		cl.observeDelete(req.DeleteRange)
	case req.Txn != nil && resp.Txn != nil:
		ops := req.Txn.Success
		if !resp.Txn.Succeeded {
			ops = req.Txn.Failure
		}
		for i, o := range ops {
			switch {
			case o.Put != nil:
				cl.observePut(o.Put, rev)
			case o.DeleteRange != nil:
				cl.observeDelete(o.DeleteRange)
			case o.Range != nil && i < len(resp.Txn.Responses):
				cl.observeRange(o.Range, resp.Txn.Responses[i].Range)
			}
		}
	case req.LeaseGrant != nil && resp.LeaseGrant != nil && resp.LeaseGrant.Error == "":
		cl.hold(resp.LeaseGrant.ID, resp.LeaseGrant.TTL, time.Now())
	case req.LeaseKeepAlive != nil && resp.LeaseKeepAlive != nil && resp.LeaseKeepAlive.TTL <= 0:
		cl.forget(req.LeaseKeepAlive.ID) // etcd no longer has it
	}
}

// hold plans a granted lease's life: a third are kept alive for 1-6 s and
// then left to expire, a third revoked within their TTL, a third left to
// expire untouched. With Env.LeaseKeepAlive every lease is kept alive for
// that long.
func (cl *etcdClient) hold(id, ttl int64, now time.Time) {
	r := cl.env.Rand
	l := &heldLease{id: id, ttl: ttl}
	ttlD := time.Duration(ttl) * time.Second
	plan := r.Intn(3)
	if cl.env.LeaseKeepAlive > 0 {
		plan = 0
	}
	switch plan {
	case 0:
		l.keepUntil = now.Add(jitter(r, time.Second, 6*time.Second))
		if cl.env.LeaseKeepAlive > 0 {
			l.keepUntil = now.Add(cl.env.LeaseKeepAlive)
		}
		l.nextRenew = now.Add(ttlD / 3)
		l.forgetAt = l.keepUntil.Add(ttlD + expiredGrace)
	case 1:
		l.revokeAt = now.Add(jitter(r, ttlD/5, ttlD))
		l.forgetAt = l.revokeAt.Add(expiredGrace)
	default:
		l.forgetAt = now.Add(ttlD + expiredGrace)
	}
	cl.leases = append(cl.leases, l)
}

// expiredGrace is how long a client keeps using a lease after it should
// have expired, so that some puts meet a lease etcd just revoked.
const expiredGrace = 250 * time.Millisecond

func (cl *etcdClient) forget(id int64) {
	for i, l := range cl.leases {
		if l.id == id {
			cl.leases = append(cl.leases[:i], cl.leases[i+1:]...)
			return
		}
	}
}

func (cl *etcdClient) observeRange(req *history.RangeRequest, resp *history.RangeResponse) {
	if resp == nil || req.Revision != 0 || req.KeysOnly || req.CountOnly {
		return
	}
	if req.RangeEnd == "" && len(resp.KVs) == 0 {
		delete(cl.kvs, req.Key)
	}
	for _, kv := range resp.KVs {
		cl.kvs[kv.Key] = kv
	}
}

func (cl *etcdClient) observePut(put *history.PutRequest, rev int64) {
	old, ok := cl.kvs[put.Key]
	kv := history.KeyValue{Key: put.Key, Value: put.Value, ModRevision: rev, CreateRevision: rev, Version: 1, Lease: put.Lease}
	if ok {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	cl.kvs[put.Key] = kv
}

func (cl *etcdClient) observeDelete(d *history.DeleteRangeRequest) {
	if d.RangeEnd == "" {
		delete(cl.kvs, d.Key)
		return
	}
	for k := range cl.kvs {
		if k >= d.Key && k < d.RangeEnd {
			delete(cl.kvs, k)
		}
	}
}

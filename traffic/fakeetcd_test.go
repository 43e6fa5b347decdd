package traffic

import (
	"context"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// fakeEtcd is a small, sequential etcd in memory for the profiles' tests:
// revisions, key history for past-revision reads, compaction, txn compares
// as etcd evaluates them, and leases that expire on the wall clock. With
// flaky > 0 it answers that share of requests with Unavailable, half of
// them after applying the request (an unknown outcome either way).
type fakeEtcd struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	keys      map[string][]fakeVersion
	leases    map[int64]*fakeLease
	flaky     float64
	rnd       *rand.Rand
	// noStream: answer RangeStream as etcd before v3.7 does, Unimplemented.
	noStream bool
}

// fakeVersion is one change of a key: a put (kv) or a delete at rev.
type fakeVersion struct {
	rev     int64
	kv      history.KeyValue
	deleted bool
}

type fakeLease struct {
	ttl      int64
	deadline time.Time
	keys     map[string]bool
}

func newFakeEtcd(flaky float64) *fakeEtcd {
	return &fakeEtcd{rev: 1, keys: map[string][]fakeVersion{}, leases: map[int64]*fakeLease{}, flaky: flaky, rnd: rand.New(rand.NewSource(1))}
}

// fakeClient is one client of a fakeEtcd; it records like client.Client.
type fakeClient struct {
	etcd *fakeEtcd
	rec  *history.Recorder
}

func (c *fakeClient) Do(_ context.Context, req history.Request) history.Operation {
	call := c.rec.Now()
	resp, err := c.etcd.do(req)
	var herr *history.Error
	if err != nil {
		herr = client.Classify(err)
		resp = nil
	}
	c.rec.Record(call, req, resp, herr)
	ops := c.rec.Client().Operations
	return ops[len(ops)-1]
}

func (e *fakeEtcd) do(req history.Request) (*history.Response, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fail := e.flaky > 0 && e.rnd.Float64() < e.flaky
	if fail && e.rnd.Intn(2) == 0 {
		return nil, status.Error(codes.Unavailable, "fake: connection lost before the request")
	}
	e.expire(time.Now())
	resp, err := e.apply(req)
	if fail {
		return nil, status.Error(codes.Unavailable, "fake: connection lost after the request")
	}
	return resp, err
}

func (e *fakeEtcd) expire(now time.Time) {
	for id, l := range e.leases {
		if now.After(l.deadline) {
			e.revoke(id)
		}
	}
}

func (e *fakeEtcd) revoke(id int64) {
	l := e.leases[id]
	delete(e.leases, id)
	if len(l.keys) == 0 {
		return
	}
	e.rev++
	for k := range l.keys {
		e.keys[k] = append(e.keys[k], fakeVersion{rev: e.rev, deleted: true})
	}
}

func (e *fakeEtcd) header() history.Header { return history.Header{Revision: e.rev} }

func (e *fakeEtcd) apply(req history.Request) (*history.Response, error) {
	switch {
	case req.Range != nil && req.Range.Stream && e.noStream:
		return nil, status.Error(codes.Unimplemented, "unknown method RangeStream for service etcdserverpb.KV")
	case req.Range != nil:
		r, err := e.rangeAt(req.Range)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: e.header(), Range: r}, nil
	case req.Put != nil, req.DeleteRange != nil, req.Txn != nil:
		return e.write(req)
	case req.LeaseGrant != nil:
		g := req.LeaseGrant
		if _, ok := e.leases[g.ID]; ok {
			return nil, rpctypes.ErrGRPCLeaseExist
		}
		e.leases[g.ID] = &fakeLease{ttl: g.TTL, deadline: time.Now().Add(time.Duration(g.TTL) * time.Second), keys: map[string]bool{}}
		return &history.Response{Header: e.header(), LeaseGrant: &history.LeaseGrantResponse{ID: g.ID, TTL: g.TTL}}, nil
	case req.LeaseRevoke != nil:
		if _, ok := e.leases[req.LeaseRevoke.ID]; !ok {
			return nil, rpctypes.ErrGRPCLeaseNotFound
		}
		e.revoke(req.LeaseRevoke.ID)
		return &history.Response{Header: e.header(), LeaseRevoke: &history.LeaseRevokeResponse{}}, nil
	case req.LeaseKeepAlive != nil:
		id := req.LeaseKeepAlive.ID
		l, ok := e.leases[id]
		if !ok {
			return &history.Response{Header: e.header(), LeaseKeepAlive: &history.LeaseKeepAliveResponse{ID: id}}, nil
		}
		l.deadline = time.Now().Add(time.Duration(l.ttl) * time.Second)
		return &history.Response{Header: e.header(), LeaseKeepAlive: &history.LeaseKeepAliveResponse{ID: id, TTL: l.ttl}}, nil
	case req.LeaseTimeToLive != nil:
		id := req.LeaseTimeToLive.ID
		r := &history.LeaseTimeToLiveResponse{ID: id, TTL: -1}
		if l, ok := e.leases[id]; ok {
			r.TTL, r.GrantedTTL = int64(time.Until(l.deadline).Seconds()), l.ttl
			if req.LeaseTimeToLive.Keys {
				r.Keys = slices.Sorted(maps.Keys(l.keys))
			}
		}
		return &history.Response{Header: e.header(), LeaseTimeToLive: r}, nil
	case req.Compaction != nil:
		rev := req.Compaction.Revision
		switch {
		case rev <= e.compacted:
			return nil, rpctypes.ErrGRPCCompacted
		case rev > e.rev:
			return nil, rpctypes.ErrGRPCFutureRev
		}
		e.compacted = rev
		return &history.Response{Header: e.header(), Compaction: &history.CompactionResponse{}}, nil
	case req.Defragment != nil:
		return &history.Response{Header: e.header(), Defragment: &history.DefragmentResponse{}}, nil
	}
	panic("fake etcd: unsupported request " + req.Kind())
}

// inRange says whether k is in a request's [key, end) as etcd reads it.
func inRange(k, key, end string) bool {
	switch end {
	case "":
		return k == key
	case history.FromKey:
		return k >= key
	}
	return k >= key && k < end
}

// at returns key's value at rev, if it existed then.
func (e *fakeEtcd) at(key string, rev int64) (history.KeyValue, bool) {
	vs := e.keys[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			return vs[i].kv, !vs[i].deleted
		}
	}
	return history.KeyValue{}, false
}

func (e *fakeEtcd) sortedKeys(key, end string) []string {
	var out []string
	for k := range e.keys {
		if inRange(k, key, end) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (e *fakeEtcd) rangeAt(r *history.RangeRequest) (*history.RangeResponse, error) {
	return e.rangeIn(r, e.rev)
}

// rangeIn answers r with cur as the current revision: a txn that wrote
// already reads its own writes, at the revision it writes at.
func (e *fakeEtcd) rangeIn(r *history.RangeRequest, cur int64) (*history.RangeResponse, error) {
	rev := r.Revision
	switch {
	case rev == 0:
		rev = cur
	case rev > e.rev:
		return nil, rpctypes.ErrGRPCFutureRev
	case rev < e.compacted:
		return nil, rpctypes.ErrGRPCCompacted
	}
	out := &history.RangeResponse{}
	for _, k := range e.sortedKeys(r.Key, r.RangeEnd) {
		kv, ok := e.at(k, rev)
		if !ok {
			continue
		}
		out.Count++
		if r.CountOnly || (r.Limit > 0 && int64(len(out.KVs)) >= r.Limit) {
			continue
		}
		if r.KeysOnly {
			kv.Value = ""
		}
		out.KVs = append(out.KVs, kv)
	}
	out.More = r.Limit > 0 && out.Count > r.Limit
	return out, nil
}

// write applies a put, a delete or a txn at one new revision (none if it
// changed nothing).
func (e *fakeEtcd) write(req history.Request) (*history.Response, error) {
	next := e.rev + 1
	changed := false
	var resp *history.Response
	switch {
	case req.Put != nil:
		if err := e.checkLease(req.Put); err != nil {
			return nil, err
		}
		e.put(req.Put, next)
		changed = true
		resp = &history.Response{Put: &history.PutResponse{}}
	case req.DeleteRange != nil:
		n := e.del(req.DeleteRange, next)
		changed = n > 0
		resp = &history.Response{DeleteRange: &history.DeleteRangeResponse{Deleted: n}}
	case req.Txn != nil:
		t := req.Txn
		ok := true
		for _, c := range t.Compare {
			ok = ok && e.compare(c)
		}
		ops := t.Success
		if !ok {
			ops = t.Failure
		}
		for _, op := range ops {
			if op.Put != nil {
				if err := e.checkLease(op.Put); err != nil {
					return nil, err
				}
			}
		}
		tr := &history.TxnResponse{Succeeded: ok}
		for _, op := range ops {
			var r history.ResponseOp
			switch {
			case op.Range != nil:
				cur := e.rev
				if changed {
					cur = next
				}
				rr, err := e.rangeIn(op.Range, cur)
				if err != nil {
					return nil, err
				}
				r.Range = rr
			case op.Put != nil:
				e.put(op.Put, next)
				changed = true
				r.Put = &history.PutResponse{}
			case op.DeleteRange != nil:
				n := e.del(op.DeleteRange, next)
				changed = changed || n > 0
				r.DeleteRange = &history.DeleteRangeResponse{Deleted: n}
			}
			tr.Responses = append(tr.Responses, r)
		}
		resp = &history.Response{Txn: tr}
	}
	if changed {
		e.rev = next
	}
	resp.Header = e.header()
	return resp, nil
}

func (e *fakeEtcd) checkLease(p *history.PutRequest) error {
	if _, ok := e.leases[p.Lease]; p.Lease != 0 && !ok {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	return nil
}

func (e *fakeEtcd) put(p *history.PutRequest, rev int64) {
	old, ok := e.at(p.Key, e.rev)
	kv := history.KeyValue{Key: p.Key, Value: p.Value, ModRevision: rev, CreateRevision: rev, Version: 1, Lease: p.Lease}
	if ok {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
		if l := e.leases[old.Lease]; l != nil {
			delete(l.keys, p.Key)
		}
	}
	if l := e.leases[p.Lease]; l != nil {
		l.keys[p.Key] = true
	}
	e.keys[p.Key] = append(e.keys[p.Key], fakeVersion{rev: rev, kv: kv})
}

func (e *fakeEtcd) del(d *history.DeleteRangeRequest, rev int64) int64 {
	var n int64
	for _, k := range e.sortedKeys(d.Key, d.RangeEnd) {
		if old, ok := e.at(k, e.rev); ok {
			n++
			if l := e.leases[old.Lease]; l != nil {
				delete(l.keys, k)
			}
			e.keys[k] = append(e.keys[k], fakeVersion{rev: rev, deleted: true})
		}
	}
	return n
}

// compare evaluates a compare on one key as etcd does: a missing key fails
// a value compare and has zero version, revisions and lease.
func (e *fakeEtcd) compare(c history.Compare) bool {
	kv, ok := e.at(c.Key, e.rev)
	if !ok && c.Target == "VALUE" {
		return false
	}
	var cmp int
	switch c.Target {
	case "VALUE":
		cmp = compareStrings(kv.Value, c.Value)
	case "VERSION":
		cmp = compareInts(kv.Version, c.Version)
	case "CREATE":
		cmp = compareInts(kv.CreateRevision, c.CreateRevision)
	case "MOD":
		cmp = compareInts(kv.ModRevision, c.ModRevision)
	case "LEASE":
		cmp = compareInts(kv.Lease, c.Lease)
	}
	switch c.Result {
	case "EQUAL":
		return cmp == 0
	case "NOT_EQUAL":
		return cmp != 0
	case "LESS":
		return cmp < 0
	case "GREATER":
		return cmp > 0
	}
	return false
}

func compareInts(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// runFake runs profile p with n clients against e for d at qps, and
// returns the histories.
func runFake(p Profile, e *fakeEtcd, n int, qps float64, d time.Duration, onList func(int, string, int64)) []history.Client {
	return runFakeWith(p, e, n, qps, d, func(env *Env) { env.OnList = onList })
}

// runFakeWith is runFake with each client's Env set up by setup.
func runFakeWith(p Profile, e *fakeEtcd, n int, qps float64, d time.Duration, setup func(*Env)) []history.Client {
	clock := history.NewClock()
	limiter := newLimiter(qps)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	recs := make([]*history.Recorder, n)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = history.NewRecorder(i, clock)
		wg.Go(func() {
			env := Env{ClientID: i, Clients: n, Limiter: limiter, Rand: newRand(int64(i))}
			setup(&env)
			p.Run(ctx, &fakeClient{etcd: e, rec: recs[i]}, env)
		})
	}
	wg.Wait()
	out := make([]history.Client, n)
	for i, r := range recs {
		out[i] = r.Client()
	}
	return out
}

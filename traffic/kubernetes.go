package traffic

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func init() {
	register(Kubernetes{
		Namespaces: []string{"default", "kube-system", "team-a"},
		Resources:  []KubeResource{{Name: "pods", PerNamespace: 100}, {Name: "configmaps", PerNamespace: 50}},
		PageLimit:  [2]int64{50, 100},
		Compactors: 2, CompactEvery: [2]time.Duration{time.Second, 2 * time.Second},
	})
}

// CompactRevKey is the key through which Kubernetes API servers agree on
// who compacts: its version counts compactions, its value is the last
// compacted revision.
const CompactRevKey = "compact_rev_key"

// Kubernetes is traffic as the Kubernetes API server sends it to etcd,
// over objects at /registry/<resource>/<namespace>/<name>:
//
//   - create: txn(if mod_revision(key) == 0 then put else get);
//   - update and delete: txn(if mod_revision(key) == rev then put or delete
//     else get), rev being the mod revision the client last read for key;
//     a conflict is retried once with the revision the else branch read,
//     as the API server's GuaranteedUpdate does;
//   - get, at the latest revision or a recent one;
//   - list: a range over a resource's prefix (every namespace or one) with
//     a limit; every later page at the first page's revision, from the
//     last key read + "\x00", until etcd says there is no more;
//   - count: a count-only range over a resource;
//   - compaction, by the first Compactors clients, every CompactEvery:
//     txn(if version(CompactRevKey) == v then put(CompactRevKey, rev) else
//     get(CompactRevKey)); only the client whose txn succeeded then sends
//     Compaction(rev), rev being the revision its previous such txn
//     answered (none the first time), so a compaction is one turn behind.
//     The value put is rev followed by "/" and a unique value, as every
//     written value must be unique.
type Kubernetes struct {
	Namespaces []string
	Resources  []KubeResource
	// PageLimit bounds a list's page size, uniformly at random.
	PageLimit [2]int64
	// Compactors is the number of clients that run the compaction loop,
	// like as many API servers.
	Compactors   int
	CompactEvery [2]time.Duration
}

// KubeResource is a kind of object and how many names (at most 1000) each
// namespace has: <singular>-000, <singular>-001, ...
type KubeResource struct {
	Name         string
	PerNamespace int
}

// Name implements Profile.
func (Kubernetes) Name() string { return "kubernetes" }

// Description implements Profile.
func (Kubernetes) Description() string {
	return "as the Kubernetes API server: mod_revision-guarded creates, updates and deletes, gets, paginated lists at one revision, " +
		"compaction agreed through compact_rev_key"
}

// Rates implements Profile.
func (Kubernetes) Rates() Rates {
	return Rates{Low: Rate{QPS: 100, Clients: 4}, Medium: Rate{QPS: 400, Clients: 8}, High: Rate{QPS: 1100, Clients: 16}}
}

// ResourcePrefix is the prefix of every object of a resource; with a
// namespace, of that namespace's objects only.
func ResourcePrefix(resource, namespace string) string {
	if namespace == "" {
		return "/registry/" + resource + "/"
	}
	return "/registry/" + resource + "/" + namespace + "/"
}

// Prefixes are the prefixes a list of this profile reads: each resource's,
// then each resource's in each namespace.
func (p Kubernetes) Prefixes() []string {
	var out []string
	for _, r := range p.Resources {
		out = append(out, ResourcePrefix(r.Name, ""))
	}
	for _, r := range p.Resources {
		for _, ns := range p.Namespaces {
			out = append(out, ResourcePrefix(r.Name, ns))
		}
	}
	return out
}

// Run implements Profile.
func (p Kubernetes) Run(ctx context.Context, c Doer, env Env) {
	p.CompactEvery = env.compactEvery(p.CompactEvery)
	kc := &kubeClient{p: p, c: c, env: env, modRev: map[string]int64{}}
	if env.ClientID < p.Compactors {
		kc.nextCompact = time.Now().Add(jitter(env.Rand, p.CompactEvery[0], p.CompactEvery[1]))
	}
	for kc.step(ctx, time.Now()) {
	}
}

// kubeClient is one API server's view.
type kubeClient struct {
	p   Kubernetes
	c   Doer
	env Env
	seq int
	// rev is the highest revision etcd answered.
	rev int64
	// modRev is each key's mod revision as last read or written; 0 when
	// last seen absent. A key never seen is missing (read as 0).
	modRev map[string]int64
	// The compactor's state: when it next runs, the version of
	// CompactRevKey it expects, and the revision it compacts if it wins.
	nextCompact time.Time
	compactTime int64
	compactRev  int64
}

func (kc *kubeClient) value() string {
	kc.seq++
	return kc.env.UniqueValue(kc.seq)
}

// do sends one request and learns the revision; false once ctx is done.
func (kc *kubeClient) do(ctx context.Context, req history.Request) (history.Operation, bool) {
	op, ok := send(ctx, kc.c, kc.env, req)
	if ok && op.Error == nil && op.Response != nil {
		kc.rev = max(kc.rev, op.Response.Header.Revision)
	}
	return op, ok
}

// step runs one action (one request, or several for a list or a retried
// update); false once ctx is done.
func (kc *kubeClient) step(ctx context.Context, now time.Time) bool {
	if !kc.nextCompact.IsZero() && !now.Before(kc.nextCompact) {
		kc.nextCompact = now.Add(jitter(kc.env.Rand, kc.p.CompactEvery[0], kc.p.CompactEvery[1]))
		return kc.compact(ctx)
	}
	r := kc.env.Rand
	switch n := r.Intn(100); {
	case n < 18:
		return kc.create(ctx)
	case n < 46:
		return kc.update(ctx, false)
	case n < 54:
		return kc.update(ctx, true)
	case n < 72:
		req := history.Get(kc.key())
		if r.Intn(5) == 0 && kc.rev > 1 {
			req.Range.Revision = max(1, kc.rev-r.Int63n(20))
		}
		op, ok := kc.do(ctx, req)
		kc.observeGet(req.Range, op)
		return ok
	case n < 96:
		return kc.list(ctx)
	default:
		res := kc.p.Resources[r.Intn(len(kc.p.Resources))]
		prefix := ResourcePrefix(res.Name, "")
		_, ok := kc.do(ctx, history.Request{Range: &history.RangeRequest{Key: prefix, RangeEnd: prefixEnd(prefix), CountOnly: true}})
		return ok
	}
}

// key is a random object's key.
func (kc *kubeClient) key() string {
	r := kc.env.Rand
	res := kc.p.Resources[r.Intn(len(kc.p.Resources))]
	ns := kc.p.Namespaces[r.Intn(len(kc.p.Namespaces))]
	n := strconv.Itoa(1000 + r.Intn(res.PerNamespace)) // zero-padded: keys sort by number
	return ResourcePrefix(res.Name, ns) + strings.TrimSuffix(res.Name, "s") + "-" + n[1:]
}

// pick is a random key the client believes present (or absent), if it
// finds one in a few tries.
func (kc *kubeClient) pick(present bool) (string, bool) {
	for range 8 {
		k := kc.key()
		if (kc.modRev[k] > 0) == present {
			return k, true
		}
	}
	return "", false
}

// create puts an object only if its key does not exist.
func (kc *kubeClient) create(ctx context.Context) bool {
	k, found := kc.pick(false)
	if !found {
		k = kc.key()
	}
	op, ok := kc.do(ctx, kc.guarded(k, 0, false))
	kc.observeTxn(k, op)
	return ok
}

// update puts (or deletes) an object only if it is still at the revision
// the client last read, and retries a conflict once with the revision the
// else branch read. With no object believed present it reads one instead.
func (kc *kubeClient) update(ctx context.Context, del bool) bool {
	k, found := kc.pick(true)
	if !found {
		req := history.Get(kc.key())
		op, ok := kc.do(ctx, req)
		kc.observeGet(req.Range, op)
		return ok
	}
	for try := 0; try < 2; try++ {
		expected := kc.modRev[k]
		if expected == 0 {
			return true // gone: nothing to update
		}
		op, ok := kc.do(ctx, kc.guarded(k, expected, del))
		if !ok {
			return false
		}
		kc.observeTxn(k, op)
		if op.Error != nil || op.Response.Txn == nil || op.Response.Txn.Succeeded {
			return true
		}
	}
	return true
}

// guarded is the API server's optimistic write: if mod_revision(key) is
// rev, put a new value (or delete), else read the key.
func (kc *kubeClient) guarded(key string, rev int64, del bool) history.Request {
	then := history.RequestOp{Put: &history.PutRequest{Key: key, Value: kc.value()}}
	if del {
		then = history.RequestOp{DeleteRange: &history.DeleteRangeRequest{Key: key}}
	}
	return history.Request{Txn: &history.TxnRequest{
		Compare: []history.Compare{{Result: "EQUAL", Target: "MOD", Key: key, ModRevision: rev}},
		Success: []history.RequestOp{then},
		Failure: []history.RequestOp{{Range: &history.RangeRequest{Key: key}}},
	}}
}

func (kc *kubeClient) observeTxn(key string, op history.Operation) {
	if op.Error != nil || op.Response == nil || op.Response.Txn == nil {
		return
	}
	t := op.Response.Txn
	switch {
	case t.Succeeded && op.Request.Txn.Success[0].Put != nil:
		kc.modRev[key] = op.Response.Header.Revision
	case t.Succeeded:
		kc.modRev[key] = 0
	case len(t.Responses) == 1 && t.Responses[0].Range != nil:
		kc.learn(key, t.Responses[0].Range.KVs)
	}
}

func (kc *kubeClient) observeGet(req *history.RangeRequest, op history.Operation) {
	if op.Error != nil || op.Response == nil || op.Response.Range == nil || req.Revision != 0 {
		return
	}
	kc.learn(req.Key, op.Response.Range.KVs)
}

// learn records a single key's read: its mod revision, or 0 if absent.
func (kc *kubeClient) learn(key string, kvs []history.KeyValue) {
	kc.modRev[key] = 0
	if len(kvs) == 1 {
		kc.modRev[key] = kvs[0].ModRevision
	}
}

// list reads a resource's prefix page by page at one revision: the first
// page's (or a recent one), each page starting after the last key read.
// A failed page ends the list, as it fails the API server's.
func (kc *kubeClient) list(ctx context.Context) bool {
	r := kc.env.Rand
	res := kc.p.Resources[r.Intn(len(kc.p.Resources))]
	ns := ""
	if r.Intn(2) == 0 {
		ns = kc.p.Namespaces[r.Intn(len(kc.p.Namespaces))]
	}
	prefix := ResourcePrefix(res.Name, ns)
	end := prefixEnd(prefix)
	limit := kc.p.PageLimit[0] + r.Int63n(kc.p.PageLimit[1]-kc.p.PageLimit[0]+1)
	var rev int64
	latest := true
	if r.Intn(5) == 0 && kc.rev > 1 {
		rev, latest = max(1, kc.rev-r.Int63n(20)), false
	}
	seen := map[string]int64{}
	key := prefix
	for {
		op, ok := kc.do(ctx, history.Request{Range: &history.RangeRequest{Key: key, RangeEnd: end, Limit: limit, Revision: rev}})
		if !ok {
			return false
		}
		if op.Error != nil || op.Response.Range == nil {
			return true
		}
		if rev == 0 {
			rev = op.Response.Header.Revision
		}
		kvs := op.Response.Range.KVs
		for _, kv := range kvs {
			seen[kv.Key] = kv.ModRevision
		}
		if !op.Response.Range.More || len(kvs) == 0 {
			break
		}
		key = kvs[len(kvs)-1].Key + "\x00"
	}
	if latest {
		for k := range kc.modRev {
			if strings.HasPrefix(k, prefix) {
				kc.modRev[k] = 0
			}
		}
		for k, mr := range seen {
			kc.modRev[k] = mr
		}
	}
	if kc.env.OnList != nil {
		kc.env.OnList(kc.env.ClientID, prefix, rev)
	}
	return true
}

// compact is one turn of the API server's compactor (see Kubernetes).
func (kc *kubeClient) compact(ctx context.Context) bool {
	req := history.Request{Txn: &history.TxnRequest{
		Compare: []history.Compare{{Result: "EQUAL", Target: "VERSION", Key: CompactRevKey, Version: kc.compactTime}},
		Success: []history.RequestOp{{Put: &history.PutRequest{Key: CompactRevKey, Value: fmt.Sprintf("%d/%s", kc.compactRev, kc.value())}}},
		Failure: []history.RequestOp{{Range: &history.RangeRequest{Key: CompactRevKey}}},
	}}
	op, ok := kc.do(ctx, req)
	if !ok || op.Error != nil || op.Response.Txn == nil {
		return ok // try again next turn, with the same expectations
	}
	t := op.Response.Txn
	rev := kc.compactRev
	kc.compactRev = op.Response.Header.Revision
	if !t.Succeeded {
		kc.compactTime = 0
		if len(t.Responses) == 1 && t.Responses[0].Range != nil && len(t.Responses[0].Range.KVs) == 1 {
			kc.compactTime = t.Responses[0].Range.KVs[0].Version
		}
		return true
	}
	kc.compactTime++
	if rev == 0 {
		return true // the first turn only takes the revision
	}
	_, ok = kc.do(ctx, history.Request{Compaction: &history.CompactionRequest{Revision: rev}})
	return ok
}

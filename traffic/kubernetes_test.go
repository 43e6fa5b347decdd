package traffic

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func kubernetesProfile(t *testing.T) Kubernetes {
	p, err := Lookup("kubernetes")
	require.NoError(t, err)
	k := p.(Kubernetes)
	k.CompactEvery = [2]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	return k
}

// pages splits a client's ranges with a limit into lists: a page that
// starts at a resource prefix begins a list; any other continues the one
// before it.
func pages(t *testing.T, c history.Client) [][]history.Operation {
	var lists [][]history.Operation
	for _, op := range c.Operations {
		r := op.Request.Range
		if r == nil || r.Limit == 0 {
			continue
		}
		if strings.HasSuffix(r.Key, "/") {
			lists = append(lists, []history.Operation{op})
			continue
		}
		require.NotEmpty(t, lists, "a continuation page with no list before it: %+v", r)
		lists[len(lists)-1] = append(lists[len(lists)-1], op)
	}
	return lists
}

func TestKubernetesListsPageByPageAtOneRevision(t *testing.T) {
	p := kubernetesProfile(t)
	var mu sync.Mutex
	listed := map[int][]int64{} // client → revisions OnList reported
	hs := runFake(p, newFakeEtcd(0), 4, 2000, 2*time.Second, func(client int, prefix string, rev int64) {
		require.True(t, strings.HasPrefix(prefix, "/registry/"))
		mu.Lock()
		listed[client] = append(listed[client], rev)
		mu.Unlock()
	})
	longest, complete := 0, 0
	for _, c := range hs {
		var revs []int64
		for _, list := range pages(t, c) {
			first := list[0]
			if first.Error != nil {
				continue
			}
			rev := first.Request.Range.Revision
			if rev == 0 {
				rev = first.Response.Header.Revision
			}
			for i := 1; i < len(list); i++ {
				prev, page := list[i-1], list[i]
				require.Nil(t, prev.Error, "a failed page ends its list")
				require.True(t, prev.Response.Range.More, "a page follows only one that had more")
				kvs := prev.Response.Range.KVs
				require.Len(t, kvs, int(prev.Request.Range.Limit), "a page with more is full")
				require.Equal(t, kvs[len(kvs)-1].Key+"\x00", page.Request.Range.Key, "the next page starts after the last key")
				require.Equal(t, first.Request.Range.RangeEnd, page.Request.Range.RangeEnd)
				require.Equal(t, first.Request.Range.Limit, page.Request.Range.Limit)
				require.Equal(t, rev, page.Request.Range.Revision, "every page at the first page's revision")
			}
			last := list[len(list)-1]
			if last.Error == nil && !last.Response.Range.More {
				complete++
				revs = append(revs, rev)
			}
			longest = max(longest, len(list))
		}
		if len(revs) == len(listed[c.ID])+1 {
			// The last page answered as the run ended: the client
			// stopped there, without telling OnList.
			revs = revs[:len(revs)-1]
		}
		require.Equal(t, revs, listed[c.ID], "OnList reports every complete list and its revision")
	}
	require.GreaterOrEqual(t, longest, 3, "some lists need several pages")
	require.Positive(t, complete)
}

// TestKubernetesWritesAreGuarded checks every object write: creates
// compare mod_revision with 0, updates and deletes with a mod revision
// the client read or wrote for that key.
func TestKubernetesWritesAreGuarded(t *testing.T) {
	p := kubernetesProfile(t)
	hs := runFake(p, newFakeEtcd(0.05), 4, 2000, 2*time.Second, nil)
	kinds := map[string]int{}
	for _, c := range hs {
		known := map[string]map[int64]bool{} // key → mod revisions the client learned
		learn := func(kvs []history.KeyValue) {
			for _, kv := range kvs {
				if known[kv.Key] == nil {
					known[kv.Key] = map[int64]bool{}
				}
				known[kv.Key][kv.ModRevision] = true
			}
		}
		for _, op := range c.Operations {
			req := op.Request
			require.Nil(t, req.Put, "objects are written by txns only")
			require.Nil(t, req.DeleteRange, "objects are deleted by txns only")
			if req.Txn != nil && !strings.HasPrefix(req.Txn.Compare[0].Key, CompactRevKey) {
				txn := req.Txn
				require.Len(t, txn.Compare, 1)
				cmp := txn.Compare[0]
				require.Equal(t, "MOD", cmp.Target)
				require.Equal(t, "EQUAL", cmp.Result)
				require.Len(t, txn.Success, 1)
				require.Equal(t, []history.RequestOp{{Range: &history.RangeRequest{Key: cmp.Key}}}, txn.Failure, "else: read the key")
				switch then := txn.Success[0]; {
				case cmp.ModRevision == 0:
					require.NotNil(t, then.Put, "mod_revision 0 guards a create")
					kinds["create"]++
				case then.Put != nil:
					require.True(t, known[cmp.Key][cmp.ModRevision], "update of %s at %d, a revision the client never saw", cmp.Key, cmp.ModRevision)
					kinds["update"]++
				default:
					require.Equal(t, &history.DeleteRangeRequest{Key: cmp.Key}, then.DeleteRange)
					require.True(t, known[cmp.Key][cmp.ModRevision], "delete of %s at %d, a revision the client never saw", cmp.Key, cmp.ModRevision)
					kinds["delete"]++
				}
			}
			if op.Response == nil {
				continue
			}
			switch r := op.Response; {
			case r.Range != nil:
				learn(r.Range.KVs)
			case r.Txn != nil && r.Txn.Succeeded && req.Txn.Success[0].Put != nil:
				learn([]history.KeyValue{{Key: req.Txn.Success[0].Put.Key, ModRevision: r.Header.Revision}})
			case r.Txn != nil && len(r.Txn.Responses) == 1 && r.Txn.Responses[0].Range != nil:
				learn(r.Txn.Responses[0].Range.KVs)
			}
		}
	}
	for _, k := range []string{"create", "update", "delete"} {
		require.Positive(t, kinds[k], "the mix sends %ss", k)
	}
	requireUniqueValues(t, hs)
}

// TestKubernetesCompactsOnlyAfterWinning checks the compactors: each
// compaction follows its client's won compact_rev_key txn, at the revision
// that txn put; a lost or failed txn is never followed by a compaction.
func TestKubernetesCompactsOnlyAfterWinning(t *testing.T) {
	for _, flaky := range []float64{0, 0.2} {
		t.Run("flaky "+strconv.FormatFloat(flaky, 'f', -1, 64), func(t *testing.T) {
			p := kubernetesProfile(t)
			hs := runFake(p, newFakeEtcd(flaky), 4, 1000, 2*time.Second, nil)
			won, lost, compactions := 0, 0, 0
			for _, c := range hs {
				var prev *history.Operation
				for i, op := range c.Operations {
					if op.Request.Compaction != nil {
						compactions++
						require.NotNil(t, prev, "a compaction follows a txn")
						require.NotNil(t, prev.Request.Txn)
						require.Equal(t, CompactRevKey, prev.Request.Txn.Compare[0].Key)
						require.Nil(t, prev.Error, "a compaction follows a txn that answered")
						require.True(t, prev.Response.Txn.Succeeded, "only the winner compacts")
						put := prev.Request.Txn.Success[0].Put
						rev, _, _ := strings.Cut(put.Value, "/")
						require.Equal(t, rev, strconv.FormatInt(op.Request.Compaction.Revision, 10), "compacts the revision it put")
						require.Positive(t, op.Request.Compaction.Revision)
					}
					if txn := op.Request.Txn; txn != nil && txn.Compare[0].Key == CompactRevKey {
						require.Less(t, c.ID, p.Compactors, "only the compactors")
						require.Equal(t, history.Compare{Result: "EQUAL", Target: "VERSION", Key: CompactRevKey, Version: txn.Compare[0].Version}, txn.Compare[0])
						switch {
						case op.Error != nil:
						case op.Response.Txn.Succeeded:
							won++
						default:
							lost++
						}
					}
					prev = &c.Operations[i]
				}
			}
			require.Positive(t, compactions)
			require.Positive(t, won)
			require.Positive(t, lost, "two compactors race")
			requireUniqueValues(t, hs)
		})
	}
}

func TestKubernetesPrefixes(t *testing.T) {
	p := kubernetesProfile(t)
	require.Equal(t, []string{"/registry/pods/", "/registry/configmaps/",
		"/registry/pods/default/", "/registry/pods/kube-system/", "/registry/pods/team-a/",
		"/registry/configmaps/default/", "/registry/configmaps/kube-system/", "/registry/configmaps/team-a/"}, p.Prefixes())
	keys := 0
	for _, r := range p.Resources {
		keys += r.PerNamespace * len(p.Namespaces)
	}
	require.GreaterOrEqual(t, keys, 300, "a few hundred keys")
	kc := &kubeClient{p: p, env: Env{Rand: newRand(1)}}
	for range 100 {
		require.Regexp(t, `^/registry/(pods/[a-z-]+/pod|configmaps/[a-z-]+/configmap)-\d\d\d$`, kc.key())
	}
}

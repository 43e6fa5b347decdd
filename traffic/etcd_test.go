package traffic

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func TestEtcdKVAgainstAFakeEtcd(t *testing.T) {
	p, err := Lookup("etcd-kv")
	require.NoError(t, err)
	const qps, runFor = 400, time.Second
	hs := runFake(p, newFakeEtcd(0), 4, qps, runFor, nil)
	stats := history.Count(hs)
	require.InDelta(t, qps*runFor.Seconds(), stats.Operations, qps*runFor.Seconds()*0.3, "the rate limit holds")

	kinds := map[string]int{}
	casSucceeded := 0
	for _, c := range hs {
		for _, op := range c.Operations {
			kinds[op.Request.Kind()]++
			if op.Request.Txn != nil && op.Response.Txn.Succeeded {
				casSucceeded++
			}
		}
	}
	for _, k := range []string{"range", "put", "delete_range", "txn"} {
		require.Positive(t, kinds[k], "the mix sends %s", k)
	}
	require.Positive(t, casSucceeded, "compare-and-set uses revisions the client saw, so some succeed")
	requireUniqueValues(t, hs)
}

// testEtcd is the etcd profile with every timer short enough for a test.
var testEtcd = Etcd{
	Groups: 4, KeysPerGroup: 5, MinTTL: 1, MaxTTL: 2, MaxLeases: 2,
	CompactEvery: [2]time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
	DefragEvery:  [2]time.Duration{300 * time.Millisecond, 400 * time.Millisecond},
}

func TestEtcdProfileSendsEtcdsWholeAPI(t *testing.T) {
	hs := runFake(testEtcd, newFakeEtcd(0), 4, 2000, 2*time.Second, nil)

	kinds := map[string]int{}
	ranges := map[string]int{}
	compares := map[string]int{}
	txnOutcomes := map[bool]int{}
	var multiOpTxns, leasedPuts int
	for _, c := range hs {
		granted := map[int64]bool{}
		for _, op := range c.Operations {
			req := op.Request
			kinds[req.Kind()]++
			switch {
			case req.Range != nil:
				r := req.Range
				for name, set := range map[string]bool{"limit": r.Limit > 0, "keys-only": r.KeysOnly, "count-only": r.CountOnly,
					"serializable": r.Serializable, "past revision": r.Revision > 0, "prefix": r.RangeEnd != ""} {
					if set {
						ranges[name]++
					}
				}
			case req.Txn != nil:
				for _, cmp := range req.Txn.Compare {
					compares[cmp.Target+" "+cmp.Result]++
				}
				if len(req.Txn.Success) > 1 {
					multiOpTxns++
				}
				if op.Response != nil {
					txnOutcomes[op.Response.Txn.Succeeded]++
				}
				requireDistinctWrites(t, req.Txn.Success)
				requireDistinctWrites(t, req.Txn.Failure)
			case req.LeaseGrant != nil:
				g := req.LeaseGrant
				require.Positive(t, g.ID, "a client-chosen ID")
				require.GreaterOrEqual(t, g.TTL, testEtcd.MinTTL)
				require.LessOrEqual(t, g.TTL, testEtcd.MaxTTL)
				granted[g.ID] = true
			case req.LeaseKeepAlive != nil:
				require.True(t, granted[req.LeaseKeepAlive.ID], "client %d renews only its own leases", c.ID)
			case req.LeaseRevoke != nil:
				require.True(t, granted[req.LeaseRevoke.ID], "client %d revokes only its own leases", c.ID)
			case req.Put != nil && req.Put.Lease != 0:
				require.True(t, granted[req.Put.Lease], "client %d puts with its own leases", c.ID)
				if op.Error == nil {
					leasedPuts++
				}
			case req.Compaction != nil:
				require.Zero(t, c.ID, "only client 0 compacts")
			case req.Defragment != nil:
				require.Equal(t, 1, c.ID, "only client 1 defragments")
			}
		}
	}
	for _, k := range []string{"range", "put", "delete_range", "txn", "lease_grant", "lease_revoke", "lease_keep_alive", "lease_time_to_live", "compaction", "defragment"} {
		require.Positive(t, kinds[k], "the mix sends %s", k)
	}
	for _, r := range []string{"limit", "keys-only", "count-only", "serializable", "past revision", "prefix"} {
		require.Positive(t, ranges[r], "some ranges use %s", r)
	}
	for _, target := range compareTargets {
		for _, result := range []string{"EQUAL", "NOT_EQUAL", "LESS", "GREATER"} {
			require.Positive(t, compares[target+" "+result], "some txns compare %s %s", target, result)
		}
	}
	require.Positive(t, txnOutcomes[true], "some txns take the success branch")
	require.Positive(t, txnOutcomes[false], "some txns take the failure branch")
	require.Positive(t, multiOpTxns)
	require.Positive(t, leasedPuts, "some puts attach a live lease")
	requireUniqueValues(t, hs)
	requireUniqueLeaseIDs(t, hs)
	requireCompactionsAtSeenRevisions(t, hs[0])
}

func TestEtcdProfileKeepsGoingThroughErrors(t *testing.T) {
	hs := runFake(testEtcd, newFakeEtcd(0.3), 3, 1000, time.Second, nil)
	stats := history.Count(hs)
	require.Greater(t, stats.Operations, 500)
	require.Greater(t, stats.Unknown, 100, "the fake failed requests")
	kinds := map[string]int{}
	for _, c := range hs {
		for _, op := range c.Operations {
			kinds[op.Request.Kind()]++
		}
	}
	require.Positive(t, kinds["compaction"])
	require.Positive(t, kinds["lease_grant"])
	requireUniqueValues(t, hs)
	requireUniqueLeaseIDs(t, hs)
}

// requireCompactionsAtSeenRevisions checks that a compactor compacts only
// at revisions etcd answered it before, each higher than the last.
func requireCompactionsAtSeenRevisions(t *testing.T, c history.Client) {
	t.Helper()
	var seen, last int64
	n := 0
	for _, op := range c.Operations {
		if op.Request.Compaction != nil {
			rev := op.Request.Compaction.Revision
			require.Positive(t, rev)
			require.LessOrEqual(t, rev, seen, "compacts at a revision it saw")
			require.GreaterOrEqual(t, rev, last, "compactions move forward")
			last = rev
			n++
		}
		if op.Response != nil {
			seen = max(seen, op.Response.Header.Revision)
		}
	}
	require.Positive(t, n)
}

// requireDistinctWrites checks a txn branch as etcd's gRPC layer does: no
// key put twice, and none both put and deleted. A key may be deleted twice.
func requireDistinctWrites(t *testing.T, ops []history.RequestOp) {
	t.Helper()
	puts, dels := map[string]bool{}, map[string]bool{}
	for _, op := range ops {
		switch {
		case op.Put != nil:
			require.False(t, puts[op.Put.Key], "a txn branch puts %s twice", op.Put.Key)
			puts[op.Put.Key] = true
		case op.DeleteRange != nil:
			require.Empty(t, op.DeleteRange.RangeEnd, "txn deletes are single keys")
			dels[op.DeleteRange.Key] = true
		}
	}
	for k := range puts {
		require.False(t, dels[k], "a txn branch puts and deletes %s", k)
	}
}

func requireUniqueValues(t *testing.T, hs []history.Client) {
	t.Helper()
	values := map[string]bool{}
	for _, c := range hs {
		for _, op := range c.Operations {
			for _, v := range op.Request.PutValues() {
				require.False(t, values[v], "value %q written twice", v)
				values[v] = true
			}
		}
	}
	require.NotEmpty(t, values)
}

func requireUniqueLeaseIDs(t *testing.T, hs []history.Client) {
	t.Helper()
	ids := map[int64]bool{}
	for _, c := range hs {
		for _, op := range c.Operations {
			if g := op.Request.LeaseGrant; g != nil {
				require.False(t, ids[g.ID], "lease %d granted twice", g.ID)
				ids[g.ID] = true
			}
		}
	}
	require.NotEmpty(t, ids)
}

func TestLookupUnknownProfile(t *testing.T) {
	_, err := Lookup("nope")
	require.ErrorContains(t, err, `unknown traffic profile "nope" (valid: etcd, etcd-kv, kubernetes)`)
	for _, name := range Names() {
		p, err := Lookup(name)
		require.NoError(t, err)
		require.NotEmpty(t, p.Description())
		for _, level := range RateNames() {
			r, err := p.Rates().Level(level)
			require.NoError(t, err)
			require.Positive(t, r.QPS, "%s %s", name, level)
			require.Positive(t, r.Clients, "%s %s", name, level)
		}
		require.Less(t, p.Rates().Low.QPS, p.Rates().Medium.QPS)
		require.Less(t, p.Rates().Medium.QPS, p.Rates().High.QPS)
	}
	_, err = Etcd{}.Rates().Level("fast")
	require.ErrorContains(t, err, `unknown traffic rate "fast" (valid: low, medium, high)`)
}

// Some txn branches read back a key they put or deleted earlier in the
// same branch (the fake answers as etcd does, from the txn's own writes),
// and some delete a key twice.
func TestEtcdProfileTxnsReadTheirOwnWrites(t *testing.T) {
	hs := runFake(testEtcd, newFakeEtcd(0), 4, 3000, 2*time.Second, nil)
	seen := map[string]int{}
	for _, c := range hs {
		for _, op := range c.Operations {
			txn := op.Request.Txn
			if txn == nil || op.Response == nil || op.Response.Txn == nil {
				continue
			}
			ops := txn.Success
			if !op.Response.Txn.Succeeded {
				ops = txn.Failure
			}
			put, deleted := map[string]string{}, map[string]bool{}
			for i, o := range ops {
				switch {
				case o.Put != nil:
					put[o.Put.Key] = o.Put.Value
				case o.DeleteRange != nil:
					if deleted[o.DeleteRange.Key] {
						seen["delete twice"]++
					}
					deleted[o.DeleteRange.Key] = true
				case o.Range != nil && o.Range.RangeEnd == "":
					got := op.Response.Txn.Responses[i].Range
					if v, ok := put[o.Range.Key]; ok {
						require.Len(t, got.KVs, 1)
						require.Equal(t, v, got.KVs[0].Value, "the get sees the put before it")
						require.Equal(t, op.Response.Header.Revision, got.KVs[0].ModRevision, "at the txn's revision")
						seen["get after put"]++
					}
					if deleted[o.Range.Key] {
						require.Empty(t, got.KVs, "the get sees the delete before it")
						seen["get after delete"]++
					}
				case o.Range != nil:
					for k := range put {
						if k >= o.Range.Key && k < o.Range.RangeEnd {
							seen["prefix after put"]++
							break
						}
					}
				}
			}
		}
	}
	for _, k := range []string{"get after put", "get after delete", "prefix after put", "delete twice"} {
		require.Positive(t, seen[k], "some txns send %s in one branch", k)
	}
}

// Config.CompactionInterval sets how often the etcd and kubernetes
// profiles compact; with etcd's suite's 100 ms, reads at a past revision
// and compactions meet already-compacted revisions.
func TestCompactionInterval(t *testing.T) {
	etcdProfile, err := Lookup("etcd")
	require.NoError(t, err)
	kube, err := Lookup("kubernetes")
	require.NoError(t, err)
	const runFor = 1500 * time.Millisecond
	tests := []struct {
		name     string
		p        Profile
		interval time.Duration
		min, max int
	}{
		{"etcd, the profile's 1-2 s", etcdProfile, 0, 0, 1},
		{"etcd, every 100-200 ms", etcdProfile, 100 * time.Millisecond, 6, 15},
		{"kubernetes, the profile's 1-2 s", kube, 0, 0, 2},
		{"kubernetes, every 100-200 ms", kube, 100 * time.Millisecond, 5, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := runFakeWith(tc.p, newFakeEtcd(0), 4, 1000, runFor, func(env *Env) { env.CompactionInterval = tc.interval })
			compactions, compactedReads := 0, 0
			for _, c := range hs {
				var last time.Duration
				for _, op := range c.Operations {
					if op.Request.Compaction != nil {
						if compactions > 0 && tc.interval > 0 && c.ID == 0 && tc.p == etcdProfile {
							require.GreaterOrEqual(t, op.Call-last, tc.interval-10*time.Millisecond, "compactions at least the interval apart")
						}
						last = op.Call
						compactions++
					}
					if r := op.Request.Range; r != nil && r.Revision > 0 && op.Error != nil && strings.Contains(op.Error.Message, "compacted") {
						compactedReads++
					}
				}
			}
			require.GreaterOrEqual(t, compactions, tc.min)
			require.LessOrEqual(t, compactions, tc.max)
			if tc.interval > 0 && tc.p == etcdProfile {
				require.Positive(t, compactedReads, "reads at a past revision meet the compaction")
			}
		})
	}
}

// A quarter of the prefix ranges go as RangeStream; a client that meets a
// member without it (etcd before v3.7) sends no more.
func TestEtcdProfileSendsRangeStreams(t *testing.T) {
	for _, noStream := range []bool{false, true} {
		e := newFakeEtcd(0)
		e.noStream = noStream
		hs := runFake(testEtcd, e, 4, 2000, time.Second, nil)
		streams, prefixes := 0, 0
		for _, c := range hs {
			sent := 0
			for _, op := range c.Operations {
				r := op.Request.Range
				if r == nil || r.RangeEnd == "" {
					continue
				}
				prefixes++
				if r.Stream {
					require.Equal(t, "range_stream", op.Request.Kind())
					streams++
					sent++
				}
			}
			if noStream {
				require.LessOrEqual(t, sent, 1, "client %d stops after Unimplemented", c.ID)
			}
		}
		if !noStream {
			require.InDelta(t, prefixes/4, streams, float64(prefixes)/8, "a quarter of %d prefix ranges", prefixes)
		}
	}
}

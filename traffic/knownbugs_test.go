package traffic

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func TestKnownBugsOf(t *testing.T) {
	tests := []struct {
		versions []string
		auth     bool
		want     []string
	}{
		{[]string{"v3.7.3"}, false, []string{"etcd#22209"}},
		{[]string{"v3.6.16", "v3.7.0", "v3.6.16"}, false, []string{"etcd#22209"}},
		{[]string{"v3.6.16"}, false, nil},
		{[]string{"v3.5.7", "v3.4.12"}, false, nil},
		{[]string{"v3.5.7", "v3.4.12"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082"}},
		{[]string{"v3.5.5"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082"}},
		{[]string{"v3.5.9"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.5.27"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.5.28"}, true, []string{"etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.5.30"}, true, []string{"etcd#18667"}},
		{[]string{"v3.6.8"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.6.9"}, true, []string{"etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.6.16"}, true, []string{"etcd#18667"}},
		{[]string{"v3.4.41"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283"}},
		{[]string{"v3.7.3"}, true, []string{"etcd#22209"}},
		{[]string{"v3.7.3", "v3.6.16"}, true, []string{"etcd#22209", "etcd#18667"}},
		{[]string{"v3.7.0", "v3.6.1"}, true, []string{"etcd#22209", "CVE-2026-33343", "etcd#18667", "CVE-2026-44283"}},
	}
	for _, tc := range tests {
		var got []string
		for _, b := range KnownBugsOf(tc.versions, tc.auth) {
			got = append(got, b.ID)
		}
		require.Equal(t, tc.want, got, "%v", tc.versions)
	}
}

// keysOnlyCounter counts the keys_only ranges a profile sends.
type keysOnlyCounter struct{ keysOnly, all int }

func (c *keysOnlyCounter) Do(_ context.Context, req history.Request) history.Operation {
	c.all++
	if req.Range != nil && req.Range.KeysOnly {
		c.keysOnly++
	}
	return history.Operation{Request: req, Error: &history.Error{Code: "Unavailable", Message: "fake", Outcome: history.Failed}}
}

// The etcd profile sends keys_only ranges unless told to avoid them.
func TestEtcdProfileAvoidsKeysOnly(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	for _, avoid := range []bool{false, true} {
		c := &keysOnlyCounter{}
		env := Env{ClientID: 2, Clients: 4, Limiter: newLimiter(1e9), Rand: newRand(1)}
		if avoid {
			env.Avoid = []Avoidance{AvoidKeysOnly}
		}
		ctx, cancel := context.WithCancel(context.Background())
		limited := doerFunc(func(ctx context.Context, req history.Request) history.Operation {
			if c.all >= 5000 {
				cancel()
			}
			return c.Do(ctx, req)
		})
		p.Run(ctx, limited, env)
		cancel()
		if avoid {
			require.Zero(t, c.keysOnly, "keys_only ranges sent while avoided")
		} else {
			require.Positive(t, c.keysOnly, "no keys_only range in %d requests", c.all)
		}
	}
}

type doerFunc func(ctx context.Context, req history.Request) history.Operation

func (f doerFunc) Do(ctx context.Context, req history.Request) history.Operation { return f(ctx, req) }

// Under auth the etcd profile nests txns, unless told to avoid them.
func TestEtcdProfileAvoidsNestedTxns(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	for _, avoid := range []bool{false, true} {
		all, nested := 0, 0
		env := Env{ClientID: 2, Clients: 4, Limiter: newLimiter(1e9), Rand: newRand(1), NestedTxns: true}
		if avoid {
			env.Avoid = []Avoidance{AvoidNestedTxns}
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.Run(ctx, doerFunc(func(_ context.Context, req history.Request) history.Operation {
			if all++; all >= 5000 {
				cancel()
			}
			if req.Txn != nil {
				for _, op := range append(append([]history.RequestOp(nil), req.Txn.Success...), req.Txn.Failure...) {
					if op.Txn != nil {
						nested++
					}
				}
			}
			return history.Operation{Request: req, Error: &history.Error{Code: "Unavailable", Message: "fake", Outcome: history.Failed}}
		}), env)
		cancel()
		if avoid {
			require.Zero(t, nested, "nested txns sent while avoided")
		} else {
			require.Positive(t, nested, "no nested txn in %d requests", all)
		}
	}
}

// The etcd profile leaves out what the auth bugs of etcd #14571's runs
// need while told to avoid them, and sends it otherwise. Lease grants are
// answered, so that the profile has leases to attach and ask about.
func TestEtcdProfileAvoidsAuthBugs(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	sent := map[Avoidance]func(history.Request) bool{
		// A range beside a write in a txn's outer branches.
		AvoidTxnRanges: func(r history.Request) bool {
			if r.Txn == nil || !txnWrites(r.Txn) {
				return false
			}
			return slices.ContainsFunc(append(slices.Clone(r.Txn.Success), r.Txn.Failure...), func(o history.RequestOp) bool { return o.Range != nil })
		},
		AvoidTxnLeases: func(r history.Request) bool {
			return r.Txn != nil && slices.ContainsFunc(append(slices.Clone(r.Txn.Success), r.Txn.Failure...), func(o history.RequestOp) bool { return o.Put != nil && o.Put.Lease != 0 })
		},
		AvoidLeaseKeys: func(r history.Request) bool { return r.LeaseTimeToLive != nil && r.LeaseTimeToLive.Keys },
	}
	for a, isSent := range sent {
		for _, avoid := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s avoided=%t", a, avoid), func(t *testing.T) {
				all, n, lease := 0, 0, int64(0)
				env := Env{ClientID: 2, Clients: 4, Limiter: newLimiter(1e9), Rand: newRand(1), NestedTxns: true}
				if avoid {
					env.Avoid = []Avoidance{a}
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				p.Run(ctx, doerFunc(func(_ context.Context, req history.Request) history.Operation {
					if all++; all >= 20000 {
						cancel()
					}
					if isSent(req) {
						n++
					}
					if req.LeaseGrant != nil {
						lease++
						return history.Operation{Request: req, Response: &history.Response{LeaseGrant: &history.LeaseGrantResponse{ID: lease, TTL: 5}}}
					}
					return history.Operation{Request: req, Error: &history.Error{Code: "Unavailable", Message: "fake", Outcome: history.Failed}}
				}), env)
				if avoid {
					require.Zero(t, n, "%s sent while avoided", a)
				} else {
					require.Positive(t, n, "no %s in %d requests", a, all)
				}
			})
		}
	}
}

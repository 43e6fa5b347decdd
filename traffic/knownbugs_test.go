package traffic

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
		{[]string{"v3.5.7", "v3.4.12"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179", "etcd#15220", "etcd#18089", "etcd#17529", "etcd#14370"}},
		{[]string{"v3.5.7", "v3.4.12"}, true, []string{"etcd#20221", "etcd#18089", "etcd#19179", "etcd#15220", "etcd#18089", "etcd#17529", "etcd#14370"}},
		{[]string{"v3.4.12"}, false, []string{"etcd#15220", "etcd#18089", "etcd#17529", "etcd#14370"}},
		// etcd #14370: before v3.4.21 and v3.5.5.
		{[]string{"v3.4.20"}, false, []string{"etcd#15220", "etcd#18089", "etcd#17529", "etcd#14370"}},
		{[]string{"v3.4.21"}, false, []string{"etcd#15220", "etcd#18089", "etcd#17529"}},
		{[]string{"v3.5.4"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179", "etcd#14370"}},
		{[]string{"v3.5.5"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		{[]string{"v3.4.30"}, false, []string{"etcd#18089", "etcd#17529"}},
		{[]string{"v3.5.7"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		{[]string{"v3.4.25"}, false, []string{"etcd#18089", "etcd#17529"}},
		{[]string{"v3.4.31"}, false, []string{"etcd#18089"}},
		{[]string{"v3.4.34"}, false, nil},
		{[]string{"v3.5.27"}, true, nil},
		{[]string{"v3.5.28"}, true, nil},
		{[]string{"v3.6.8"}, true, nil},
		{[]string{"v3.6.9"}, true, nil},
		{[]string{"v3.4.41"}, true, nil},
		{[]string{"v3.7.3", "v3.6.16"}, true, []string{"etcd#22209"}},
		{[]string{"v3.7.0", "v3.6.1"}, true, []string{"etcd#22209", "etcd#20221"}},
		// etcd #20221: before v3.5.22 and v3.6.2.
		{[]string{"v3.5.21"}, false, []string{"etcd#20221"}},
		{[]string{"v3.5.22"}, false, nil},
		{[]string{"v3.5.35"}, false, nil},
		{[]string{"v3.6.1"}, false, []string{"etcd#20221"}},
		{[]string{"v3.6.2"}, false, nil},
		{[]string{"v3.5.13+beforeSendWatchResponse"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		// etcd #18089: before v3.5.16.
		{[]string{"v3.5.14"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		{[]string{"v3.5.15"}, false, []string{"etcd#20221", "etcd#18089", "etcd#19179"}},
		{[]string{"v3.5.16"}, false, []string{"etcd#20221", "etcd#19179"}},
		// etcd #19179: before v3.5.18.
		{[]string{"v3.5.17"}, false, []string{"etcd#20221", "etcd#19179"}},
		{[]string{"v3.5.18"}, false, []string{"etcd#20221"}},
		{[]string{"v3.6.1"}, true, []string{"etcd#20221"}},
	}
	for _, tc := range tests {
		// The paused leader's expiries are in every release (the run
		// avoids them only where its plan pauses the leader).
		tc.want = append(tc.want, PausedLeaderExpiry)
		var got []string
		for _, b := range KnownBugsOf(tc.versions, tc.auth) {
			if !b.Auth { // the auth bugs: TestAuthKnownBugsOf
				got = append(got, b.ID)
			}
		}
		require.ElementsMatch(t, tc.want, got, "%v", tc.versions)
	}
}

// The bugs that show only with auth: none without it, and on each release
// those it has.
func TestAuthKnownBugsOf(t *testing.T) {
	tests := []struct {
		versions []string
		auth     bool
		want     []string
	}{
		{[]string{"v3.5.5"}, false, nil},
		{[]string{"v3.6.16"}, false, nil},
		{[]string{"v3.5.7", "v3.4.12"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082"}},
		{[]string{"v3.5.5"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082"}},
		{[]string{"v3.5.9"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.5.27"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.5.28"}, true, []string{"etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.5.30"}, true, []string{"etcd#18667", LeaseTTLKeysRace}},
		{[]string{"v3.6.8"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.6.9"}, true, []string{"etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.6.16"}, true, []string{"etcd#18667", LeaseTTLKeysRace}},
		{[]string{"v3.4.41"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.7.3"}, true, []string{LeaseTTLKeysRace}},
		{[]string{"v3.4.25"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082"}},
		{[]string{"v3.4.26"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
		{[]string{"v3.5.8", "v3.7.3"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", "CVE-2023-32082", LeaseTTLKeysRace}},
		{[]string{"v3.7.3", "v3.6.16"}, true, []string{"etcd#18667", LeaseTTLKeysRace}},
		{[]string{"v3.7.0", "v3.6.1"}, true, []string{"CVE-2026-33343", "etcd#18667", "CVE-2026-44283", LeaseTTLKeysRace}},
	}
	for _, tc := range tests {
		var got []string
		for _, b := range KnownBugsOf(tc.versions, tc.auth) {
			if b.Auth {
				got = append(got, b.ID)
			}
		}
		require.ElementsMatch(t, tc.want, got, "%v", tc.versions)
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

// Under etcd #18089's avoidance the etcd profile's compactor compacts only
// at revisions of its own plain puts; without it, at the highest revision
// it saw, which may be a delete's.
func TestEtcdProfileAvoidsCompactingAtDeletes(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	for _, avoid := range []bool{false, true} {
		e := newFakeEtcd(0)
		fc := &fakeClient{etcd: e, rec: history.NewRecorder(0, history.NewClock())}
		env := Env{ClientID: 0, Clients: 1, Limiter: newLimiter(1e9), Rand: newRand(1), CompactionInterval: time.Millisecond}
		if avoid {
			env.Avoid = []Avoidance{AvoidCompactAtDelete}
		}
		putRevs := map[int64]bool{}
		var compactions, elsewhere int
		ctx, cancel := context.WithCancel(context.Background())
		p.Run(ctx, doerFunc(func(ctx context.Context, req history.Request) history.Operation {
			if req.Compaction != nil {
				compactions++
				if !putRevs[req.Compaction.Revision] {
					elsewhere++
				}
				if compactions >= 200 {
					cancel()
				}
			}
			op := fc.Do(ctx, req)
			if req.Put != nil && op.Response != nil {
				putRevs[op.Response.Header.Revision] = true
			}
			time.Sleep(50 * time.Microsecond) // a few requests between two compactions
			return op
		}), env)
		cancel()
		require.GreaterOrEqual(t, compactions, 200)
		if avoid {
			require.Zero(t, elsewhere, "compactions at a revision that was not a plain put while avoided")
		} else {
			require.Positive(t, elsewhere, "every one of %d compactions was at a put's revision", compactions)
		}
	}
}

// The TTL floor for a leader pause meets the bound its doc comment argues:
// the old leader's deadline for a lease a client keeps alive, at least
// 2·TTL/3 − renewalLatency after the pause began, is past the pause and
// the step-down.
func TestLeaseTTLAcrossLeaderPause(t *testing.T) {
	tests := []struct {
		pause time.Duration
		want  int64
	}{
		{0, 0},
		{time.Second, 6},
		{2 * time.Second, 8},
		{5 * time.Second, 12},
		{8 * time.Second, 17},
	}
	for _, tc := range tests {
		got := LeaseTTLAcrossLeaderPause(tc.pause)
		require.Equal(t, tc.want, got, "pause %s", tc.pause)
		if tc.pause == 0 {
			continue
		}
		ttl := time.Duration(got) * time.Second
		oldDeadline := 2*ttl/3 - renewalLatency
		require.GreaterOrEqual(t, oldDeadline, tc.pause+pausedLeaderStepDown, "pause %s: TTL %s", tc.pause, ttl)
		// One second less would not do: the floor is the least.
		shorter := ttl - time.Second
		require.Less(t, 2*shorter/3-renewalLatency, tc.pause+pausedLeaderStepDown, "pause %s: TTL %s is not the least", tc.pause, shorter)
	}
}

// With a TTL floor the etcd profile grants no shorter lease, and without
// one it draws its own short TTLs (which --expose-known-bugs keeps).
func TestEtcdProfileLeaseTTLFloor(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	own := p.(Etcd)
	for _, floor := range []int64{0, 12} {
		var ttls []int64
		env := Env{ClientID: 2, Clients: 4, Limiter: newLimiter(1e9), Rand: newRand(1), MinLeaseTTL: floor}
		ctx, cancel := context.WithCancel(context.Background())
		all := 0
		doer := doerFunc(func(ctx context.Context, req history.Request) history.Operation {
			if all++; all >= 5000 {
				cancel()
			}
			if req.LeaseGrant != nil {
				ttls = append(ttls, req.LeaseGrant.TTL)
			}
			return history.Operation{Request: req, Error: &history.Error{Code: "Unavailable", Message: "fake", Outcome: history.Failed}}
		})
		p.Run(ctx, doer, env)
		cancel()
		require.NotEmpty(t, ttls, "floor %d: no lease granted in %d requests", floor, all)
		lo, hi := own.MinTTL, own.MaxTTL
		if floor > 0 {
			lo, hi = floor, floor+own.MaxTTL-own.MinTTL
		}
		for _, ttl := range ttls {
			require.True(t, ttl >= lo && ttl <= hi, "floor %d: TTL %d outside [%d, %d]", floor, ttl, lo, hi)
		}
		require.Contains(t, ttls, lo, "floor %d: the range's low end never drawn", floor)
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
				env := Env{ClientID: 2, Clients: 4, Limiter: newLimiter(1e9), Rand: newRand(1), NestedTxns: true}
				if avoid {
					env.Avoid = []Avoidance{a}
				}
				n, all := countSent(p, env, isSent)
				if avoid {
					require.Zero(t, n, "%s sent while avoided", a)
				} else {
					require.Positive(t, n, "no %s in %d requests", a, all)
				}
			})
		}
	}
}

// While lease-ttl-keys-race is avoided, only clients whose user may read
// every key (root's clients 0 and 1, rw's 2 and 6) ask a time-to-live for
// the lease's keys; without the avoidance every user does.
func TestEtcdProfileAvoidsLeaseKeysUnreadable(t *testing.T) {
	p, err := Lookup("etcd")
	require.NoError(t, err)
	for client := range 8 {
		for _, avoid := range []bool{false, true} {
			t.Run(fmt.Sprintf("client %d avoided=%t", client, avoid), func(t *testing.T) {
				env := Env{ClientID: client, Clients: 8, Limiter: newLimiter(1e9), Rand: newRand(1)}
				if avoid {
					env.Avoid = []Avoidance{AvoidLeaseKeysUnreadable}
				}
				keys, all := countSent(p, env, func(r history.Request) bool { return r.LeaseTimeToLive != nil && r.LeaseTimeToLive.Keys })
				if avoid && !slices.Contains([]int{0, 1, 2, 6}, client) {
					require.Zero(t, keys, "user %v asked for a lease's keys", AuthClientUser(client))
				} else {
					require.Positive(t, keys, "no time-to-live with keys in %d requests", all)
				}
			})
		}
	}
}

// countSent runs profile p for 20,000 requests, each refused as Unavailable
// but the lease grants, which are answered so that the profile has leases
// to attach and ask about, and counts those isSent picks.
func countSent(p Profile, env Env, isSent func(history.Request) bool) (n, all int) {
	lease := int64(0)
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
	return n, all
}

// Package traffic drives load against etcd while faults are injected. A
// Profile decides what one client sends; Run starts the clients, shares one
// rate limit among them and collects what they recorded.
package traffic

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// Doer sends one request and returns the recorded operation: etcd's
// response or its error. The client package's recording client is one.
type Doer interface {
	Do(ctx context.Context, req history.Request) history.Operation
}

// Env is what a profile's client loop gets besides its client.
type Env struct {
	ClientID int
	// Clients is the number of traffic clients of the run (ids
	// 0..Clients-1), so a profile can give a few of them a role (the
	// compactor, the defragmenter).
	Clients int
	// Limiter is shared by every client: wait on it before each request.
	Limiter *rate.Limiter
	// Rand is this client's own source, seeded from the run's seed.
	Rand *rand.Rand
	// OnList, if set, is called after a profile read a whole key range
	// (every page of a paginated list) at one revision: the prefix listed
	// and that revision. It runs on the client's goroutine and must not
	// block. A list-then-watch client starts its watch at revision+1.
	OnList func(clientID int, prefix string, revision int64)
	// Avoid lists the kinds of requests a profile must not send, because
	// the etcd under test has a known bug there (KnownBugs).
	Avoid []Avoidance
	// CompactionInterval is Config.CompactionInterval: zero leaves the
	// profile's own compaction interval.
	CompactionInterval time.Duration
	// NestedTxns makes the etcd profile's transactions sometimes nest
	// one (Config.NestedTxns).
	NestedTxns bool
	// MinLeaseTTL is Config.MinLeaseTTL.
	MinLeaseTTL int64
	// LeaseKeepAlive is Config.LeaseKeepAlive.
	LeaseKeepAlive time.Duration
}

// compactEvery is the range a profile's compactor draws its pauses from:
// [d, 2d) for the run's CompactionInterval d, else the profile's own.
func (e Env) compactEvery(own [2]time.Duration) [2]time.Duration {
	if d := e.CompactionInterval; d > 0 {
		return [2]time.Duration{d, 2 * d}
	}
	return own
}

// Avoids reports whether the profile must leave out requests of kind a.
func (e Env) Avoids(a Avoidance) bool {
	for _, x := range e.Avoid {
		if x == a {
			return true
		}
	}
	return false
}

// UniqueValue returns a value no other request of the run writes: the model
// relies on it to tell writes apart. seq must not repeat within a client.
func (e Env) UniqueValue(seq int) string {
	return strconv.Itoa(e.ClientID) + "-" + strconv.Itoa(seq)
}

// UniqueLeaseID returns a lease ID no other client of the run grants: the
// client's id+1 in the high 32 bits and seq (which must not repeat within
// the client, and must be below 2^31) in the low ones. It is positive and
// never zero, which would ask etcd to pick an ID.
func (e Env) UniqueLeaseID(seq int) int64 {
	return int64(e.ClientID+1)<<32 | int64(uint32(seq)&0x7fffffff)
}

// Profile is a kind of traffic. Run sends requests from one client until ctx
// is done; the client records them.
type Profile interface {
	Name() string
	// Description is one line for `etcd-robustness list`.
	Description() string
	// Rates are the profile's rate levels.
	Rates() Rates
	Run(ctx context.Context, c Doer, env Env)
}

// Rate is a total request rate and the number of clients sharing it.
type Rate struct {
	QPS     float64
	Clients int
}

// The rate levels, by name.
const (
	Low    = "low"
	Medium = "medium"
	High   = "high"
)

// RateNames lists the rate levels, slowest first.
func RateNames() []string { return []string{Low, Medium, High} }

// Rates are a profile's rate levels. High is what the profile reaches on a
// 2-core machine with 3 members (see `make throughput`); Low leaves the
// machine mostly to the faults and the checks.
type Rates struct {
	Low, Medium, High Rate
}

// Level returns the rate called name, or an error naming the valid ones.
func (r Rates) Level(name string) (Rate, error) {
	switch name {
	case Low:
		return r.Low, nil
	case Medium:
		return r.Medium, nil
	case High:
		return r.High, nil
	}
	return Rate{}, fmt.Errorf("unknown traffic rate %q (valid: %s)", name, strings.Join(RateNames(), ", "))
}

var profiles = map[string]Profile{}

func register(p Profile) {
	if _, dup := profiles[p.Name()]; dup {
		panic("traffic: profile " + p.Name() + " registered twice")
	}
	profiles[p.Name()] = p
}

// Lookup returns the profile called name, or an error listing the valid ones.
func Lookup(name string) (Profile, error) {
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown traffic profile %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the registered profiles.
func Names() []string { return slices.Sorted(maps.Keys(profiles)) }

// Config describes one traffic run.
type Config struct {
	Profile   Profile
	Endpoints []string
	Clients   int     // concurrent clients, each one request at a time
	QPS       float64 // total rate over all clients
	// Pins gives, for each client, the index in Endpoints of the member it
	// is pinned to, or -1 for a client spread over every endpoint (see
	// Place). Nil spreads every client.
	Pins  []int
	Seed  int64
	Clock *history.Clock
	// RequestTimeout bounds each request; zero means client.DefaultRequestTimeout.
	RequestTimeout time.Duration
	// ClientsPerConn is how many clients share one connection (clients on
	// the same endpoints only); zero means DefaultClientsPerConn.
	ClientsPerConn int
	// OnList is passed to every client's Env.
	OnList func(clientID int, prefix string, revision int64)
	// Avoid is passed to every client's Env.
	Avoid []Avoidance
	// CompactionInterval, if positive, is how often the etcd and
	// kubernetes profiles' compactors compact: each waits between d and
	// 2d (etcd's own robustness suite compacts every 100-200 ms). Zero
	// keeps each profile's default (1-2 s for both).
	CompactionInterval time.Duration
	// Counter, if set, counts every client's requests as they return.
	Counter *client.Counter
	Logger  *zap.Logger
	// Users, if set, gives the user client i authenticates as (nil:
	// root, once the harness enabled auth); see AuthUsers.
	Users func(i int) *cluster.Credentials
	// NestedTxns is passed to every client's Env.
	NestedTxns bool
	// MinLeaseTTL, if positive, is the shortest lease TTL (seconds) a
	// profile may grant: the etcd profile then draws from it to it plus
	// its own TTL range's width (LeaseTTLAcrossLeaderPause says why).
	MinLeaseTTL int64
	// LeaseKeepAlive, if positive, makes the etcd profile keep every
	// lease it grants alive (a renewal every TTL/3) for that long from
	// its grant, then leave it to expire; zero keeps the profile's mix (a
	// third kept alive for 1-6 s, a third revoked, a third left alone).
	LeaseKeepAlive time.Duration
}

// Run drives traffic until ctx is done and returns every client's history,
// with client ids 0..Clients-1.
func Run(ctx context.Context, cfg Config) ([]history.Client, error) {
	if cfg.Pins != nil && len(cfg.Pins) != cfg.Clients {
		return nil, fmt.Errorf("traffic: %d pins for %d clients", len(cfg.Pins), cfg.Clients)
	}
	defer TuneGC()()
	limiter := newLimiter(cfg.QPS)
	clients, conns, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	histories := make([]history.Client, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			cfg.Profile.Run(ctx, c, Env{
				ClientID: i,
				Clients:  cfg.Clients,
				Limiter:  limiter,
				Rand:     newRand(cfg.Seed + int64(i)),
				OnList:   cfg.OnList,
				Avoid:    cfg.Avoid,

				CompactionInterval: cfg.CompactionInterval,
				NestedTxns:         cfg.NestedTxns,
				MinLeaseTTL:        cfg.MinLeaseTTL,
				LeaseKeepAlive:     cfg.LeaseKeepAlive,
			})
			histories[i] = c.History() // each goroutine owns its index
		})
	}
	wg.Wait()
	if cfg.Logger != nil {
		s := history.Count(histories)
		cfg.Logger.Info("traffic stopped", zap.String("profile", cfg.Profile.Name()),
			zap.Int("operations", s.Operations), zap.Int("failed", s.Failed), zap.Int("successful-writes", s.SuccessfulWrites))
	}
	return histories, nil
}

// DefaultClientsPerConn is how many clients share a connection by default.
// Sharing lets gRPC batch the frames of concurrent requests into fewer
// system calls, in the client and in the cluster's proxies, which run in
// the harness process too.
const DefaultClientsPerConn = 4

// connect makes the clients: every ClientsPerConn clients on the same
// endpoints share a connection.
func connect(cfg Config) ([]*client.Client, []*client.Conn, error) {
	perConn := cfg.ClientsPerConn
	if perConn <= 0 {
		perConn = DefaultClientsPerConn
	}
	clients := make([]*client.Client, cfg.Clients)
	var conns []*client.Conn
	open := map[string]*client.Conn{} // endpoints → the connection being filled
	users := map[*client.Conn]int{}
	for i := range clients {
		eps := ClientEndpoints(cfg.Endpoints, cfg.Pins, i)
		var user *cluster.Credentials
		if cfg.Users != nil {
			user = cfg.Users(i)
		}
		key := strings.Join(eps, ",")
		if user != nil {
			key += " as " + user.User // a connection carries one user
		}
		conn := open[key]
		if conn == nil || users[conn] == perConn {
			var err error
			if conn, err = client.DialAs(eps, user); err != nil {
				for _, c := range conns {
					c.Close()
				}
				return nil, nil, fmt.Errorf("traffic: client %d: %w", i, err)
			}
			open[key] = conn
			conns = append(conns, conn)
		}
		users[conn]++
		clients[i] = client.NewOnConn(conn, i, cfg.Clock, cfg.RequestTimeout)
		if cfg.Counter != nil {
			clients[i].CountOn(cfg.Counter)
		}
	}
	return clients, conns, nil
}

// ClientEndpoints is what client i dials: its pinned member's endpoint, or
// every endpoint.
func ClientEndpoints(endpoints []string, pins []int, i int) []string {
	if i < len(pins) && pins[i] >= 0 && pins[i] < len(endpoints) {
		return endpoints[pins[i] : pins[i]+1]
	}
	return endpoints
}

// The client placements.
const (
	// Mixed pins half the clients (rounded down), chosen with the seed,
	// to one member each, round-robin from a member chosen with the seed;
	// the others are spread. It is the default.
	Mixed = "mixed"
	// Pinned pins every client to one member, round-robin.
	Pinned = "pinned"
	// Spread gives every client every member's endpoint: clientv3 balances
	// its requests over them and fails over when one is unreachable.
	Spread = "spread"
)

// PlacementNames lists the client placements.
func PlacementNames() []string { return []string{Mixed, Pinned, Spread} }

// Place decides, deterministically from seed, which member each of clients
// clients is pinned to: an index below members, or -1 for a client spread
// over every member. An empty placement is Mixed.
func Place(placement string, seed int64, clients, members int) ([]int, error) {
	if members < 1 || clients < 0 {
		return nil, fmt.Errorf("traffic: cannot place %d clients on %d members", clients, members)
	}
	pins := make([]int, clients)
	for i := range pins {
		pins[i] = -1
	}
	rnd := newRand(seed ^ 0x5eed_91ace)
	offset := rnd.Intn(members)
	var pinned []int
	switch placement {
	case Spread:
	case Pinned:
		pinned = rnd.Perm(clients)
	case Mixed, "":
		pinned = rnd.Perm(clients)[:clients/2]
		slices.Sort(pinned)
	default:
		return nil, fmt.Errorf("unknown client placement %q (valid: %s)", placement, strings.Join(PlacementNames(), ", "))
	}
	for k, c := range pinned {
		pins[c] = (offset + k) % members
	}
	return pins, nil
}

// newLimiter allows qps requests a second with bursts of a tenth of that.
func newLimiter(qps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(qps), max(1, int(qps/10)))
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// send waits for the rate limit and sends req. It returns false, having
// sent nothing or with the operation cut short, once ctx is done.
func send(ctx context.Context, c Doer, env Env, req history.Request) (history.Operation, bool) {
	if err := env.Limiter.Wait(ctx); err != nil {
		return history.Operation{}, false
	}
	op := c.Do(ctx, req)
	return op, ctx.Err() == nil
}

// jitter is a duration uniformly in [lo, hi).
func jitter(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int63n(int64(hi-lo)))
}

// prefixEnd is the range end that covers every key starting with prefix,
// as clientv3.GetPrefixRangeEnd computes it.
func prefixEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return history.FromKey
}

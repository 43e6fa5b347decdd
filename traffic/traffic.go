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
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/etcd-robustness/etcd-robustness/client"
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
	// Limiter is shared by every client: wait on it before each request.
	Limiter *rate.Limiter
	// Rand is this client's own source, seeded from the run's seed.
	Rand *rand.Rand
}

// UniqueValue returns a value no other request of the run writes: the model
// relies on it to tell writes apart.
func (e Env) UniqueValue(seq int) string { return fmt.Sprintf("%d-%d", e.ClientID, seq) }

// Profile is a kind of traffic. Run sends requests from one client until ctx
// is done; the client records them.
type Profile interface {
	Name() string
	Run(ctx context.Context, c Doer, env Env)
}

var profiles = map[string]Profile{}

func register(p Profile) { profiles[p.Name()] = p }

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
	Seed      int64
	Clock     *history.Clock
	// RequestTimeout bounds each request; zero means client.DefaultRequestTimeout.
	RequestTimeout time.Duration
	Logger         *zap.Logger
}

// Run drives traffic until ctx is done and returns every client's history,
// with client ids 0..Clients-1.
func Run(ctx context.Context, cfg Config) ([]history.Client, error) {
	limiter := newLimiter(cfg.QPS)
	clients := make([]*client.Client, cfg.Clients)
	for i := range clients {
		c, err := client.New(cfg.Endpoints, i, cfg.Clock, cfg.RequestTimeout)
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return nil, fmt.Errorf("traffic: %w", err)
		}
		clients[i] = c
	}
	var wg sync.WaitGroup
	histories := make([]history.Client, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			defer c.Close()
			cfg.Profile.Run(ctx, c, Env{
				ClientID: i,
				Limiter:  limiter,
				Rand:     newRand(cfg.Seed + int64(i)),
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

// newLimiter allows qps requests a second with bursts of a tenth of that.
func newLimiter(qps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(qps), max(1, int(qps/10)))
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

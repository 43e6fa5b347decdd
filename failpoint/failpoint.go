// Package failpoint holds the faults the harness injects while traffic runs.
// Each fault is a Failpoint registered under its name; adding one means
// writing one type (or one line in a list) and registering it.
package failpoint

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

// Env is what a fault acts on.
type Env struct {
	Cluster *cluster.Cluster
	Logger  *zap.Logger
	// Rand picks targets; it is seeded from the run's seed.
	Rand *rand.Rand
}

// Failpoint is one kind of fault.
type Failpoint interface {
	// Name is how users select the fault (--failpoint NAME).
	Name() string
	// Available returns nil if the fault can run against this cluster, or
	// an error saying why not (e.g. the etcd build lacks the gofail point).
	Available(ctx context.Context, c *cluster.Cluster) error
	// Inject injects the fault and returns once the cluster has recovered
	// from it and is healthy again. It returns the member it targeted ("" if
	// none), also on error.
	Inject(ctx context.Context, env Env) (member string, err error)
}

var registry = map[string]Failpoint{}

func register(f Failpoint) {
	if _, dup := registry[f.Name()]; dup {
		panic("failpoint: registered twice: " + f.Name())
	}
	registry[f.Name()] = f
}

// Lookup returns the fault called name, or an error naming the valid ones.
func Lookup(name string) (Failpoint, error) {
	if f, ok := registry[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown failpoint %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// Names lists every registered fault, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// pickMember chooses a random member.
func pickMember(env Env) *cluster.Member {
	members := env.Cluster.Members()
	return members[env.Rand.Intn(len(members))]
}

// restart starts a member that is down and waits until it serves again.
func restart(ctx context.Context, m *cluster.Member) error {
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("restarting %s: %w", m.Name(), err)
	}
	if err := m.WaitHealthy(ctx); err != nil {
		return fmt.Errorf("%s did not become healthy after restart: %w", m.Name(), err)
	}
	return nil
}

package failpoint

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

func init() { register(Kill{}) }

// Kill SIGKILLs a random member and restarts it on its data dir.
type Kill struct{}

// Name implements Failpoint.
func (Kill) Name() string { return "kill" }

// Available implements Failpoint: any cluster can lose a process.
func (Kill) Available(context.Context, *cluster.Cluster) error { return nil }

// Inject implements Failpoint.
func (Kill) Inject(ctx context.Context, env Env) (string, error) {
	m := pickMember(env)
	env.Logger.Info("killing member", zap.String("member", m.Name()))
	if err := m.Kill(); err != nil {
		return m.Name(), fmt.Errorf("killing %s: %w", m.Name(), err)
	}
	return m.Name(), restart(ctx, m)
}

package failpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

func init() {
	register(Kill{})
	register(Pause{Target: Leader})
	register(Pause{Target: Follower})
}

// Kill SIGKILLs a random member and restarts it on its data dir.
type Kill struct{}

// Name implements Failpoint.
func (Kill) Name() string { return "kill" }

// Family implements Failpoint.
func (Kill) Family() Family { return Process }

// Available implements Failpoint: any cluster can lose a process.
func (Kill) Available(context.Context, *cluster.Cluster) error { return nil }

// Inject implements Failpoint.
func (Kill) Inject(ctx context.Context, env Env, rec *Record) error {
	m, err := pick(ctx, env, AnyMember)
	if err != nil {
		return err
	}
	rec.target(m)
	env.Logger.Info("killing member", zap.String("member", m.Name()))
	err = m.Kill()
	if !m.Running() {
		rec.Effect = env.now()
	}
	hctx, cancel := healCtx(ctx)
	defer cancel()
	if err != nil {
		return errors.Join(fmt.Errorf("killing %s: %w", m.Name(), err), restart(hctx, m))
	}
	return restart(hctx, m)
}

// Pause SIGSTOPs the leader or a follower, SIGCONTs it after the fault's
// duration (a random 1–5 s by default), and waits until it serves again.
type Pause struct{ Target Target }

// Name implements Failpoint.
func (p Pause) Name() string { return "pause-" + string(p.Target) }

// Family implements Failpoint.
func (Pause) Family() Family { return Process }

// Available implements Failpoint.
func (p Pause) Available(_ context.Context, c *cluster.Cluster) error {
	if p.Target == Follower {
		return needMembers(c, 2, "a follower to pause")
	}
	return nil
}

// Inject implements Failpoint.
func (p Pause) Inject(ctx context.Context, env Env, rec *Record) error {
	m, err := pick(ctx, env, p.Target)
	if err != nil {
		return err
	}
	rec.target(m)
	hold := env.duration()
	env.Logger.Info("pausing member", zap.String("member", m.Name()), zap.Duration("for", hold))
	if err := m.Pause(); err != nil {
		return err
	}
	// Heal: SIGCONT, whatever happens next.
	defer func() { _ = m.Resume() }()
	if err := waitStopped(ctx, m); err != nil {
		return err
	}
	rec.Effect = env.now()
	_ = sleepCtx(ctx, hold)
	if err := m.Resume(); err != nil {
		return err
	}
	hctx, cancel := healCtx(ctx)
	defer cancel()
	return recovered(hctx, env)
}

// waitStopped waits until the kernel reports the process stopped.
func waitStopped(ctx context.Context, m *cluster.Member) error {
	deadline := time.Now().Add(5 * time.Second)
	for m.ProcessState() != "T" {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not stopped 5s after SIGSTOP (state %q)", m.Name(), m.ProcessState())
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

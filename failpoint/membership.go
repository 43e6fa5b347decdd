package failpoint

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

func init() {
	register(ReplaceMember{})
	register(GrowShrink{})
}

// ReplaceMember removes a random member from the cluster, wipes its data
// dir, adds it back (it gets a new member ID), starts it, and waits until
// it has caught up from the others.
type ReplaceMember struct{}

// Name implements Failpoint.
func (ReplaceMember) Name() string { return "replace-member" }

// Family implements Failpoint.
func (ReplaceMember) Family() Family { return Membership }

// Available implements Failpoint.
func (ReplaceMember) Available(_ context.Context, c *cluster.Cluster) error {
	return needMembers(c, 3, "a quorum that goes on while one member is replaced")
}

// Inject implements Failpoint.
func (ReplaceMember) Inject(ctx context.Context, env Env, rec *Record) error {
	m, err := pick(ctx, env, AnyMember)
	if err != nil {
		return err
	}
	rec.target(m)
	oldID, err := m.ID(ctx)
	if err != nil {
		return err
	}
	env.Logger.Info("replacing member", zap.String("member", m.Name()))
	hctx, cancel := healCtx(ctx)
	defer cancel()
	explainRemoval(env, rec, m)
	if err := env.Cluster.ReplaceMember(hctx, m); err != nil {
		return err
	}
	newID, err := m.ID(hctx)
	if err != nil {
		return err
	}
	if newID == oldID {
		return fmt.Errorf("%s came back with its old member ID %x", m.Name(), oldID)
	}
	rec.Effect = env.now()
	return recovered(hctx, env)
}

// GrowShrink adds a member to the cluster under traffic, waits until it
// has caught up, and removes it again.
type GrowShrink struct{}

// Name implements Failpoint.
func (GrowShrink) Name() string { return "grow-shrink" }

// Family implements Failpoint.
func (GrowShrink) Family() Family { return Membership }

// Available implements Failpoint.
func (GrowShrink) Available(_ context.Context, c *cluster.Cluster) error {
	return needMembers(c, 3, "a quorum that survives the added member's start")
}

// Inject implements Failpoint.
func (GrowShrink) Inject(ctx context.Context, env Env, rec *Record) error {
	hctx, cancel := healCtx(ctx)
	defer cancel()
	m, err := env.Cluster.AddMember(hctx)
	if m != nil {
		rec.target(m)
	}
	if err != nil {
		if m != nil {
			// Heal: the cluster goes back to its size.
			explainRemoval(env, rec, m)
			err = errors.Join(err, env.Cluster.RemoveMember(hctx, m))
		}
		return err
	}
	rec.Effect = env.now()
	env.Logger.Info("member added", zap.String("member", m.Name()))
	_ = sleepCtx(ctx, env.duration())
	explainRemoval(env, rec, m)
	if err := env.Cluster.RemoveMember(hctx, m); err != nil {
		return err
	}
	return recovered(hctx, env)
}

// explainRemoval declares the end of m's process once it is removed from
// the cluster: a removed member shuts itself down (etcd exits, status 0,
// or logs a fatal line as its listeners close) unless the harness's
// SIGTERM comes first.
func explainRemoval(env Env, rec *Record, m *cluster.Member) {
	if m.Running() {
		rec.explain(env, m, "it was removed from the cluster", nil, history.ExitPlain, history.ExitFatal)
	}
}

package robustness

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

// leaderTimeout bounds finding the leader and moving it.
const leaderTimeout = 20 * time.Second

// placeLeader puts the leadership on the side of a mixed-version cluster
// that the explore draw chose (scenarios.Exploration.LeaderOn), moving it
// with MoveLeader to the first member there if the election put it on
// the other side, and records in sc which member leads and whether it was
// moved. A scenario with no side to draw is left as it is.
func placeLeader(ctx context.Context, lg *zap.Logger, sc *scenarios.Scenario, cl *cluster.Cluster) error {
	x := sc.Explore
	side := x.LeaderSide()
	if side == nil {
		return nil
	}
	if len(x.MemberVersions) != len(cl.Members()) {
		return fmt.Errorf("the draw gave %d members' releases for %d members", len(x.MemberVersions), len(cl.Members()))
	}
	ctx, cancel := context.WithTimeout(ctx, leaderTimeout)
	defer cancel()
	leader, err := cl.WaitLeader(ctx)
	if err != nil {
		return fmt.Errorf("placing the leader on the %s side: %w", x.LeaderOn, err)
	}
	placed := *x
	if !slices.Contains(side, leader.Index()) {
		to := cl.Members()[side[0]]
		lg.Info("moving the leader", zap.String("from", leader.Name()), zap.String("to", to.Name()), zap.String("side", x.LeaderOn))
		if err := leader.MoveLeaderTo(ctx, to); err != nil {
			return fmt.Errorf("placing the leader on the %s side: %w", x.LeaderOn, err)
		}
		if leader, err = cl.WaitLeader(ctx); err != nil {
			return fmt.Errorf("placing the leader on the %s side: %w", x.LeaderOn, err)
		}
		if leader != to {
			return fmt.Errorf("placing the leader on the %s side: moved the leadership to %s, but %s leads", x.LeaderOn, to.Name(), leader.Name())
		}
		placed.Moved = true
	}
	placed.Leader = leader.Name()
	sc.Explore = &placed
	lg.Info("leader placed", zap.String("leader", leader.Name()), zap.String("release", x.MemberVersions[leader.Index()]),
		zap.String("side", x.LeaderOn), zap.Bool("moved", placed.Moved))
	return nil
}

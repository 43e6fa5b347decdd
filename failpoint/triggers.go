package failpoint

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

func (p point) needsRequests() bool {
	return p.trigger == defrag || p.trigger == compaction || p.trigger == batchedCompaction || p.trigger == tombstoneCompaction
}

// fire drives the point's code path on member m. Triggers that keep going
// (a defrag or compaction in flight, an open watch) run until stop is
// called; stop is always safe to call, more than once.
func (p point) fire(ctx context.Context, env Env, m *cluster.Member) (stop func(), err error) {
	noop := func() {}
	switch p.trigger {
	case traffic, localSnapshot:
		return noop, nil
	case defrag:
		if env.Requests == nil {
			return noop, errors.New("a defrag trigger needs a recording client, and none was given")
		}
		return background(ctx, func(ctx context.Context) error { return env.Requests.Defragment(ctx, m) }, env.Logger, "defrag"), nil
	case compaction, batchedCompaction, tombstoneCompaction:
		if env.Requests == nil {
			return noop, errors.New("a compaction trigger needs a recording client, and none was given")
		}
		compact := env.Requests.Compact
		if p.trigger == tombstoneCompaction {
			compact = env.Requests.CompactAtTombstone
		}
		return background(ctx, func(ctx context.Context) error {
			rev, err := compact(ctx)
			env.Logger.Info("compaction trigger", zap.String("trigger", string(p.trigger)), zap.Int64("revision", rev), zap.Error(err))
			return err
		}, env.Logger, "compaction"), nil
	case sentSnapshot:
		if err := forceSnapshot(ctx, env, m); err != nil {
			return noop, err
		}
		// The leader may let the follower catch up from its log after all
		// (a snapshot in flight to another member pauses its compaction;
		// seen on 5 members): until the point fires, cut it off again
		// every snapshotRetry.
		return background(ctx, func(ctx context.Context) error {
			for {
				if err := sleepCtx(ctx, snapshotRetry); err != nil {
					return nil
				}
				env.Logger.Info("no snapshot point reached yet; cutting the follower off again", zap.String("member", m.Name()))
				if err := forceSnapshot(ctx, env, m); err != nil {
					return err
				}
			}
		}, env.Logger, "snapshot"), nil
	case watchStream:
		return watchMember(ctx, m)
	case applyWindow:
		if err := gofailSet(ctx, m, applyWindowPoint, "sleep("+strconv.FormatInt(applyWindowSleep.Milliseconds(), 10)+")"); err != nil {
			return noop, err
		}
		return func() {
			if !m.Running() {
				return // the process that had the point armed is gone
			}
			cctx, cancel := healCtx(ctx)
			defer cancel()
			if err := gofailClear(cctx, m, applyWindowPoint); err != nil && m.Running() {
				env.Logger.Warn("apply window left open", zap.String("member", m.Name()), zap.Error(err))
			}
		}, nil
	}
	return noop, fmt.Errorf("unknown trigger %q", p.trigger)
}

// background runs f until it returns or stop is called.
func background(ctx context.Context, f func(context.Context) error, lg *zap.Logger, what string) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f(ctx); err != nil {
			lg.Info(what+" trigger returned", zap.Error(err))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// watchMember opens a watch on every key at member m alone (through its
// real listener), so that traffic's writes make it send watch responses.
// A watch changes nothing, so it is not part of the recorded history.
func watchMember(ctx context.Context, m *cluster.Member) (func(), error) {
	cfg := cluster.ClientConfig([]string{m.DirectClientURL()})
	cfg.DialTimeout = 5 * time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		return func() {}, fmt.Errorf("watch trigger on %s: %w", m.Name(), err)
	}
	wctx, cancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, "", clientv3.WithPrefix())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range wch {
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			cli.Close()
			<-done
		})
	}, nil
}

// forceSnapshot cuts follower m off until the leader's raft index is so far
// ahead that the leader has compacted its log past m (the members run with
// a small --snapshot-count and catch-up window), then heals the cut, so the
// leader must send m a snapshot.
func forceSnapshot(ctx context.Context, env Env, m *cluster.Member) error {
	net := env.Cluster.Network()
	links := net.Links(m.Name())
	if err := net.Blackhole(links...); err != nil {
		return err
	}
	defer func() { _ = net.Unblackhole(links...) }()
	ahead, err := waitBehind(ctx, env, m, snapshotGap)
	if err != nil {
		return err
	}
	env.Logger.Info("follower cut off until it needs a snapshot", zap.String("member", m.Name()), zap.Uint64("leader ahead by", ahead))
	return net.Unblackhole(links...)
}

// snapshotRetry is how long a snapshot trigger waits for its point after
// healing the cut before it cuts the follower off again.
const snapshotRetry = 8 * time.Second

// snapshotGap is how far the leader must get ahead of a cut-off follower
// before it has surely compacted its log past it.
const snapshotGap = 2*snapshotCount + snapshotCatchupEntries + 10

// waitBehind waits until the leader's raft index is more than gap ahead of
// m's, and returns by how much.
func waitBehind(ctx context.Context, env Env, m *cluster.Member, gap uint64) (uint64, error) {
	for {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		leader, err := env.Cluster.Leader(lctx)
		cancel()
		if err == nil && leader != m {
			ls, err1 := leader.Status(ctx)
			ms, err2 := m.Status(ctx)
			if err1 == nil && err2 == nil && ls.RaftIndex > ms.RaftIndex+gap {
				return ls.RaftIndex - ms.RaftIndex, nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return 0, fmt.Errorf("waiting for the leader to get %d entries ahead of %s: %w", gap, m.Name(), err)
		}
	}
}

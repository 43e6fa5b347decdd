package robustness

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// watcherFirstID is the history client id of the first watcher: far above
// the traffic clients, the final read and the fault triggers.
const watcherFirstID = 1000

// runWatchers are a run's watchers, or nothing when the scenario has no
// watch traffic (every method is then a no-op).
type runWatchers struct {
	lg   *zap.Logger
	ws   *traffic.Watchers
	once sync.Once
}

// startWatchers starts the scenario's watch traffic, if it has any, next
// to the request traffic. A watcher that cannot connect is logged and the
// run goes on without watches; the watch stage then has nothing to check.
func startWatchers(ctx context.Context, lg *zap.Logger, sc scenarios.Scenario, seed int64, cl *cluster.Cluster, clock *history.Clock) *runWatchers {
	r := &runWatchers{lg: lg}
	if sc.Watch == nil {
		return r
	}
	var members []string
	for _, m := range cl.Members() {
		members = append(members, m.ClientURL())
	}
	ws, err := traffic.StartWatchers(ctx, traffic.WatchConfig{
		Profile: sc.Traffic, Members: members, Endpoints: cl.Endpoints(), Seed: seed, Clock: clock,
		FirstID: watcherFirstID, Duration: sc.Duration, ProgressRequestInterval: sc.Watch.ProgressRequestInterval, Logger: lg,
		Users: authUsers(sc.Auth, traffic.AuthWatcherUser), Avoid: avoidances(sc.KnownBugsAvoided),
	})
	if err != nil {
		lg.Warn("watch traffic did not start", zap.Error(err))
		return r
	}
	r.ws = ws
	return r
}

// finish waits, within traffic.DefaultCatchUpBound, for every watch to
// catch up to the revision of the final read (the last committed revision:
// it is a linearizable read made once traffic and faults were over), and
// returns every watch and the watchers' recorded lists.
func (r *runWatchers) finish(finalRead history.Client) ([]history.Watch, []history.Client) {
	if r.ws == nil {
		return nil, nil
	}
	var target int64
	for _, op := range finalRead.Operations {
		if op.Error == nil && op.Response != nil {
			target = op.Response.Header.Revision
		}
	}
	if target == 0 {
		r.lg.Warn("no final read: the watches' catch-up is not waited for")
	}
	var watches []history.Watch
	var lists []history.Client
	r.once.Do(func() { watches, lists = r.ws.Finish(target, traffic.DefaultCatchUpBound) })
	return watches, lists
}

// stop ends the watchers without waiting, for a run that ends early.
func (r *runWatchers) stop() {
	if r.ws != nil {
		r.once.Do(func() { r.ws.Finish(0, time.Millisecond) })
	}
}

// memberEtcdArgs are the members' extra flags the scenario asks for: its
// etcd settings, and what its watch traffic needs (a short progress
// notification interval, and the snapshot count it asks for). Each is
// spelled as every member's binary knows it; one they share no spelling
// of is left out, with a warning.
func memberEtcdArgs(lg *zap.Logger, sc scenarios.Scenario, etcdPaths []string) []string {
	var args []string
	add := func(value string, names ...string) {
		if flag := commonFlag(etcdPaths, names...); flag != "" {
			args = mergeFlags(args, []string{flag + "=" + value})
			return
		}
		lg.Warn("the members' etcd binaries share no spelling of a flag the scenario sets; it is left out",
			zap.Strings("flag", names), zap.String("value", value))
	}
	if e := sc.Etcd; e != nil {
		if e.SnapshotCount > 0 {
			add(strconv.Itoa(e.SnapshotCount), "--snapshot-count")
		}
		if e.SnapshotCatchUpEntries > 0 {
			add(strconv.Itoa(e.SnapshotCatchUpEntries), "--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries")
		}
		if e.CompactionBatchLimit > 0 {
			add(strconv.Itoa(e.CompactionBatchLimit), "--compaction-batch-limit", "--experimental-compaction-batch-limit")
		}
		if e.HeartbeatInterval > 0 {
			add(strconv.FormatInt(e.HeartbeatInterval.Milliseconds(), 10), "--heartbeat-interval")
		}
		if e.ElectionTimeout > 0 {
			add(strconv.FormatInt(e.ElectionTimeout.Milliseconds(), 10), "--election-timeout")
		}
	}
	if sc.Watch == nil {
		return args
	}
	interval := sc.Watch.ProgressNotifyInterval
	if interval == 0 {
		interval = scenarios.DefaultProgressNotifyInterval
	}
	add(interval.String(), "--watch-progress-notify-interval", "--experimental-watch-progress-notify-interval")
	if sc.Watch.SnapshotCount > 0 {
		args = mergeFlags(args, []string{"--snapshot-count=" + strconv.Itoa(sc.Watch.SnapshotCount)})
	}
	return args
}

// commonFlag is the first of names that every binary's --help lists, or "".
func commonFlag(paths []string, names ...string) string {
	helps := map[string]string{}
	for _, p := range paths {
		if _, ok := helps[p]; !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, _ := exec.CommandContext(ctx, p, "--help").CombinedOutput()
			cancel()
			helps[p] = string(out)
		}
	}
	for _, n := range names {
		all := true
		for _, h := range helps {
			if !strings.Contains(h, "  "+n+" ") && !strings.Contains(h, "  "+n+"\n") && !strings.Contains(h, "  "+n+"=") {
				all = false
			}
		}
		if all && len(helps) > 0 {
			return n
		}
	}
	return ""
}

package failpoint

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

func init() {
	register(Partition{Kind: blackholeMember})
	register(Partition{Kind: isolateLeader})
	register(Partition{Kind: splitMajority})
	register(Partition{Kind: untilSnapshot})
	register(Partition{Kind: clientSide})
	register(Degrade{Kind: delay})
	register(Degrade{Kind: drop})
}

type partitionKind string

const (
	blackholeMember partitionKind = "blackhole-member"
	isolateLeader   partitionKind = "isolate-leader"
	splitMajority   partitionKind = "partition-majority"
	untilSnapshot   partitionKind = "blackhole-until-snapshot"
	clientSide      partitionKind = "client-partition"
)

// Partition cuts peer links (both directions of each) through the
// cluster's fault proxy for the fault's duration, then heals them:
//   - blackhole-member: one random member from all its peers;
//   - isolate-leader: the leader from all its peers;
//   - partition-majority: a random minority from the majority;
//   - blackhole-until-snapshot: a follower, until the leader has compacted
//     its log past it (members run with a small --snapshot-count), so that
//     it must receive a snapshot once healed;
//   - client-partition: one random member from its clients (its client
//     proxy); the peers still see it.
type Partition struct{ Kind partitionKind }

// hold is how long the partition holds once in place: env's duration, and
// for a partition that cuts a member off from a majority of its peers, at
// least env.MinIsolation unless a duration was given.
func (p Partition) hold(env Env) time.Duration {
	hold := env.duration()
	if env.Duration == 0 && p.Kind != clientSide && p.Kind != untilSnapshot {
		hold = max(hold, env.MinIsolation)
	}
	return hold
}

// Name implements Failpoint.
func (p Partition) Name() string { return string(p.Kind) }

// Family implements Failpoint.
func (Partition) Family() Family { return Network }

// Available implements Failpoint.
func (p Partition) Available(_ context.Context, c *cluster.Cluster) error {
	switch p.Kind {
	case clientSide:
		return nil
	case untilSnapshot:
		if err := needMembers(c, 3, "a follower to cut off while a quorum goes on"); err != nil {
			return err
		}
		for _, m := range c.Members() {
			if _, err := snapshotFlags(m); err != nil {
				return err
			}
		}
		return nil
	}
	return needMembers(c, 2, "peers to cut apart")
}

// MemberFlags implements MemberFlagger: blackhole-until-snapshot needs a
// small --snapshot-count and catch-up window.
func (p Partition) MemberFlags(m *cluster.Member) ([]string, error) {
	if p.Kind != untilSnapshot {
		return nil, nil
	}
	return snapshotFlags(m)
}

// Inject implements Failpoint.
func (p Partition) Inject(ctx context.Context, env Env, rec *Record) error {
	net := env.Cluster.Network()
	hold := p.hold(env)
	var links []cluster.Link
	var heal func() error
	var snapLog *logMark
	switch p.Kind {
	case clientSide:
		m, err := pick(ctx, env, AnyMember)
		if err != nil {
			return err
		}
		rec.target(m)
		if err := net.BlackholeClient(m.Name()); err != nil {
			return err
		}
		heal = func() error { return net.UnblackholeClient(m.Name()) }
	case splitMajority:
		members := env.Cluster.Members()
		env.Rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		minority := members[:(len(members)-1)/2]
		if len(minority) == 0 {
			minority = members[:1]
		}
		var a, b []string
		for i, m := range members {
			if i < len(minority) {
				a = append(a, m.Name())
			} else {
				b = append(b, m.Name())
			}
		}
		rec.Targets = a
		links = net.LinksBetween(a, b)
	default:
		target := AnyMember
		switch p.Kind {
		case isolateLeader:
			target = Leader
		case untilSnapshot:
			target = Follower
		}
		m, err := pick(ctx, env, target)
		if err != nil {
			return err
		}
		rec.target(m)
		links = net.Links(m.Name())
		if p.Kind == untilSnapshot {
			snapLog = markLog(m)
		}
	}
	if heal == nil {
		if err := net.Blackhole(links...); err != nil {
			_ = net.Unblackhole(links...)
			return err
		}
		heal = func() error { return net.Unblackhole(links...) }
	}
	defer func() { _ = heal() }()
	rec.Effect = env.now()
	env.Logger.Info("partition in place", zap.String("fault", p.Name()), zap.Strings("cut off", rec.Targets),
		zap.Int("links", len(links)))
	if p.Kind == untilSnapshot {
		return cutUntilSnapshot(ctx, env, memberNamed(env.Cluster, rec.Targets[0]), links, snapLog)
	}
	_ = sleepCtx(ctx, hold)
	if err := heal(); err != nil {
		return err
	}
	hctx, cancel := healCtx(ctx)
	defer cancel()
	return recovered(hctx, env)
}

// untilSnapshotTimeout bounds blackhole-until-snapshot's cuts in all. It is
// longer than etcd's releaseDelayAfterSnapshot (30 s in v3.5 to v3.7), for
// which a leader that has sent any member a snapshot keeps its whole log.
const untilSnapshotTimeout = 75 * time.Second

// cutUntilSnapshot is blackhole-until-snapshot once m is cut off (by links):
// it waits until the leader is snapshotGap entries ahead of m, heals, and
// waits snapshotRetry for m to save a snapshot. The index gap does not show
// that the leader compacted its log: a leader that sent some member a
// snapshot holds off compacting for 30 s after (etcd logs "skip compaction
// since there is an inflight snapshot"), and a new leader has its own log.
// So when no snapshot came, m is cut off again and the cycle repeats, up to
// untilSnapshotTimeout; if it never came the fault did not take effect.
func cutUntilSnapshot(ctx context.Context, env Env, m *cluster.Member, links []cluster.Link, snapLog *logMark) error {
	net := env.Cluster.Network()
	dctx, cancel := context.WithTimeout(ctx, untilSnapshotTimeout)
	defer cancel()
	for cut := 1; ; cut++ {
		if cut > 1 {
			if err := net.Blackhole(links...); err != nil {
				return err
			}
			env.Logger.Info("no snapshot yet: cut off again", zap.String("fault", string(untilSnapshot)),
				zap.String("member", m.Name()), zap.Int("cut", cut))
		}
		_, err := waitBehind(dctx, env, m, snapshotGap)
		if herr := net.Unblackhole(links...); herr != nil && err == nil {
			err = herr
		}
		if err != nil {
			return err
		}
		hctx, hcancel := healCtx(ctx)
		err = recovered(hctx, env)
		hcancel()
		if err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(dctx, snapshotRetry)
		err = snapLog.wait(wctx, "received and saved database snapshot")
		wcancel()
		if err == nil {
			return nil
		}
		if dctx.Err() != nil {
			return fmt.Errorf("%s did not receive a snapshot after %d cuts in %s: %w", m.Name(), cut, untilSnapshotTimeout, err)
		}
	}
}

type degradeKind string

const (
	delay degradeKind = "delay-peers"
	drop  degradeKind = "drop-packets"
)

// Degrade slows one random member's peer links for the fault's duration:
// delay-peers adds 50–150 ms ± 25 ms of latency to each chunk, in both
// directions; drop-packets loses 20% of the chunks, which (as TCP resends
// them) arrive 200 ms late.
type Degrade struct{ Kind degradeKind }

// Name implements Failpoint.
func (d Degrade) Name() string { return string(d.Kind) }

// Family implements Failpoint.
func (Degrade) Family() Family { return Network }

// Available implements Failpoint.
func (Degrade) Available(_ context.Context, c *cluster.Cluster) error {
	return needMembers(c, 2, "peer links to degrade")
}

// Inject implements Failpoint.
func (d Degrade) Inject(ctx context.Context, env Env, rec *Record) error {
	net := env.Cluster.Network()
	m, err := pick(ctx, env, AnyMember)
	if err != nil {
		return err
	}
	rec.target(m)
	links := net.Links(m.Name())
	hold := env.duration()
	switch d.Kind {
	case delay:
		latency := 50*time.Millisecond + time.Duration(env.Rand.Int63n(int64(100*time.Millisecond)))
		err = net.Delay(latency, 25*time.Millisecond, links...)
		defer func() { _ = net.Undelay(links...) }()
		env.Logger.Info("peer links delayed", zap.String("member", m.Name()), zap.Duration("latency", latency))
	case drop:
		err = net.Retransmit(0.2, 200*time.Millisecond, env.Rand.Int63(), links...)
		defer func() { _ = net.Unretransmit(links...) }()
	}
	if err != nil {
		return err
	}
	rec.Effect = env.now()
	_ = sleepCtx(ctx, hold)
	switch d.Kind {
	case delay:
		err = net.Undelay(links...)
	case drop:
		err = net.Unretransmit(links...)
	}
	if err != nil {
		return err
	}
	hctx, cancel := healCtx(ctx)
	defer cancel()
	return recovered(hctx, env)
}

func memberNamed(c *cluster.Cluster, name string) *cluster.Member {
	for _, m := range c.Members() {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// logMark remembers how long a member's log was, to look for lines
// written after that.
type logMark struct {
	path   string
	offset int64
}

func markLog(m *cluster.Member) *logMark {
	st, err := os.Stat(m.LogPath())
	if err != nil {
		return &logMark{path: m.LogPath()}
	}
	return &logMark{path: m.LogPath(), offset: st.Size()}
}

// wait polls until text appears after the mark.
func (l *logMark) wait(ctx context.Context, text string) error {
	for {
		if l.contains(text) {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%q not in %s: %w", text, l.path, err)
		}
	}
}

// containsAll reports whether every text appears after the mark.
func (l *logMark) containsAll(texts []string) bool {
	for _, t := range texts {
		if !l.contains(t) {
			return false
		}
	}
	return true
}

func (l *logMark) contains(text string) bool {
	b, err := os.ReadFile(l.path)
	if err != nil || int64(len(b)) < l.offset {
		return false
	}
	return strings.Contains(string(b[l.offset:]), text)
}

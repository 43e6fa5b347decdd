package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Membership changes. etcd is asked through a member's real listener (a
// path no fault cuts), and retried while etcd refuses a change because the
// cluster is not yet healthy enough for it.

// membershipRetry is how often a refused change is tried again.
const membershipRetry = 200 * time.Millisecond

// AddMember creates a member with the next free index, adds it to the etcd
// cluster, starts it (joining the existing cluster) and waits until it is
// healthy. Its client and peer traffic go through the fault proxy too.
func (c *Cluster) AddMember(ctx context.Context) (*Member, error) {
	members := c.Members()
	if len(members) == 0 {
		return nil, errors.New("add member: the cluster has no member to ask")
	}
	next := 0
	for _, m := range c.allMembers() {
		next = max(next, m.index+1)
	}
	ports, err := allocatePorts(portsPerMember + 2*(len(members)+1) + 1)
	if err != nil {
		return nil, err
	}
	first := members[0]
	m := c.newMember(next, ports[:portsPerMember], first.EtcdPath(), first.EtcdctlPath(), first.EtcdutlPath(), first.ExtraArgs())
	c.network.mu.Lock()
	c.network.ports = append(c.network.ports, ports[portsPerMember:]...)
	c.network.mu.Unlock()
	if err := c.network.addMember(m); err != nil {
		return nil, fmt.Errorf("add %s: %w", m.name, err)
	}
	if err := c.join(ctx, m, append(members, m)); err != nil {
		return m, err
	}
	c.membersMu.Lock()
	if c.closing {
		c.membersMu.Unlock()
		return m, fmt.Errorf("add %s: %w", m.name, ErrClosed)
	}
	c.members = append(c.members, m)
	c.all = append(c.all, m)
	c.membersMu.Unlock()
	return m, c.startJoined(ctx, m)
}

// RemoveMember removes m from the etcd cluster (asking another member),
// stops its process, and drops it from Members. Its directory stays.
func (c *Cluster) RemoveMember(ctx context.Context, m *Member) error {
	if err := c.remove(ctx, m); err != nil {
		return err
	}
	c.membersMu.Lock()
	var rest []*Member
	for _, x := range c.members {
		if x != m {
			rest = append(rest, x)
		}
	}
	c.members = rest
	c.membersMu.Unlock()
	return nil
}

// ReplaceMember removes m from the etcd cluster, wipes its data dir, adds it
// back under the same name and URLs (so it gets a new member ID), starts it
// and waits until it is healthy.
func (c *Cluster) ReplaceMember(ctx context.Context, m *Member) error {
	if err := c.remove(ctx, m); err != nil {
		return err
	}
	return c.rejoinWiped(ctx, m)
}

// ReplaceDownMember is ReplaceMember for a member whose process is down and
// cannot start again (etcd refused its data): it is removed by the member
// ID the harness last knew for it.
func (c *Cluster) ReplaceDownMember(ctx context.Context, m *Member) error {
	if m.Running() {
		return fmt.Errorf("replace %s: %w", m.name, ErrRunning)
	}
	id := c.network.memberID(m.name)
	if id == 0 {
		return fmt.Errorf("replace %s: its member ID is not known", m.name)
	}
	if err := c.removeID(ctx, m, id); err != nil {
		return err
	}
	return c.rejoinWiped(ctx, m)
}

// rejoinWiped empties the data dir of m, which is out of the cluster, adds
// it back and starts it.
func (c *Cluster) rejoinWiped(ctx context.Context, m *Member) error {
	// Wipe what is in the data dir, not the dir: it may be a mountpoint.
	entries, _ := os.ReadDir(m.dataDir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(m.dataDir, e.Name())); err != nil {
			return fmt.Errorf("wiping the data dir of %s: %w", m.name, err)
		}
	}
	if err := c.join(ctx, m, c.Members()); err != nil {
		return err
	}
	return c.startJoined(ctx, m)
}

// remove asks another running member to remove m, then stops m.
func (c *Cluster) remove(ctx context.Context, m *Member) error {
	id, err := m.ID(ctx)
	if err != nil {
		return fmt.Errorf("remove %s: %w", m.name, err)
	}
	return c.removeID(ctx, m, id)
}

// removeID asks another running member to remove the member id, which is
// m, then stops m.
func (c *Cluster) removeID(ctx context.Context, m *Member, id uint64) error {
	err := c.askOther(ctx, m, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.MemberRemove(ctx, id)
		if err != nil && strings.Contains(err.Error(), "member not found") {
			return nil // an earlier try went through
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", m.name, err)
	}
	c.lg.Info("member removed from the cluster", zap.String("member", m.name), zap.String("id", fmt.Sprintf("%x", id)))
	// A removed member shuts itself down; make sure.
	return m.Stop(ctx)
}

// join adds m (not running) to the etcd cluster, with initial cluster
// `members`, and records its new member ID.
func (c *Cluster) join(ctx context.Context, m *Member, members []*Member) error {
	var id uint64
	err := c.askOther(ctx, m, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.MemberAdd(ctx, []string{m.peerAdvertise})
		if err != nil {
			return err
		}
		id = resp.Member.ID
		return nil
	})
	if err != nil {
		return fmt.Errorf("add %s: %w", m.name, err)
	}
	var peers []string
	for _, x := range members {
		peers = append(peers, x.name+"="+x.peerAdvertise)
	}
	m.mu.Lock()
	m.initialCluster = strings.Join(peers, ",")
	m.startedOnce = true // join: --initial-cluster-state=existing
	m.mu.Unlock()
	c.network.setMemberID(id, m.name)
	c.lg.Info("member added to the cluster", zap.String("member", m.name), zap.String("id", fmt.Sprintf("%x", id)))
	return nil
}

func (c *Cluster) startJoined(ctx context.Context, m *Member) error {
	if err := m.Start(ctx); err != nil {
		return err
	}
	return m.WaitHealthy(ctx)
}

// askOther runs f against running members other than except, one after
// another, until it succeeds or ctx is done.
func (c *Cluster) askOther(ctx context.Context, except *Member, f func(context.Context, *clientv3.Client) error) error {
	var last error
	for {
		for _, x := range c.Members() {
			if x == except || !x.Running() {
				continue
			}
			cli, err := x.dial(ctx)
			if err != nil {
				last = err
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = f(rctx, cli)
			cancel()
			cli.Close()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("%s: %w", x.name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(membershipRetry):
		}
	}
}

package failpoint

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

// injectObserved injects f and calls during once the fault has taken
// effect (while it lasts), with the record so far. It returns the record
// and Inject's error.
func injectObserved(t *testing.T, c *testCluster, f Failpoint, hold time.Duration, during func(rec Record)) (Record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := c.env
	env.Duration = hold
	effect := make(chan struct{})
	var once sync.Once
	now := env.Now
	env.Now = func() time.Duration {
		d := now()
		once.Do(func() { close(effect) })
		return d
	}
	var rec Record
	done := make(chan error, 1)
	go func() { done <- f.Inject(ctx, env, &rec) }()
	select {
	case <-effect:
		if during != nil {
			during(Record{Targets: slices.Clone(rec.Targets)})
		}
	case err := <-done:
		return rec, err
	}
	err := <-done
	return rec, err
}

// raftIndex is the member's raft index, asked on a path no fault cuts.
func raftIndex(t *testing.T, m *cluster.Member) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := m.Status(ctx)
	require.NoError(t, err, "status of %s", m.Name())
	return s.RaftIndex
}

// maxIndex is the highest raft index among members other than except.
func maxIndex(t *testing.T, c *testCluster, except ...string) uint64 {
	var top uint64
	for _, m := range c.c.Members() {
		if !slices.Contains(except, m.Name()) {
			top = max(top, raftIndex(t, m))
		}
	}
	return top
}

// getVia does one linearizable get through url and returns how long it
// took and its error.
func getVia(url string, timeout time.Duration) (time.Duration, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: timeout, Logger: zap.NewNop()})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err = cli.Get(ctx, "k0")
	return time.Since(start), err
}

// requireCaughtUp waits until member m's raft index reaches the others'.
func requireCaughtUp(t *testing.T, c *testCluster, m *cluster.Member) {
	t.Helper()
	require.Eventually(t, func() bool {
		return raftIndex(t, m)+5 >= maxIndex(t, c, m.Name())
	}, 30*time.Second, 200*time.Millisecond, "%s caught up with the others", m.Name())
}

// TestProcessFaults: kill makes a new process; a paused member is stopped
// (the kernel says so and it answers nothing), falls behind, then
// continues and catches up.
func TestProcessFaults(t *testing.T) {
	c := startCluster(t, 3)
	c.writes(t)
	for _, name := range []string{"kill", "pause-leader", "pause-follower"} {
		t.Run(name, func(t *testing.T) {
			f, err := Lookup(name)
			require.NoError(t, err)
			leader := c.leader(t)
			before := pids(c.c)
			var target *cluster.Member
			rec, err := injectObserved(t, c, f, 3*time.Second, func(rec Record) {
				target = c.member(t, rec.Targets[0])
				if name == "kill" {
					return
				}
				require.Equal(t, "T", target.ProcessState(), "stopped")
				require.True(t, target.Paused())
				_, err := getVia(target.DirectClientURL(), time.Second)
				require.Error(t, err, "a paused member answers nothing")
				idx := raftIndex(t, c.c.Members()[(target.Index()+1)%3])
				require.Eventually(t, func() bool { return maxIndex(t, c, target.Name()) > idx+10 }, 10*time.Second, 100*time.Millisecond)
			})
			require.NoError(t, err)
			require.NotZero(t, rec.Effect)
			require.NotNil(t, target)
			switch name {
			case "kill":
				require.NotEqual(t, before[target.Name()], target.PID(), "a new process")
				require.Contains(t, readFile(t, target.LogPath()), "signal: killed")
			case "pause-leader":
				require.Equal(t, leader, target)
			case "pause-follower":
				require.NotEqual(t, leader, target)
			}
			if name != "kill" {
				require.Equal(t, before[target.Name()], target.PID(), "the same process went on")
				require.False(t, target.Paused())
				require.NotEqual(t, "T", target.ProcessState())
			}
			requireCaughtUp(t, c, target)
		})
	}
}

// TestSleeps: a gofail sleep is armed on its member while it lasts (its
// gofail endpoint says sleep and counts passes through it), then off.
func TestSleeps(t *testing.T) {
	c := startCluster(t, 3)
	c.writes(t)
	for _, point := range []string{"raftBeforeSave", "beforeCommit", "raftBeforeFollowerSend", "beforeSendWatchResponse"} {
		t.Run(point, func(t *testing.T) {
			f, err := GofailSleepFor(point, 100*time.Millisecond)
			require.NoError(t, err)
			ctx := context.Background()
			require.NoError(t, f.Available(ctx, c.c))
			var target *cluster.Member
			rec, err := injectObserved(t, c, f, 2*time.Second, func(rec Record) {
				target = c.member(t, rec.Targets[0])
				body, err := gofailDo(ctx, "GET", target.GofailURL()+"/"+point, "")
				require.NoError(t, err)
				require.Equal(t, "sleep(100)", strings.TrimSpace(body))
				n, err := gofailCount(ctx, target, point)
				require.NoError(t, err)
				require.Positive(t, n, "the sleep ran")
			})
			require.NoError(t, err)
			require.NotZero(t, rec.Effect)
			_, err = gofailDo(ctx, "GET", target.GofailURL()+"/"+point, "")
			require.ErrorContains(t, err, "disabled", "healed: the point is off")
		})
	}
}

// TestPartitions: a blackholed member falls behind (nothing reaches it)
// and cannot get a read through (nothing leaves it); an isolated leader is
// replaced; a minority stalls while the majority commits; a client-side
// partition hides a member from clients only; all heal and catch up.
func TestPartitions(t *testing.T) {
	c := startCluster(t, 3)
	c.writes(t)
	tests := []struct {
		name   string
		during func(t *testing.T, targets []*cluster.Member, leader *cluster.Member)
	}{
		{"blackhole-member", func(t *testing.T, targets []*cluster.Member, _ *cluster.Member) {
			m := targets[0]
			idx := raftIndex(t, m)
			// Before anything else: the fault lasts 8 s.
			_, err := getVia(m.DirectClientURL(), 2*time.Second)
			require.Error(t, err, "a linearizable read on %s cannot reach a quorum", m.Name())
			require.Eventually(t, func() bool { return maxIndex(t, c, m.Name()) > idx+20 }, 5*time.Second, 100*time.Millisecond,
				"the others go on")
			require.LessOrEqual(t, raftIndex(t, m), idx+1, "nothing reaches %s", m.Name())
		}},
		{"isolate-leader", func(t *testing.T, targets []*cluster.Member, leader *cluster.Member) {
			require.Equal(t, leader, targets[0])
			require.Eventually(t, func() bool {
				for _, m := range c.c.Members() {
					if m == leader {
						continue
					}
					s, err := m.Status(context.Background())
					if err == nil && s.Leader != 0 && s.Leader != s.Header.MemberId && s.Leader != mustID(t, leader) {
						return true
					}
				}
				return false
			}, 7*time.Second, 100*time.Millisecond, "the others elect a new leader")
		}},
		{"partition-majority", func(t *testing.T, targets []*cluster.Member, _ *cluster.Member) {
			require.Len(t, targets, 1, "3 members: a minority of one")
			m := targets[0]
			idx := raftIndex(t, m)
			require.Eventually(t, func() bool { return maxIndex(t, c, m.Name()) > idx+20 }, 6*time.Second, 100*time.Millisecond)
			require.LessOrEqual(t, raftIndex(t, m), idx+1)
		}},
		{"client-partition", func(t *testing.T, targets []*cluster.Member, _ *cluster.Member) {
			m := targets[0]
			_, err := getVia(m.ClientURL(), time.Second)
			require.Error(t, err, "clients cannot reach %s", m.Name())
			_, err = getVia(m.DirectClientURL(), 3*time.Second)
			require.NoError(t, err, "%s itself still serves", m.Name())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Lookup(tc.name)
			require.NoError(t, err)
			require.NoError(t, f.Available(context.Background(), c.c))
			leader := c.leader(t)
			var targets []*cluster.Member
			rec, err := injectObserved(t, c, f, 8*time.Second, func(rec Record) {
				for _, n := range rec.Targets {
					targets = append(targets, c.member(t, n))
				}
				tc.during(t, targets, leader)
			})
			require.NoError(t, err)
			require.NotZero(t, rec.Effect)
			for _, m := range targets {
				requireCaughtUp(t, c, m)
				_, err := getVia(m.ClientURL(), 5*time.Second)
				require.NoError(t, err, "clients reach %s again", m.Name())
			}
		})
	}
}

func mustID(t *testing.T, m *cluster.Member) uint64 {
	id, err := m.ID(context.Background())
	require.NoError(t, err)
	return id
}

// TestDegradedLinks: reads through a member whose links are delayed or
// lose packets take visibly longer while the fault lasts.
func TestDegradedLinks(t *testing.T) {
	c := startCluster(t, 3)
	c.writes(t)
	for _, tc := range []struct {
		name string
		// slowest is how slow the slowest of 10 reads must be.
		slowest time.Duration
	}{
		{"delay-peers", 40 * time.Millisecond},
		{"drop-packets", 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Lookup(tc.name)
			require.NoError(t, err)
			rec, err := injectObserved(t, c, f, 4*time.Second, func(rec Record) {
				m := c.member(t, rec.Targets[0])
				var slowest time.Duration
				for range 10 {
					d, err := getVia(m.DirectClientURL(), 5*time.Second)
					if err == nil {
						slowest = max(slowest, d)
					}
				}
				require.GreaterOrEqual(t, slowest, tc.slowest, "reads through %s are slowed", m.Name())
			})
			require.NoError(t, err)
			require.NotZero(t, rec.Effect)
		})
	}
}

// TestSnapshotPartition: a follower cut off until the leader compacted its
// log past it receives a snapshot once healed.
func TestSnapshotPartition(t *testing.T) {
	c := startCluster(t, 3, triggerFlags(t)...)
	c.writes(t)
	f, err := Lookup("blackhole-until-snapshot")
	require.NoError(t, err)
	require.NoError(t, f.Available(context.Background(), c.c))
	leader := c.leader(t)
	rec, err := injectObserved(t, c, f, 0, nil)
	require.NoError(t, err)
	require.NotZero(t, rec.Effect)
	m := c.member(t, rec.Targets[0])
	require.NotEqual(t, leader, m, "a follower")
	b, err := os.ReadFile(m.LogPath())
	require.NoError(t, err)
	require.Contains(t, string(b), "received and saved database snapshot")
	requireCaughtUp(t, c, m)

	// Once it has sent a snapshot, the leader keeps its whole log for 30 s
	// (etcd's releaseDelayAfterSnapshot), so a follower cut off again at
	// once catches up from the log when healed: the fault must cut it off
	// again until the leader has compacted, and then it gets a snapshot.
	marks := map[string]*logMark{}
	for _, m := range c.c.Members() {
		marks[m.Name()] = markLog(m)
	}
	rec, err = injectObserved(t, c, f, 0, nil)
	require.NoError(t, err, "a second cut right after a snapshot was sent")
	require.True(t, marks[rec.Targets[0]].contains("received and saved database snapshot"),
		"%s received a snapshot after the second cut", rec.Targets[0])
	requireCaughtUp(t, c, c.member(t, rec.Targets[0]))
}

// TestMembership: a replaced member comes back with a new member ID and
// catches up; grow-shrink adds a fourth member that serves, then removes it.
func TestMembership(t *testing.T) {
	c := startCluster(t, 3)
	c.writes(t)
	t.Run("replace-member", func(t *testing.T) {
		ids := map[string]uint64{}
		for _, m := range c.c.Members() {
			ids[m.Name()] = mustID(t, m)
		}
		f, err := Lookup("replace-member")
		require.NoError(t, err)
		rec, err := injectObserved(t, c, f, 0, nil)
		require.NoError(t, err)
		require.NotZero(t, rec.Effect)
		m := c.member(t, rec.Targets[0])
		require.NotEqual(t, ids[m.Name()], mustID(t, m), "a new member ID")
		require.Contains(t, readFile(t, m.LogPath()), "--initial-cluster-state existing")
		requireCaughtUp(t, c, m)
	})
	t.Run("grow-shrink", func(t *testing.T) {
		f, err := Lookup("grow-shrink")
		require.NoError(t, err)
		var added *cluster.Member
		rec, err := injectObserved(t, c, f, 3*time.Second, func(rec Record) {
			require.Len(t, c.c.Members(), 4)
			added = c.member(t, rec.Targets[0])
			_, err := getVia(added.DirectClientURL(), 5*time.Second)
			require.NoError(t, err, "the added member serves linearizable reads")
		})
		require.NoError(t, err)
		require.NotZero(t, rec.Effect)
		require.Equal(t, "member-3", added.Name())
		require.Len(t, c.c.Members(), 3)
		require.False(t, added.Running())
		require.NoError(t, c.c.WaitHealthy(context.Background()))
	})
}

// TestLoseUnsyncedWrites: a member on a LazyFS is killed with written but
// unsynced bytes, which are lost (its files go back to their last fsync);
// it restarts on what it had synced and catches up. Skips where FUSE
// cannot be mounted.
func TestLoseUnsyncedWrites(t *testing.T) {
	f := LoseUnsynced{}
	if err := f.Available(context.Background(), nil); err != nil {
		t.Skipf("lose-unsynced-writes is not available here: %v", err)
	}
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// As the run does: each member restarts on a LazyFS.
	onLazyFS(ctx, t, c, f)
	c.writes(t)
	rec, err := injectObserved(t, c, f, 0, nil)
	require.NoError(t, err)
	require.NotZero(t, rec.Effect)
	require.Contains(t, rec.Detail, "lost unsynced bytes: ")
	require.Regexp(t, `member/(wal/[0-9a-f-]+\.wal|snap/db) [1-9][0-9]*`, rec.Detail, "a WAL or the backend lost unsynced bytes")
	m := c.member(t, rec.Targets[0])
	// It died at the fault: killed, or (seen under load) exited on its own
	// once its stopped disk failed an fsync, a moment before the SIGKILL.
	require.Regexp(t, `signal: killed|exit status 1`, readFile(t, m.LogPath()))
	requireCaughtUp(t, c, m)

	require.NoError(t, c.c.Close())
	mounts, err := os.ReadFile("/proc/mounts")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), c.c.Dir(), "no LazyFS is left mounted")
	_, err = os.Stat(m.DataDir() + "/member/wal")
	require.NoError(t, err, "the data is back in the data dir")
}

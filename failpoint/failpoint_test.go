package failpoint

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		spec    string
		want    string // Name of the returned fault
		wantErr string
	}{
		{spec: "kill", want: "kill"},
		{spec: "raftBeforeSave", want: "raftBeforeSave:panic"},
		{spec: "raftBeforeSave:panic", want: "raftBeforeSave:panic"},
		{spec: "raftBeforeSave:sleep", want: "raftBeforeSave:sleep"},
		{spec: "random", want: "random"},
		{spec: "kill,pause-leader", want: "kill,pause-leader"},
		{spec: "raftBeforeSav", wantErr: `unknown failpoint "raftBeforeSav" (valid: random, `},
		{spec: "kill,nope", wantErr: `unknown failpoint "nope"`},
		{spec: "", wantErr: "no failpoint given"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := Lookup(tc.spec)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "kill")
				require.ErrorContains(t, err, "raftBeforeSave:sleep")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, f.Name())
		})
	}
	fs, err := Parse("kill, random ,raftBeforeSave")
	require.NoError(t, err)
	require.Equal(t, []string{"kill", "random", "raftBeforeSave:panic"}, []string{fs[0].Name(), fs[1].Name(), fs[2].Name()})
}

func TestCatalog(t *testing.T) {
	families := map[Family][]string{}
	for _, f := range All() {
		families[f.Family()] = append(families[f.Family()], f.Name())
	}
	require.Contains(t, families[Process], "kill")
	require.Contains(t, families[Process], "pause-leader")
	require.Contains(t, families[Process], "pause-follower")
	require.Contains(t, families[Panic], "raftBeforeSave:panic")
	require.Contains(t, families[Panic], "defragBeforeCopy:panic")
	require.Contains(t, families[Panic], "compactBeforeCommitBatch:panic")
	require.Contains(t, families[Sleep], "raftBeforeSave:sleep")
	require.Contains(t, families[Sleep], "beforeCommit:sleep")
	require.Contains(t, families[Sleep], "beforeSendWatchResponse:sleep")
	require.Contains(t, families[Network], "blackhole-member")
	require.Contains(t, families[Network], "isolate-leader")
	require.Contains(t, families[Network], "partition-majority")
	require.Contains(t, families[Network], "blackhole-until-snapshot")
	// Every point of a panic and a sleep has both names, and nothing else
	// is ambiguous.
	for _, n := range Names() {
		base, kind, ok := strings.Cut(n, ":")
		if ok {
			require.Contains(t, []string{"panic", "sleep"}, kind, n)
			require.Contains(t, Names(), base+":panic", n)
		}
	}
}

// testRequests sends trigger requests with a plain etcd client, to the
// members' real listeners. (In a run they go through recording clients.)
type testRequests struct{ c *cluster.Cluster }

func (r testRequests) client(eps ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// clientOfAll is a client of every member.
func (r testRequests) clientOfAll() (*clientv3.Client, error) {
	var eps []string
	for _, m := range r.c.Members() {
		eps = append(eps, m.DirectClientURL())
	}
	return r.client(eps...)
}

func (r testRequests) Compact(ctx context.Context) (int64, error) {
	cli, err := r.clientOfAll()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "compaction-trigger")
	if err != nil {
		return 0, err
	}
	_, err = cli.Compact(ctx, resp.Header.Revision)
	return resp.Header.Revision, err
}

func (r testRequests) CompactAtTombstone(ctx context.Context) (int64, error) {
	cli, err := r.clientOfAll()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "compaction-trigger", "x"); err != nil {
		return 0, err
	}
	resp, err := cli.Delete(ctx, "compaction-trigger")
	if err != nil {
		return 0, err
	}
	_, err = cli.Compact(ctx, resp.Header.Revision)
	return resp.Header.Revision, err
}

func (r testRequests) Defragment(ctx context.Context, m *cluster.Member) error {
	cli, err := r.client(m.DirectClientURL())
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Defragment(ctx, m.DirectClientURL())
	return err
}

type testCluster struct {
	c   *cluster.Cluster
	env Env
	lg  *zap.Logger
}

func startCluster(t *testing.T, size int, extraArgs ...string) *testCluster {
	t.Helper()
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	c, err := cluster.Start(ctx, cluster.Config{Size: size, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: lg, ExtraArgs: extraArgs})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	return &testCluster{c: c, lg: lg, env: Env{
		Cluster: c, Logger: lg, Rand: rand.New(rand.NewSource(1)),
		Now:      func() time.Duration { return time.Since(start) },
		Duration: 2 * time.Second, Requests: testRequests{c},
	}}
}

// writes puts keys through every member's real listener until the test
// ends, as traffic would: raft has entries to save, send and apply.
func (tc *testCluster) writes(t *testing.T) {
	var eps []string
	for _, m := range tc.c.Members() {
		eps = append(eps, m.DirectClientURL())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				_, _ = cli.Put(pctx, fmt.Sprintf("k%d", i%10), fmt.Sprint(w, i))
				pcancel()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait(); cli.Close() })
}

func (tc *testCluster) member(t *testing.T, name string) *cluster.Member {
	t.Helper()
	for _, m := range tc.c.Members() {
		if m.Name() == name {
			return m
		}
	}
	t.Fatalf("no member %q", name)
	return nil
}

func (tc *testCluster) leader(t *testing.T) *cluster.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := waitLeader(ctx, tc.c)
	require.NoError(t, err)
	return l
}

func pids(c *cluster.Cluster) map[string]int {
	out := map[string]int{}
	for _, m := range c.Members() {
		out[m.Name()] = m.PID()
	}
	return out
}

// triggerFlags are the flags the snapshot and batched-compaction triggers
// need, as this release spells them; the test skips if it has none.
func triggerFlags(t *testing.T) []string {
	t.Helper()
	etcd := testetcd.Binaries(t).Etcd
	catchup, err := etcdFlag(etcd, "--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries")
	if err != nil {
		t.Skipf("this etcd cannot run the snapshot triggers: %v", err)
	}
	batch, err := etcdFlag(etcd, "--compaction-batch-limit", "--experimental-compaction-batch-limit")
	if err != nil {
		t.Skipf("this etcd cannot run the batched compaction trigger: %v", err)
	}
	return []string{"--snapshot-count=20", catchup + "=10", batch + "=10"}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// Go exits with 2 on a panic; etcd exits with 1 after a panic it
// recovers and logs (defrag).
var panicExit = regexp.MustCompile(`=== exited [^\n]*: exit status [12] ===`)

// TestPanics: each gofail panic fires on the member it aims at, through its
// trigger, and that member exits with Go's panic status (2) and comes back
// as a new process; the others are left alone.
func TestPanics(t *testing.T) {
	tests := []struct {
		point  string
		target Target
		// flags: the members need the trigger's flags.
		flags bool
	}{
		{point: "raftBeforeSave", target: AnyMember},
		{point: "raftBeforeLeaderSend", target: Leader},
		{point: "raftBeforeFollowerSend", target: Follower},
		{point: "beforeCommit", target: AnyMember},
		{point: "afterIsMemberExist", target: AnyMember},
		{point: "beforeSendWatchResponse", target: AnyMember},
		{point: "defragBeforeCopy", target: AnyMember},
		{point: "defragBeforeRename", target: AnyMember},
		{point: "compactBeforeCommitScheduledCompact", target: AnyMember},
		{point: "compactBeforeSetFinishedCompact", target: AnyMember},
		{point: "compactBeforeCommitBatch", target: AnyMember, flags: true},
		{point: "raftBeforeWALSaveSnaphot", target: AnyMember, flags: true},
		{point: "raftBeforeApplySnap", target: Follower, flags: true},
	}
	if os.Getenv("ETCD_ROBUSTNESS_FAULT_TESTS") == "" {
		// make test: one plain, one targeted, one triggered, one with flags.
		keep := []string{"raftBeforeLeaderSend", "defragBeforeCopy", "compactBeforeCommitScheduledCompact", "raftBeforeApplySnap"}
		tests = slices.DeleteFunc(tests, func(tc struct {
			point  string
			target Target
			flags  bool
		}) bool {
			return !slices.Contains(keep, tc.point)
		})
	}
	// One cluster for the points that need no flags, one with the
	// triggers' flags (as the run restarts members with them).
	plain := startCluster(t, 3)
	plain.writes(t)
	flagged := startCluster(t, 3, triggerFlags(t)...)
	flagged.writes(t)
	for _, tc := range tests {
		t.Run(tc.point, func(t *testing.T) {
			f, err := GofailPanicFor(tc.point, 0)
			require.NoError(t, err)
			c := plain
			if tc.flags {
				c = flagged
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			require.NoError(t, f.Available(ctx, c.c))
			leader := c.leader(t)
			before := pids(c.c)
			var rec Record
			require.NoError(t, f.Inject(ctx, c.env, &rec))
			require.Len(t, rec.Targets, 1)
			require.NotZero(t, rec.Effect)
			target := c.member(t, rec.Targets[0])
			switch tc.target {
			case Leader:
				require.Equal(t, leader, target, "aimed at the leader")
			case Follower:
				require.NotEqual(t, leader, target, "aimed at a follower")
			}
			after := pids(c.c)
			for name, pid := range before {
				if name == target.Name() {
					require.NotEqual(t, pid, after[name], "%s was restarted", name)
				} else {
					require.Equal(t, pid, after[name], "%s was left alone", name)
				}
			}
			log := readFile(t, target.LogPath())
			require.Regexp(t, panicExit, log, "exited with the panic status")
			require.Contains(t, log, "failpoint panic")
			require.NoError(t, c.c.WaitHealthy(ctx))
		})
	}
}

func TestPanicNotTriggered(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Nobody defragments: the point is never reached.
	f, err := GofailPanicFor("defragBeforeRename", time.Second)
	require.NoError(t, err)
	f.trigger = traffic
	require.NoError(t, f.Available(ctx, c.c))
	m := c.c.Members()[0]
	pid := m.PID()
	var rec Record
	err = f.Inject(ctx, c.env, &rec)
	require.ErrorIs(t, err, ErrNotTriggered)
	require.Zero(t, rec.Effect)
	require.Equal(t, pid, m.PID(), "the member kept running")
	_, err = gofailDo(ctx, "GET", m.GofailURL()+"/defragBeforeRename", "")
	require.ErrorContains(t, err, "failpoint is disabled", "the point was disarmed")
}

func TestAvailability(t *testing.T) {
	one := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name string
		want string // "" means available
	}{
		{"kill", ""},
		{"pause-leader", ""},
		{"pause-follower", "needs at least 2 members"},
		{"raftBeforeFollowerSend:panic", "needs at least 2 members"},
		{"blackhole-member", "needs at least 2 members"},
		{"client-partition", ""},
		{"beforePublishing:panic", "fires only while a member starts"},
		{"beforeApplyOneConfChange:panic", "needs a membership change"},
		{"raftBeforeSave:sleep", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Lookup(tc.name)
			require.NoError(t, err)
			err = f.Available(ctx, one.c)
			if tc.want == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.want)
			}
		})
	}
	err := GofailPanic{point: point{name: "noSuchPoint"}}.Available(ctx, one.c)
	require.ErrorContains(t, err, "failpoint noSuchPoint is not in the etcd binary of member-0")
	require.ErrorContains(t, err, "raftBeforeSave")
}

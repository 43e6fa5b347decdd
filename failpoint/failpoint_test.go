package failpoint

import (
	"context"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

func TestLookup(t *testing.T) {
	f, err := Lookup("kill")
	require.NoError(t, err)
	require.Equal(t, "kill", f.Name())
	f, err = Lookup("raftBeforeSave")
	require.NoError(t, err)
	require.Equal(t, GofailPanic{Point: "raftBeforeSave"}, f)
	_, err = Lookup("raftBeforeSav")
	require.ErrorContains(t, err, `unknown failpoint "raftBeforeSav" (valid: afterCommit,`)
	require.ErrorContains(t, err, "kill")
}

func startCluster(t *testing.T, size int) (*cluster.Cluster, Env) {
	t.Helper()
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg := zaptest.NewLogger(t)
	c, err := cluster.Start(ctx, cluster.Config{Size: size, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: lg})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, Env{Cluster: c, Logger: lg, Rand: rand.New(rand.NewSource(1))}
}

func pids(c *cluster.Cluster) map[string]int {
	out := map[string]int{}
	for _, m := range c.Members() {
		out[m.Name()] = m.PID()
	}
	return out
}

// TestInjectRestartsTheTarget checks each kind of fault visibly hits one
// member (a new process afterwards) and returns with the cluster healthy.
func TestInjectRestartsTheTarget(t *testing.T) {
	tests := []struct {
		name string
		f    Failpoint
		// logLine must appear in the target's log after the fault.
		logLine string
	}{
		{"kill", Kill{}, "=== exited"},
		// raftBeforeSave is reached on every raft Ready, heartbeats included.
		{"gofail panic", GofailPanic{Point: "raftBeforeSave"}, "panic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, env := startCluster(t, 3)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, tc.f.Available(ctx, c))
			before := pids(c)
			member, err := tc.f.Inject(ctx, env)
			require.NoError(t, err)
			after := pids(c)
			for name, pid := range before {
				if name == member {
					require.NotEqual(t, pid, after[name], "%s was restarted", name)
				} else {
					require.Equal(t, pid, after[name], "%s was left alone", name)
				}
			}
			require.NoError(t, c.WaitHealthy(ctx))
			var target *cluster.Member
			for _, m := range c.Members() {
				if m.Name() == member {
					target = m
				}
			}
			require.NotNil(t, target)
			require.Contains(t, readFile(t, target.LogPath()), tc.logLine)
		})
	}
}

func TestGofailPanicNotTriggered(t *testing.T) {
	c, env := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An idle single member never applies a snapshot.
	f := GofailPanic{Point: "raftBeforeApplySnap", TriggerTimeout: time.Second}
	require.NoError(t, f.Available(ctx, c))
	pid := c.Members()[0].PID()
	_, err := f.Inject(ctx, env)
	require.ErrorIs(t, err, ErrNotTriggered)
	require.Equal(t, pid, c.Members()[0].PID(), "the member kept running")
	points, err := gofailList(ctx, c.Members()[0])
	require.NoError(t, err)
	require.Contains(t, points, "raftBeforeApplySnap")
	body, err := gofailDo(ctx, "GET", c.Members()[0].GofailURL()+"/raftBeforeApplySnap", "")
	require.Error(t, err, "the point was disarmed, so reading it finds nothing: %q", body)
}

func TestGofailPanicUnavailable(t *testing.T) {
	c, _ := startCluster(t, 1)
	err := GofailPanic{Point: "noSuchPoint"}.Available(context.Background(), c)
	require.ErrorContains(t, err, "failpoint noSuchPoint is not in the etcd binary of member-0")
	require.ErrorContains(t, err, "raftBeforeSave")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

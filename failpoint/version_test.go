package failpoint

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/releases"
)

// TestOfflineMigrate: on a cluster of one v3.6+ release, etcdutl refuses
// a target below 3.5 and (from v3.6) the older etcdutl refuses newer
// data, each with the data dir unchanged; the newer etcdutl migrates the
// member down; the older binary refuses to join the cluster at the newer
// cluster version, and says so; the member is migrated back, runs its own
// release again and catches up. It needs the release before the tested
// one (built on first use), so it runs only with
// ETCD_ROBUSTNESS_FAULT_TESTS.
func TestOfflineMigrate(t *testing.T) {
	if os.Getenv("ETCD_ROBUSTNESS_FAULT_TESTS") == "" {
		t.Skip("builds the release before the tested one: set ETCD_ROBUSTNESS_FAULT_TESTS=1 (make test-faults)")
	}
	bins := testetcd.Binaries(t)
	line, err := releases.Line(bins.Version)
	require.NoError(t, err)
	if !releases.AtLeast(line, "3.6") {
		t.Skipf("%s keeps no storage version", bins.Version)
	}
	c := startCluster(t, 3)
	c.writes(t)
	f, err := Lookup("etcdutl-migrate")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Available (the etcdutl beside each member's etcd serves), but not
	// without the release binaries.
	require.NoError(t, f.Available(ctx, c.c))
	var rec Record
	require.ErrorContains(t, f.Inject(ctx, c.env, &rec), "Env.Release is nil")

	env := c.env
	env.Release = etcdbuild.ReleaseFunc(bins.Etcd, zap.NewNop())
	before := pids(c.c)
	rec = Record{}
	require.NoError(t, f.Inject(ctx, env, &rec))
	t.Logf("detail: %s", rec.Detail)
	require.Len(t, rec.Targets, 1)
	require.NotZero(t, rec.Effect)
	target := c.member(t, rec.Targets[0])
	require.NotEqual(t, c.leader(t), target, "a follower was migrated")
	require.Equal(t, bins.Etcd, target.EtcdPath(), "back on its own release")
	for name, pid := range before {
		if name == target.Name() {
			require.NotEqual(t, pid, target.PID(), "%s was restarted", name)
		} else {
			require.Equal(t, pid, c.member(t, name).PID(), "%s kept serving", name)
		}
	}
	for _, want := range []string{"etcdutl migrate --target-version", "refused", "invalid downgrade", target.Name() + " after: server " + strings.TrimPrefix(bins.Version, "v")} {
		require.Contains(t, rec.Detail, want)
	}
	log := readFile(t, target.LogPath())
	require.Contains(t, log, "=== release ")
	require.Contains(t, log, "=== try start ")
	require.Contains(t, log, "invalid downgrade")
	// The refused start is no process of the member's: every exit
	// recorded is the harness's own stop.
	requireExitsAccounted(t, target, rec)
	requireCaughtUp(t, c, target)
}

// requireExitsAccounted checks that every end of m's processes was the
// harness's doing or is declared by rec.
func requireExitsAccounted(t *testing.T, m *cluster.Member, rec Record) {
	t.Helper()
	for _, e := range m.Exits() {
		if !e.Exited() || e.ByHarness() {
			continue
		}
		declared := false
		for _, x := range rec.Explains {
			if x.Member == m.Name() && strings.Contains(strings.Join(e.Log, "\n"), x.LogContains[0]) && containsKind(x.Kinds, e.Kind()) {
				declared = true
			}
		}
		require.True(t, declared, "an exit of %s the fault does not declare: %+v", m.Name(), e)
	}
}

func containsKind(ks []history.ExitKind, k history.ExitKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

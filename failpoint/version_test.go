package failpoint

import (
	"context"
	"os"
	"regexp"
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
	bins, line := migratable(t)
	// A flag v3.6 made plain and v3.5 knows only as --experimental-: the
	// lower release must be started with it respelled (v3.5.35 exits on
	// the plain name before it looks at the data), and the member must
	// get it back as its own release spells it.
	batch, err := etcdFlag(bins.Etcd, "--compaction-batch-limit", "--experimental-compaction-batch-limit")
	require.NoError(t, err)
	flags := []string{batch + "=50"}
	c := startCluster(t, 3, flags...)
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
	require.Equal(t, flags, target.ExtraArgs(), "back with its own flags")
	prevBatch, err := etcdFlag(releaseEtcd(t, env, releases.Newest[lineBefore(t, line)]), "--compaction-batch-limit", "--experimental-compaction-batch-limit")
	require.NoError(t, err)
	if prevBatch != batch {
		require.Contains(t, rec.Detail, "flags for "+releases.Newest[lineBefore(t, line)]+": "+batch+" -> "+prevBatch)
	}
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

// TestOfflineMigrateDisturbed: etcdutl-migrate-disturbed puts one more
// fault on another member while the migrated one is offline, so the
// 3-member cluster is without a quorum for a while; the disturbance must
// take effect on a member other than the migrated one, the cluster must
// recover without waiting for the offline member, and the migration
// must still finish with every member back on its release.
func TestOfflineMigrateDisturbed(t *testing.T) {
	bins, line := migratable(t)
	c := startCluster(t, 3)
	c.writes(t)
	f, err := Lookup("etcdutl-migrate-disturbed")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := c.env
	env.Release = etcdbuild.ReleaseFunc(bins.Etcd, zap.NewNop())
	var rec Record
	require.NoError(t, f.Inject(ctx, env, &rec))
	t.Logf("detail: %s", rec.Detail)
	require.NotEmpty(t, rec.Targets)
	migrated := rec.Targets[0]
	m := regexp.MustCompile(`disturbance (kill|pause-follower|blackhole-member) on (member-\d) took effect at`).FindStringSubmatch(rec.Detail)
	require.NotNil(t, m, "the disturbance took effect")
	require.NotEqual(t, migrated, m[2], "the disturbance hit a member that was serving, not the offline one")
	for _, want := range []string{"etcdutl migrate --target-version", "invalid downgrade", migrated + " after: server " + strings.TrimPrefix(bins.Version, "v")} {
		require.Contains(t, rec.Detail, want)
	}
	require.Less(t, strings.Index(rec.Detail, "etcdutl migrate --target-version "+lineBefore(t, line)), strings.Index(rec.Detail, "disturbance "),
		"the disturbance comes after the migration down")
	for _, mem := range c.c.Members() {
		require.Equal(t, bins.Etcd, mem.EtcdPath(), "%s is back on its release", mem.Name())
		requireExitsAccounted(t, mem, rec)
	}
	require.NoError(t, c.c.WaitHealthy(ctx))
}

// migratable skips unless ETCD_ROBUSTNESS_FAULT_TESTS is set and the
// tested release keeps a storage version (v3.6+); it returns the release's
// binaries and line.
func migratable(t *testing.T) (etcdbuild.Binaries, string) {
	t.Helper()
	if os.Getenv("ETCD_ROBUSTNESS_FAULT_TESTS") == "" {
		t.Skip("builds the release before the tested one: set ETCD_ROBUSTNESS_FAULT_TESTS=1 (make test-faults)")
	}
	bins := testetcd.Binaries(t)
	line, err := releases.Line(bins.Version)
	require.NoError(t, err)
	if !releases.AtLeast(line, "3.6") {
		t.Skipf("%s keeps no storage version", bins.Version)
	}
	return bins, line
}

// lineBefore is the release line before line.
func lineBefore(t *testing.T, line string) string {
	t.Helper()
	prev, err := releases.Previous(line)
	require.NoError(t, err)
	return prev
}

// releaseEtcd is the etcd binary of version, as env provisions it.
func releaseEtcd(t *testing.T, env Env, version string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := env.Release(ctx, version)
	require.NoError(t, err)
	return b.Etcd
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

// fakeMember records what a move between releases does to a member.
type fakeMember struct {
	args                  []string
	etcd, etcdctl, etcdut string
	switches              []string // "from -> to"
}

func (f *fakeMember) Name() string               { return "member-1" }
func (f *fakeMember) ExtraArgs() []string        { return append([]string(nil), f.args...) }
func (f *fakeMember) SetExtraArgs(args []string) { f.args = append([]string(nil), args...) }
func (f *fakeMember) SwitchRelease(from, to, etcd, etcdctl, etcdutl string) {
	f.etcd, f.etcdctl, f.etcdut = etcd, etcdctl, etcdutl
	f.switches = append(f.switches, from+" -> "+to)
}

// TestOfflineMigrateFlags: etcdutl-migrate's moves of a member: down to
// the lower release with its flags spelled as that release knows them
// (v3.5.35 exits on --compaction-batch-limit, which it knows only as
// --experimental-compaction-batch-limit), and back to its own release
// with its flags as they were. A flag the lower release has in neither
// spelling is an error that leaves the member as it was.
func TestOfflineMigrateFlags(t *testing.T) {
	dir := t.TempDir()
	e35 := fakeEtcd(t, dir, "etcd35", "  --experimental-compaction-batch-limit 1000\n  --snapshot-count '10000'",
		"--experimental-compaction-batch-limit", "--snapshot-count", "--experimental-snapshot-catchup-entries")
	e36 := fakeEtcd(t, dir, "etcd36", "  --compaction-batch-limit 1000\n  --experimental-compaction-batch-limit 1000\n  --snapshot-count '10000'\n  --snapshot-catchup-entries 5000\n  --experimental-snapshot-catchup-entries 5000",
		"--compaction-batch-limit", "--experimental-compaction-batch-limit", "--snapshot-count", "--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries")
	e37 := fakeEtcd(t, dir, "etcd37", "  --compaction-batch-limit 1000\n  --snapshot-count '10000'\n  --snapshot-catchup-entries 5000\n  --bootstrap-defrag-threshold-megabytes 0",
		"--compaction-batch-limit", "--snapshot-count", "--snapshot-catchup-entries", "--bootstrap-defrag-threshold-megabytes")
	bins := func(v, etcd string) etcdbuild.Binaries {
		return etcdbuild.Binaries{Version: v, Etcd: etcd, Etcdctl: etcd + "ctl", Etcdutl: etcd + "utl"}
	}
	v35, v36, v37 := bins("v3.5.35", e35), bins("v3.6.16", e36), bins("v3.7.3", e37)
	tests := []struct {
		name      string
		cur, prev etcdbuild.Binaries
		args      []string
		down      []string // the flags the lower release starts with
		err       string
	}{
		{name: "3.6 to 3.5: plain names respelled", cur: v36, prev: v35,
			args: []string{"--compaction-batch-limit=10", "--snapshot-count=100", "--snapshot-catchup-entries=20"},
			down: []string{"--experimental-compaction-batch-limit=10", "--snapshot-count=100", "--experimental-snapshot-catchup-entries=20"}},
		{name: "3.6 to 3.5: experimental names kept", cur: v36, prev: v35,
			args: []string{"--experimental-compaction-batch-limit=10"},
			down: []string{"--experimental-compaction-batch-limit=10"}},
		{name: "3.7 to 3.6: plain names kept", cur: v37, prev: v36,
			args: []string{"--compaction-batch-limit=10", "--snapshot-catchup-entries=20"},
			down: []string{"--compaction-batch-limit=10", "--snapshot-catchup-entries=20"}},
		{name: "a flag the lower release lacks", cur: v37, prev: v36,
			args: []string{"--bootstrap-defrag-threshold-megabytes=1"},
			err:  "has none of the flags --bootstrap-defrag-threshold-megabytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMember{args: tt.args, etcd: tt.cur.Etcd}
			args := m.ExtraArgs()
			err := switchBinaries(m, tt.cur.Version, tt.prev, nil)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.Equal(t, tt.args, m.args, "flags left as they were")
				require.Equal(t, tt.cur.Etcd, m.etcd, "release left as it was")
				require.Empty(t, m.switches)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.down, m.args)
			require.Equal(t, []string{tt.prev.Etcd, tt.prev.Etcdctl, tt.prev.Etcdutl}, []string{m.etcd, m.etcdctl, m.etcdut})
			backToOwn(m, tt.prev.Version, tt.cur, args)
			require.Equal(t, tt.args, m.args, "back with its own flags")
			require.Equal(t, []string{tt.cur.Etcd, tt.cur.Etcdctl, tt.cur.Etcdutl}, []string{m.etcd, m.etcdctl, m.etcdut})
			require.Equal(t, []string{tt.cur.Version + " -> " + tt.prev.Version, tt.prev.Version + " -> " + tt.cur.Version}, m.switches)
		})
	}
}

// A version fault's steps that span time record when they began, and the
// next one waits StepGap after the last one ended, so that the recovery
// stage can judge each; a moment's step has no Begin, and the first
// spanning step does not wait.
func TestStepsSpanAndGap(t *testing.T) {
	start := time.Now()
	env := Env{Logger: zap.NewNop(), Now: func() time.Duration { return time.Since(start) + time.Second }, StepGap: 300 * time.Millisecond}
	rec := &Record{}
	st := &steps{env: env, rec: rec}
	ctx := context.Background()

	st.add("before")
	b1, err := st.begin(ctx)
	require.NoError(t, err)
	require.Less(t, b1, time.Second+100*time.Millisecond, "the first step does not wait")
	st.spanned(b1, "member-0 started")
	end1 := rec.Steps[1].At
	b2, err := st.begin(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, b2, end1+300*time.Millisecond, "the next step waits StepGap after the last one ended")
	st.spanned(b2, "member-1 started")

	require.Len(t, rec.Steps, 3)
	require.Zero(t, rec.Steps[0].Begin, "a moment has no Begin")
	require.Equal(t, b1, rec.Steps[1].Begin)
	require.Equal(t, b2, rec.Steps[2].Begin)
	require.GreaterOrEqual(t, rec.Steps[2].At, rec.Steps[2].Begin)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = st.begin(cctx)
	require.ErrorIs(t, err, context.Canceled, "a wait is bounded by the context")
}

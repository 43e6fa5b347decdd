package failpoint

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/releases"
)

func TestDowngradeLines(t *testing.T) {
	for _, tc := range []struct {
		name      string
		versions  []string
		high, low string
		err       string
	}{
		{name: "one 3.7 release", versions: []string{"v3.7.3", "v3.7.3", "v3.7.3"}, high: "3.7", low: "3.6"},
		{name: "one 3.6 release", versions: []string{"v3.6.16", "v3.6.16", "v3.6.16"}, high: "3.6", low: "3.5"},
		{name: "mixed 3.7 and 3.6", versions: []string{"v3.6.16", "v3.7.3", "v3.6.16"}, high: "3.7", low: "3.6"},
		{name: "3.5 has no online downgrade", versions: []string{"v3.5.35", "v3.5.35", "v3.5.35"}, err: "from v3.6 on"},
		{name: "a skip of a line", versions: []string{"v3.7.3", "v3.5.35", "v3.7.3"}, err: "member-1 runs v3.5.35, neither 3.7 nor 3.6"},
		{name: "not a version", versions: []string{"v3.7.3", "main"}, err: "not an etcd version"},
		{name: "no member", versions: nil, err: "no member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			high, low, err := downgradeLines(tc.versions)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.high, high)
			require.Equal(t, tc.low, low)
		})
	}
}

func state(name, server, cluster, storage, downgrade string) memberState {
	return memberState{Name: name, Versions: releases.Versions{Server: server, Cluster: cluster, Storage: storage}, Downgrade: downgrade}
}

// TestSettledAt: a downgrade is finished only when every member runs the
// lower line, reports the lower cluster version and (v3.6+) storage
// version, and no downgrade enabled; each missing piece is named.
func TestSettledAt(t *testing.T) {
	done := []memberState{
		state("member-0", "3.6.16", "3.6.0", "3.6.0", "false"),
		state("member-1", "3.6.16", "3.6.0", "3.6.0", "false"),
	}
	lines := []string{"3.6", "3.6"}
	for _, tc := range []struct {
		name   string
		change func(ss []memberState)
		line   string
		why    string
	}{
		{name: "finished", change: func([]memberState) {}},
		{name: "a member still on the higher release", change: func(ss []memberState) { ss[1].Server = "3.7.3"; ss[1].Storage = "3.6.0" }, why: "member-1 runs 3.7.3, not 3.6"},
		{name: "cluster version not lowered", change: func(ss []memberState) { ss[0].Cluster = "3.7.0" }, why: "member-0 reports cluster version 3.7.0"},
		{name: "storage version not lowered", change: func(ss []memberState) { ss[0].Storage = "3.7.0" }, why: `member-0 reports storage version "3.7.0"`},
		{name: "no storage version on 3.6", change: func(ss []memberState) { ss[0].Storage = "" }, why: `member-0 reports storage version ""`},
		{name: "downgrade still enabled", change: func(ss []memberState) { ss[1].Downgrade = "true" }, why: "member-1 reports downgrade enabled true"},
		{name: "downgrade unknown", change: func(ss []memberState) { ss[1].Downgrade = "unknown (connection refused)" }, why: "member-1 reports downgrade enabled unknown"},
		{name: "a member that does not answer", change: func(ss []memberState) { ss[0].Err = "down" }, why: "member-0: down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := append([]memberState(nil), done...)
			tc.change(ss)
			ok, why := settledAt(ss, "3.6", lines)
			if tc.why == "" {
				require.True(t, ok, why)
				return
			}
			require.False(t, ok)
			require.Contains(t, why, tc.why)
		})
	}
	// v3.5 keeps no storage version: none is asked of a 3.5 server.
	ok, why := settledAt([]memberState{state("member-0", "3.5.35", "3.5.0", "", "false")}, "3.5", []string{"3.5"})
	require.True(t, ok, why)
}

// TestReadyToDowngrade: no member may start on the lower release before
// every member reports the lower cluster version and storage version.
func TestReadyToDowngrade(t *testing.T) {
	ok, why := readyToDowngrade([]memberState{
		state("member-0", "3.7.3", "3.6.0", "3.6.0", "true"),
		state("member-1", "3.7.3", "3.6.0", "3.7.0", "true"),
	}, "3.6")
	require.False(t, ok)
	require.Equal(t, `member-1 reports storage version "3.7.0", not 3.6`, why)
	ok, why = readyToDowngrade([]memberState{state("member-0", "3.7.3", "3.7.0", "3.7.0", "true")}, "3.6")
	require.False(t, ok)
	require.Contains(t, why, "cluster version 3.7.0, not 3.6")
	ok, why = readyToDowngrade([]memberState{
		state("member-0", "3.7.3", "3.6.0", "3.6.0", "true"),
		state("member-1", "3.6.16", "3.6.0", "3.6.0", "true"),
	}, "3.6")
	require.True(t, ok, why)
}

// TestDowngradeFaults: both are registered in the version family, run by
// name only, and ask the run for more time than a fault gets by default.
func TestDowngradeFaults(t *testing.T) {
	for _, name := range []string{"downgrade", "downgrade-upgrade", "downgrade-disturbed"} {
		f, err := Lookup(name)
		require.NoError(t, err)
		require.Equal(t, Version, f.Family())
		require.False(t, InRandomPool(f), "%s needs another release's binaries", name)
		require.Equal(t, downgradeTimeout, Timeout(f, 2*time.Minute))
	}
	k, err := Lookup("kill")
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, Timeout(k, 2*time.Minute))
}

// TestDowngradeOnRealBinaries: the downgrade, and the upgrade back, on a
// 3-member cluster of the tested release under writes, and the same with a
// disturbance in the middle (downgrade-disturbed). Every step is
// recorded with each member's versions, every member ends on its own
// release, and every exit is the harness's own stop. It needs the
// release before the tested one (built on first use), so it runs only
// with ETCD_ROBUSTNESS_FAULT_TESTS (make test-downgrade).
func TestDowngradeOnRealBinaries(t *testing.T) {
	if os.Getenv("ETCD_ROBUSTNESS_FAULT_TESTS") == "" {
		t.Skip("needs the release before the tested one: set ETCD_ROBUSTNESS_FAULT_TESTS=1 (make test-downgrade)")
	}
	bins := testetcd.Binaries(t)
	line, err := releases.Line(bins.Version)
	require.NoError(t, err)
	if !releases.AtLeast(line, "3.6") {
		t.Skipf("%s has no online downgrade", bins.Version)
	}
	low, _ := releases.Previous(line)
	for _, name := range []string{"downgrade-upgrade", "downgrade-disturbed"} {
		t.Run(name, func(t *testing.T) {
			c := startCluster(t, 3)
			c.writes(t)
			ctx, cancel := context.WithTimeout(context.Background(), downgradeTimeout)
			defer cancel()
			f, err := Lookup(name)
			require.NoError(t, err)
			require.NoError(t, f.Available(ctx, c.c))
			env := c.env
			env.Release = etcdbuild.ReleaseFunc(bins.Etcd, zap.NewNop())
			var rec Record
			require.NoError(t, f.Inject(ctx, env, &rec))
			t.Logf("detail: %s", rec.Detail)
			require.Len(t, rec.Targets, 3)
			require.NotZero(t, rec.Effect)
			var what []string
			for _, s := range rec.Steps {
				what = append(what, s.What)
			}
			all := strings.Join(what, "\n")
			wants := []string{
				"before: member-0 server " + strings.TrimPrefix(bins.Version, "v"),
				"downgrade validate " + low, "downgrade enable " + low,
				"cluster version and storage versions lowered",
				"started on " + releases.Newest[low],
				"downgrade to " + low + " finished",
				"upgrade back to " + line + " finished",
			}
			steps := 2 + 2*3 + 2*3 + 2
			if name == "downgrade-disturbed" {
				// The disturbance took effect, between two swaps, and the
				// change still finished.
				require.Regexp(t, `disturbance (kill|pause-follower|blackhole-member) on member-\d took effect at`, all)
				steps += 2
			}
			for _, want := range wants {
				require.Contains(t, all, want)
			}
			require.GreaterOrEqual(t, len(rec.Steps), steps)
			for _, m := range c.c.Members() {
				require.Equal(t, bins.Etcd, m.EtcdPath(), "%s is back on its release", m.Name())
				requireExitsAccounted(t, m, rec)
			}
		})
	}
}

// fakeEtcd writes a script in dir that answers --help with help, and
// parses (exits 0 on `NAME=VALUE --version`) only the flags in parses, as
// etcd does (exit 2 on a flag it does not define).
func fakeEtcd(t *testing.T, dir, name, help string, parses ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\nif [ \"$1\" = --help ]; then cat <<'EOF'\n" + help + "\nEOF\nexit 0; fi\ncase \"${1%%=*}\" in\n"
	for _, f := range parses {
		script += f + ") exit 0;;\n"
	}
	script += "esac\necho \"flag provided but not defined: ${1%%=*}\" >&2\nexit 2\n"
	require.NoError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

// TestRespell: a member moved to another release gets its flags in that
// release's spelling: the plain name where the binary has it, else the
// --experimental- one, found in its --help or, for a flag the help leaves
// out (v3.5.35's --experimental-snapshot-catchup-entries), by the binary
// parsing it; a flag it has in neither spelling is an error.
func TestRespell(t *testing.T) {
	dir := t.TempDir()
	v35 := fakeEtcd(t, dir, "etcd35", "  --snapshot-count '10000'\n  --experimental-compaction-batch-limit 1000\n  --heartbeat-interval '100'",
		"--snapshot-count", "--experimental-compaction-batch-limit", "--heartbeat-interval", "--experimental-snapshot-catchup-entries")
	v37 := fakeEtcd(t, dir, "etcd37", "  --snapshot-count '10000'\n  --compaction-batch-limit 1000\n  --heartbeat-interval '100'\n  --snapshot-catchup-entries 5000",
		"--snapshot-count", "--compaction-batch-limit", "--heartbeat-interval", "--snapshot-catchup-entries")
	args := []string{"--snapshot-count=100", "--compaction-batch-limit=10", "--heartbeat-interval=50", "--snapshot-catchup-entries=20", "bare"}
	got, changed, err := respell(args, v35)
	require.NoError(t, err)
	require.Equal(t, []string{"--snapshot-count=100", "--experimental-compaction-batch-limit=10", "--heartbeat-interval=50", "--experimental-snapshot-catchup-entries=20", "bare"}, got)
	require.Equal(t, []string{"--compaction-batch-limit -> --experimental-compaction-batch-limit", "--snapshot-catchup-entries -> --experimental-snapshot-catchup-entries"}, changed)
	back, changed, err := respell(got, v37)
	require.NoError(t, err)
	require.Equal(t, args, back)
	require.Equal(t, []string{"--experimental-compaction-batch-limit -> --compaction-batch-limit", "--experimental-snapshot-catchup-entries -> --snapshot-catchup-entries"}, changed)
	_, _, err = respell([]string{"--watch-progress-notify-interval=1s"}, v37)
	require.ErrorContains(t, err, "has none of the flags --watch-progress-notify-interval, --experimental-watch-progress-notify-interval")
}

// TestEtcdFlagWith: a flag that the binary's --help leaves out is found by
// asking the binary to parse it (v3.5.35 takes
// --experimental-snapshot-catchup-entries without listing it); one it
// parses in neither spelling is an error.
func TestEtcdFlagWith(t *testing.T) {
	dir := t.TempDir()
	// --help lists one flag; any other is parsed only if it is the
	// unlisted one, as `etcd NAME=VALUE --version` does.
	script := "#!/bin/sh\nif [ \"$1\" = --help ]; then echo '  --snapshot-count 10000'; exit 0; fi\n" +
		"case \"$1\" in --experimental-snapshot-catchup-entries=*) exit 0;; esac\nexit 2\n"
	p := filepath.Join(dir, "etcd")
	require.NoError(t, os.WriteFile(p, []byte(script), 0o755))
	got, err := etcdFlagWith(p, "10", "--snapshot-count")
	require.NoError(t, err)
	require.Equal(t, "--snapshot-count", got)
	_, err = etcdFlag(p, "--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries")
	require.Error(t, err, "the help text does not list it")
	got, err = etcdFlagWith(p, "10", "--snapshot-catchup-entries", "--experimental-snapshot-catchup-entries")
	require.NoError(t, err)
	require.Equal(t, "--experimental-snapshot-catchup-entries", got)
	_, err = etcdFlagWith(p, "10", "--compaction-batch-limit", "--experimental-compaction-batch-limit")
	require.ErrorContains(t, err, "neither in its --help nor parsed")
}

package failpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

// TestLyingFsyncFiles: the disk lies to the bbolt file (and the file a
// defrag renames over it), or to the WAL's files, and to nothing else.
func TestLyingFsyncFiles(t *testing.T) {
	tests := []struct {
		rel     string
		db, wal bool
	}{
		{rel: "member/snap/db", db: true},
		{rel: "member/snap/db.tmp.3141", db: true},
		{rel: "member/snap/0000000000000002-0000000000000010.snap"},
		{rel: "member/snap/0000000000000010.snap.db"},
		{rel: "member/wal/0000000000000000-0000000000000000.wal", wal: true},
		{rel: "member/wal/0.tmp", wal: true},
		{rel: "member/db"},
		{rel: "db"},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			require.Equal(t, tt.db, LyingFsync{}.lies(tt.rel), "lying-fsync")
			require.Equal(t, tt.wal, LyingFsync{WAL: true}.lies(tt.rel), "lying-fsync-wal")
		})
	}
}

// TestCorruptCheckFlags: the corruption checks are asked for with the
// flags the release's etcd has: feature gates from v3.6, the experimental
// flags before, and nothing it does not know.
func TestCorruptCheckFlags(t *testing.T) {
	tests := []struct {
		name string
		help string
		want []string
	}{
		{
			name: "v3.7: gates and the plain flags",
			help: "  --feature-gates ''\n    CompactHashCheck=true|false (ALPHA - default=false)\n    InitialCorruptCheck=true|false (ALPHA - default=false)\n" +
				"  --corrupt-check-time '0s'\n  --compact-hash-check-time '1m'\n",
			want: []string{"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true", "--corrupt-check-time=2s", "--compact-hash-check-time=2s"},
		},
		{
			name: "v3.6: gates, and the plain flags before the deprecated ones",
			help: "  --feature-gates ''\n    CompactHashCheck=true|false (ALPHA - default=false)\n    InitialCorruptCheck=true|false (ALPHA - default=false)\n" +
				"  --experimental-initial-corrupt-check 'false'\n  --experimental-corrupt-check-time '0s'\n  --corrupt-check-time '0s'\n" +
				"  --experimental-compact-hash-check-enabled 'false'\n  --experimental-compact-hash-check-time '1m'\n  --compact-hash-check-time '1m'\n",
			want: []string{"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true", "--corrupt-check-time=2s", "--compact-hash-check-time=2s"},
		},
		{
			name: "v3.5: the experimental flags",
			help: "  --experimental-initial-corrupt-check 'false'\n  --experimental-corrupt-check-time '0s'\n" +
				"  --experimental-compact-hash-check-enabled 'false'\n  --experimental-compact-hash-check-time '1m'\n",
			want: []string{"--experimental-initial-corrupt-check=true", "--experimental-compact-hash-check-enabled=true",
				"--experimental-corrupt-check-time=2s", "--experimental-compact-hash-check-time=2s"},
		},
		{name: "a release without them", help: "  --data-dir '${name}.etcd'\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "etcd", strings.Repeat("x", i))
			etcdHelp.Store(path, tt.help)
			require.Equal(t, tt.want, corruptCheckFlags(path))
		})
	}
}

// fileSum is the size and SHA-256 of a file.
func fileSum(t *testing.T, path string) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return int64(len(b)), hex.EncodeToString(s[:8])
}

// TestLyingFsync: on a real cluster whose members' data dirs are on a
// LazyFS, a member's bbolt file loses, at the crash, the bytes its lying
// fsyncs acknowledged (its size or hash is not what etcd had synced), and
// the member runs again; then the WAL fault, end to end, records what it
// dropped and what etcd did, and the cluster serves. Closing the cluster
// leaves no LazyFS mounted, also when the test fails. Skips where FUSE
// cannot be mounted.
func TestLyingFsync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	f := LyingFsync{}
	if err := f.Available(context.Background(), nil); err != nil {
		t.Skipf("lying-fsync is not available here: %v", err)
	}
	bins := testetcd.Binaries(t)
	c := startCluster(t, 3, corruptCheckFlags(bins.Etcd)...)
	t.Cleanup(func() {
		require.NoError(t, c.c.Close())
		mounts, err := os.ReadFile("/proc/mounts")
		require.NoError(t, err)
		require.NotContains(t, string(mounts), c.c.Dir(), "no LazyFS is left mounted")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	onLazyFS(ctx, t, c, f)
	c.writes(t)

	t.Run("the bbolt file loses what its fsyncs acknowledged", func(t *testing.T) {
		m := c.c.Members()[1]
		l := m.LazyFS()
		db := filepath.Join(m.DataDir(), "member", "snap", "db")
		l.LieSyncs(f.lies)
		require.Eventually(t, func() bool { return l.Lied()["member/snap/db"].Bytes > 0 }, 10*time.Second, 10*time.Millisecond,
			"etcd fsyncs its bbolt file while it applies writes")
		size, sum := fileSum(t, db) // what etcd wrote and was told is on disk
		lie := l.Lied()["member/snap/db"]
		t.Logf("%d lying fsyncs of member/snap/db; the last acknowledged %d bytes; the file is %d bytes, sha256 %s", lie.Fsyncs, lie.Bytes, size, sum)
		l.Crash()
		require.NoError(t, m.Kill())
		lost := l.Unsynced()["member/snap/db"]
		require.GreaterOrEqual(t, lost, lie.Bytes, "what the lies acknowledged is not on disk")
		_, err := l.LoseUnsynced()
		require.NoError(t, err)
		afterSize, afterSum := fileSum(t, db)
		t.Logf("after the crash: %d bytes, sha256 %s (%d bytes dropped)", afterSize, afterSum, lost)
		require.LessOrEqual(t, afterSize, size)
		require.NotEqual(t, sum, afterSum, "the bytes the lying fsyncs acknowledged are gone")
		require.NoError(t, restart(ctx, m))
		requireCaughtUp(t, c, m)
	})

	t.Run("lying-fsync-wal end to end", func(t *testing.T) {
		rec, err := injectObserved(t, c, LyingFsync{WAL: true}, time.Second, nil)
		t.Logf("detail: %s", rec.Detail)
		require.NoError(t, err)
		require.NotZero(t, rec.Effect)
		require.Regexp(t, `lied to [1-9][0-9]* fsyncs of member/wal/[0-9a-f-]+\.wal \(the last acknowledged [1-9][0-9]* bytes`, rec.Detail)
		require.Regexp(t, `dropped at the crash: .*member/wal/[0-9a-f-]+\.wal [1-9][0-9]*`, rec.Detail)
		require.Regexp(t, `; etcd: (refused to start it|took it back|a corruption check raised)`, rec.Detail)
		require.NoError(t, c.c.WaitHealthy(ctx))
		for _, e := range rec.Explains {
			require.Equal(t, rec.Targets[0], e.Member, "the fault declares only its target's exits")
		}
	})
}

// onLazyFS restarts each member on a LazyFS, as the run does for a disk
// fault, and waits until the cluster is healthy.
func onLazyFS(ctx context.Context, t *testing.T, c *testCluster, f MemberPreparer) {
	t.Helper()
	for _, m := range c.c.Members() {
		require.NoError(t, m.Stop(ctx))
		require.NoError(t, f.PrepareMember(m))
		require.NoError(t, m.Start(ctx))
	}
	require.NoError(t, c.c.WaitHealthy(ctx))
}

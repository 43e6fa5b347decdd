package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// mountLazyFS mounts a LazyFS for a test, or skips the test if this machine
// cannot mount FUSE.
func mountLazyFS(t *testing.T) (*LazyFS, string, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	require.NoError(t, os.Mkdir(backing, 0o755))
	require.NoError(t, os.Mkdir(mnt, 0o755))
	l, err := MountLazyFS(backing, mnt)
	if errors.Is(err, ErrNoFUSE) {
		t.Skipf("no FUSE on this machine: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Unmount() })
	return l, backing, mnt
}

// TestLazyFSLosesUnsyncedWrites: what was fsynced survives, what was
// written after it is lost: appended bytes and overwritten ones alike.
func TestLazyFSLosesUnsyncedWrites(t *testing.T) {
	l, backing, mnt := mountLazyFS(t)
	p := filepath.Join(mnt, "wal")
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.Write([]byte("synced-"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	_, err = f.Write([]byte("unsynced-tail"))
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("SYNCED"), 0) // overwrite synced bytes
	require.NoError(t, err)
	require.NoError(t, f.Close())

	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "SYNCED-unsynced-tail", string(got), "reads see every write")
	require.Equal(t, map[string]int64{"wal": int64(len("unsynced-tail")) + 7}, l.Unsynced())

	changed, err := l.LoseUnsynced()
	require.NoError(t, err)
	require.Equal(t, []string{"wal"}, changed)
	got, err = os.ReadFile(filepath.Join(backing, "wal"))
	require.NoError(t, err)
	require.Equal(t, "synced-", string(got), "the file is back to its last fsync, shorter than what was written")
	got, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "synced-", string(got), "through the mount too")
	require.Empty(t, l.Unsynced())
}

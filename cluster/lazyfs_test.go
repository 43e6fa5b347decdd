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

// TestLazyFSLiesAboutFsync: while the disk lies, an fsync of a matching
// file succeeds but syncs nothing, so the crash takes the file back to its
// last honest fsync, bytes the lie acknowledged included; a file the lie
// does not match syncs as before.
func TestLazyFSLiesAboutFsync(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		wantAfter  string
		wantLied   map[string]Lie
		wantLosing bool
	}{
		{name: "lied-to file loses what its fsync acknowledged", file: "db", wantAfter: "honest-",
			wantLied: map[string]Lie{"db": {Fsyncs: 2, Bytes: int64(len("acked-twice-"))}}, wantLosing: true},
		{name: "other file keeps what it synced", file: "wal", wantAfter: "honest-acked-twice-", wantLied: map[string]Lie{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, backing, mnt := mountLazyFS(t)
			f, err := os.Create(filepath.Join(mnt, tt.file))
			require.NoError(t, err)
			defer f.Close()
			_, err = f.Write([]byte("honest-"))
			require.NoError(t, err)
			require.NoError(t, f.Sync())
			l.LieSyncs(func(rel string) bool { return rel == "db" })
			_, err = f.Write([]byte("acked-"))
			require.NoError(t, err)
			require.NoError(t, f.Sync(), "a lying fsync succeeds")
			_, err = f.Write([]byte("twice-"))
			require.NoError(t, err)
			require.NoError(t, f.Sync())
			require.Equal(t, tt.wantLied, l.Lied())
			if tt.wantLosing {
				require.Equal(t, map[string]int64{tt.file: int64(len("acked-twice-"))}, l.Unsynced(), "the acknowledged bytes are not on disk")
			} else {
				require.Empty(t, nonZeroUnsynced(l.Unsynced()))
			}
			require.NoError(t, f.Close())

			_, err = l.LoseUnsynced()
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(backing, tt.file))
			require.NoError(t, err)
			require.Equal(t, tt.wantAfter, string(got))
			require.Empty(t, l.Lied(), "LoseUnsynced ends the lie")

			// Honest again: an fsync now makes the bytes stay.
			f2, err := os.OpenFile(filepath.Join(mnt, tt.file), os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f2.Write([]byte("x"))
			require.NoError(t, err)
			require.NoError(t, f2.Sync())
			require.NoError(t, f2.Close())
			require.Empty(t, nonZeroUnsynced(l.Unsynced()))
		})
	}
}

func nonZeroUnsynced(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

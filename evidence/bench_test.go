package evidence

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

const benchEntries = 20000

// benchWAL writes a member WAL of benchEntries entries: the bootstrap
// entries, then puts of 100-byte values saved 10 at a time with a hard
// state, as etcd's raft loop does under load. With snapshots, it writes a
// snapshot marker every 5000 entries (all files are kept).
func benchWAL(b *testing.B, snapshots bool) (dataDir string, bytes int64) {
	b.Helper()
	ops := []op{save(hs(2, 4), boot()...)}
	pad := fmt.Sprintf("%090d", 0)
	for i := uint64(5); i <= benchEntries; i += 10 {
		last := min(i+9, benchEntries)
		ops = append(ops, save(hs(2, last), puts(i, last, 2, pad+"-")...))
		if snapshots && last%5000 < 10 && last > 10 {
			ops = append(ops, snap(last-5, 2))
		}
	}
	dataDir = writeWAL(b, ops...)
	for _, n := range walFiles(b, dataDir) {
		bytes += dataEnd(b, filepath.Join(dataDir, "member", "wal", n))
	}
	return dataDir, bytes
}

func BenchmarkReadWAL(b *testing.B) {
	for _, snapshots := range []bool{false, true} {
		b.Run(fmt.Sprintf("entries=%d/snapshots=%v", benchEntries, snapshots), func(b *testing.B) {
			dataDir, size := benchWAL(b, snapshots)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				mw := ReadWAL(zap.NewNop(), "m", dataDir)
				if mw.Error != "" || len(mw.Entries) != benchEntries {
					b.Fatalf("read %d entries, error %q", len(mw.Entries), mw.Error)
				}
			}
		})
	}
}

func BenchmarkMerge(b *testing.B) {
	dataDir, _ := benchWAL(b, false)
	mw := ReadWAL(zap.NewNop(), "m", dataDir)
	require.Empty(b, mw.Error)
	wals := []MemberWAL{mw, mw, mw}
	for i := range wals {
		wals[i].Member = fmt.Sprintf("member-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		log, err := Merge(wals)
		if err != nil || len(log.Entries) != benchEntries {
			b.Fatalf("merged %d entries: %v", len(log.Entries), err)
		}
	}
}

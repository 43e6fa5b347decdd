package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

func init() { register(LoseUnsynced{}) }

// LoseUnsynced crashes a member and loses what it wrote but did not fsync,
// as a power loss does. The members' data dirs are on a LazyFS (a FUSE
// file system written here). The fault slows the target's fsyncs (each is
// held 300 ms) until its WAL has written but unsynced bytes, stops its
// disk and SIGKILLs it, puts every file back as it was at its last fsync,
// and restarts it.
type LoseUnsynced struct{}

// Name implements Failpoint.
func (LoseUnsynced) Name() string { return "lose-unsynced-writes" }

// Family implements Failpoint.
func (LoseUnsynced) Family() Family { return Disk }

var (
	fuseOnce sync.Once
	fuseErr  error
)

// fuseAvailable mounts a LazyFS once in a temp dir to see if FUSE works.
func fuseAvailable() error {
	fuseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lazyfs-probe-")
		if err != nil {
			fuseErr = err
			return
		}
		defer os.RemoveAll(dir)
		backing, mnt := filepath.Join(dir, "b"), filepath.Join(dir, "m")
		_ = os.Mkdir(backing, 0o700)
		_ = os.Mkdir(mnt, 0o700)
		l, err := cluster.MountLazyFS(backing, mnt)
		if err != nil {
			fuseErr = err
			return
		}
		fuseErr = l.Unmount()
	})
	return fuseErr
}

// Available implements Failpoint: this machine must mount FUSE (/dev/fuse,
// and root or fusermount3).
func (LoseUnsynced) Available(context.Context, *cluster.Cluster) error {
	if err := fuseAvailable(); err != nil {
		return fmt.Errorf("cannot mount the LazyFS: %w", err)
	}
	return nil
}

// PrepareMember implements MemberPreparer: the data dir goes on a LazyFS.
func (LoseUnsynced) PrepareMember(m *cluster.Member) error {
	_, err := m.UseLazyFS()
	return err
}

// Inject implements Failpoint.
func (LoseUnsynced) Inject(ctx context.Context, env Env, rec *Record) error {
	m, err := pick(ctx, env, AnyMember)
	if err != nil {
		return err
	}
	rec.target(m)
	l := m.LazyFS()
	if l == nil {
		return fmt.Errorf("%s's data dir is not on a LazyFS (the run prepares it when the fault is named)", m.Name())
	}
	// A slow disk: each fsync is held 300 ms, so written bytes stay
	// unsynced for a while. Wait until a WAL file has some, then the disk
	// stops (held fsyncs fail) and the member dies.
	l.HoldSyncs(300 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := walFiles(nonZero(l.Unsynced()))
		if len(seen) > 0 || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			break
		}
	}
	// A stopped disk fails etcd's fsyncs: etcd may end on its own, with a
	// fatal or panic line, a moment before the SIGKILL.
	rec.explain(env, m, "its disk was stopped (fsyncs fail) before the SIGKILL", nil,
		history.ExitPanic, history.ExitFatal, history.ExitSignal, history.ExitPlain)
	l.Crash()
	env.Logger.Info("killing member to lose its unsynced writes", zap.String("member", m.Name()))
	killErr := m.Kill()
	// What the files held at the kill, beyond their last fsync.
	unsynced := nonZero(l.Unsynced())
	hctx, cancel := healCtx(ctx)
	defer cancel()
	if killErr != nil {
		return errors.Join(fmt.Errorf("killing %s: %w", m.Name(), killErr), restart(hctx, m))
	}
	_, loseErr := l.LoseUnsynced()
	if loseErr == nil && len(dataFiles(unsynced)) > 0 {
		rec.Effect = env.now()
		rec.Detail = "lost unsynced bytes: " + describe(unsynced)
		env.Logger.Info("lost unsynced writes", zap.String("member", m.Name()), zap.String("lost", rec.Detail))
	}
	err = restart(hctx, m)
	switch {
	case loseErr != nil:
		return errors.Join(fmt.Errorf("losing the unsynced writes of %s: %w", m.Name(), loseErr), err)
	case len(dataFiles(unsynced)) == 0:
		return errors.Join(fmt.Errorf("%s had no unsynced writes to its WAL or backend when it was killed (only: %s)", m.Name(), describe(unsynced)), err)
	}
	return err
}

// walFiles are the WAL files among m.
func walFiles(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if strings.HasSuffix(k, ".wal") {
			out[k] = v
		}
	}
	return out
}

// dataFiles are the WAL and backend files among m.
func dataFiles(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if strings.HasSuffix(k, ".wal") || strings.HasSuffix(k, "/db") {
			out[k] = v
		}
	}
	return out
}

func nonZero(m map[string]int64) map[string]int64 {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

func describe(m map[string]int64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

package failpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

func init() {
	register(LoseUnsynced{})
	register(LyingFsync{})
	register(LyingFsync{WAL: true})
}

// lazyDisk is what the faults on a LazyFS share: every member's data dir
// goes on one before traffic, where FUSE can be mounted.
type lazyDisk struct{}

// Family implements Failpoint.
func (lazyDisk) Family() Family { return Disk }

// Available implements Failpoint: this machine must mount FUSE (/dev/fuse,
// and root or fusermount3).
func (lazyDisk) Available(context.Context, *cluster.Cluster) error {
	if err := fuseAvailable(); err != nil {
		return fmt.Errorf("cannot mount the LazyFS: %w", err)
	}
	return nil
}

// PrepareMember implements MemberPreparer: the data dir goes on a LazyFS.
func (lazyDisk) PrepareMember(m *cluster.Member) error {
	_, err := m.UseLazyFS()
	return err
}

// LoseUnsynced crashes a member and loses what it wrote but did not fsync,
// as a power loss does. The members' data dirs are on a LazyFS (a FUSE
// file system written here). The fault slows the target's fsyncs (each is
// held 300 ms) until its WAL has written but unsynced bytes, stops its
// disk and SIGKILLs it, puts every file back as it was at its last fsync,
// and restarts it.
type LoseUnsynced struct{ lazyDisk }

// Name implements Failpoint.
func (LoseUnsynced) Name() string { return "lose-unsynced-writes" }

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

// Inject implements Failpoint.
func (LoseUnsynced) Inject(ctx context.Context, env Env, rec *Record) error {
	m, l, err := lazyTarget(ctx, env, rec)
	if err != nil {
		return err
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
	unsynced, killErr := crashDisk(env, rec, m, l, "killing member to lose its unsynced writes")
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

// lazyTarget picks a random member, on a LazyFS, as the fault's target.
func lazyTarget(ctx context.Context, env Env, rec *Record) (*cluster.Member, *cluster.LazyFS, error) {
	m, err := pick(ctx, env, AnyMember)
	if err != nil {
		return nil, nil, err
	}
	rec.target(m)
	l := m.LazyFS()
	if l == nil {
		return nil, nil, fmt.Errorf("%s's data dir is not on a LazyFS (the run prepares it when the fault is named)", m.Name())
	}
	return m, l, nil
}

// crashDisk stops m's disk and SIGKILLs m, logging what, and returns what
// each file held at the kill beyond its last fsync. A stopped disk fails
// etcd's fsyncs: etcd may end on its own, with a fatal or panic line, a
// moment before the SIGKILL, which rec declares.
func crashDisk(env Env, rec *Record, m *cluster.Member, l *cluster.LazyFS, what string) (map[string]int64, error) {
	rec.explain(env, m, "its disk was stopped (fsyncs fail) before the SIGKILL", nil,
		history.ExitPanic, history.ExitFatal, history.ExitSignal, history.ExitPlain)
	l.Crash()
	env.Logger.Info(what, zap.String("member", m.Name()))
	err := m.Kill()
	return nonZero(l.Unsynced()), err
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

// LyingFsync is a disk that lies about fsync, as ext4's fast commit did
// (fdatasync returned success without persisting; it corrupted bbolt
// files, bbolt #562). The members' data dirs are on a LazyFS. On one
// member, every fsync and fdatasync of its bbolt file (member/snap/db,
// and the db.tmp.* a defrag renames over it), or with WAL of its WAL
// files (member/wal/), returns success for the fault's duration without
// syncing. Then its disk stops and it is SIGKILLed, and every file goes
// back to its last honest fsync: the bytes the lying fsyncs acknowledged
// are gone. The member is restarted on what is left, and the fault
// records what etcd did with it: refused to start it or crashed (declared:
// the crash stage does not count it), raised a CORRUPT alarm (its
// corruption checks run on every member, see MemberFlags), or took it
// back without a word, in which case any divergence is for the
// convergence, patch and linearizability stages to find. A member etcd
// refused or flagged is replaced (removed, wiped, added back), as an
// operator would; a single member cannot be, and the fault then fails.
type LyingFsync struct {
	lazyDisk
	// WAL makes the WAL's fsyncs lie instead of the bbolt file's.
	WAL bool
}

// Name implements Failpoint.
func (f LyingFsync) Name() string {
	if f.WAL {
		return "lying-fsync-wal"
	}
	return "lying-fsync"
}

// lies reports whether the fault's disk lies to an fsync of the file at
// rel (relative to the data dir).
func (f LyingFsync) lies(rel string) bool {
	dir, base := filepath.Split(rel)
	if f.WAL {
		return dir == "member/wal/"
	}
	return dir == "member/snap/" && (base == "db" || strings.HasPrefix(base, "db.tmp"))
}

// corruptCheckInterval is how often the members compare hashes, by both
// of etcd's periodic checks, while a lying-fsync fault may run.
const corruptCheckInterval = 2 * time.Second

// MemberFlags implements MemberFlagger: etcd's own corruption checks, as
// far as the release has them: the initial check before a member serves
// (--feature-gates=InitialCorruptCheck=true, or
// --experimental-initial-corrupt-check before v3.6), the periodic check of
// every member's hash (--corrupt-check-time) and the leader's check of
// the hashes at compactions (CompactHashCheck), each every 2 s.
func (LyingFsync) MemberFlags(m *cluster.Member) ([]string, error) {
	return corruptCheckFlags(m.EtcdPath()), nil
}

func corruptCheckFlags(etcd string) []string {
	_, _ = etcdFlag(etcd, "--help") // reads and keeps the help text
	h, _ := etcdHelp.Load(etcd)
	help, _ := h.(string)
	var flags, gates []string
	for _, g := range []struct{ gate, old string }{
		{"InitialCorruptCheck", "--experimental-initial-corrupt-check"},
		{"CompactHashCheck", "--experimental-compact-hash-check-enabled"},
	} {
		switch {
		case strings.Contains(help, " "+g.gate+"=true|false"):
			gates = append(gates, g.gate+"=true")
		case strings.Contains(help, "  "+g.old+" "):
			flags = append(flags, g.old+"=true")
		}
	}
	if len(gates) > 0 {
		flags = append(flags, "--feature-gates="+strings.Join(gates, ","))
	}
	for _, names := range [][]string{
		{"--corrupt-check-time", "--experimental-corrupt-check-time"},
		{"--compact-hash-check-time", "--experimental-compact-hash-check-time"},
	} {
		if n, err := etcdFlag(etcd, names...); err == nil {
			flags = append(flags, n+"="+corruptCheckInterval.String())
		}
	}
	return flags
}

const (
	// lieTakeEffect bounds the wait, past the fault's duration, for a
	// lying fsync that acknowledged bytes.
	lieTakeEffect = 10 * time.Second
	// lostDataStart bounds the restart on what the disk left: etcd serves,
	// or refuses, within it.
	lostDataStart = 30 * time.Second
	// lostDataWatch is how long the restarted member is watched for a
	// crash or a CORRUPT alarm: two rounds of each periodic check, and
	// more.
	lostDataWatch = 3*corruptCheckInterval + time.Second
)

// Inject implements Failpoint.
func (f LyingFsync) Inject(ctx context.Context, env Env, rec *Record) error {
	m, l, err := lazyTarget(ctx, env, rec)
	if err != nil {
		return err
	}
	env.Logger.Info("the disk lies about fsync", zap.String("member", m.Name()), zap.String("failpoint", f.Name()))
	l.LieSyncs(f.lies)
	// Lie for the fault's duration, and at least until a lying fsync has
	// acknowledged bytes.
	start := time.Now()
	hold := env.duration()
	for {
		acked := ackedBytes(l.Lied()) > 0
		if acked && time.Since(start) >= hold || time.Since(start) >= hold+lieTakeEffect {
			break
		}
		if sleepCtx(ctx, 10*time.Millisecond) != nil {
			break
		}
	}
	lied := l.Lied()
	dropped, killErr := crashDisk(env, rec, m, l, "killing member on its lying disk")
	hctx, cancel := healCtx(ctx)
	defer cancel()
	if killErr != nil {
		return errors.Join(fmt.Errorf("killing %s: %w", m.Name(), killErr), restart(hctx, m))
	}
	_, loseErr := l.LoseUnsynced()
	if loseErr != nil {
		return errors.Join(fmt.Errorf("losing the unsynced writes of %s: %w", m.Name(), loseErr), restart(hctx, m))
	}
	if ackedBytes(lied) == 0 {
		return errors.Join(fmt.Errorf("no fsync of %s's %s acknowledged bytes while its disk lied (dropped: %s)", m.Name(), f.files(), describe(dropped)), restart(hctx, m))
	}
	rec.Effect = env.now()
	rec.Detail = fmt.Sprintf("%s lied to %s; dropped at the crash: %s", m.Name(), describeLies(lied), describe(dropped))
	env.Logger.Info("lost what the lying fsyncs acknowledged", zap.String("member", m.Name()), zap.String("detail", rec.Detail))
	outcome, err := restartOnLostData(ctx, hctx, env, rec, m)
	rec.Detail += "; etcd: " + outcome
	env.Logger.Info("etcd on the data the lying disk left", zap.String("member", m.Name()), zap.String("outcome", outcome))
	if err != nil {
		return err
	}
	return recovered(hctx, env)
}

func (f LyingFsync) files() string {
	if f.WAL {
		return "WAL"
	}
	return "bbolt file"
}

// ackedBytes is how many bytes lying fsyncs acknowledged, over all files.
func ackedBytes(lied map[string]cluster.Lie) int64 {
	var n int64
	for _, l := range lied {
		n += l.Bytes
	}
	return n
}

func describeLies(lied map[string]cluster.Lie) string {
	var parts []string
	for k, v := range lied {
		parts = append(parts, fmt.Sprintf("%d fsyncs of %s (the last acknowledged %d bytes that never reached the disk)", v.Fsyncs, k, v.Bytes))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// restartOnLostData starts m on what its disk left and says what etcd did:
// refused it, crashed, flagged it with a CORRUPT alarm, or took it back.
// A member etcd refused or flagged is replaced, which needs peers.
func restartOnLostData(ctx, hctx context.Context, env Env, rec *Record, m *cluster.Member) (string, error) {
	// Whatever etcd does with the data is declared, a start that never
	// serves included: refusing it is etcd's defence.
	rec.Explains = append(rec.Explains, history.ExitExplained{
		Member: m.Name(), From: env.now(), Startup: true,
		Kinds: []history.ExitKind{history.ExitPanic, history.ExitFatal, history.ExitSignal, history.ExitPlain},
		Why:   "restarted on the data its lying disk left (what its fsyncs had acknowledged was dropped)",
	})
	declared := len(rec.Explains) - 1 // an index: replacing m may declare more
	endDeclaration := func() { rec.Explains[declared].Until = env.now() }
	if err := m.Start(hctx); err != nil {
		return "the harness could not start it: " + err.Error(), fmt.Errorf("restarting %s: %w", m.Name(), err)
	}
	sctx, cancel := context.WithTimeout(hctx, lostDataStart)
	err := m.WaitHealthy(sctx)
	cancel()
	if err != nil {
		if m.Running() {
			endDeclaration()
			return fmt.Sprintf("neither served nor exited within %v (its last warning: %s)", lostDataStart, lastWarning(m)),
				fmt.Errorf("%s on the data its lying disk left: %w", m.Name(), err)
		}
		endDeclaration()
		outcome := "refused to start it: " + lastCrash(m)
		return outcome, replaceFlagged(hctx, env, rec, m)
	}
	// It serves: does it crash, or does a corruption check flag it?
	deadline := time.Now().Add(lostDataWatch)
	for time.Now().Before(deadline) {
		if !m.Running() {
			endDeclaration()
			return "took it back, then it crashed: " + lastCrash(m), replaceFlagged(hctx, env, rec, m)
		}
		if alarm, err := corruptAlarm(hctx, env.Cluster); err != nil {
			env.Logger.Warn("listing alarms", zap.Error(err))
		} else if alarm != "" {
			endDeclaration()
			outcome := "a corruption check raised a CORRUPT alarm (" + alarm + ")"
			if err := replaceFlagged(hctx, env, rec, m); err != nil {
				return outcome, err
			}
			return outcome + "; replaced it and disarmed the alarm", disarmCorrupt(hctx, env.Cluster)
		}
		if sleepCtx(ctx, 250*time.Millisecond) != nil {
			break
		}
	}
	endDeclaration()
	return fmt.Sprintf("took it back: it served for %v with no refusal, crash or CORRUPT alarm (its corruption checks: %s)",
		lostDataWatch, checksOf(m)), nil
}

// checksOf names the corruption checks m runs with.
func checksOf(m *cluster.Member) string {
	var on []string
	for _, a := range m.ExtraArgs() {
		if strings.Contains(a, "corrupt") || strings.Contains(a, "hash-check") || strings.Contains(a, "CorruptCheck") || strings.Contains(a, "HashCheck") {
			on = append(on, a)
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, " ")
}

// lastCrash is the first panic or fatal line of m's last exit, or its
// status.
func lastCrash(m *cluster.Member) string {
	m.ScanLog()
	exits := m.Exits()
	for i := len(exits) - 1; i >= 0; i-- {
		e := exits[i]
		if !e.Exited() {
			continue
		}
		if l := e.FirstCrashLine(); l != "" {
			var z struct{ Level, Msg, Error string }
			if json.Unmarshal([]byte(l), &z) == nil && z.Msg != "" {
				l = z.Level + ": " + z.Msg
				if z.Error != "" {
					l += ": " + z.Error
				}
			}
			return fmt.Sprintf("%s (%s)", clipLine(l), e.Status)
		}
		return e.Status
	}
	return "no exit recorded"
}

// lastWarning is the message of the last warning or error m logged.
func lastWarning(m *cluster.Member) string {
	b, err := os.ReadFile(m.LogPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var l struct{ Level, Msg string }
		if json.Unmarshal([]byte(lines[i]), &l) == nil && (l.Level == "warn" || l.Level == "error") {
			return l.Msg
		}
	}
	return "none"
}

func clipLine(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// replaceFlagged replaces m, which etcd refused or flagged: removed, its
// data dir wiped, added back. A single member cannot be.
func replaceFlagged(ctx context.Context, env Env, rec *Record, m *cluster.Member) error {
	if len(env.Cluster.Members()) < 3 {
		return fmt.Errorf("etcd would not serve %s on the data its lying disk left, and a cluster of %d cannot replace it", m.Name(), len(env.Cluster.Members()))
	}
	env.Logger.Info("replacing the member etcd would not take back", zap.String("member", m.Name()))
	if m.Running() {
		explainRemoval(env, rec, m)
		return env.Cluster.ReplaceMember(ctx, m)
	}
	return env.Cluster.ReplaceDownMember(ctx, m)
}

// corruptAlarm lists the cluster's CORRUPT alarms, "" if none.
func corruptAlarm(ctx context.Context, c *cluster.Cluster) (string, error) {
	var out string
	err := withAnyClient(ctx, c, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.AlarmList(ctx)
		if err != nil {
			return err
		}
		var parts []string
		for _, a := range resp.Alarms {
			if a.Alarm == etcdserverpb.AlarmType_CORRUPT {
				parts = append(parts, fmt.Sprintf("member %x", a.MemberID))
			}
		}
		out = strings.Join(parts, ", ")
		return nil
	})
	return out, err
}

// disarmCorrupt disarms every CORRUPT alarm.
func disarmCorrupt(ctx context.Context, c *cluster.Cluster) error {
	return withAnyClient(ctx, c, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.AlarmList(ctx)
		if err != nil {
			return err
		}
		for _, a := range resp.Alarms {
			if a.Alarm != etcdserverpb.AlarmType_CORRUPT {
				continue
			}
			if _, err := cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
				return fmt.Errorf("disarming the CORRUPT alarm of %x: %w", a.MemberID, err)
			}
		}
		return nil
	})
}

// withAnyClient runs f with a client of the running members' real
// listeners, within 5 s.
func withAnyClient(ctx context.Context, c *cluster.Cluster, f func(context.Context, *clientv3.Client) error) error {
	var eps []string
	for _, m := range c.Members() {
		if m.Running() {
			eps = append(eps, m.DirectClientURL())
		}
	}
	if len(eps) == 0 {
		return errors.New("no member is running")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg := cluster.ClientConfig(eps)
	cfg.DialTimeout, cfg.Context = 2*time.Second, ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	return f(ctx, cli)
}

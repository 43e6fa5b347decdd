package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/releases"
)

// Version is the family of faults that move members between etcd releases.
const Version Family = "version"

func init() {
	register(OfflineMigrate{})
	register(OfflineMigrate{Disturbed: true})
}

// Bounds of the steps of a migration.
const (
	// etcdutlTimeout bounds one etcdutl run.
	etcdutlTimeout = 30 * time.Second
	// refusedStartTimeout bounds the wait for a member that should refuse
	// to start: it must exit (or serve) within it.
	refusedStartTimeout = 30 * time.Second
	// storageSettle bounds the wait for a restarted member's storage
	// version to be back at the cluster's.
	storageSettle = 20 * time.Second
)

// OfflineMigrate is an offline downgrade of one member with `etcdutl
// migrate`, and back, while the other members keep serving. On a cluster
// whose members run one release R (v3.6 or later), with P the newest
// release of the line before:
//
//  1. it stops a follower;
//  2. it checks that etcdutl refuses what etcd does not support, each time
//     with the data dir unchanged (every file's hash): a target below 3.5,
//     and P's etcdutl asked to migrate R's newer data (when P has etcdutl
//     migrate, v3.6 and later);
//  3. R's etcdutl migrates the data dir down to P's storage version;
//  4. it starts the member on P's binary. When the cluster version is
//     above P (a cluster of R only), etcd must refuse: the lower binary
//     exits, logging "invalid downgrade" (Member.TryStart runs it, outside
//     the member's process record: a refused start is no crash).
//     Otherwise the member must serve, and stays for the fault's duration;
//  5. R's etcdutl migrates the data dir back up, and the member starts on
//     R's binary again and catches up.
//
// It needs Env.Release for P's binaries, and runs by name only (see
// ByNameOnly).
//
// etcdutl-migrate-disturbed (Disturbed) adds one more fault while the
// member is offline with its data migrated down, between steps 3 and 4: a
// kill, a paused follower or a cut-off member among the others (disturb),
// so a 3-member cluster loses its quorum for a while in the middle of the
// migration. The member stays down through it (Env.offline: the
// disturbance's recovery does not wait for it), and the migration goes on
// once the cluster recovered.
type OfflineMigrate struct {
	Disturbed bool
}

// Name implements Failpoint.
func (f OfflineMigrate) Name() string {
	if f.Disturbed {
		return "etcdutl-migrate-disturbed"
	}
	return "etcdutl-migrate"
}

// Family implements Failpoint.
func (OfflineMigrate) Family() Family { return Version }

// Available implements Failpoint.
func (OfflineMigrate) Available(ctx context.Context, c *cluster.Cluster) error {
	if err := needMembers(c, 3, "a quorum that keeps serving while one member is migrated"); err != nil {
		return err
	}
	_, _, err := clusterRelease(ctx, c)
	return err
}

// ByNameOnly keeps the fault out of `random`: it needs the previous
// release's binaries, which a run may have to build (a minute) before it
// can inject.
func (OfflineMigrate) ByNameOnly() string {
	return "it needs the previous release's binaries, which may take a build"
}

// clusterRelease is the one release every member runs, and its line,
// or why the version faults cannot run.
func clusterRelease(ctx context.Context, c *cluster.Cluster) (etcdbuild.Binaries, string, error) {
	const need = "needs a cluster of one v3.6+ release, with its etcdutl, and the binaries of the release before"
	var first etcdbuild.Binaries
	for i, m := range c.Members() {
		b, err := etcdbuild.FromDir(ctx, filepath.Dir(m.EtcdPath()))
		if err != nil {
			return etcdbuild.Binaries{}, "", fmt.Errorf("%s: %w", need, err)
		}
		// The member's own etcdutl, else the one built beside its etcd.
		if p := m.EtcdutlPath(); p != "" {
			b.Etcdutl = p
		}
		if p := m.EtcdctlPath(); p != "" {
			b.Etcdctl = p
		}
		if b.Etcdutl == "" {
			return etcdbuild.Binaries{}, "", fmt.Errorf("%s; %s has no etcdutl", need, m.Name())
		}
		if i == 0 {
			first = b
		} else if b.Version != first.Version {
			return etcdbuild.Binaries{}, "", fmt.Errorf("%s; member-0 runs %s, %s runs %s", need, first.Version, m.Name(), b.Version)
		}
	}
	line, err := releases.Line(first.Version)
	if err != nil {
		return etcdbuild.Binaries{}, "", err
	}
	if !releases.AtLeast(line, "3.6") {
		return etcdbuild.Binaries{}, "", fmt.Errorf("%s; the cluster runs %s, which has no storage version", need, first.Version)
	}
	if _, err := releases.Previous(line); err != nil {
		return etcdbuild.Binaries{}, "", fmt.Errorf("%s: %w", need, err)
	}
	return first, line, nil
}

// steps is the fault's account of what it did, for Record.Detail (the
// log) and Record.Steps (the report's timeline).
type steps struct {
	env   Env
	rec   *Record
	lines []string
	// lastEnd is when the last step that spans time ended.
	lastEnd time.Duration
}

func (s *steps) add(format string, args ...any) {
	s.record(0, fmt.Sprintf(format, args...))
}

// begin starts a step that spans time: it waits until env.StepGap has
// passed since the last such step ended (so that the recovery stage can
// judge throughput after that one before this one disturbs the cluster),
// and returns when the new step begins, on the run's clock.
func (s *steps) begin(ctx context.Context) (time.Duration, error) {
	if s.lastEnd > 0 && s.env.StepGap > 0 {
		if wait := s.lastEnd + s.env.StepGap - s.env.now(); wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return 0, fmt.Errorf("waiting %v after the last step: %w", wait.Round(time.Millisecond), ctx.Err())
			}
		}
	}
	return s.env.now(), nil
}

// spanned is add for the end of a step that began at begin (from begin).
func (s *steps) spanned(begin time.Duration, format string, args ...any) {
	s.record(begin, fmt.Sprintf(format, args...))
	s.lastEnd = s.env.now()
}

func (s *steps) record(begin time.Duration, line string) {
	at := s.env.now()
	s.env.Logger.Info("version fault step", zap.String("step", line))
	s.lines = append(s.lines, fmt.Sprintf("[%.1fs] %s", at.Seconds(), line))
	if s.rec != nil {
		s.rec.Steps = append(s.rec.Steps, history.FaultStep{At: at, What: line, Begin: begin})
	}
}

func (s *steps) String() string { return strings.Join(s.lines, "; ") }

// Inject implements Failpoint.
func (f OfflineMigrate) Inject(ctx context.Context, env Env, rec *Record) error {
	if env.Release == nil {
		return errors.New("etcdutl-migrate needs the binaries of the release before the cluster's (the run gives none: Env.Release is nil)")
	}
	cur, curLine, err := clusterRelease(ctx, env.Cluster)
	if err != nil {
		return err
	}
	prevLine, _ := releases.Previous(curLine)
	prev, err := env.Release(ctx, releases.Newest[prevLine])
	if err != nil {
		return fmt.Errorf("provisioning etcd %s: %w", releases.Newest[prevLine], err)
	}
	m, err := pick(ctx, env, Follower)
	if err != nil {
		return err
	}
	rec.target(m)
	st := &steps{env: env, rec: rec}
	defer func() { rec.Detail = st.String() }()

	before, err := releases.ReadVersions(ctx, m.DirectClientURL())
	if err != nil {
		return err
	}
	st.add("%s before: %s", m.Name(), before)
	clusterLine, err := releases.Line(before.Cluster)
	if err != nil {
		return err
	}

	hctx, cancel := healCtx(ctx)
	defer cancel()
	if err := m.Stop(hctx); err != nil {
		return err
	}
	// Heal: whatever failed, the member ends on its own release, running.
	healed := false
	args := m.ExtraArgs() // as cur spells them: restored with cur
	defer func() {
		if healed {
			return
		}
		backToOwn(m, m.EtcdPath(), cur, args)
		if !m.Running() {
			_, _ = runEtcdutl(hctx, cur.Etcdutl, m.DataDir(), curLine)
			_ = restart(hctx, m)
		}
	}()
	dir := m.DataDir()

	// What etcdutl must refuse, with the data dir unchanged.
	refusals := []struct {
		what, etcdutl, target string
	}{{what: cur.Version + " etcdutl, target below 3.5", etcdutl: cur.Etcdutl, target: "3.4"}}
	if releases.AtLeast(prevLine, "3.6") {
		refusals = append(refusals, struct{ what, etcdutl, target string }{
			what: prev.Version + " etcdutl on " + curLine + " data", etcdutl: prev.Etcdutl, target: prevLine,
		})
	}
	for _, r := range refusals {
		line, err := refusedUnchanged(hctx, r.etcdutl, dir, r.target)
		if err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
		st.add("%s: refused (%s", r.what, line)
	}

	// The offline downgrade.
	out, err := runEtcdutl(hctx, cur.Etcdutl, dir, prevLine)
	if err != nil {
		return fmt.Errorf("%s etcdutl migrate --target-version %s: %w", cur.Version, prevLine, err)
	}
	rec.Effect = env.now()
	st.add("%s etcdutl migrate --target-version %s: %s", cur.Version, prevLine, migrated(out, prevLine))
	if f.Disturbed {
		denv := env
		denv.offline = append(slices.Clone(env.offline), m)
		if err := disturb(ctx, denv, rec, st); err != nil {
			return err
		}
	}
	migratedHashes, err := releases.HashDir(dir)
	if err != nil {
		return err
	}

	// Start on the lower release.
	// The member's flags as prev spells them (v3.5 knows only the
	// --experimental- names of flags v3.6 made plain).
	if err := switchBinaries(m, cur.Version, prev, st); err != nil {
		return err
	}
	mustRefuse := !releases.AtLeast(prevLine, clusterLine)
	if mustRefuse {
		// etcd must refuse: the try runs outside the member's process
		// record (a refused start is not a crash, and the crash stage
		// counts any start that never serves as one).
		out, exitErr, running, err := m.TryStart(hctx, prev.Etcd, refusedStartTimeout)
		if err != nil {
			return err
		}
		if running {
			return fmt.Errorf("%s kept running on %s data in a cluster at version %s: etcd should have refused it", prev.Version, prevLine, before.Cluster)
		}
		if !strings.Contains(out, "invalid downgrade") {
			return fmt.Errorf("%s exited (%v) without saying \"invalid downgrade\": %s", prev.Version, exitErr, releases.FirstErrorLine(out))
		}
		after, err := releases.HashDir(dir)
		if err != nil {
			return err
		}
		note := "data dir unchanged"
		if ch := releases.Changed(migratedHashes, after); len(ch) > 0 {
			note = "data dir changed: " + strings.Join(ch, ", ")
		}
		st.add("%s on %s data in a %s cluster: refused (%v): %s; %s", prev.Version, prevLine, before.Cluster, exitErr, releases.FirstErrorLine(out), note)
	} else {
		if err := restart(hctx, m); err != nil {
			return fmt.Errorf("%s did not serve after the migration to %s: %w", prev.Version, prevLine, err)
		}
		v, _ := releases.ReadVersions(hctx, m.DirectClientURL())
		st.add("%s serves on the migrated data: %s", prev.Version, v)
		_ = sleepCtx(ctx, env.duration())
		if err := m.Stop(hctx); err != nil {
			return err
		}
	}

	// And back up.
	out, err = runEtcdutl(hctx, cur.Etcdutl, dir, curLine)
	if err != nil {
		return fmt.Errorf("%s etcdutl migrate --target-version %s: %w", cur.Version, curLine, err)
	}
	st.add("%s etcdutl migrate --target-version %s: %s", cur.Version, curLine, migrated(out, curLine))
	backToOwn(m, prev.Version, cur, args)
	if err := restart(hctx, m); err != nil {
		return err
	}
	healed = true
	wctx, wcancel := context.WithTimeout(hctx, storageSettle)
	after, err := releases.WaitVersions(wctx, m.DirectClientURL(), func(v releases.Versions) bool {
		return v.Storage == "" || v.Storage == v.Cluster
	})
	wcancel()
	if err != nil {
		return fmt.Errorf("%s's storage version did not settle at the cluster version: %w", m.Name(), err)
	}
	st.add("%s after: %s", m.Name(), after)
	return recovered(hctx, env)
}

// backToOwn puts m back on its own release cur, from release from, with
// the extra flags it had there (args, as cur spells them): the lower
// release may have run them respelled (switchBinaries).
func backToOwn(m releaseHolder, from string, cur etcdbuild.Binaries, args []string) {
	m.SwitchRelease(from, cur.Version, cur.Etcd, cur.Etcdctl, cur.Etcdutl)
	m.SetExtraArgs(args)
}

// runEtcdutl runs `etcdutl migrate` on dataDir and returns its output.
func runEtcdutl(ctx context.Context, etcdutl, dataDir, target string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdutlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdutl, "migrate", "--data-dir", dataDir, "--target-version", target)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, lastLine(string(out)))
	}
	return string(out), nil
}

// refusedUnchanged runs an etcdutl migrate that must fail, and checks that
// it left every file of dataDir as it was. It returns etcdutl's error and
// what it found of the data dir. The one change it lets through, and
// reports, is a rewrite of the backend: etcdutl v3.6.16 opens the backend
// for writing and commits it as it closes it, also after refusing, so the
// bolt file's pages change although the migration was refused (the same
// happens when etcd v3.6.16 refuses to start on newer data; see the
// releases package's guard test). Any other change is an error.
func refusedUnchanged(ctx context.Context, etcdutl, dataDir, target string) (string, error) {
	before, err := releases.HashDir(dataDir)
	if err != nil {
		return "", err
	}
	out, err := runEtcdutl(ctx, etcdutl, dataDir, target)
	if err == nil {
		return "", fmt.Errorf("etcdutl migrate --target-version %s succeeded; it should have refused: %s", target, lastLine(out))
	}
	after, herr := releases.HashDir(dataDir)
	if herr != nil {
		return "", herr
	}
	ch := releases.Changed(before, after)
	if len(ch) == 0 {
		return err.Error() + "), data dir unchanged", nil
	}
	if len(ch) == 1 && ch[0] == backendFile {
		return err.Error() + "), FINDING: data dir not unchanged: the refused run rewrote " + backendFile, nil
	}
	return "", fmt.Errorf("etcdutl migrate --target-version %s refused (%v) but changed %s", target, err, strings.Join(ch, ", "))
}

// backendFile is the backend's path in a data dir.
const backendFile = "member/snap/db"

// migrated sums up what a successful etcdutl migrate said.
func migrated(out, target string) string {
	var said []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "updated storage version"):
			said = append(said, "updated storage version to "+target)
		case strings.Contains(l, "storage version up-to-date"):
			said = append(said, "storage version up-to-date"+field(l, "storage-version"))
		}
	}
	if len(said) == 0 {
		return "done"
	}
	return strings.Join(said, ", ")
}

// field is ` to VALUE` for a zap JSON line's string field, or "".
func field(line, key string) string {
	k := `"` + key + `":"`
	i := strings.Index(line, k)
	if i < 0 {
		return ""
	}
	rest := line[i+len(k):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return " to " + rest[:j]
	}
	return ""
}

// lastLine is the last non-blank line of out, bounded.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	l := lines[len(lines)-1]
	if len(l) > 400 {
		l = l[:400] + "..."
	}
	return l
}

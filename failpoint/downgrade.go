package failpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/releases"
)

func init() {
	register(Downgrade{})
	register(Downgrade{Upgrade: true})
	register(Downgrade{Upgrade: true, Disturbed: true})
}

// Bounds of the steps of an online downgrade.
const (
	// versionSettle bounds each wait for etcd's version monitors: the
	// leader checks the cluster version every 4 s, each member its
	// storage version every 4 s, and the leader whether a downgrade is
	// done every 5 s (DowngradeCheckTime); three rounds of each fit.
	versionSettle = 30 * time.Second
	// catchUpTimeout bounds the wait for a restarted member to apply
	// what the leader had committed.
	catchUpTimeout = 20 * time.Second
	// downgradeTimeout is what a run lets the fault take (Timeout): up to
	// five members restarted twice, each a stop (5 s grace) and a start,
	// and the waits above.
	downgradeTimeout = 5 * time.Minute
)

// Downgrade is etcd's online downgrade, under traffic, and optionally the
// upgrade back. On a cluster whose newest members run a release R of
// v3.6 or later, with P the newest release of the line before:
//
//  1. it records every member's server, cluster and storage version and
//     whether a downgrade is enabled;
//  2. when the cluster version is R's line, it validates and enables the
//     downgrade to P's line (Maintenance.Downgrade, as `etcdctl downgrade
//     validate|enable` does), then waits until every member reports the
//     lower cluster version and, on v3.6 and later, the lower storage
//     version (etcd's "The server is ready to downgrade");
//  3. it replaces each member's binary that runs R with P's, one member
//     at a time, in an order drawn from the seed: stop, switch, start,
//     wait until it serves and has applied what the leader had
//     committed;
//  4. it waits until the downgrade is finished, as etcd defines it
//     (version.Monitor.CancelDowngradeIfNeeded): every member's server
//     version is P's line, the cluster version and (v3.6+) every storage
//     version are P's line, and no member reports a downgrade enabled
//     (the peer handler /downgrade/enabled, which v3.5 serves too);
//  5. downgrade-upgrade then puts each member back on its own release,
//     one at a time, and waits until the cluster version and the storage
//     versions are back at the lowest line the members run.
//
// A cluster that already mixes R and P is at P's cluster version: there is
// no downgrade to enable, and the fault moves R's members to P (and back).
// Every step is recorded (Record.Steps) with each member's versions. A
// step that does not take effect within its bound is an error: the run is
// INCONCLUSIVE with the reason. The stops and starts are the harness's own
// (the member records them as such), and every member is a target, so
// the health stage does not judge a member that is restarting.
//
// downgrade-disturbed is downgrade-upgrade with one more fault in the
// middle of the change (disturb): before one of the member swaps, down or
// up, drawn from the seed, it kills a member, pauses a follower, or cuts a
// member off from its peers, and goes on once the cluster recovered. The
// acknowledged writes must survive it like any other, and the change must
// still finish. It needs
// Env.Release for P's binaries when no member runs P, and runs by name
// only.
type Downgrade struct {
	// Upgrade: upgrade back to each member's release once the downgrade
	// finished.
	Upgrade bool
	// Disturbed: one more fault in the middle of the change (disturb).
	Disturbed bool
}

// Name implements Failpoint.
func (d Downgrade) Name() string {
	if d.Disturbed {
		return "downgrade-disturbed"
	}
	if d.Upgrade {
		return "downgrade-upgrade"
	}
	return "downgrade"
}

// Family implements Failpoint.
func (Downgrade) Family() Family { return Version }

// ByNameOnly keeps the fault out of `random`: it may need the previous
// release's binaries, which a run may have to build first.
func (Downgrade) ByNameOnly() string {
	return "it needs the previous release's binaries, which may take a build"
}

// InjectTimeout lets the run wait for every member's restarts.
func (Downgrade) InjectTimeout() time.Duration { return downgradeTimeout }

// Available implements Failpoint.
func (Downgrade) Available(ctx context.Context, c *cluster.Cluster) error {
	if err := needMembers(c, 3, "a quorum that keeps serving while one member changes release"); err != nil {
		return err
	}
	_, err := memberReleases(ctx, c)
	return err
}

// releaseSet is what each member runs, and the two lines a downgrade
// moves between.
type releaseSet struct {
	bins      []etcdbuild.Binaries // by member index
	high, low string               // lines: "3.7", "3.6"
	lowBins   *etcdbuild.Binaries  // a member's binaries of line low, if one runs it
}

// memberReleases reads what every member runs.
func memberReleases(ctx context.Context, c *cluster.Cluster) (releaseSet, error) {
	var rs releaseSet
	var versions []string
	for _, m := range c.Members() {
		b, err := etcdbuild.FromDir(ctx, filepath.Dir(m.EtcdPath()))
		if err != nil {
			return rs, fmt.Errorf("reading %s's release: %w", m.Name(), err)
		}
		b.Etcd = m.EtcdPath()
		if p := m.EtcdctlPath(); p != "" {
			b.Etcdctl = p
		}
		if p := m.EtcdutlPath(); p != "" {
			b.Etcdutl = p
		}
		rs.bins = append(rs.bins, b)
		versions = append(versions, b.Version)
	}
	var err error
	rs.high, rs.low, err = downgradeLines(versions)
	if err != nil {
		return rs, err
	}
	for i, v := range versions {
		if l, _ := releases.Line(v); l == rs.low {
			rs.lowBins = &rs.bins[i]
			break
		}
	}
	return rs, nil
}

// downgradeLines are the lines an online downgrade of members running
// versions moves between: the newest line among them, v3.6 or later, and
// the line before it. Every member must run one of the two.
func downgradeLines(versions []string) (high, low string, err error) {
	const need = "needs members of one v3.6+ release, or of it and the release line before"
	var lines []string
	for _, v := range versions {
		l, err := releases.Line(v)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", need, err)
		}
		lines = append(lines, l)
		if high == "" || !releases.AtLeast(high, l) {
			high = l
		}
	}
	if high == "" {
		return "", "", fmt.Errorf("%s; the cluster has no member", need)
	}
	if !releases.AtLeast(high, "3.6") {
		return "", "", fmt.Errorf("%s; the newest member runs %s, and etcd supports online downgrades from v3.6 on", need, high)
	}
	low, err = releases.Previous(high)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", need, err)
	}
	for i, l := range lines {
		if l != high && l != low {
			return "", "", fmt.Errorf("%s; member-%d runs %s, neither %s nor %s", need, i, versions[i], high, low)
		}
	}
	return high, low, nil
}

// memberState is what one member says of its versions.
type memberState struct {
	Name string
	releases.Versions
	// Downgrade is what the member's /downgrade/enabled said: "true",
	// "false", or why it could not be read.
	Downgrade string
	Leader    bool
	// Err is why /version could not be read ("" when it was).
	Err string
}

func (s memberState) String() string {
	if s.Err != "" {
		return s.Name + ": " + s.Err
	}
	out := fmt.Sprintf("%s %s, downgrade enabled %s", s.Name, s.Versions, s.Downgrade)
	if s.Leader {
		out += ", leader"
	}
	return out
}

// describeStates is every member's state on one line.
func describeStates(ss []memberState) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return strings.Join(parts, "; ")
}

// readStates asks every member, through its own listeners, for its
// versions, whether a downgrade is enabled, and whether it leads.
func readStates(ctx context.Context, c *cluster.Cluster) []memberState {
	var out []memberState
	for _, m := range c.Members() {
		s := memberState{Name: m.Name()}
		if !m.Running() {
			s.Err = "down"
			out = append(out, s)
			continue
		}
		v, err := releases.ReadVersions(ctx, m.DirectClientURL())
		if err != nil {
			s.Err = err.Error()
		}
		s.Versions = v
		s.Downgrade = downgradeEnabled(ctx, m)
		if st, err := m.Status(ctx); err == nil && st.Leader != 0 && st.Leader == st.Header.GetMemberId() {
			s.Leader = true
		}
		out = append(out, s)
	}
	return out
}

// downgradeEnabled is what m's peer handler /downgrade/enabled says
// ("true" or "false"), or why it could not be read.
func downgradeEnabled(ctx context.Context, m *cluster.Member) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.DirectPeerURL()+"/downgrade/enabled", nil)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	// Peers serve TLS when clients do, and take the harness's client
	// certificate (signed by the run's CA).
	resp, err := cluster.HTTPClient(m.DirectClientURL()).Do(req)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("unknown (%s)", resp.Status)
	}
	return strings.TrimSpace(string(body))
}

// lineOf is the line of a version etcd reports ("3.6" for "3.6.0"), or
// "" for none.
func lineOf(v string) string {
	l, err := releases.Line(v)
	if err != nil {
		return ""
	}
	return l
}

// settledAt says whether every member is settled at line as a finished
// downgrade (or upgrade) leaves it: cluster version at line, every storage
// version (kept from v3.6 on) at line, no downgrade enabled; and, when
// servers is given, each member's server version that line (by member
// order). It returns what is not yet so.
func settledAt(ss []memberState, line string, servers []string) (bool, string) {
	var not []string
	for i, s := range ss {
		if s.Err != "" {
			not = append(not, s.String())
			continue
		}
		if i < len(servers) && lineOf(s.Server) != servers[i] {
			not = append(not, fmt.Sprintf("%s runs %s, not %s", s.Name, s.Server, servers[i]))
		}
		if lineOf(s.Cluster) != line {
			not = append(not, fmt.Sprintf("%s reports cluster version %s, not %s", s.Name, s.Cluster, line))
		}
		if releases.AtLeast(lineOf(s.Server), "3.6") && lineOf(s.Storage) != line {
			not = append(not, fmt.Sprintf("%s reports storage version %q, not %s", s.Name, s.Storage, line))
		}
		if s.Downgrade != "false" {
			not = append(not, fmt.Sprintf("%s reports downgrade enabled %s", s.Name, s.Downgrade))
		}
	}
	return len(not) == 0, strings.Join(not, "; ")
}

// readyToDowngrade says whether every member reports the cluster version,
// and (v3.6+) its storage version, at line: what etcd needs before a
// member may start on the lower release.
func readyToDowngrade(ss []memberState, line string) (bool, string) {
	var not []string
	for _, s := range ss {
		switch {
		case s.Err != "":
			not = append(not, s.String())
		case lineOf(s.Cluster) != line:
			not = append(not, fmt.Sprintf("%s reports cluster version %s, not %s", s.Name, s.Cluster, line))
		case releases.AtLeast(lineOf(s.Server), "3.6") && lineOf(s.Storage) != line:
			not = append(not, fmt.Sprintf("%s reports storage version %q, not %s", s.Name, s.Storage, line))
		}
	}
	return len(not) == 0, strings.Join(not, "; ")
}

// waitStates polls the members' states every 500 ms until ok accepts
// them or within passes, and returns the last states.
func waitStates(ctx context.Context, c *cluster.Cluster, within time.Duration, ok func([]memberState) (bool, string)) ([]memberState, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		ss := readStates(ctx, c)
		done, why := ok(ss)
		if done {
			return ss, nil
		}
		select {
		case <-ctx.Done():
			return ss, fmt.Errorf("not within %v: %s", within, why)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// downgradeRequest sends one Maintenance.Downgrade request to m, with
// the TLS and root's credentials the cluster asks for (a downgrade is an
// admin request: under auth, only root may send it).
func downgradeRequest(ctx context.Context, m *cluster.Member, action clientv3.DowngradeAction, target string) (*clientv3.DowngradeResponse, error) {
	cfg := cluster.ClientConfig([]string{m.DirectClientURL()})
	cfg.DialTimeout, cfg.Context = 5*time.Second, ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cli.Downgrade(rctx, action, target)
}

// Inject implements Failpoint.
func (d Downgrade) Inject(ctx context.Context, env Env, rec *Record) error {
	rs, err := memberReleases(ctx, env.Cluster)
	if err != nil {
		return err
	}
	low := rs.lowBins
	if low == nil {
		if env.Release == nil {
			return fmt.Errorf("%s needs the binaries of etcd %s (the run gives none: Env.Release is nil)", d.Name(), releases.Newest[rs.low])
		}
		b, err := env.Release(ctx, releases.Newest[rs.low])
		if err != nil {
			return fmt.Errorf("provisioning etcd %s: %w", releases.Newest[rs.low], err)
		}
		low = &b
	}
	members := env.Cluster.Members()
	rec.target(members...)
	st := &steps{env: env, rec: rec}
	defer func() { rec.Detail = st.String() }()

	// Heal: whatever failed, every member ends running, on the release it
	// has now if it starts, else on its own. Its context is made when it
	// runs (healCtx bounds it from then): the fault may have lasted longer
	// than healTimeout by that time.
	defer func() {
		hctx, cancel := healCtx(ctx)
		defer cancel()
		for i, m := range members {
			if m.Running() {
				continue
			}
			if err := restart(hctx, m); err != nil {
				_ = switchBinaries(m, "", rs.bins[i], nil)
				_ = restart(hctx, m)
			}
		}
	}()

	before := readStates(ctx, env.Cluster)
	st.add("before: %s", describeStates(before))
	clusterLine := ""
	for _, s := range before {
		if s.Err == "" {
			clusterLine = lineOf(s.Cluster)
			break
		}
	}
	if clusterLine == "" {
		return fmt.Errorf("no member answered /version: %s", describeStates(before))
	}

	// 1. Validate and enable.
	if clusterLine == rs.high {
		begin, err := st.begin(ctx)
		if err != nil {
			return err
		}
		if err := d.enable(ctx, env, rs.low, st); err != nil {
			return err
		}
		rec.Effect = env.now()
		ss, err := waitStates(ctx, env.Cluster, versionSettle, func(ss []memberState) (bool, string) { return readyToDowngrade(ss, rs.low) })
		if err != nil {
			return fmt.Errorf("the downgrade to %s was enabled, but the members did not lower their versions: %w", rs.low, err)
		}
		st.spanned(begin, "cluster version and storage versions lowered: %s", describeStates(ss))
	} else {
		st.add("the cluster version is already %s (members run %s and %s): no downgrade to enable", clusterLine, rs.high, rs.low)
	}

	// 2. Each member of the higher line onto the lower release.
	var swapped []int
	for _, i := range env.Rand.Perm(len(members)) {
		if lineOf(rs.bins[i].Version) == rs.high {
			swapped = append(swapped, i)
		}
	}
	// The disturbance comes before one of the swaps, down or up.
	disturbAt, slot := -1, 0
	if d.Disturbed {
		disturbAt = env.Rand.Intn(2 * len(swapped))
	}
	disturbBefore := func() error {
		defer func() { slot++ }()
		if slot != disturbAt {
			return nil
		}
		return disturb(ctx, env, rec, st)
	}
	for _, i := range swapped {
		if err := disturbBefore(); err != nil {
			return err
		}
		if err := switchMember(ctx, env, members[i], rs.bins[i].Version, *low, st); err != nil {
			return err
		}
		if rec.Effect == 0 {
			rec.Effect = env.now()
		}
	}

	// 3. The downgrade finished.
	lowLines := slices.Repeat([]string{rs.low}, len(members))
	ss, err := waitStates(ctx, env.Cluster, versionSettle, func(ss []memberState) (bool, string) { return settledAt(ss, rs.low, lowLines) })
	if err != nil {
		return fmt.Errorf("every member runs %s, but the downgrade did not finish: %w", low.Version, err)
	}
	st.add("downgrade to %s finished: %s", rs.low, describeStates(ss))
	if !d.Upgrade {
		return healed(ctx, env)
	}

	// 4. And back, one member at a time.
	var origLines []string
	lowest := rs.high
	for _, b := range rs.bins {
		l := lineOf(b.Version)
		origLines = append(origLines, l)
		if !releases.AtLeast(l, lowest) {
			lowest = l
		}
	}
	for _, i := range env.Rand.Perm(len(members)) {
		if !slices.Contains(swapped, i) {
			continue
		}
		if err := disturbBefore(); err != nil {
			return err
		}
		if err := switchMember(ctx, env, members[i], low.Version, rs.bins[i], st); err != nil {
			return err
		}
	}
	ss, err = waitStates(ctx, env.Cluster, versionSettle, func(ss []memberState) (bool, string) { return settledAt(ss, lowest, origLines) })
	if err != nil {
		return fmt.Errorf("every member is back on its release, but the cluster did not settle at %s: %w", lowest, err)
	}
	st.add("upgrade back to %s finished: %s", lowest, describeStates(ss))
	return healed(ctx, env)
}

// healed is recovered with a heal context made now: a version fault's
// steps may take longer than healTimeout, so one made when the fault
// began may have run out (seed 3 of v3.6.16's downgrade-upgrade: a fault
// of 149 s, v3.5.35 built on first use, ended "wait for member-0 to be
// healthy: context deadline exceeded" at once, every step done).
func healed(ctx context.Context, env Env) error {
	hctx, cancel := healCtx(ctx)
	defer cancel()
	return recovered(hctx, env)
}

// disturbances are the faults disturb draws from. A paused leader is left
// out: the run keeps lease TTLs longer than a leader pause only when its
// plan pauses the leader (traffic.LeaseTTLAcrossLeaderPause), and this
// pause is not in the plan.
var disturbances = []Failpoint{Kill{}, Pause{Target: Follower}, Partition{Kind: blackholeMember}}

// disturb injects one of disturbances, drawn from the seed, in the middle
// of a version change, and returns once the cluster recovered from it. Its
// declarations join the version fault's; it is a step of it, with its
// target and when it took effect. A disturbance that did not take effect
// or from which the cluster did not recover is the fault's error: the run
// is INCONCLUSIVE, not a pass that tested less.
func disturb(ctx context.Context, env Env, rec *Record, st *steps) error {
	f := disturbances[env.Rand.Intn(len(disturbances))]
	begin, err := st.begin(ctx)
	if err != nil {
		return err
	}
	st.add("disturbance %s: %s", f.Name(), describeStates(readStates(ctx, env.Cluster)))
	var sub Record
	err = f.Inject(ctx, env, &sub)
	rec.Explains = append(rec.Explains, sub.Explains...)
	if sub.Effect == 0 {
		return errors.Join(fmt.Errorf("the disturbance %s in the middle of the version change did not take effect", f.Name()), err)
	}
	if err != nil {
		return fmt.Errorf("the disturbance %s in the middle of the version change: %w", f.Name(), err)
	}
	st.spanned(begin, "disturbance %s on %s took effect at %.1fs; recovered: %s", f.Name(), strings.Join(sub.Targets, ", "),
		sub.Effect.Seconds(), describeStates(readStates(ctx, env.Cluster)))
	return nil
}

// enable validates and enables the downgrade to line, on a member that
// answers.
func (d Downgrade) enable(ctx context.Context, env Env, line string, st *steps) error {
	var errs []error
	for _, m := range env.Cluster.Members() {
		if !m.Running() {
			continue
		}
		resp, err := downgradeRequest(ctx, m, clientv3.DowngradeValidate, line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: downgrade validate %s: %w", m.Name(), line, err))
			continue
		}
		st.add("downgrade validate %s on %s: ok (cluster version %s)", line, m.Name(), resp.Version)
		resp, err = downgradeRequest(ctx, m, clientv3.DowngradeEnable, line)
		if err != nil {
			return fmt.Errorf("%s: downgrade enable %s: %w", m.Name(), line, err)
		}
		st.add("downgrade enable %s on %s: ok (cluster version %s)", line, m.Name(), resp.Version)
		return nil
	}
	return errors.Join(append(errs, errors.New("no member validated the downgrade"))...)
}

// switchMember moves m to release to: stop, switch, start, wait until it
// serves and has applied what the leader had committed when it did.
func switchMember(ctx context.Context, env Env, m *cluster.Member, from string, to etcdbuild.Binaries, st *steps) error {
	begin, err := st.begin(ctx)
	if err != nil {
		return err
	}
	if err := m.Stop(ctx); err != nil {
		return err
	}
	st.add("%s stopped (%s)", m.Name(), from)
	if err := switchBinaries(m, from, to, st); err != nil {
		return err
	}
	if err := restart(ctx, m); err != nil {
		return fmt.Errorf("%s on %s: %w", m.Name(), to.Version, err)
	}
	if err := caughtUp(ctx, env.Cluster, m); err != nil {
		return err
	}
	ss := readStates(ctx, env.Cluster)
	st.spanned(begin, "%s started on %s and caught up: %s", m.Name(), to.Version, describeStates(ss))
	return nil
}

// caughtUp waits until m has applied the leader's commit index as read
// once m served.
func caughtUp(ctx context.Context, c *cluster.Cluster, m *cluster.Member) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	leader, err := waitLeader(ctx, c)
	if err != nil {
		return fmt.Errorf("%s catching up: %w", m.Name(), err)
	}
	ls, err := leader.Status(ctx)
	if err != nil {
		return fmt.Errorf("%s catching up: the leader's status: %w", m.Name(), err)
	}
	want := ls.RaftIndex
	for {
		s, err := m.Status(ctx)
		if err == nil && s.RaftAppliedIndex >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			got := "no status"
			if err == nil {
				got = fmt.Sprintf("applied index %d", s.RaftAppliedIndex)
			}
			return fmt.Errorf("%s did not apply the leader's commit index %d within %v (%s)", m.Name(), want, catchUpTimeout, got)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// releaseHolder is what a move between releases changes of a member
// (a *cluster.Member): the binaries its next start runs, and its extra
// etcd flags.
type releaseHolder interface {
	Name() string
	ExtraArgs() []string
	SetExtraArgs(args []string)
	SwitchRelease(from, to, etcd, etcdctl, etcdutl string)
}

// switchBinaries sets m's next start to release to, with its extra etcd
// flags spelled as that release knows them (respell); st, if given,
// records a respelled flag. On an error m is left as it was.
func switchBinaries(m releaseHolder, from string, to etcdbuild.Binaries, st *steps) error {
	args, changed, err := respell(m.ExtraArgs(), to.Etcd)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", m.Name(), to.Version, err)
	}
	m.SwitchRelease(from, to.Version, to.Etcd, to.Etcdctl, to.Etcdutl)
	if len(changed) > 0 {
		m.SetExtraArgs(args)
		if st != nil {
			st.add("%s's flags for %s: %s", m.Name(), to.Version, strings.Join(changed, ", "))
		}
	}
	return nil
}

// experimental is the prefix etcd gave flags before v3.6 made them plain
// (v3.6 takes both; v3.5 only the prefixed, v3.7 only the plain).
const experimental = "--experimental-"

// flagProbes caches parsedFlag's answers: path, NUL, flag -> bool.
var flagProbes sync.Map

// parsedFlag returns the first of names that the etcd binary at path
// parses with value, or an error naming them. It asks the binary itself
// (`etcd NAME=VALUE --version`: etcd parses every flag before it prints
// its version, and exits 2 on one it does not define), for the flags
// its --help leaves out: v3.5.35 takes
// --experimental-snapshot-catchup-entries, which its help text does not
// list.
func parsedFlag(path, value string, names ...string) (string, error) {
	for _, n := range names {
		key := path + "\x00" + n
		known, ok := flagProbes.Load(key)
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cmd := exec.CommandContext(ctx, path, n+"="+value, "--version")
			cmd.WaitDelay = time.Second
			err := cmd.Run()
			cancel()
			known, _ = flagProbes.LoadOrStore(key, err == nil)
		}
		if known.(bool) {
			return n, nil
		}
	}
	return "", fmt.Errorf("%s has none of the flags %s (neither in its --help nor parsed with %q)", path, strings.Join(names, ", "), value)
}

// respell spells each --NAME=VALUE of args as the etcd binary at etcdPath
// knows it: the plain name if it has it, else the --experimental- one.
// It returns the args, what it changed ("--a -> --b"), or an error naming
// a flag the binary has in neither spelling.
func respell(args []string, etcdPath string) ([]string, []string, error) {
	out := make([]string, 0, len(args))
	var changed []string
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			out = append(out, a)
			continue
		}
		plain := "--" + strings.TrimPrefix(strings.TrimPrefix(name, experimental), "--")
		names := []string{plain}
		if plain != "--" {
			names = append(names, experimental+strings.TrimPrefix(plain, "--"))
		}
		got, err := etcdFlagWith(etcdPath, value, names...)
		if err != nil {
			return nil, nil, err
		}
		if got != name {
			changed = append(changed, name+" -> "+got)
		}
		out = append(out, got+"="+value)
	}
	return out, changed, nil
}

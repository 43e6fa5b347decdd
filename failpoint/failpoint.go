// Package failpoint holds the faults the harness injects while traffic runs.
//
// A fault is four steps: choose its target (a random member, the leader, a
// follower, a majority or minority, the whole cluster); optionally trigger
// the code path (start a defrag, compact, cut a follower off until it needs
// a snapshot); inject; and heal. Heal always runs, also on error, timeout and
// cancellation, so no pause, partition or armed gofail point outlives the
// fault.
//
// Each fault is a Failpoint registered under its name. Adding one means one
// file with one type and one register(...) line; a gofail point is one line
// in gofailPoints.
package failpoint

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// Family groups faults for listing and for `random`.
type Family string

// The fault families.
const (
	Process    Family = "process"
	Panic      Family = "panic"
	Sleep      Family = "sleep"
	Network    Family = "network"
	Membership Family = "membership"
	Disk       Family = "disk"
)

// Env is what a fault acts on.
type Env struct {
	Cluster *cluster.Cluster
	Logger  *zap.Logger
	// Rand picks targets; it is seeded from the run's seed.
	Rand *rand.Rand
	// Now reads the run's clock, for Record.Effect. nil means time since
	// the injection began.
	Now func() time.Duration
	// Duration is how long a lasting fault (pause, sleep, partition) lasts
	// once it has taken effect; zero means a random 1–5 s.
	Duration time.Duration
	// MinIsolation, when Duration is zero, is the least time a fault that
	// cuts a member off from a majority of its peers holds the cut: the
	// run sets it when watches require a leader, so that the check that
	// such watches are canceled (validate.K8sRequireLeader) sees an
	// isolation long enough to judge.
	MinIsolation time.Duration
	// Requests sends the etcd requests that triggers need (a compaction, a
	// defrag). The run's implementation records them, so that the model
	// sees them. nil: faults that need it are not available.
	Requests Requests
	// Release provisions another etcd release's binaries (etcd, etcdctl,
	// etcdutl), for faults that move a member between releases. nil:
	// faults that need it are not available.
	Release func(ctx context.Context, version string) (etcdbuild.Binaries, error)
	// StepGap is the least time a fault of several steps leaves between
	// the end of one step that spans time (a version fault's member swap,
	// history.FaultStep.Begin) and the start of the next: the run sets it
	// to the recovery stage's window, which judges throughput after each
	// such step. Zero: no wait.
	StepGap time.Duration
	// offline are members a fault took down on purpose and brings back
	// itself (etcdutl-migrate-disturbed's migrating member): a fault
	// injected in the middle of it (disturb) leaves them down, and its
	// recovery does not wait for them.
	offline []*cluster.Member
}

// Requests is how a trigger asks etcd to do something. Each request goes
// through a client the run records.
type Requests interface {
	// Compact compacts the key-value store at the current revision and
	// returns that revision.
	Compact(ctx context.Context) (int64, error)
	// CompactAtTombstone puts a key, deletes it, and compacts at the
	// delete's revision, so that the store's latest revision, if no other
	// write came after it, is the tombstone the compaction removes. It
	// returns that revision.
	CompactAtTombstone(ctx context.Context) (int64, error)
	// Defragment defragments one member's backend.
	Defragment(ctx context.Context, m *cluster.Member) error
}

// Record is what an injection reports about itself, filled as it goes.
type Record struct {
	// Targets are the members the fault acted on.
	Targets []string
	// Effect is the run-clock time the fault took effect (the panic, the
	// pause, the partition in place); zero if it never did.
	Effect time.Duration
	// Detail says what the fault did, for the log (e.g. which bytes it lost).
	Detail string
	// Explains are the ends of member processes, and the panic or fatal
	// lines they log, that the fault accounts for (see
	// history.ExitExplained): a gofail panic, a stopped disk, a removal.
	// A fault that kills with the harness's SIGKILL or stops a process
	// need not declare it: the member records that the harness did it.
	// Faults that explain no exit (pauses, partitions, delays, sleeps)
	// declare nothing, so any exit during them is a finding.
	Explains []history.ExitExplained
	// Steps are the steps of a fault of several (a version fault's swaps),
	// each with its run-clock time, for the report's timeline.
	Steps []history.FaultStep
}

func (r *Record) target(ms ...*cluster.Member) {
	for _, m := range ms {
		r.Targets = append(r.Targets, m.Name())
	}
}

// explain declares that the fault accounts for the end of m's current
// process from now on, and for the panic or fatal lines it logs, of the
// given kinds; logContains, if any, must be in the record's lines.
func (r *Record) explain(env Env, m *cluster.Member, why string, logContains []string, kinds ...history.ExitKind) {
	r.Explains = append(r.Explains, history.ExitExplained{
		Member: m.Name(), PID: m.PID(), Kinds: kinds, LogContains: logContains, From: env.now(), Why: why,
	})
}

// Failpoint is one kind of fault.
type Failpoint interface {
	// Name is how users select the fault (--failpoint NAME).
	Name() string
	// Family is the kind of fault.
	Family() Family
	// Available returns nil if the fault can run against this cluster, or
	// an error saying why not (the etcd build lacks the gofail point, the
	// cluster is too small, the machine has no FUSE).
	Available(ctx context.Context, c *cluster.Cluster) error
	// Inject targets, triggers, injects and heals the fault, and returns
	// once the cluster has recovered from it and is healthy again. It
	// fills rec as it goes. An error means the fault could not be
	// injected, did not take effect, or the cluster did not recover; the
	// fault is healed in every case.
	Inject(ctx context.Context, env Env, rec *Record) error
}

// MemberFlagger is a fault that needs members to run with extra etcd flags
// (a small --snapshot-count, say). The run restarts the members with them
// before traffic starts.
type MemberFlagger interface {
	MemberFlags(m *cluster.Member) ([]string, error)
}

// MemberPreparer is a fault that needs each member set up before traffic
// starts (its data dir on a LazyFS, say). The run calls PrepareMember for
// every member while it is stopped, then starts it again.
type MemberPreparer interface {
	PrepareMember(m *cluster.Member) error
}

var registry = map[string]Failpoint{}

// aliases are old names that still select a fault.
var aliases = map[string]string{}

func register(f Failpoint) {
	if _, dup := registry[f.Name()]; dup {
		panic("failpoint: registered twice: " + f.Name())
	}
	registry[f.Name()] = f
}

// Random is the name that picks, at each injection, one fault among those
// available for the cluster.
const Random = "random"

// Lookup returns the fault called name, or an error naming the valid ones.
// A gofail point's bare name selects its panic (raftBeforeSave is
// raftBeforeSave:panic). A spec (`random`, or a comma-separated list) is
// accepted too and returns a Failpoint that injects its faults in turn
// (random: one available fault, picked at injection); a run's schedule
// uses Parse instead.
func Lookup(name string) (Failpoint, error) {
	fs, err := Parse(name)
	if err != nil {
		return nil, err
	}
	if len(fs) == 1 {
		return fs[0], nil
	}
	return sequence{name: name, faults: fs}, nil
}

func lookupOne(name string) (Failpoint, error) {
	name = strings.TrimSpace(name)
	if name == Random {
		return randomFault{}, nil
	}
	if a, ok := aliases[name]; ok {
		name = a
	}
	if f, ok := registry[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown failpoint %q (valid: %s, %s, or a comma-separated list)", name, Random, strings.Join(Names(), ", "))
}

// Parse reads a --failpoint spec: one name, `random`, or a comma-separated
// list of either. Every unknown name is an error that lists the valid ones.
func Parse(spec string) ([]Failpoint, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("no failpoint given (valid: %s, %s, or a comma-separated list)", Random, strings.Join(Names(), ", "))
	}
	var out []Failpoint
	for _, name := range strings.Split(spec, ",") {
		f, err := lookupOne(name)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Names lists every registered fault, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// All returns every registered fault, sorted by family, then name.
func All() []Failpoint {
	var out []Failpoint
	for _, n := range Names() {
		out = append(out, registry[n])
	}
	slices.SortStableFunc(out, func(a, b Failpoint) int { return familyOrder(a.Family()) - familyOrder(b.Family()) })
	return out
}

func familyOrder(f Family) int {
	return slices.Index([]Family{Process, Panic, Sleep, Network, Membership, Disk, Version}, f)
}

// Pick returns one fault, chosen with r, among those available for c that
// can run at once: `random` resolved at injection time (through Lookup)
// cannot restart the members with the flags a fault needs.
func Pick(ctx context.Context, c *cluster.Cluster, r *rand.Rand, hasRequests bool) (Failpoint, error) {
	var ok []Failpoint
	for _, f := range All() {
		if needsRestart(f, c) {
			continue
		}
		if n, ok := f.(needsRequests); ok && n.needsRequests() && !hasRequests {
			continue
		}
		if f.Available(ctx, c) == nil {
			ok = append(ok, f)
		}
	}
	if len(ok) == 0 {
		return nil, errors.New("no fault is available for this cluster")
	}
	return ok[r.Intn(len(ok))], nil
}

// needsRestart reports whether f needs the members restarted before it
// runs: with extra flags, or on a prepared data dir.
func needsRestart(f Failpoint, c *cluster.Cluster) bool {
	if _, prep := f.(MemberPreparer); prep {
		return true
	}
	mf, ok := f.(MemberFlagger)
	if !ok || len(c.Members()) == 0 {
		return false
	}
	flags, err := mf.MemberFlags(c.Members()[0])
	return err != nil || len(flags) > 0
}

// InRandomPool reports whether a run's `random` may pick f (it must also be
// available there). A run resolves `random` while it plans, before traffic,
// so a fault that needs the members restarted with extra flags may be
// picked: the run restarts them. A fault that needs each member's data
// dir prepared (on a LazyFS) runs by name only, as it moves every
// member's data onto a FUSE mount.
func InRandomPool(f Failpoint) bool {
	_, prep := f.(MemberPreparer)
	_, named := f.(byNameOnly)
	return !prep && !named
}

// Timeout is how long the run lets f's Inject take, heal included: def,
// unless f asks for longer (a version fault restarts every member, one
// after another, and waits for etcd's own version monitors).
func Timeout(f Failpoint, def time.Duration) time.Duration {
	if t, ok := f.(interface{ InjectTimeout() time.Duration }); ok && t.InjectTimeout() > def {
		return t.InjectTimeout()
	}
	return def
}

// byNameOnly is a fault that `random` never picks, for the reason it gives.
type byNameOnly interface{ ByNameOnly() string }

// needsRequests marks faults whose trigger sends etcd requests.
type needsRequests interface{ needsRequests() bool }

// randomFault is `random` used through Lookup: it picks at injection.
type randomFault struct{}

func (randomFault) Name() string                                      { return Random }
func (randomFault) Family() Family                                    { return "" }
func (randomFault) Available(context.Context, *cluster.Cluster) error { return nil }
func (randomFault) Inject(ctx context.Context, env Env, rec *Record) error {
	f, err := Pick(ctx, env.Cluster, env.Rand, env.Requests != nil)
	if err != nil {
		return err
	}
	env.Logger.Info("random fault", zap.String("failpoint", f.Name()))
	return f.Inject(ctx, env, rec)
}

// sequence is a list used through Lookup: its faults one after another.
type sequence struct {
	name   string
	faults []Failpoint
}

func (s sequence) Name() string   { return s.name }
func (s sequence) Family() Family { return "" }
func (s sequence) Available(ctx context.Context, c *cluster.Cluster) error {
	var errs []error
	for _, f := range s.faults {
		if err := f.Available(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name(), err))
		}
	}
	return errors.Join(errs...)
}
func (s sequence) Inject(ctx context.Context, env Env, rec *Record) error {
	for _, f := range s.faults {
		if err := f.Inject(ctx, env, rec); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	return nil
}

// Target says which members a fault acts on.
type Target string

// Targets.
const (
	AnyMember Target = "random member"
	Leader    Target = "leader"
	Follower  Target = "follower"
)

// pick chooses one member for t among the running members.
func pick(ctx context.Context, env Env, t Target) (*cluster.Member, error) {
	var running []*cluster.Member
	for _, m := range env.Cluster.Members() {
		if m.Running() {
			running = append(running, m)
		}
	}
	if len(running) == 0 {
		return nil, errors.New("no member is running")
	}
	if t == AnyMember {
		return running[env.Rand.Intn(len(running))], nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	leader, err := waitLeader(lctx, env.Cluster)
	if err != nil {
		return nil, fmt.Errorf("choosing the %s: %w", t, err)
	}
	if t == Leader {
		return leader, nil
	}
	var followers []*cluster.Member
	for _, m := range running {
		if m != leader {
			followers = append(followers, m)
		}
	}
	if len(followers) == 0 {
		return nil, errors.New("choosing a follower: the cluster has none")
	}
	return followers[env.Rand.Intn(len(followers))], nil
}

// waitLeader polls for a leader until ctx is done.
func waitLeader(ctx context.Context, c *cluster.Cluster) (*cluster.Member, error) {
	return c.WaitLeader(ctx)
}

// needMembers is the Available check of faults that need a cluster size.
func needMembers(c *cluster.Cluster, n int, why string) error {
	if got := len(c.Members()); got < n {
		return fmt.Errorf("needs at least %d members (%s); the cluster has %d", n, why, got)
	}
	return nil
}

// now reads the run clock.
func (env Env) now() time.Duration {
	if env.Now != nil {
		return env.Now()
	}
	return 0
}

// duration is how long a lasting fault lasts: env.Duration, or 1–5 s.
func (env Env) duration() time.Duration {
	if env.Duration > 0 {
		return env.Duration
	}
	return time.Second + time.Duration(env.Rand.Int63n(int64(LongestDefaultDuration-time.Second)))
}

// LongestDefaultDuration bounds the random duration of a lasting fault
// whose scenario names none (Env.Duration zero).
const LongestDefaultDuration = 5 * time.Second

// LongestDuration is the longest a lasting fault scheduled for d lasts:
// d, or LongestDefaultDuration when d is zero.
func LongestDuration(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return LongestDefaultDuration
}

// healTimeout bounds a heal that runs after the fault's context ended.
const healTimeout = time.Minute

// healCtx is the context heal runs in: not cancelled with ctx, but bounded.
func healCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), healTimeout)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restart starts a member that is down and waits until it serves again.
func restart(ctx context.Context, m *cluster.Member) error {
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("restarting %s: %w", m.Name(), err)
	}
	if err := m.WaitHealthy(ctx); err != nil {
		return fmt.Errorf("%s did not become healthy after restart: %w", m.Name(), err)
	}
	return nil
}

// recovered waits until every member is healthy again.
func recovered(ctx context.Context, env Env) error {
	if err := env.Cluster.WaitHealthy(ctx, env.offline...); err != nil {
		return fmt.Errorf("the cluster did not recover: %w", err)
	}
	return nil
}

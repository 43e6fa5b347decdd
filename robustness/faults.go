package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// faultPlan is the faults a run injects, resolved from the scenario and
// checked against the running cluster.
type faultPlan struct {
	steps []faultStep
	// minIsolation is failpoint.Env.MinIsolation for every step.
	minIsolation time.Duration
	// crashesLeftOut: the random pool left out the faults that crash a
	// single member (leaveOutCrashes).
	crashesLeftOut bool
}

// faultStep is one scheduled fault (`random` already picked).
type faultStep struct {
	spec scenarios.Fault
	fp   failpoint.Failpoint
}

// lookupFaults checks the scenario's fault names before anything starts.
func lookupFaults(sc scenarios.Scenario) error {
	sched := sc.Schedule()
	if len(sched) == 0 {
		return fmt.Errorf("scenario %s has no fault", sc.Name)
	}
	for _, f := range sched {
		if _, err := failpoint.Parse(f.Name); err != nil {
			return err
		}
	}
	return nil
}

// prepareFaults resolves the scenario's faults and checks that each can run
// against this cluster and its binaries. Each `random` is picked, from the
// seed, among the faults available here (randomPool), so the same seed
// and binaries give the same faults; the scenario returned names them in
// its place. Faults that need extra etcd flags (a small --snapshot-count)
// get them: the members are restarted with them, one at a time, before
// traffic starts.
//
// avoided are the known bugs the run steers around; those the plan avoids
// (etcd #14370: no crash drawn for a single member) shape the random pool.
func prepareFaults(ctx context.Context, sc scenarios.Scenario, cl *cluster.Cluster, seed int64, avoided []traffic.KnownBug) (faultPlan, scenarios.Scenario, error) {
	var plan faultPlan
	if sc.Watch != nil {
		// Watch traffic opens RequireLeader watches: a member cut off from
		// its peers stays cut off long enough for etcd to cancel them, and
		// for the check to judge that it did.
		plan.minIsolation = validate.RequireLeaderBound + time.Second
	}
	var flagged []failpoint.MemberFlagger
	var preparers []failpoint.MemberPreparer
	var pool []failpoint.Failpoint
	picker := rand.New(rand.NewSource(seed ^ pickSalt))
	sched := sc.Schedule()
	for i, spec := range sched {
		fs, err := failpoint.Parse(spec.Name)
		if err != nil {
			return faultPlan{}, sc, err
		}
		fp := fs[0]
		if fp.Name() == failpoint.Random {
			if pool == nil {
				pool, plan.crashesLeftOut = leaveOutCrashes(randomPool(ctx, cl), len(cl.Members()), avoided)
			}
			if len(pool) == 0 {
				return faultPlan{}, sc, errors.New("random: no fault is available for this cluster")
			}
			fp = pool[picker.Intn(len(pool))]
			sched[i].Name = fp.Name()
		} else if err := fp.Available(ctx, cl); err != nil {
			return faultPlan{}, sc, fmt.Errorf("failpoint %s is not available: %w", fp.Name(), err)
		}
		if mf, ok := fp.(failpoint.MemberFlagger); ok {
			flagged = append(flagged, mf)
		}
		if mp, ok := fp.(failpoint.MemberPreparer); ok {
			preparers = append(preparers, mp)
		}
		plan.steps = append(plan.steps, faultStep{spec: sched[i], fp: fp})
	}
	sc = withSchedule(sc, sched)
	if err := prepareMembers(ctx, cl, flagged, preparers); err != nil {
		return faultPlan{}, sc, err
	}
	return plan, sc, nil
}

// leaderPause is the longest the plan pauses the leader (SIGSTOP) for;
// zero when it never does.
func (p faultPlan) leaderPause() time.Duration {
	var longest time.Duration
	for _, st := range p.steps {
		if f, ok := st.fp.(failpoint.Pause); ok && f.Target == failpoint.Leader {
			longest = max(longest, failpoint.LongestDuration(st.spec.Duration))
		}
	}
	return longest
}

// exercises says whether the plan's traffic could meet known bug b: the
// paused leader's expiries only where the plan pauses the leader; a
// single member's crashes (etcd #14370) only where its random pool left
// some out.
func (p faultPlan) exercises(b traffic.KnownBug) bool {
	switch b.Avoid {
	case traffic.AvoidShortLeasesAcrossLeaderPause:
		return p.leaderPause() > 0
	case traffic.AvoidSingleMemberCrashes:
		return p.crashesLeftOut
	}
	return true
}

// leaveOutCrashes is the random pool of a cluster of members without the
// faults that crash a member (crashes), when the run avoids a known bug
// that a single member's crash exposes (traffic.AvoidSingleMemberCrashes)
// and the cluster has one member; and whether it left any out. A pool of
// crashes only is kept whole.
func leaveOutCrashes(pool []failpoint.Failpoint, members int, avoided []traffic.KnownBug) ([]failpoint.Failpoint, bool) {
	if members != 1 || !slices.ContainsFunc(avoided, func(b traffic.KnownBug) bool { return b.Avoid == traffic.AvoidSingleMemberCrashes }) {
		return pool, false
	}
	kept := slices.DeleteFunc(slices.Clone(pool), crashes)
	if len(kept) == 0 {
		return pool, false
	}
	return kept, len(kept) < len(pool)
}

// crashes says whether f ends a member's process abruptly: a kill, or an
// injected panic.
func crashes(f failpoint.Failpoint) bool {
	_, kill := f.(failpoint.Kill)
	return kill || f.Family() == failpoint.Panic
}

// minLeaseTTL is traffic.Config.MinLeaseTTL for a run avoiding the known
// bugs avoided: long enough for the plan's leader pauses when it avoids
// the paused leader's expiries, else zero (the profile's own TTLs).
func (p faultPlan) minLeaseTTL(avoided []string) int64 {
	if !slices.Contains(avoided, traffic.PausedLeaderExpiry) {
		return 0
	}
	return traffic.LeaseTTLAcrossLeaderPause(p.leaderPause())
}

// pickSalt keeps the picks of `random` apart from the other draws made
// from the run's seed.
const pickSalt = 0x5eed_fa17

// withSchedule is sc with its faults named as resolved: the --failpoint
// list, or the explicit schedule, now names what runs.
func withSchedule(sc scenarios.Scenario, sched []scenarios.Fault) scenarios.Scenario {
	if len(sc.Faults) > 0 && (sc.Failpoint == "" || sc.Failpoint == scenarios.FaultNames(sc.Faults)) {
		sc.Faults = sched
		sc.Failpoint = scenarios.FaultNames(sched)
		return sc
	}
	sc.Failpoint = scenarios.FaultNames(sched)
	return sc
}

// randomPool is every fault `random` may pick on this cluster.
func randomPool(ctx context.Context, cl *cluster.Cluster) []failpoint.Failpoint {
	var pool []failpoint.Failpoint
	for _, f := range failpoint.All() {
		if failpoint.InRandomPool(f) && f.Available(ctx, cl) == nil {
			pool = append(pool, f)
		}
	}
	return pool
}

// memberRestartTimeout bounds restarting one member with new flags.
const memberRestartTimeout = time.Minute

// prepareMembers restarts each member, one at a time, with the flags the
// faults need and the set-up they ask for (a LazyFS data dir).
func prepareMembers(ctx context.Context, cl *cluster.Cluster, faults []failpoint.MemberFlagger, preparers []failpoint.MemberPreparer) error {
	for _, m := range cl.Members() {
		args := m.ExtraArgs()
		for _, f := range faults {
			flags, err := f.MemberFlags(m)
			if err != nil {
				return err
			}
			args = mergeFlags(args, flags)
		}
		if slices.Equal(args, m.ExtraArgs()) && len(preparers) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, memberRestartTimeout)
		m.SetExtraArgs(args)
		err := m.Stop(rctx)
		for _, p := range preparers {
			if err == nil {
				err = p.PrepareMember(m)
			}
		}
		if err == nil {
			err = m.Start(rctx)
		}
		if err == nil {
			err = cl.WaitHealthy(rctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("restarting %s with %s: %w", m.Name(), strings.Join(args, " "), err)
		}
	}
	return nil
}

// mergeFlags is args with flags added ("--name=value"): a flag args already
// sets is replaced, so a fault's small --snapshot-count wins over a
// scenario's setting.
func mergeFlags(args, flags []string) []string {
	out := slices.Clone(args)
	for _, fl := range flags {
		name, _, _ := strings.Cut(fl, "=")
		out = slices.DeleteFunc(out, func(a string) bool { n, _, _ := strings.Cut(a, "="); return n == name })
		out = append(out, fl)
	}
	return out
}

// injectTimeout bounds one fault injection, recovery included.
const injectTimeout = 2 * time.Minute

// faultGap is the least time between one fault's heal and the next
// fault's start, and between the last fault's heal and the end of the
// traffic: the recovery stage's window, and half a second more. Without
// it, a fault that began as the last one healed left the stage nothing to
// measure, and the run INCONCLUSIVE for the harness's own schedule.
const faultGap = validate.RecoveryWindow + 500*time.Millisecond

// nextFaultAt is when the next fault starts, on the run's clock: when the
// schedule says (due), but no sooner than faultGap after the last one
// healed.
func nextFaultAt(due time.Duration, prior []history.Injection) time.Duration {
	if n := len(prior); n > 0 && prior[n-1].End > 0 {
		return max(due, prior[n-1].End+faultGap)
	}
	return due
}

// trafficEndAt is when the traffic stops: at the scenario's end (due), but
// no sooner than faultGap after the last fault healed, so the run
// stretches to fit its faults.
func trafficEndAt(due time.Duration, injections []history.Injection) time.Duration {
	return nextFaultAt(due, injections)
}

// runTrafficAndFaults runs traffic for the scenario's duration and injects
// the scheduled faults, one after another, each at its start time but no
// sooner than faultGap after the one before healed. Traffic keeps going
// until faultGap after the last fault healed, and at least to the
// scenario's end, so the history shows etcd recover from every fault.
func runTrafficAndFaults(ctx context.Context, lg *zap.Logger, cfg Config, cl *cluster.Cluster, clock *history.Clock,
	profile traffic.Profile, plan faultPlan) ([]history.Client, []history.Injection) {
	sc := cfg.Scenario
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	type trafficResult struct {
		clients []history.Client
		err     error
	}
	done := make(chan trafficResult, 1)
	lg.Info("traffic started", zap.String("profile", profile.Name()), zap.Int("clients", sc.Clients),
		zap.Float64("qps", sc.QPS), zap.Duration("duration", sc.Duration))
	trafficStart := clock.Now()
	prog := &progress{}
	stopProgress := prog.log(trafficCtx, lg, clock, trafficStart, ProgressInterval, cfg.Status)
	defer stopProgress()
	go func() {
		clients, err := traffic.Run(trafficCtx, traffic.Config{
			Profile: profile, Endpoints: cl.Endpoints(), Clients: sc.Clients, QPS: sc.QPS,
			Pins: clientPins(sc, cl), Seed: cfg.Seed, Clock: clock, Logger: lg,
			Avoid: avoidances(sc.KnownBugsAvoided), Counter: &prog.counter, CompactionInterval: sc.CompactionInterval,
			LeaseKeepAlive: sc.LeaseKeepAlive, Users: authUsers(sc.Auth, traffic.AuthClientUser), NestedTxns: sc.Auth != "",
			MinLeaseTTL: plan.minLeaseTTL(sc.KnownBugsAvoided),
		})
		done <- trafficResult{clients, err}
	}()

	reqs := &recordingRequests{cl: cl, clock: clock, nextID: sc.Clients + 1, lg: lg}
	defer reqs.close()
	rnd := rand.New(rand.NewSource(cfg.Seed))
	var injections []history.Injection
	for _, step := range plan.steps {
		if wait := nextFaultAt(trafficStart+step.spec.Start, injections) - clock.Now(); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		prog.setFault(step.fp.Name())
		injections = append(injections, injectOne(ctx, lg, cl, clock, rnd, reqs, step, plan.minIsolation, injections))
		prog.setFault("")
	}
	wait := max(trafficEndAt(trafficStart+sc.Duration, injections)-clock.Now(), time.Second)
	select {
	case <-time.After(wait):
	case <-ctx.Done():
	}
	stopTraffic()
	r := <-done
	if r.err != nil {
		lg.Warn("traffic", zap.Error(r.err))
	}
	return append(r.clients, reqs.histories()...), injections
}

// injectOne injects one scheduled fault and records it. A fault that did
// not take effect is an error, never a silent pass. A fault due while a
// member is down because etcd crashed (it exited on its own, and no
// earlier fault accounts for it) is not injected, and says so; a fault
// that failed because etcd crashed while it ran says that rather than what
// the crash made it fail with. The crash stage reports the crash itself.
func injectOne(ctx context.Context, lg *zap.Logger, cl *cluster.Cluster, clock *history.Clock, rnd *rand.Rand,
	reqs *recordingRequests, step faultStep, minIsolation time.Duration, prior []history.Injection) history.Injection {
	fp := step.fp
	inj := history.Injection{Name: fp.Name(), Start: clock.Now()}
	if e, ok := crashedAndDown(cl, prior); ok {
		inj.End = inj.Start
		inj.Error = crashWords(e, "before the fault began")
		lg.Warn("fault not injected: etcd crashed before it", zap.String("failpoint", fp.Name()), zap.String("reason", inj.Error))
		return inj
	}
	lg.Info("injecting fault", zap.String("failpoint", fp.Name()))
	// A member that never recovers must not hang the run.
	injectCtx, cancel := context.WithTimeout(ctx, failpoint.Timeout(fp, injectTimeout))
	defer cancel()
	var rec failpoint.Record
	err := fp.Inject(injectCtx, failpoint.Env{
		Cluster: cl, Logger: lg, Rand: rand.New(rand.NewSource(rnd.Int63())),
		Now: clock.Now, Duration: step.spec.Duration, MinIsolation: minIsolation, Requests: reqs,
		Release: etcdbuild.ReleaseFunc(cl.Members()[0].EtcdPath(), lg), StepGap: faultGap,
	}, &rec)
	inj.End = clock.Now()
	inj.Targets = rec.Targets
	inj.Effect = rec.Effect
	inj.Explains = rec.Explains
	inj.Steps = rec.Steps
	inj.Detail = rec.Detail
	for i := range inj.Explains {
		if inj.Explains[i].Until == 0 {
			inj.Explains[i].Until = inj.End
		}
	}
	// Panic and fatal lines a member logged while the fault ran.
	cl.ScanLogs()
	if err != nil {
		if e, ok := crashedDuring(cl, append(prior, inj), inj); ok {
			lg.Warn("fault failed as etcd crashed", zap.String("failpoint", fp.Name()), zap.Error(err))
			when := "before the fault took effect"
			if inj.Effect != 0 && e.Time >= inj.Effect {
				when = fmt.Sprintf("after the fault took effect at %.1fs", inj.Effect.Seconds())
			}
			err = errors.New(crashWords(e, when+", which the fault does not account for"))
		}
	}
	if rec.Detail != "" {
		lg.Info("fault detail", zap.String("failpoint", fp.Name()), zap.String("detail", rec.Detail))
	}
	if err == nil && rec.Effect == 0 {
		err = errors.New("the fault did not take effect")
	}
	if err != nil {
		inj.Error = err.Error()
		lg.Warn("fault injection failed", zap.String("failpoint", fp.Name()), zap.Error(err))
	} else {
		lg.Info("cluster recovered from fault", zap.String("failpoint", fp.Name()), zap.Strings("targets", rec.Targets),
			zap.Duration("effect", inj.Effect), zap.Duration("took", inj.End-inj.Start))
	}
	return inj
}

// crashedAndDown is the first exit of a member's process that neither the
// harness nor a fault accounts for (see validate.Crash), of a member that
// has not run again since.
func crashedAndDown(cl *cluster.Cluster, injections []history.Injection) (history.MemberExit, bool) {
	for _, e := range validate.Unexplained(cl.Exits(), injections) {
		if !e.Exited() {
			continue
		}
		for _, m := range cl.Members() {
			if m.Name() == e.Member && !m.Running() {
				return e, true
			}
		}
	}
	return history.MemberExit{}, false
}

// crashedDuring is the first record no one accounts for (an exit, or a
// panic or fatal line) from the start of inj to its end.
func crashedDuring(cl *cluster.Cluster, injections []history.Injection, inj history.Injection) (history.MemberExit, bool) {
	for _, e := range validate.Unexplained(cl.Exits(), injections) {
		if e.Time >= inj.Start && e.Time <= inj.End+validate.ExitGrace {
			return e, true
		}
	}
	return history.MemberExit{}, false
}

// crashWords says what etcd did and when, in one line: "member-2 exited
// on its own at 9.1s (exit status 2) before the fault began: SIGABRT:
// abort".
func crashWords(e history.MemberExit, when string) string {
	s := validate.DescribeExit(e) + " " + when
	if l := e.FirstCrashLine(); l != "" {
		const maxLen = 200
		if len(l) > maxLen {
			l = l[:maxLen] + "..."
		}
		s += ": " + l
	}
	return s
}

// requestTimeout bounds one trigger request.
const requestTimeout = 10 * time.Second

// recordingRequests sends the requests of fault triggers through recording
// clients, so that the model sees them. Each client dials the members' real
// listeners, a path no fault cuts.
type recordingRequests struct {
	cl     *cluster.Cluster
	clock  *history.Clock
	lg     *zap.Logger
	mu     sync.Mutex
	nextID int
	all    []*client.Client
	// tombstones counts CompactAtTombstone's puts, whose values it makes
	// unique.
	tombstones int
}

func (r *recordingRequests) newClient(endpoints []string) (*client.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := client.New(endpoints, r.nextID, r.clock, requestTimeout)
	if err != nil {
		return nil, fmt.Errorf("fault trigger client: %w", err)
	}
	r.nextID++
	r.all = append(r.all, c)
	return c, nil
}

// compactClient is a recording client of every member.
func (r *recordingRequests) compactClient() (*client.Client, error) {
	var eps []string
	for _, m := range r.cl.Members() {
		eps = append(eps, m.DirectClientURL())
	}
	return r.newClient(eps)
}

// Compact implements failpoint.Requests: it reads the current revision
// and compacts there, both through one recording client.
func (r *recordingRequests) Compact(ctx context.Context) (int64, error) {
	c, err := r.compactClient()
	if err != nil {
		return 0, err
	}
	get := c.Do(ctx, history.Get("compaction-trigger"))
	if get.Error != nil || get.Response == nil {
		return 0, fmt.Errorf("reading the revision to compact at: %v", get.Error)
	}
	rev := get.Response.Header.Revision
	op := c.Do(ctx, history.Request{Compaction: &history.CompactionRequest{Revision: rev}})
	if op.Error != nil {
		return rev, fmt.Errorf("compacting at %d: %w", rev, op.Error)
	}
	return rev, nil
}

// CompactAtTombstone implements failpoint.Requests: a put and a delete of
// one key, then a compaction at the delete's revision, all through one
// recording client. Each value is unique, as the traffic's are.
func (r *recordingRequests) CompactAtTombstone(ctx context.Context) (int64, error) {
	c, err := r.compactClient()
	if err != nil {
		return 0, err
	}
	const key = "compaction-trigger"
	r.mu.Lock()
	r.tombstones++
	value := fmt.Sprintf("tombstone-trigger-%d", r.tombstones)
	r.mu.Unlock()
	if op := c.Do(ctx, history.Put(key, value)); op.Error != nil {
		return 0, fmt.Errorf("putting %s: %w", key, op.Error)
	}
	del := c.Do(ctx, history.Delete(key))
	if del.Error != nil || del.Response == nil {
		return 0, fmt.Errorf("deleting %s: %v", key, del.Error)
	}
	rev := del.Response.Header.Revision
	if op := c.Do(ctx, history.Request{Compaction: &history.CompactionRequest{Revision: rev}}); op.Error != nil {
		return rev, fmt.Errorf("compacting at %d: %w", rev, op.Error)
	}
	return rev, nil
}

// Defragment implements failpoint.Requests.
func (r *recordingRequests) Defragment(ctx context.Context, m *cluster.Member) error {
	c, err := r.newClient([]string{m.DirectClientURL()})
	if err != nil {
		return err
	}
	if op := c.Do(ctx, history.Request{Defragment: &history.DefragmentRequest{}}); op.Error != nil {
		return fmt.Errorf("defragmenting %s: %w", m.Name(), op.Error)
	}
	return nil
}

func (r *recordingRequests) histories() []history.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []history.Client
	for _, c := range r.all {
		out = append(out, c.History())
	}
	return out
}

func (r *recordingRequests) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.all {
		_ = c.Close()
	}
}

// avoidedBugs are the known bugs of versions the traffic steers around:
// every one they have, but those named in expose (a regression's own bug).
func avoidedBugs(versions []string, auth bool, expose []string) []traffic.KnownBug {
	var out []traffic.KnownBug
	for _, b := range traffic.KnownBugsOf(versions, auth) {
		if !slices.Contains(expose, b.ID) {
			out = append(out, b)
		}
	}
	return out
}

// avoidances are what the profiles leave out for the known bugs a run
// avoids (by ID, as the scenario records them).
func avoidances(ids []string) []traffic.Avoidance {
	var out []traffic.Avoidance
	for _, b := range traffic.KnownBugs {
		if slices.Contains(ids, b.ID) {
			out = append(out, b.Avoid)
		}
	}
	return out
}

// Package robustness runs a scenario end to end: it starts a real etcd
// cluster, drives traffic, injects the scenario's fault, checks the recorded
// history and writes a report. It is a library; the CLI and `go test` are
// thin shells over Run.
package robustness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/report"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// Config is one run.
type Config struct {
	Scenario scenarios.Scenario
	// Binaries holds one release for every member, or one per member
	// (mixed-version clusters).
	Binaries []etcdbuild.Binaries
	// ResultsDir receives the run's directory.
	ResultsDir string
	// KeepPassing keeps the report of a passing run; a run that does not
	// pass always keeps it.
	KeepPassing bool
	Seed        int64
	// CheckTimeout bounds the linearizability check.
	CheckTimeout time.Duration
	// ExposeKnownBugs sends the requests that traffic.KnownBugs of the
	// versions under test would otherwise have the profiles leave out.
	ExposeKnownBugs bool
	// Expose names known bugs (traffic.KnownBug IDs) that the traffic does
	// not avoid although the versions have them: a regression's own bug,
	// which its runs on the release with the bug must be able to catch.
	Expose []string
	// Replay, when set, is the run this one replays: Scenario and Seed
	// are its, and the result compares the two (Result.Replay).
	Replay *report.Original
	// Status, if set, gets a one-line status every second while traffic
	// runs (elapsed, requests/s, errors, the fault under way), and "" when
	// traffic ends: the CLI keeps it as one updating line on a terminal.
	Status func(line string)
	// BeforeCheck, if set, is called once the traffic has ended and the
	// record is in memory, just before the check (the CLI writes a heap
	// profile there).
	BeforeCheck func()
	Logger      *zap.Logger
}

// Outcome is the run's overall answer.
type Outcome string

const (
	// Pass: every check passed.
	Pass Outcome = "PASS"
	// Fail: a check found a violation.
	Fail Outcome = "FAIL"
	// Inconclusive: nothing was violated, but the run could not show that
	// etcd is correct (a check timed out, the history was empty, or the
	// fault was not injected). Never a pass.
	Inconclusive Outcome = "INCONCLUSIVE"
)

// Result is what a run found.
type Result struct {
	Outcome    Outcome
	Results    []validate.Result
	Injections []history.Injection
	Stats      history.Stats
	// Dir is the report directory, or "" if a passing run's was removed.
	Dir string
	// Replay compares a replayed run with its original (Config.Replay).
	Replay *report.Replay
}

// Headline is the result's first line for a person: the outcome and the
// first violation, or what could not be decided, in one short sentence, or
// the operation count of a pass (report.Headline).
func (r *Result) Headline() string {
	return report.Headline(string(r.Outcome), r.Stats, r.Results, r.Injections)
}

// WriteStages writes the table of stages and the faults not injected
// (report.WriteStages).
func (r *Result) WriteStages(w io.Writer) error {
	return report.WriteStages(w, r.Results, r.Injections)
}

// Verdict is the whole result on one line: every stage's verdict and
// message, and every fault not injected. summary.json keeps it for tools;
// a person reads Headline and WriteStages.
func (r *Result) Verdict() string {
	var parts []string
	for _, v := range r.Results {
		parts = append(parts, fmt.Sprintf("%s %s: %s", v.Validator, v.Verdict, v.Message))
	}
	for _, inj := range r.Injections {
		if inj.Error != "" {
			parts = append(parts, fmt.Sprintf("fault %s not injected: %s", inj.Name, inj.Error))
		}
	}
	return fmt.Sprintf("%s: %s", r.Outcome, strings.Join(parts, "; "))
}

// SetupError is a run that could not start or finish: bad configuration, a
// build failure, a cluster that did not come up. It is not a verdict on etcd.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

func setupErr(format string, args ...any) error {
	return &SetupError{Err: fmt.Errorf(format, args...)}
}

// Run runs cfg.Scenario. A violation is reported in the Result, not as an
// error. A non-nil error is a SetupError or the context's error; it comes
// with a non-nil Result only when the checks ran but the report could not be
// written, so that a verdict is never lost.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	// The whole run, its check and report included, keeps the heap within
	// a headroom of what is live (traffic.TuneGC).
	defer traffic.TuneGC()()
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	sc := cfg.Scenario
	if err := sc.Validate(); err != nil {
		return nil, &SetupError{Err: err}
	}
	if n := 2 + len(traffic.AuthUsers); sc.Auth != "" && sc.Clients < n {
		// Two clients run as root (the compactor, the defragmenter); the
		// others take each user in turn.
		lg.Info("auth: more clients, so that every user runs one", zap.Int("clients", n), zap.Int("asked", sc.Clients))
		sc.Clients = n
	}
	if err := lookupFaults(sc); err != nil {
		return nil, &SetupError{Err: err}
	}
	profile, err := traffic.Lookup(sc.Traffic)
	if err != nil {
		return nil, &SetupError{Err: err}
	}
	etcdPaths, versions, err := memberBinaries(cfg.Binaries, sc.Members)
	if err != nil {
		return nil, err
	}
	dir, err := makeRunDir(cfg.ResultsDir, sc.Name, cfg.Seed)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()

	extra := memberEtcdArgs(lg, sc, etcdPaths)
	if sc.Auth != "" {
		authArgs, err := authEtcdArgs(sc.Auth, dir)
		if err != nil {
			return nil, setupErr("auth: %w", err)
		}
		extra = mergeFlags(extra, authArgs)
	}
	lg.Info("starting cluster", zap.Int("members", sc.Members), zap.Strings("versions", versions), zap.String("dir", dir))
	cl, err := cluster.Start(ctx, cluster.Config{Size: sc.Members, EtcdPaths: etcdPaths, Dir: dir, Logger: lg,
		ExtraArgs: extra, TLS: sc.TLS})
	if err != nil {
		keep = true
		return nil, setupErr("starting the cluster (logs in %s): %w", dir, err)
	}
	defer cl.Close()
	if err := placeClients(&sc, cfg.Seed, cl); err != nil {
		return nil, &SetupError{Err: err}
	}
	cfg.Scenario = sc
	lg.Info("traffic clients placed", zap.String("placement", firstNonEmpty(sc.Placement, traffic.Mixed)), zap.Strings("pinned-to", sc.ClientMembers))
	var avoided []traffic.KnownBug
	if !cfg.ExposeKnownBugs {
		avoided = avoidedBugs(versions, sc.Auth != "", cfg.Expose)
	}
	plan, sc, err := prepareFaults(ctx, sc, cl, cfg.Seed, avoided)
	if err != nil {
		return nil, &SetupError{Err: err}
	}
	if !cfg.ExposeKnownBugs {
		sc.KnownBugsAvoided = nil
		for _, b := range avoided {
			if !plan.exercises(b) {
				continue
			}
			sc.KnownBugsAvoided = append(sc.KnownBugsAvoided, b.ID)
			lg.Warn("known etcd bug avoided: the traffic leaves out "+string(b.Avoid)+" (run --expose-known-bugs to send them)",
				zap.String("bug", b.ID), zap.String("summary", b.Summary))
		}
	}
	// After any restart the faults' flags needed, so that the leader is
	// where the draw put it when traffic starts.
	if err := placeLeader(ctx, lg, &sc, cl); err != nil {
		return nil, &SetupError{Err: err}
	}
	if sc.Flags != "" || sc.Explore != nil {
		sc.Description = sc.Describe() // it names the faults picked
	}
	cfg.Scenario = sc
	lg.Info("faults planned", zap.String("failpoint", sc.Failpoint), zap.String("scenario", sc.Description))

	clock := history.NewClock()
	// What the clients and watchers record goes to the journal as well, as
	// it is recorded, so that a harness that dies leaves it on disk; it is
	// removed once the record is written, or with the run's directory.
	journal, err := report.OpenJournal(dir)
	if err != nil {
		return nil, &SetupError{Err: err}
	}
	defer journal.Close()
	clock.SetJournal(journal)
	// The members' exits are timed on the run's clock.
	cl.SetClock(clock.Now)
	// Health probes cover traffic, faults, the final read and the end states.
	prober := cl.StartProber(ctx, clock.Now)
	defer prober.Stop()
	admin, err := enableAuth(ctx, lg, sc.Auth, cl, clock)
	if err != nil {
		keep = true
		return nil, setupErr("enabling auth (logs in %s): %w", dir, err)
	}
	watchers := startWatchers(ctx, lg, sc, cfg.Seed, cl, clock)
	defer watchers.stop()
	admin.run(ctx, cfg.Seed)
	clients, injections := runTrafficAndFaults(ctx, lg, cfg, cl, clock, profile, plan)
	clients = append(clients, admin.finish()...)
	if err := ctx.Err(); err != nil {
		// An interrupted run proves nothing; its directory goes like a temp dir.
		return nil, fmt.Errorf("run interrupted: %w", err)
	}
	clients = append(clients, finalRead(ctx, lg, cl, clock, sc.Clients))
	// Every watch catches up to the final read's revision, within a bound.
	watches, lists := watchers.finish(clients[len(clients)-1])
	clients = append(clients, lists...)
	in := validate.Input{Clients: clients, Injections: injections, FinalRead: sc.Clients, Watches: watches}
	in.EndStates = endStates(ctx, lg, cl)
	in.Probes = prober.Stop()
	// Stop the members so their data dirs are at rest, then read what they
	// persisted.
	if err := cl.Close(); err != nil {
		lg.Warn("stopping the cluster", zap.Error(err))
	}
	in.Persisted, in.EvidenceError = readEvidence(lg, cl)
	// Every end of an etcd process, and every panic or fatal line the
	// members logged, for the crash stage.
	in.Exits = cl.Exits()
	if err := journal.Close(); err != nil {
		lg.Warn("writing the journal", zap.Error(err))
	}

	rec := report.Record{Scenario: sc, EtcdVersions: versions, Seed: cfg.Seed, Start: clock.Start(), Input: in}
	if cfg.BeforeCheck != nil {
		cfg.BeforeCheck()
	}
	res := Check(ctx, lg, rec, validate.Options{CheckTimeout: cfg.CheckTimeout, Visualize: cfg.KeepPassing})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run interrupted: %w", err)
	}
	if o := cfg.Replay; o != nil {
		rec.ReplayOf = o.Dir
		r := report.CompareReplay(*o, sc, injections, string(res.Outcome), res.Stats)
		res.Replay = &r
	}
	if res.Outcome != Pass || cfg.KeepPassing {
		keep = true
		res.Dir = dir
		if err := report.Write(dir, rec, res.Summary(rec)); err != nil {
			return res, setupErr("writing the report: %w", err)
		}
		if err := journal.Remove(); err != nil {
			lg.Warn("removing the journal, which the record replaces", zap.Error(err))
		}
		// The run's size and cost go into summary.json once the report is
		// written (its size is one of them).
		if s, err := report.WriteScale(dir, rec, res.Results); err != nil {
			lg.Warn("recording the run's scale in the summary", zap.Error(err))
		} else {
			lg.Info("scale", zap.Int("operations", s.Operations), zap.Int("entries", s.Entries), zap.Int("watch-responses", s.WatchResponses),
				zap.Float64("check-seconds", s.CheckSeconds), zap.Float64("traffic-seconds", s.TrafficSeconds),
				zap.Int64("peak-rss-bytes", s.PeakRSSBytes), zap.Int64("report-bytes", s.ReportBytes))
		}
	}
	return res, nil
}

// Check runs every validation stage over a run record: the same stages for
// a run and for a saved report checked again.
func Check(ctx context.Context, lg *zap.Logger, rec report.Record, o validate.Options) *Result {
	defer traffic.TuneGC()()
	stats := history.Count(rec.Clients)
	lg.Info("checking the history", zap.Int("operations", stats.Operations))
	in := rec.Input
	in.Releases = rec.EtcdVersions
	results := validate.Run(ctx, in, o)
	for _, r := range results {
		lg.Info("stage", zap.String("name", r.Validator), zap.String("verdict", string(r.Verdict)),
			zap.Duration("took", r.Took.Round(time.Millisecond)))
	}
	return &Result{Results: results, Injections: rec.Injections, Stats: stats, Outcome: OutcomeOf(results, rec.Injections)}
}

// Summary is the result as the report's summary.json keeps it.
func (r *Result) Summary(rec report.Record) report.Summary {
	return report.Summary{Scenario: rec.Scenario.Name, EtcdVersions: rec.EtcdVersions, Seed: rec.Seed,
		Stats: r.Stats, Outcome: string(r.Outcome), Verdict: r.Verdict(), Results: r.Results, Replay: r.Replay}
}

// OutcomeOf folds the validators' verdicts and the injections into one answer.
func OutcomeOf(results []validate.Result, injections []history.Injection) Outcome {
	out := Pass
	for _, r := range results {
		switch {
		case r.Verdict == validate.Illegal:
			return Fail
		case !r.Passed():
			out = Inconclusive
		}
	}
	for _, inj := range injections {
		if inj.Error != "" {
			out = Inconclusive
		}
	}
	return out
}

// finalReadTimeout bounds the final read, retries included.
const finalReadTimeout = 30 * time.Second

// finalRead reads every key once the cluster is healthy again. Acknowledged
// writes that a crash lost show up here even if no client read them. It
// retries with backoff for a bounded time; if no attempt succeeds, the
// final-read stage makes the run inconclusive.
func finalRead(ctx context.Context, lg *zap.Logger, cl *cluster.Cluster, clock *history.Clock, id int) history.Client {
	ctx, cancel := context.WithTimeout(ctx, finalReadTimeout)
	defer cancel()
	if err := cl.WaitHealthy(ctx); err != nil {
		lg.Warn("cluster not healthy before the final read", zap.Error(err))
	}
	c, err := client.New(cl.Endpoints(), id, clock, 0)
	if err != nil {
		lg.Warn("final read", zap.Error(err))
		return history.Client{ID: id}
	}
	defer c.Close()
	backoff := 100 * time.Millisecond
	for {
		op := c.Do(ctx, history.RangeAll())
		if op.Error == nil {
			return c.History()
		}
		lg.Warn("final read failed; retrying", zap.Error(op.Error), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			lg.Warn("final read never succeeded", zap.Duration("within", finalReadTimeout))
			return c.History()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// endStateSettle bounds how long endStates waits for the members to reach
// one revision: a member that was cut off or restarted late may still be
// applying the log when traffic ends. Convergence compares hashes only at
// one revision, so without the wait it could not decide.
const endStateSettle = 10 * time.Second

// endStates takes every member's end state, all at once, and takes them
// again (every 200 ms, up to endStateSettle) until every member answered
// at one revision. What it returns last is what the members said.
func endStates(ctx context.Context, lg *zap.Logger, cl *cluster.Cluster) []evidence.MemberState {
	members := cl.Members()
	deadline := time.After(endStateSettle)
	for {
		out := make([]evidence.MemberState, len(members))
		var wg sync.WaitGroup
		for i, m := range members {
			wg.Go(func() {
				out[i] = evidence.TakeEndState(ctx, lg, m.Name(), cluster.ClientConfig([]string{m.ClientURL()}))
			})
		}
		wg.Wait()
		if settled(out) {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-deadline:
			lg.Warn("members did not reach one revision", zap.Duration("within", endStateSettle))
			return out
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// settled reports whether every member answered, at one revision.
func settled(states []evidence.MemberState) bool {
	for _, s := range states {
		if s.Error != "" || s.Revision != states[0].Revision {
			return false
		}
	}
	return true
}

// readEvidence reads every member's WAL and merges them into the committed
// log, or says why it could not.
func readEvidence(lg *zap.Logger, cl *cluster.Cluster) (*evidence.Log, string) {
	var wals []evidence.MemberWAL
	for _, m := range cl.Members() {
		w := evidence.ReadWAL(lg, m.Name(), m.DataDir())
		if w.Error != "" {
			lg.Warn("reading a member's WAL", zap.String("member", m.Name()), zap.String("error", w.Error))
		}
		wals = append(wals, w)
	}
	log, err := evidence.Merge(wals)
	if err != nil {
		lg.Warn("merging the members' WALs", zap.Error(err))
		return nil, err.Error()
	}
	lg.Info("read the members' WALs", zap.Int("committed", len(log.Entries)), zap.Bool("complete", log.Complete))
	return &log, ""
}

// placeClients decides which member each traffic client is pinned to
// (traffic.Place, from the seed) and records it in sc.ClientMembers.
func placeClients(sc *scenarios.Scenario, seed int64, cl *cluster.Cluster) error {
	members := cl.Members()
	pins, err := traffic.Place(sc.Placement, seed, sc.Clients, len(members))
	if err != nil {
		return err
	}
	sc.ClientMembers = make([]string, len(pins))
	for i, p := range pins {
		if p >= 0 {
			sc.ClientMembers[i] = members[p].Name()
		}
	}
	return nil
}

// clientPins reads sc.ClientMembers back as traffic.Config.Pins: each
// client's member as an index into cl.Endpoints(), or -1.
func clientPins(sc scenarios.Scenario, cl *cluster.Cluster) []int {
	pins := make([]int, len(sc.ClientMembers))
	for i, name := range sc.ClientMembers {
		pins[i] = -1
		for j, m := range cl.Members() {
			if name != "" && m.Name() == name {
				pins[i] = j
			}
		}
	}
	return pins
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// memberBinaries picks each member's etcd executable.
func memberBinaries(bins []etcdbuild.Binaries, members int) (paths, versions []string, err error) {
	switch {
	case len(bins) == 0:
		return nil, nil, setupErr("no etcd binaries given")
	case len(bins) != 1 && len(bins) != members:
		return nil, nil, setupErr("%d etcd binaries given for %d members: give one, or one per member", len(bins), members)
	}
	for _, b := range bins {
		paths = append(paths, b.Etcd)
		versions = append(versions, b.Version)
	}
	return paths, versions, nil
}

// CheckResultsDir creates resultsDir if needed and checks that a run can
// write into it. The CLI calls it before building anything; Run calls it
// again before making the run's directory.
func CheckResultsDir(resultsDir string) error {
	if resultsDir == "" {
		return setupErr("no results directory given")
	}
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return setupErr("results directory %s cannot be created: %w", resultsDir, cause(err))
	}
	f, err := os.CreateTemp(resultsDir, ".write-test-*")
	if err != nil {
		return setupErr("results directory %s is not writable: %w", resultsDir, cause(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// makeRunDir creates the run's directory under resultsDir.
func makeRunDir(resultsDir, name string, seed int64) (string, error) {
	if err := CheckResultsDir(resultsDir); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(resultsDir, fmt.Sprintf("%s-%s-seed%d-", name, time.Now().Format("20060102-150405"), seed))
	if err != nil {
		return "", setupErr("results directory %s is not writable: %w", resultsDir, cause(err))
	}
	return filepath.Abs(dir)
}

// ProvisionEtcd returns the etcd binaries for a run: the prebuilt ones in
// binDir if it is set, else each release in versions built (or taken from
// the cache in cacheDir) with every gofail failpoint enabled, and with the
// source patches named in patches that the release needs
// (etcdbuild.Options.Patches). One version serves every member; several
// give one member each (a mixed-version cluster).
func ProvisionEtcd(ctx context.Context, lg *zap.Logger, versions, patches []string, binDir, cacheDir string) ([]etcdbuild.Binaries, error) {
	if binDir != "" {
		b, err := etcdbuild.FromDir(ctx, binDir)
		if err != nil {
			return nil, &SetupError{Err: err}
		}
		return []etcdbuild.Binaries{b}, nil
	}
	built := map[string]etcdbuild.Binaries{}
	var out []etcdbuild.Binaries
	for _, v := range versions {
		b, ok := built[v]
		if !ok {
			var err error
			if b, err = etcdbuild.Provision(ctx, v, etcdbuild.Options{CacheDir: cacheDir, Logger: lg, Patches: patches}); err != nil {
				return nil, &SetupError{Err: err}
			}
			built[v] = b
		}
		out = append(out, b)
	}
	return out, nil
}

// cause is the OS's reason behind a path error ("permission denied"), for
// one-line messages that already name the path.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

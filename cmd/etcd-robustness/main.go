// Command etcd-robustness runs robustness scenarios against real etcd
// releases and checks a saved report again.
//
//	etcd-robustness run [flags]     run a scenario (see -h)
//	etcd-robustness check DIR       check a saved report again
//	etcd-robustness list            list scenarios, failpoints and traffic profiles
//	etcd-robustness regression N    reproduce etcd issue N on the release that has it (see -h)
//
// Exit status: 0 every check passed; 1 a violation was found or the run was
// inconclusive; 2 usage or setup error; 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/report"
	"github.com/etcd-robustness/etcd-robustness/robustness"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

const (
	exitPass        = 0
	exitViolation   = 1
	exitSetup       = 2
	exitInterrupted = 130
)

func main() {
	// SIGHUP (the terminal went away) ends a run like SIGINT and SIGTERM:
	// the members are stopped and the run's directories removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// A write to a closed pipe (`etcd-robustness failpoints | head -2`)
	// would kill the process before any cleanup. With SIGPIPE notified,
	// the write fails with EPIPE instead, and closedOutput ends the command
	// the same way as a signal. (The channel is never read: SIGPIPEs from
	// sockets, which a killed member's connections raise, are dropped.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(ctx)
	code := run(ctx, os.Args[1:], closedOutput{os.Stdout, cancel}, closedOutput{os.Stderr, cancel})
	cancel(nil)
	stop()
	os.Exit(code)
}

// errOutputClosed is why a command whose output pipe closed was stopped.
var errOutputClosed = errors.New("output closed (broken pipe)")

// closedOutput is a command's stdout or stderr: once a write to it fails
// because its reader went away, the command's context is cancelled, so the
// command stops and cleans up as when interrupted.
type closedOutput struct {
	w      io.Writer
	cancel context.CancelCauseFunc
}

func (o closedOutput) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		o.cancel(errOutputClosed)
	}
	return n, err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "etcd-robustness: usage: etcd-robustness run|check|summary|list|failpoints|regression [flags] (see etcd-robustness run -h)")
		return exitSetup
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "check":
		return checkCmd(ctx, args[1:], stdout, stderr)
	case "summary":
		return summaryCmd(ctx, args[1:], stdout, stderr)
	case "failpoints":
		return failpointsCmd(ctx, args[1:], stdout, stderr)
	case "regression":
		return regressionCmd(ctx, args[1:], stdout, stderr)
	case "list":
		fmt.Fprintf(stdout, "scenarios:  %s\nfailpoints: %s\ntraffic:\n",
			strings.Join(scenarios.Names(), ", "), strings.Join(failpoint.Names(), ", "))
		listTraffic(stdout)
		return exitPass
	default:
		fmt.Fprintf(stderr, "etcd-robustness: unknown command %q (valid: run, check, summary, list, failpoints, regression)\n", args[0])
		return exitSetup
	}
}

// runArgs is a parsed `run` command line: the scenario as the flags
// changed it, and how to run it.
type runArgs struct {
	sc                           scenarios.Scenario
	replay                       *report.Original
	versions                     []string
	binDir, cacheDir, resultsDir string
	seed                         int64
	keep, exposeBugs             bool
	checkTimeout                 time.Duration
}

// parseRun reads `run`'s flags. A code other than exitPass is a usage
// error, already printed on stderr.
func parseRun(args []string, stderr io.Writer) (runArgs, int) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		scenario     = fs.String("scenario", scenarios.DefaultName, "scenario to run: "+strings.Join(scenarios.Names(), ", "))
		version      = fs.String("etcd-version", "", "etcd release to build and test (default "+etcdbuild.DefaultVersion+", or the scenario's pinned release); a comma-separated list gives one release per member, or, for the explore scenario, the releases its members are drawn from")
		binDir       = fs.String("etcd-bin", "", "directory with prebuilt etcd binaries to test instead of a release build")
		cacheDir     = fs.String("cache-dir", "", "where etcd builds are cached (default $ETCD_ROBUSTNESS_CACHE or the user cache dir)")
		members      = fs.Int("members", 0, "cluster size: 1, 3 or 5 (default: the scenario's)")
		tlsOn        = fs.Bool("tls", false, "run the members with client and peer TLS, certificates made for the run and kept in the report's tls/ (default: the scenario's; explore draws it); --tls=false turns it off")
		fp           = fs.String("failpoint", "", "faults to inject (default: the scenario's): a name, a comma-separated list, or random; see `etcd-robustness failpoints`")
		duration     = fs.Duration("duration", 0, "how long traffic runs (default: the scenario's)")
		trafficName  = fs.String("traffic", "", "traffic profile (default: the scenario's): "+strings.Join(traffic.Names(), ", ")+"; see `etcd-robustness list`")
		rate         = fs.String("rate", "", "traffic rate level, setting qps and clients from the profile: "+strings.Join(traffic.RateNames(), ", ")+" (default: the scenario's)")
		qps          = fs.Float64("qps", 0, "total request rate (default: the scenario's, or --rate's)")
		clients      = fs.Int("clients", 0, "concurrent clients (default: the scenario's, or --rate's)")
		placement    = fs.String("placement", "", "how clients connect: "+strings.Join(traffic.PlacementNames(), ", ")+" (default: the scenario's, else mixed: half pinned to one member each, half spread)")
		seed         = fs.Int64("seed", 0, "random seed (default: from the clock; printed so a run can be repeated)")
		resultsDir   = fs.String("results-dir", "results", "directory that receives the run's report")
		keep         = fs.Bool("keep", false, "keep the report of a passing run too")
		exposeBugs   = fs.Bool("expose-known-bugs", false, "send the requests the traffic leaves out by default because the etcd under test has a known bug there ("+knownBugIDs()+")")
		checkTimeout = fs.Duration("check-timeout", validate.DefaultLinearizabilityTimeout, "time limit of the linearizability check")
		watch        = fs.Bool("watch", false, "run watch traffic (watchers on every member and over the cluster, checked by the watch stage); --watch=false turns a scenario's off (default: the scenario's)")
		watchPR      = fs.Duration("watch-progress-requests", 0, "how often every watch stream sends RequestProgress; implies --watch (default: the scenario's, else 500ms)")
		auth         = fs.String("auth", "", "enable auth once the cluster started, with etcd's "+strings.Join(traffic.AuthNames(), " or ")+" tokens: the traffic runs as several users while an admin changes their permissions (default: the scenario's, else none)")
		replay       = fs.String("replay", "", "run again the plan of the report in this directory: its scenario as it ran (draws, faults, schedule), its seed and its releases; the result compares the two runs")
	)
	if err := fs.Parse(args); err != nil {
		return runArgs{}, exitSetup
	}
	if fs.NArg() > 0 {
		return runArgs{}, usageErr(stderr, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *replay != "" {
		return parseReplay(*replay, set, *binDir, *cacheDir, *resultsDir, *keep, *exposeBugs, *checkTimeout, stderr)
	}
	sc, err := scenarios.Lookup(*scenario)
	if err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	if !set["seed"] {
		*seed = time.Now().UnixNano() % 1_000_000
	}
	releases, err := parseReleases(firstNonEmpty(*version, sc.EtcdVersion, etcdbuild.DefaultVersion))
	if err != nil && *binDir == "" {
		return runArgs{}, usageErr(stderr, err)
	}
	// An explore scenario draws its fields from the seed; flags then
	// change what they name.
	if sc, err = sc.Draw(*seed, releases); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	if set["members"] {
		sc.Members = *members
		sc = sc.DrawVersions()
	}
	if set["tls"] {
		sc.TLS = *tlsOn
	}
	if set["failpoint"] {
		sc.Failpoint = *fp
	}
	if set["duration"] {
		sc.Duration = *duration
	}
	if set["auth"] {
		sc.Auth = *auth
	}
	if set["watch"] || set["watch-progress-requests"] {
		sc.Watch = watchFlags(sc.Watch, *watch || set["watch-progress-requests"], set["watch-progress-requests"], *watchPR)
	}
	if err := applyTrafficFlags(&sc, set, *trafficName, *rate, *qps, *clients, *placement); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	if err := sc.Validate(); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	if _, err := failpoint.Lookup(sc.Failpoint); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	versions := releases
	switch {
	case sc.Explore != nil && len(sc.Explore.MemberVersions) > 0:
		versions = sc.Explore.MemberVersions
	case len(releases) != 1 && len(releases) != sc.Members && *binDir == "":
		return runArgs{}, usageErr(stderr, fmt.Errorf("--etcd-version lists %d releases for %d members: give one, or one per member", len(releases), sc.Members))
	}
	if err := robustness.CheckResultsDir(*resultsDir); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	// The report names the scenario with the flags that changed it, and
	// describes what ran.
	sc = sc.Overridden(overrides(fs, set, sc.EtcdVersion, versions, *binDir))
	return runArgs{sc: sc, versions: versions, binDir: *binDir, cacheDir: *cacheDir, resultsDir: *resultsDir, seed: *seed,
		keep: *keep, exposeBugs: *exposeBugs, checkTimeout: *checkTimeout}, exitPass
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, code := parseRun(args, stderr)
	if code != exitPass {
		return code
	}
	sc := a.sc
	lg := newLogger(stderr)
	defer lg.Sync()
	lg.Info("run", zap.String("scenario", sc.Title()), zap.String("what", sc.Description), zap.String("etcd", firstNonEmpty(a.binDir, strings.Join(a.versions, ","))), zap.Int("members", sc.Members),
		zap.String("failpoint", sc.Failpoint), zap.Duration("duration", sc.Duration), zap.Int64("seed", a.seed))
	bins, err := robustness.ProvisionEtcd(ctx, lg, a.versions, sc.EtcdPatches, a.binDir, a.cacheDir)
	if err != nil {
		return failed(ctx, stderr, err)
	}
	res, err := robustness.Run(ctx, robustness.Config{
		Scenario: sc, Binaries: bins, ResultsDir: a.resultsDir, KeepPassing: a.keep,
		Seed: a.seed, CheckTimeout: a.checkTimeout, ExposeKnownBugs: a.exposeBugs, Replay: a.replay, Logger: lg,
		BeforeCheck: func() { writeHeapProfile(stderr, ".before-check") },
	})
	writeHeapProfile(stderr, "")
	return finish(ctx, stdout, stderr, res, err)
}

// finish prints the outcome of a run and picks the exit status. A verdict
// is printed whenever there is one, even if an error followed it (e.g. the
// report could not be written): a violation must not turn into a setup error.
func finish(ctx context.Context, stdout, stderr io.Writer, res *robustness.Result, err error) int {
	if res == nil {
		return failed(ctx, stderr, err)
	}
	code := verdict(stdout, res, res.Dir)
	if err != nil {
		fmt.Fprintf(stderr, "etcd-robustness: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		if code == exitPass {
			code = exitSetup
		}
	}
	return code
}

// scenarioFlags are the flags that change the scenario, in the order
// overrides lists them.
var scenarioFlags = []string{"members", "tls", "traffic", "rate", "qps", "clients", "placement", "watch", "watch-progress-requests", "failpoint", "duration", "auth"}

// overrides lists the flags given that change the scenario, each with its
// value ("--traffic etcd", "--watch=false"). An etcd release or build other
// than the one a scenario pins (a reproduction's) counts too.
func overrides(fs *flag.FlagSet, set map[string]bool, pinned string, versions []string, binDir string) []string {
	var out []string
	for _, name := range scenarioFlags {
		if !set[name] {
			continue
		}
		v := fs.Lookup(name).Value.String()
		switch {
		case (name == "watch" || name == "tls") && v == "true":
			out = append(out, "--"+name)
		case name == "watch" || name == "tls":
			out = append(out, "--"+name+"="+v)
		default:
			out = append(out, "--"+name+" "+v)
		}
	}
	if pinned == "" {
		return out
	}
	if binDir != "" {
		return append(out, "--etcd-bin "+binDir)
	}
	for _, v := range versions {
		if v != pinned {
			return append(out, "--etcd-version "+strings.Join(versions, ","))
		}
	}
	return out
}

// parseReplay reads `run --replay DIR`: the scenario, seed and releases
// come from the record, so flags that would change them are refused.
func parseReplay(dir string, set map[string]bool, binDir, cacheDir, resultsDir string, keep, exposeBugs bool, checkTimeout time.Duration, stderr io.Writer) (runArgs, int) {
	for _, name := range append([]string{"scenario", "seed", "etcd-version"}, scenarioFlags...) {
		if set[name] {
			return runArgs{}, usageErr(stderr, fmt.Errorf("--replay takes the scenario, seed and releases from the record; drop --%s", name))
		}
	}
	o, err := report.LoadOriginal(dir)
	if err != nil {
		return runArgs{}, usageErr(stderr, fmt.Errorf("--replay: %w", err))
	}
	if err := robustness.CheckResultsDir(resultsDir); err != nil {
		return runArgs{}, usageErr(stderr, err)
	}
	o.Dir, _ = filepath.Abs(dir)
	return runArgs{sc: o.Scenario, replay: &o, versions: o.EtcdVersions, binDir: binDir, cacheDir: cacheDir, resultsDir: resultsDir,
		seed: o.Seed, keep: keep, exposeBugs: exposeBugs, checkTimeout: checkTimeout}, exitPass
}

// parseReleases reads --etcd-version: one release, or a comma-separated
// list (one per member, or for an explore scenario the releases its
// members are drawn from).
func parseReleases(flag string) ([]string, error) {
	parts := strings.Split(flag, ",")
	for i, p := range parts {
		v, err := etcdbuild.NormalizeVersion(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		parts[i] = v
	}
	return parts, nil
}

func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	checkTimeout := fs.Duration("check-timeout", validate.DefaultLinearizabilityTimeout, "time limit of the linearizability check")
	if err := fs.Parse(args); err != nil {
		return exitSetup
	}
	if fs.NArg() != 1 {
		return usageErr(stderr, errors.New("usage: etcd-robustness check [--check-timeout D] REPORT_DIR"))
	}
	stopCPU := startCPUProfile(stderr)
	// Loading and checking keep the heap within a headroom of what is
	// live (traffic.TuneGC), as a run does.
	defer traffic.TuneGC()()
	rec, err := report.Load(fs.Arg(0))
	if err != nil {
		stopCPU()
		return usageErr(stderr, err)
	}
	lg := newLogger(stderr)
	defer lg.Sync()
	res := robustness.Check(ctx, lg, rec, validate.Options{CheckTimeout: *checkTimeout})
	stopCPU()
	writeHeapProfile(stderr, "")
	runtime.KeepAlive(rec)
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "etcd-robustness: interrupted: %v\n", ctx.Err())
		return exitInterrupted
	}
	return verdict(stdout, res, "")
}

// verdict prints the result for a person and picks the exit status. The
// first line is the outcome at a glance (Result.Headline: its first word is
// PASS, FAIL or INCONCLUSIVE), the next says where the report is, then
// comes the table of stages, and the faults not injected. The whole
// verdict on one line is in the report's summary.json.
func verdict(stdout io.Writer, res *robustness.Result, dir string) int {
	fmt.Fprintln(stdout, res.Headline())
	if dir != "" {
		fmt.Fprintln(stdout, "report: "+dir)
	}
	if res.Replay != nil {
		for _, l := range res.Replay.Lines() {
			fmt.Fprintln(stdout, l)
		}
	}
	if len(res.Results) > 0 || len(report.NotInjected(res.Injections)) > 0 {
		fmt.Fprintln(stdout)
		res.WriteStages(stdout)
		report.WriteWhy(stdout, res.Results)
	}
	if res.Outcome == robustness.Pass {
		return exitPass
	}
	return exitViolation
}

func failed(ctx context.Context, stderr io.Writer, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "etcd-robustness: interrupted: %v\n", err)
		return exitInterrupted
	}
	return usageErr(stderr, err)
}

func usageErr(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "etcd-robustness: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	return exitSetup
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	enc.EncodeCaller = nil
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
	return zap.New(core)
}

// applyTrafficFlags overrides the scenario's traffic with --traffic,
// --rate, --qps, --clients and --placement. A rate level (the flag's, or
// the scenario's when --traffic changes the profile) sets qps and clients
// from the profile; --qps and --clients override it.
func applyTrafficFlags(sc *scenarios.Scenario, set map[string]bool, profile, rate string, qps float64, clients int, placement string) error {
	if set["traffic"] {
		sc.Traffic = profile
	}
	if set["rate"] {
		sc.Rate = rate
	}
	if (set["traffic"] || set["rate"]) && sc.Rate != "" {
		sc.QPS, sc.Clients = 0, 0
	}
	if set["qps"] {
		sc.QPS = qps
	}
	if set["clients"] {
		sc.Clients = clients
	}
	if set["placement"] {
		sc.Placement = placement
	}
	resolved, err := sc.Resolve()
	if err != nil {
		return err
	}
	*sc = resolved
	return nil
}

// listTraffic prints each traffic profile with its description and rates.
func listTraffic(w io.Writer) {
	for _, name := range traffic.Names() {
		p, _ := traffic.Lookup(name)
		r := p.Rates()
		fmt.Fprintf(w, "  %-11s %s (rates: low %g/s %d clients, medium %g/s %d, high %g/s %d)\n", name, p.Description(),
			r.Low.QPS, r.Low.Clients, r.Medium.QPS, r.Medium.Clients, r.High.QPS, r.High.Clients)
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// watchFlags is a scenario's watch traffic as --watch and
// --watch-progress-requests change it: off, or on (as the scenario has
// it, else the defaults) with the progress request interval given. It
// never changes the registered scenario's value.
func watchFlags(w *scenarios.Watch, on, setInterval bool, interval time.Duration) *scenarios.Watch {
	if !on {
		return nil
	}
	out := scenarios.Watch{}
	if w != nil {
		out = *w
	}
	if setInterval {
		out.ProgressRequestInterval = interval
	}
	return &out
}

// knownBugIDs lists the known etcd bugs the traffic can avoid.
func knownBugIDs() string {
	var ids []string
	for _, b := range traffic.KnownBugs {
		ids = append(ids, b.ID)
	}
	return strings.Join(ids, ", ")
}

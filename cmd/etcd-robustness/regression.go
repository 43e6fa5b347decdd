package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/robustness"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// regressionArgs is a parsed `regression` command line.
type regressionArgs struct {
	reg                  scenarios.Regression
	version              string
	fixed                bool // version has the fix: every run must pass
	runs, tries          int
	seed                 int64
	resultsDir, cacheDir string
	checkTimeout         time.Duration
}

func parseRegression(args []string, stdout, stderr io.Writer) (regressionArgs, int) {
	fs := flag.NewFlagSet("regression", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		fixed        = fs.Bool("fixed", false, "run the regression's fixed release (each run must pass) instead of the release with the bug: the first with the fix, or a later one where that still has a bug the regression's traffic sends")
		version      = fs.String("etcd-version", "", "release to run instead (a release before the fix is run until caught; one with it must pass every run)")
		runs         = fs.Int("runs", 0, "run limit: with the bug, stop at the first run that catches it or after this many (default 10); with the fix, this many runs, each must pass (default 20)")
		tries        = fs.Int("tries", 1, "with the bug: repeat the runs-until-caught this many times, on fresh seeds, and print the median")
		seed         = fs.Int64("seed", 1, "seed of the first run; run i of try t uses seed+1000*t+i")
		resultsDir   = fs.String("results-dir", "results", "directory that receives the reports of runs that did not pass, and regression-ISSUE.log, the runs' log")
		cacheDir     = fs.String("cache-dir", "", "where etcd builds are cached (default $ETCD_ROBUSTNESS_CACHE or the user cache dir)")
		checkTimeout = fs.Duration("check-timeout", validate.DefaultLinearizabilityTimeout, "time limit of the linearizability check")
		list         = fs.Bool("list", false, "list the regressions and exit")
	)
	if err := fs.Parse(args); err != nil {
		return regressionArgs{}, exitSetup
	}
	if *list {
		for _, r := range scenarios.Regressions() {
			fixed := r.Fixed
			if r.FixedRun() != r.Fixed {
				fixed += " (--fixed runs " + r.FixedRun() + ")"
			}
			fmt.Fprintf(stdout, "%d  %s  bug %s, fixed %s  scenario %s  caught by %s\n", r.Issue, r.Summary, r.Release, fixed, r.Scenario, strings.Join(r.Catches, ", "))
		}
		return regressionArgs{}, -1
	}
	if fs.NArg() != 1 {
		return regressionArgs{}, usageErr(stderr, fmt.Errorf("usage: etcd-robustness regression [--fixed] [--etcd-version V] [--runs N] [--tries T] ISSUE (one of: %s)", regressionIssues()))
	}
	reg, err := scenarios.LookupRegression(fs.Arg(0))
	if err != nil {
		return regressionArgs{}, usageErr(stderr, err)
	}
	a := regressionArgs{reg: reg, version: reg.Release, tries: *tries, seed: *seed, resultsDir: *resultsDir, cacheDir: *cacheDir, checkTimeout: *checkTimeout}
	switch {
	case *version != "":
		if a.version, err = etcdbuild.NormalizeVersion(*version); err != nil {
			return regressionArgs{}, usageErr(stderr, err)
		}
	case *fixed:
		a.version = reg.FixedRun()
	}
	a.fixed = !reg.HasBug(a.version)
	if *fixed && !a.fixed {
		return regressionArgs{}, usageErr(stderr, fmt.Errorf("--fixed with --etcd-version %s: that release has etcd #%d (fixed in %s)", a.version, reg.Issue, reg.Fixed))
	}
	a.runs = *runs
	if a.runs == 0 {
		a.runs = 10
		if a.fixed {
			a.runs = 20
		}
	}
	if a.runs < 0 || a.tries < 1 {
		return regressionArgs{}, usageErr(stderr, fmt.Errorf("--runs and --tries must be positive, not %d and %d", a.runs, a.tries))
	}
	if a.fixed && a.tries != 1 {
		return regressionArgs{}, usageErr(stderr, fmt.Errorf("--tries is for a release with the bug; %s has the fix (%s)", a.version, reg.Fixed))
	}
	if err := robustness.CheckResultsDir(a.resultsDir); err != nil {
		return regressionArgs{}, usageErr(stderr, err)
	}
	return a, exitPass
}

func regressionIssues() string {
	var s []string
	for _, r := range scenarios.Regressions() {
		s = append(s, strconv.Itoa(r.Issue))
	}
	return strings.Join(s, ", ")
}

// regressionCmd runs a regression: on a release with the bug, runs until
// one is caught by a stage or named check the regression names (or the run
// limit), TRIES times; on a release with the fix, every run must pass. It
// prints one line per run and a summary line, and keeps the runs' log in
// the results dir. Exit 0: caught in every try, or every run passed on the
// fixed release; 1: not; 2: setup error; 130: interrupted.
func regressionCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, code := parseRegression(args, stdout, stderr)
	if code == -1 {
		return exitPass
	}
	if code != exitPass {
		return code
	}
	r := a.reg
	sc, err := r.ScenarioFor(a.version)
	if err != nil {
		return usageErr(stderr, err)
	}
	if a.version != sc.EtcdVersion {
		sc = sc.Overridden([]string{"--etcd-version " + a.version})
	}
	logPath := filepath.Join(a.resultsDir, fmt.Sprintf("regression-%d.log", r.Issue))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return usageErr(stderr, fmt.Errorf("regression log: %w", err))
	}
	defer logFile.Close()
	lg := newLogger(logFile)
	defer lg.Sync()

	bins, err := robustness.ProvisionEtcd(ctx, lg, []string{a.version}, sc.EtcdPatches, "", a.cacheDir)
	if err != nil {
		return failed(ctx, stderr, err)
	}
	build := a.version
	if len(bins[0].Patches) > 0 {
		build += " patched with " + strings.Join(bins[0].Patches, ", ")
	}
	want := "until a run is caught by " + strings.Join(r.Catches, " or ")
	if a.fixed {
		want = "every run must pass"
	}
	fmt.Fprintf(stdout, "etcd #%d (%s) on %s, scenario %s: up to %d runs, %s (log: %s)\n", r.Issue, r.Summary, build, sc.Name, a.runs, want, logPath)

	one := func(seed int64) (runResult, int) {
		start := time.Now()
		res, err := robustness.Run(ctx, robustness.Config{Scenario: sc, Binaries: bins, ResultsDir: a.resultsDir,
			Seed: seed, CheckTimeout: a.checkTimeout, Expose: r.Exposed(), Logger: lg.With(zap.Int64("seed", seed))})
		took := time.Since(start)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "etcd-robustness: interrupted: %v\n", ctx.Err())
			return runResult{}, exitInterrupted
		}
		if res == nil {
			return runResult{}, usageErr(stderr, err)
		}
		rr := runResult{seed: seed, took: took, outcome: res.Outcome, headline: res.Headline(), dir: res.Dir,
			caughtBy: r.CaughtBy(func(name string) bool { return illegal(res.Results, name) })}
		return rr, exitPass
	}

	if a.fixed {
		passed := 0
		var total time.Duration
		for i := range a.runs {
			rr, code := one(a.seed + int64(i))
			if code != exitPass {
				return code
			}
			total += rr.took
			if rr.outcome == robustness.Pass {
				passed++
			}
			rr.print(stdout, fmt.Sprintf("run %d/%d", i+1, a.runs))
		}
		fmt.Fprintf(stdout, "etcd #%d on %s (fixed in %s): %d of %d runs passed (%s of runs)\n", r.Issue, a.version, r.Fixed, passed, a.runs, total.Round(time.Second))
		if passed != a.runs {
			return exitViolation
		}
		return exitPass
	}

	var found []tryResult
	for t := range a.tries {
		tr := tryResult{}
		for i := range a.runs {
			rr, code := one(a.seed + int64(1000*t) + int64(i))
			if code != exitPass {
				return code
			}
			tr.runs++
			tr.took += rr.took
			label := fmt.Sprintf("run %d/%d", i+1, a.runs)
			if a.tries > 1 {
				label = fmt.Sprintf("try %d/%d run %d/%d", t+1, a.tries, i+1, a.runs)
			}
			rr.print(stdout, label)
			if rr.caughtBy != "" {
				tr.caughtBy = rr.caughtBy
				break
			}
			if rr.outcome != robustness.Pass {
				tr.other++
			}
		}
		if tr.caughtBy != "" {
			fmt.Fprintf(stdout, "etcd #%d on %s: caught in run %d of at most %d, after %s of runs, by %s\n", r.Issue, a.version, tr.runs, a.runs, tr.took.Round(time.Second), tr.caughtBy)
		} else {
			fmt.Fprintf(stdout, "etcd #%d on %s: not caught in %d runs (%s of runs; %d did not pass for another reason)\n", r.Issue, a.version, tr.runs, tr.took.Round(time.Second), tr.other)
		}
		found = append(found, tr)
	}
	if a.tries > 1 {
		fmt.Fprintln(stdout, summarizeTries(r, a.version, a.runs, found))
	}
	for _, tr := range found {
		if tr.caughtBy == "" {
			return exitViolation
		}
	}
	return exitPass
}

// runResult is one run of a regression.
type runResult struct {
	seed     int64
	took     time.Duration
	outcome  robustness.Outcome
	headline string
	dir      string
	caughtBy string
}

func (rr runResult) print(w io.Writer, label string) {
	what := "not caught"
	if rr.caughtBy != "" {
		what = "caught by " + rr.caughtBy
	}
	line := fmt.Sprintf("%s seed %d: %s in %s, %s: %s", label, rr.seed, rr.outcome, rr.took.Round(time.Second), what, rr.headline)
	if len(line) > 240 {
		line = line[:237] + "..."
	}
	fmt.Fprintln(w, line)
	if rr.dir != "" {
		fmt.Fprintln(w, "  report: "+rr.dir)
	}
}

// tryResult is one runs-until-caught: how many runs, how long they took,
// and what caught it ("" if none did within the limit).
type tryResult struct {
	runs     int
	took     time.Duration
	caughtBy string
	other    int
}

// summarizeTries is the line for several tries: the runs until caught of
// each, their median (a try that was not caught counts as more than the
// limit), the median time, and which checks caught it how often.
func summarizeTries(r scenarios.Regression, version string, limit int, tries []tryResult) string {
	var runs []string
	var counts []int
	var times []time.Duration
	by := map[string]int{}
	caught := 0
	for _, t := range tries {
		if t.caughtBy == "" {
			runs = append(runs, fmt.Sprintf(">%d", limit))
			counts = append(counts, limit+1)
			times = append(times, time.Duration(1<<62))
			continue
		}
		caught++
		runs = append(runs, strconv.Itoa(t.runs))
		counts = append(counts, t.runs)
		times = append(times, t.took)
		by[t.caughtBy]++
	}
	slices.Sort(counts)
	slices.Sort(times)
	med := counts[len(counts)/2]
	medRuns := strconv.Itoa(med)
	medTime := times[len(times)/2].Round(time.Second).String()
	if med > limit {
		medRuns, medTime = fmt.Sprintf("more than %d", limit), "not caught"
	}
	var bys []string
	for _, c := range r.Catches {
		if by[c] > 0 {
			bys = append(bys, fmt.Sprintf("%s (%d)", c, by[c]))
		}
	}
	if len(bys) == 0 {
		bys = []string{"nothing"}
	}
	return fmt.Sprintf("etcd #%d on %s: caught in %d of %d tries; runs until caught: %s (median %s); median time until caught %s; caught by %s",
		r.Issue, version, caught, len(tries), strings.Join(runs, ", "), medRuns, medTime, strings.Join(bys, ", "))
}

// illegal reports whether the stage name, or the named check stage/check,
// found the history illegal.
func illegal(results []validate.Result, name string) bool {
	stage, check, named := strings.Cut(name, "/")
	for _, v := range results {
		if v.Validator != stage {
			continue
		}
		if !named {
			return v.Verdict == validate.Illegal
		}
		for _, c := range v.Checks {
			if c.Name == check && c.Verdict == validate.Illegal {
				return true
			}
		}
	}
	return false
}

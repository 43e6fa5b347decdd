package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// Row is one run in a list of many, for a review meeting.
type Row struct {
	Dir      string
	Outcome  string
	Scenario string
	Seed     int64
	Versions string
	Members  int
	// TLS is whether the members served client and peer TLS.
	TLS bool
	// Auth is the auth the run enabled ("simple", "jwt"), "" for none.
	Auth string
	// Traffic is the traffic profile that ran.
	Traffic string
	Faults  string
	// FaultNames are the faults that ran, by name, in order; a fault not
	// injected is left out.
	FaultNames []string
	// Stages lists each stage's verdict, e.g. "patch illegal".
	Stages    []string
	Violation *Violation
	Start     time.Time
	HasIndex  bool
	// Checks are what each stage, and each named check of a stage
	// ("kubernetes/k8s-require-leader"), checked in this run.
	Checks []RowCheck
}

// RowCheck is how much one stage or named check checked in one run.
type RowCheck struct {
	Name    string
	Checked int
	// Known is false for a stage of a report written before stages said
	// how much they checked.
	Known bool
}

// FindReports expands each argument: a report directory (one that holds
// summary.json or a run record in any of its forms: record.json.zst,
// record.json.gz, record.json) stays as it is, and any other directory
// stands for the report directories directly inside it. A path that is
// neither gets an error that names it.
func FindReports(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a report directory nor a directory of reports", a)
		}
		if isReport(a) {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		n := 0
		for _, e := range entries {
			// Stat, not the entry's type, so that a symlink to a report counts.
			if p := filepath.Join(a, e.Name()); isDir(p) && isReport(p) {
				out = append(out, p)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s holds no report (no %s or %s in it or in its subdirectories)", a, SummaryFile, RecordFile)
		}
	}
	return out, nil
}

func isReport(dir string) bool {
	for _, f := range []string{SummaryFile, RecordFile, RecordZstdFile, RecordGzipFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// ReadRow reads one report's summary and record. A corrupt or incomplete
// report gets an error that names the broken file.
func ReadRow(dir string) (Row, error) {
	sum, err := LoadSummary(dir)
	if err != nil {
		return Row{}, err
	}
	if sum.Outcome == "" || len(sum.Results) == 0 {
		return Row{}, fmt.Errorf("report %s is incomplete: %s has no outcome or no stage result", dir, SummaryFile)
	}
	rec, err := Load(dir)
	if err != nil {
		return Row{}, err
	}
	r := Row{Dir: dir, Outcome: sum.Outcome, Scenario: ScenarioTitle(rec, sum), Seed: sum.Seed, Versions: strings.Join(sum.EtcdVersions, ","),
		Members: rec.Scenario.Members, TLS: rec.Scenario.TLS, Auth: rec.Scenario.Auth, Traffic: rec.Scenario.Traffic, Violation: FirstViolation(rec, sum), Start: rec.Start}
	for _, res := range sum.Results {
		r.Stages = append(r.Stages, fmt.Sprintf("%s %s", res.Validator, res.Verdict))
	}
	r.Checks = RowChecks(sum.Results)
	var faults []string
	for _, inj := range rec.Injections {
		f := inj.Name
		if len(inj.Targets) > 0 {
			f += " " + strings.Join(inj.Targets, ",")
		}
		if inj.Error != "" {
			f += " (not injected)"
		} else {
			r.FaultNames = append(r.FaultNames, inj.Name)
		}
		faults = append(faults, f)
	}
	r.Faults = strings.Join(faults, "; ")
	if r.Faults == "" {
		r.Faults = "none"
	}
	_, err = os.Stat(filepath.Join(dir, IndexFile))
	r.HasIndex = err == nil
	return r, nil
}

// SortRows puts failures first, then inconclusive runs, then passes; each
// group by start time.
func SortRows(rows []Row) {
	rank := map[string]int{"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
	sort.SliceStable(rows, func(i, j int) bool {
		if rank[rows[i].Outcome] != rank[rows[j].Outcome] {
			return rank[rows[i].Outcome] < rank[rows[j].Outcome]
		}
		return rows[i].Start.Before(rows[j].Start)
	})
}

// FirstSentence shortens an explanation for a table cell.
func FirstSentence(s string, limit int) string {
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	if len(s) > limit {
		s = s[:limit-1] + "…"
	}
	return s
}

// WriteTable writes rows as a plain-text table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tSCENARIO\tSEED\tETCD\tFAULTS\tFIRST VIOLATION\tREPORT")
	for _, r := range rows {
		v := "-"
		if r.Violation != nil {
			v = r.Violation.Validator + ": " + FirstSentence(r.Violation.Explanation, 100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Outcome, r.Scenario, r.Seed, r.Versions, r.Faults, v, r.Dir)
	}
	return tw.Flush()
}

// RowChecks are what each stage and each of its named checks checked.
func RowChecks(results []validate.Result) []RowCheck {
	var out []RowCheck
	for _, res := range results {
		out = append(out, RowCheck{Name: res.Validator, Checked: res.Checked, Known: res.CheckedWhat != "" || res.Checked > 0})
		for _, nc := range res.Checks {
			out = append(out, RowCheck{Name: res.Validator + "/" + nc.Name, Checked: nc.Checked, Known: true})
		}
	}
	return out
}

// CheckCoverage is, for one stage or named check, in how many of the runs
// it checked something.
type CheckCoverage struct {
	Name string
	// Runs is how many runs report it; Checked how many of them it checked
	// something in (it had items to check); Unknown how many are reports
	// from before stages said how much they checked.
	Runs, Checked, Unknown int
}

// Coverage counts, for every stage and named check the rows report (in
// the order they first appear), the runs in which it checked something.
// A check that passes in every run but checked something in none is one
// the runs never exercised.
func Coverage(rows []Row) []CheckCoverage {
	var out []CheckCoverage
	at := map[string]int{}
	for _, r := range rows {
		for _, c := range r.Checks {
			i, ok := at[c.Name]
			if !ok {
				i = len(out)
				at[c.Name] = i
				out = append(out, CheckCoverage{Name: c.Name})
			}
			out[i].Runs++
			switch {
			case !c.Known:
				out[i].Unknown++
			case c.Checked > 0:
				out[i].Checked++
			}
		}
	}
	return out
}

// WriteCoverage writes the coverage of every stage and named check as a
// plain-text table: in how many runs each checked something.
func WriteCoverage(w io.Writer, cov []CheckCoverage) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK	RUNS THAT CHECKED SOMETHING")
	for _, c := range cov {
		line := fmt.Sprintf("%s	%d of %d", c.Name, c.Checked, c.Runs)
		if c.Checked == 0 && c.Unknown < c.Runs {
			line += " (never exercised)"
		}
		if c.Unknown > 0 {
			line += fmt.Sprintf(" (%d older reports do not say)", c.Unknown)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// DrawCount is how many runs drew one value of a draw (a fault, a traffic
// profile, a cluster size), and how many of them passed.
type DrawCount struct {
	What, Value  string
	Runs, Passed int
}

// Draws counts what the runs drew: each fault injected, TLS on or off, auth
// (its tokens, or off), each traffic
// profile and each cluster size, most drawn first within each.
func Draws(rows []Row) []DrawCount {
	counts := map[[2]string]*DrawCount{}
	add := func(what, value string, passed bool) {
		k := [2]string{what, value}
		if counts[k] == nil {
			counts[k] = &DrawCount{What: what, Value: value}
		}
		counts[k].Runs++
		if passed {
			counts[k].Passed++
		}
	}
	for _, r := range rows {
		pass := r.Outcome == "PASS"
		add("members", fmt.Sprint(r.Members), pass)
		add("tls", map[bool]string{true: "on", false: "off"}[r.TLS], pass)
		auth := r.Auth
		if auth == "" {
			auth = "off"
		}
		add("auth", auth, pass)
		if r.Traffic != "" {
			add("traffic", r.Traffic, pass)
		}
		seen := map[string]bool{}
		for _, f := range r.FaultNames {
			if !seen[f] {
				seen[f] = true
				add("fault", f, pass)
			}
		}
	}
	out := make([]DrawCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	order := map[string]int{"members": 0, "tls": 1, "auth": 2, "traffic": 3, "fault": 4}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.What != b.What {
			return order[a.What] < order[b.What]
		}
		if a.Runs != b.Runs {
			return a.Runs > b.Runs
		}
		return a.Value < b.Value
	})
	return out
}

// WriteDraws writes the draws as a plain-text table.
func WriteDraws(w io.Writer, draws []DrawCount) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DRAWN\tVALUE\tRUNS\tPASSED")
	for _, d := range draws {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", d.What, d.Value, d.Runs, d.Passed)
	}
	return tw.Flush()
}

// WriteSummaryHTML writes rows as one self-contained page at path, with
// links to each run's index.html relative to the page.
func WriteSummaryHTML(path string, rows []Row) error {
	type link struct {
		Row
		Href string
	}
	base, _ := filepath.Abs(filepath.Dir(path))
	var links []link
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Outcome]++
		abs, _ := filepath.Abs(r.Dir)
		href, err := filepath.Rel(base, abs)
		if err != nil {
			href = abs
		}
		links = append(links, link{Row: r, Href: filepath.ToSlash(href)})
	}
	var b bytes.Buffer
	err := summaryTmpl.Execute(&b, struct {
		Rows      []link
		Counts    map[string]int
		Coverage  []CheckCoverage
		Generated time.Time
	}{links, counts, Coverage(rows), time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("report: rendering %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

var summaryTmpl = template.Must(template.New("summary").Funcs(funcs).Funcs(template.FuncMap{"short": FirstSentence}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>etcd-robustness: {{len .Rows}} runs</title>
<style>` + style + `</style></head><body>
<h1>{{len .Rows}} runs</h1>
<p id="counts">{{index .Counts "FAIL"}} failed, {{index .Counts "INCONCLUSIVE"}} inconclusive, {{index .Counts "PASS"}} passed. Generated {{.Generated.Format "2006-01-02 15:04 UTC"}}.</p>
<table id="runs"><tr><th>outcome</th><th>scenario</th><th>seed</th><th>etcd</th><th>members</th><th>faults</th><th>stages</th><th>first violation</th><th>report</th></tr>
{{range .Rows}}<tr><td class="{{outcomeClass .Outcome}}">{{.Outcome}}</td><td>{{.Scenario}}</td><td>{{.Seed}}</td><td>{{.Versions}}</td><td>{{.Members}}</td><td>{{.Faults}}</td>
<td>{{range .Stages}}{{.}}<br>{{end}}</td>
<td>{{with .Violation}}<b>{{.Validator}}</b>: {{.Explanation}}{{else}}-{{end}}</td>
<td>{{if .HasIndex}}<a href="{{.Href}}/index.html">{{.Dir}}</a>{{else}}<a href="{{.Href}}/">{{.Dir}}</a>{{end}}</td></tr>
{{end}}</table>
<h2>What the checks checked</h2>
<table id="coverage"><tr><th>stage or check</th><th>runs in which it checked something</th></tr>
{{range .Coverage}}<tr><td>{{.Name}}</td><td>{{.Checked}} of {{.Runs}}{{if and (eq .Checked 0) (lt .Unknown .Runs)}} (never exercised){{end}}{{if .Unknown}} ({{.Unknown}} older reports do not say){{end}}</td></tr>
{{end}}</table>
</body></html>
`))

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Scale is how big a run was and what checking and keeping it cost
// (summary.json's "scale"; reports written before it have none).
type Scale struct {
	// Operations are the clients' operations; Entries the committed log's
	// entries; WatchResponses every message the watch streams received.
	Operations     int `json:"operations"`
	Entries        int `json:"entries"`
	WatchResponses int `json:"watch_responses"`
	// CheckSeconds is the time of every stage together (each stage's own
	// is its result's took); TrafficSeconds the span of the traffic, from
	// the first call to the last return of the clients' operations (the
	// final read's left out).
	CheckSeconds   float64 `json:"check_seconds"`
	TrafficSeconds float64 `json:"traffic_seconds"`
	// PeakRSSBytes is the harness process's peak resident memory when
	// the report was written (getrusage's maxrss): traffic, check and
	// report together.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// ReportBytes is the report directory's size, summary.json aside.
	ReportBytes int64 `json:"report_bytes"`
}

// CheckShare is the check's time as a share of the traffic's (0 without
// traffic).
func (s Scale) CheckShare() float64 {
	if s.TrafficSeconds <= 0 {
		return 0
	}
	return s.CheckSeconds / s.TrafficSeconds
}

// ScaleOf measures rec and results: every figure but the process's and
// the report's.
func ScaleOf(rec Record, results []validate.Result) Scale {
	s := Scale{Operations: history.Count(rec.Clients).Operations}
	if rec.Persisted != nil {
		s.Entries = len(rec.Persisted.Entries)
	}
	for _, w := range rec.Watches {
		s.WatchResponses += len(w.Responses)
	}
	var took time.Duration
	for _, r := range results {
		took += r.Took
	}
	s.CheckSeconds = took.Seconds()
	first, last := time.Duration(-1), time.Duration(0)
	for _, c := range rec.Clients {
		if c.ID == rec.FinalRead {
			continue
		}
		for _, op := range c.Operations {
			if first < 0 || op.Call < first {
				first = op.Call
			}
			last = max(last, op.Return)
		}
	}
	if first >= 0 {
		s.TrafficSeconds = (last - first).Seconds()
	}
	return s
}

// PeakRSS is this process's peak resident memory in bytes, 0 if unknown.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// WriteScale adds the run's Scale to dir's summary.json, once Write has
// written the report: the figures of rec and results, this process's peak
// RSS so far, and the directory's size.
func WriteScale(dir string, rec Record, results []validate.Result) (Scale, error) {
	s := ScaleOf(rec, results)
	s.PeakRSSBytes = PeakRSS()
	sum, err := LoadSummary(dir)
	if err != nil {
		return s, err
	}
	s.ReportBytes = DirSize(dir)
	if fi, err := os.Stat(filepath.Join(dir, SummaryFile)); err == nil {
		s.ReportBytes -= fi.Size()
	}
	sum.Scale = &s
	return s, writeJSON(filepath.Join(dir, SummaryFile), sum, "  ")
}

// WriteScaleFigures prints a report's Scale for a person: the sizes, each
// stage's time, the check's share of the traffic time, the peak RSS and
// the report's size.
func WriteScaleFigures(w io.Writer, dir string, sum Summary) error {
	s := sum.Scale
	if s == nil {
		_, err := fmt.Fprintf(w, "%s: no scale figures (written before summary.json had them)\n", dir)
		return err
	}
	fmt.Fprintf(w, "%s\n  operations %d, committed entries %d, watch responses %d\n", dir, s.Operations, s.Entries, s.WatchResponses)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range sum.Results {
		fmt.Fprintf(tw, "  %s\t%s\n", r.Validator, r.Took.Round(time.Millisecond))
	}
	tw.Flush()
	_, err := fmt.Fprintf(w, "  check %.1fs for %.1fs of traffic (%.1f%%); peak RSS %.2f GB; report %.1f MB\n",
		s.CheckSeconds, s.TrafficSeconds, 100*s.CheckShare(), float64(s.PeakRSSBytes)/1e9, float64(s.ReportBytes)/1e6)
	return err
}

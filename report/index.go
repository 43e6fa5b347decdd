package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// IndexFile is the page a person reads first.
const IndexFile = "index.html"

// Violation is the first violation of a run, as a report shows it.
type Violation struct {
	Validator   string
	Message     string
	Explanation string
	// Involved are the client operations the explanation names.
	Involved []InvolvedOp
}

// InvolvedOp is one recorded operation that an explanation names.
type InvolvedOp struct {
	Source   string
	Call     time.Duration
	Return   time.Duration
	Request  string
	Answer   string
	Member   string
	Revision int64
}

// FirstViolation is the first stage, in stage order, that found the history
// illegal; nil if none did. The operations it involves are those the stage
// named in Result.Involved, else every "client N #i" its text names.
func FirstViolation(rec Record, sum Summary) *Violation {
	for _, r := range sum.Results {
		if r.Verdict != validate.Illegal {
			continue
		}
		v := &Violation{Validator: r.Validator, Message: r.Message, Explanation: r.Explanation}
		if v.Explanation == "" {
			v.Explanation = r.Message
		}
		sources := r.Involved
		if len(sources) == 0 {
			sources = namedSources(r.Explanation + " " + r.Message)
		}
		v.Involved = involved(rec, sources)
		return v
	}
	return nil
}

var (
	sourceRE = regexp.MustCompile(`client (\d+) #(\d+)`)
	// sourceExact is a source that is one client operation.
	sourceExact = regexp.MustCompile(`^client (\d+) #(\d+)$`)
	walRE       = regexp.MustCompile(`^wal index (\d+)`)
)

// namedSources lists every "client N #i" text names, once each, in order.
func namedSources(text string) []string {
	var out []string
	for _, m := range sourceRE.FindAllString(text, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// involved looks up each source in the record: a client's operation as it
// was recorded, a committed entry no client sent by its raft index; a
// source it cannot find is listed by name alone.
func involved(rec Record, sources []string) []InvolvedOp {
	var out []InvolvedOp
	for _, src := range sources {
		io := InvolvedOp{Source: src}
		if op, ok := recordedOp(rec, src); ok {
			io.Call, io.Return, io.Request = op.Call, op.Return, compactJSON(op.Request)
			if op.Response != nil {
				io.Answer = compactJSON(op.Response)
				io.Member = MemberName(op.Response.Header.MemberID)
				io.Revision = op.Response.Header.Revision
			} else if op.Error != nil {
				io.Answer = fmt.Sprintf("%s (%s outcome)", op.Error.Error(), op.Error.Outcome)
			}
		} else if m := walRE.FindStringSubmatch(src); m != nil && rec.Persisted != nil {
			index, _ := strconv.ParseUint(m[1], 10, 64)
			for _, e := range rec.Persisted.Entries {
				if e.Index == index && e.Request != nil {
					io.Request, io.Answer = compactJSON(e.Request), fmt.Sprintf("committed at raft index %d, term %d", e.Index, e.Term)
				}
			}
		}
		out = append(out, io)
	}
	return out
}

// recordedOp is the client operation a source "client N #i" names, as
// recorded; ok is false for any other source, or one the record lacks.
func recordedOp(rec Record, src string) (op history.Operation, ok bool) {
	m := sourceExact.FindStringSubmatch(src)
	if m == nil {
		return history.Operation{}, false
	}
	id, _ := strconv.Atoi(m[1])
	i, _ := strconv.Atoi(m[2])
	for _, c := range rec.Clients {
		if c.ID == id && i < len(c.Operations) {
			return c.Operations[i], true
		}
	}
	return history.Operation{}, false
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// File is one file of the report, for the links.
type File struct {
	Path string
	Size int64
}

type indexData struct {
	Rec Record
	Sum Summary
	// Headline is the outcome at a glance (see Headline); the whole
	// verdict is the table below it.
	Headline string
	// Title names the scenario that ran (scenarios.Scenario.Title).
	Title     string
	Scenario  []KV
	Violation *Violation
	Timeline  template.HTML
	// Watch is the watch violation's section (WatchSection), if any.
	Watch      template.HTML
	Files      []File
	Total      int64
	Budget     int64
	HasHistory bool
	Window     string
	Generated  time.Time
}

// KV is one row of a description table.
type KV struct{ Key, Value string }

// scenarioRows lists the scenario's fields as they are recorded, so that a
// field added to the scenario shows without a change here. The
// description is what ran (scenarios.Scenario.WhatRan), never the text of
// a registered scenario that flags changed.
func scenarioRows(rec Record) []KV {
	var m map[string]any
	b, _ := json.Marshal(rec.Scenario)
	_ = json.Unmarshal(b, &m)
	if d := rec.Scenario.WhatRan(); d != "" {
		m["description"] = d
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []KV
	for _, k := range keys {
		v := m[k]
		if k == "duration" {
			if f, ok := v.(float64); ok {
				v = time.Duration(f).String()
			}
		}
		s := fmt.Sprint(v)
		if _, ok := v.(string); !ok {
			s = compactJSON(v)
			if k == "duration" {
				s = fmt.Sprint(v)
			}
		}
		out = append(out, KV{k, s})
	}
	return out
}

// ScenarioTitle names the scenario that ran: its name with the flags that
// changed it (scenarios.Scenario.Title), else the summary's name.
func ScenarioTitle(rec Record, sum Summary) string {
	if rec.Scenario.Name == "" {
		return sum.Scenario
	}
	return rec.Scenario.Title()
}

// listFiles lists the report's files, for the links and the size.
func listFiles(dir string) ([]File, int64) {
	var out []File
	var total int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		total += fi.Size()
		// A data dir not compressed yet would list thousands of files.
		if strings.Contains(rel, "/data/") {
			return nil
		}
		out = append(out, File{Path: filepath.ToSlash(rel), Size: fi.Size()})
		return nil
	})
	return out, total
}

// WriteIndex writes index.html into dir from the record and the summary.
// It lists the files already in dir, so it is written last.
func WriteIndex(dir string, rec Record, sum Summary, window string) error {
	all, total := listFiles(dir)
	var files []File
	for _, f := range all {
		if f.Path != HTMLFile && f.Path != IndexFile {
			files = append(files, f)
		}
	}
	_, hasHistory := os.Stat(filepath.Join(dir, HTMLFile))
	d := indexData{Rec: rec, Sum: sum, Headline: Headline(sum.Outcome, sum.Stats, sum.Results, rec.Injections), Title: ScenarioTitle(rec, sum), Scenario: scenarioRows(rec), Violation: FirstViolation(rec, sum), Timeline: Timeline(rec), Watch: WatchSection(rec, sum),
		Files: files, Total: total, Budget: SizeBudget, HasHistory: hasHistory == nil, Window: window, Generated: time.Now().UTC()}
	var b bytes.Buffer
	if err := indexTmpl.Execute(&b, d); err != nil {
		return fmt.Errorf("report: rendering %s: %w", IndexFile, err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func verdictClass(v validate.Verdict) string {
	switch v {
	case validate.OK:
		return "ok"
	case validate.Illegal:
		return "illegal"
	}
	return "other"
}

func outcomeClass(o string) string {
	switch o {
	case "PASS":
		return "ok"
	case "FAIL":
		return "illegal"
	}
	return "other"
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

var funcs = template.FuncMap{
	"verdictClass": verdictClass,
	"outcomeClass": outcomeClass,
	"size":         humanSize,
	"ms":           func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"join":         strings.Join,
	"faultFrom": func(inj history.Injection) string {
		if inj.Effect > 0 {
			return inj.Effect.Round(time.Millisecond).String()
		}
		return "never took effect"
	},
}

const style = `
body{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f0f0f0}
.ok{background:#d8f0d8}.illegal{background:#f6c8c8}.other{background:#f8ecc0}
.explanation{border-left:4px solid #c33;padding:.5em 1em;background:#fff4f4;font-size:15px;line-height:1.5}
code,.mono{font-family:monospace;font-size:12px;word-break:break-all}
h1 span{padding:2px 8px;border-radius:4px}
`

var indexTmpl = template.Must(template.New("index").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Sum.Outcome}}: {{.Title}} seed {{.Sum.Seed}}</title>
<style>` + style + `</style></head><body>
<h1><span id="outcome" class="{{outcomeClass .Sum.Outcome}}">{{.Sum.Outcome}}</span> {{.Title}}, seed {{.Sum.Seed}}</h1>
<p id="headline">{{.Headline}}</p>
{{with .Rec.Scenario.WhatRan}}<p id="what-ran">What ran: {{.}}.</p>{{end}}

<h2>Verdicts</h2>
<table id="verdicts"><tr><th>stage</th><th>verdict</th><th>message</th><th>took</th></tr>
{{range .Sum.Results}}<tr><td>{{.Validator}}</td><td class="{{verdictClass .Verdict}}">{{.Verdict}}</td><td>{{.Message}}</td><td>{{ms .Took}}</td></tr>
{{end}}{{range .Rec.Injections}}{{if .Error}}<tr><td>fault {{.Name}}</td><td class="other">not injected</td><td>{{.Error}}</td><td></td></tr>
{{end}}{{end}}</table>

<h2>First violation</h2>
{{with .Violation}}<p>Found by the <b>{{.Validator}}</b> stage.</p>
<div id="explanation" class="explanation">{{.Explanation}}</div>
{{if .Involved}}<h3>The operations it names, as recorded</h3>
<table id="involved"><tr><th>operation</th><th>call</th><th>return</th><th>served by</th><th>revision</th><th>request</th><th>answer</th></tr>
{{range .Involved}}<tr><td>{{.Source}}</td><td>{{ms .Call}}</td><td>{{ms .Return}}</td><td>{{.Member}}</td><td>{{.Revision}}</td><td class="mono">{{.Request}}</td><td class="mono">{{.Answer}}</td></tr>
{{end}}</table>{{end}}
{{else}}<p id="explanation">No stage found a violation.</p>{{end}}
{{.Watch}}

<h2>Timeline</h2>
<p>Faults are bands from when they took effect to when the cluster had recovered (yellow; red when the injection failed). Times are since the run started.</p>
{{.Timeline}}

<h2>The run</h2>
<table id="run">
<tr><th>etcd versions</th><td>{{join .Rec.EtcdVersions ", "}}</td></tr>
<tr><th>seed</th><td>{{.Rec.Seed}}</td></tr>
<tr><th>started</th><td>{{.Rec.Start.UTC.Format "2006-01-02 15:04:05 UTC"}}</td></tr>
<tr><th>operations</th><td>{{.Sum.Stats.Operations}} ({{.Sum.Stats.Failed}} failed, {{.Sum.Stats.Unknown}} of unknown outcome, {{.Sum.Stats.SuccessfulWrites}} successful writes)</td></tr>
{{range .Scenario}}<tr><th>scenario {{.Key}}</th><td class="mono">{{.Value}}</td></tr>
{{end}}</table>
<h3>Faults</h3>
{{if .Rec.Injections}}<table id="faults"><tr><th>fault</th><th>targets</th><th>began</th><th>took effect</th><th>healed</th><th>error</th><th>detail</th></tr>
{{range .Rec.Injections}}<tr><td>{{.Name}}</td><td>{{join .Targets ", "}}</td><td>{{ms .Start}}</td><td>{{faultFrom .}}</td><td>{{ms .End}}</td><td>{{.Error}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p>No fault was injected.</p>{{end}}
{{with .Rec.EndStates}}<h3>Members at the end</h3>
<table><tr><th>member</th><th>revision</th><th>compact revision</th><th>hash</th><th>error</th></tr>
{{range .}}<tr><td>{{.Member}}</td><td>{{.Revision}}</td><td>{{.CompactRevision}}</td><td>{{.Hash}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{end}}

<h2>Everything else</h2>
<ul id="links">
{{if .HasHistory}}<li><a href="history.html">history.html</a>: porcupine's visualization of the history, opened at the first violation{{with .Window}}; it shows {{.}}{{end}}</li>{{end}}
{{range .Files}}<li><a href="{{.Path}}">{{.Path}}</a> ({{size .Size}})</li>
{{end}}</ul>
<p>Member data dirs are kept as <code>member-N/data.tar.gz</code>; unpack one with <code>tar xzf member-0/data.tar.gz -C member-0</code> to get <code>member-0/data</code> back.</p>
<p id="size">The report holds {{size .Total}} (budget {{size .Budget}}), index.html not counted.</p>
</body></html>
`))

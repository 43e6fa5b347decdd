package report

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// watchContext is how many responses either side of the violating one the
// watch section shows.
const watchContext = 5

// watchView is the watch section's data.
type watchView struct {
	Check, Message string
	Watch          history.Watch
	Request        string
	Members        string
	From, To       int
	Responses      []watchRow
	Lo, Hi         int64
	Replayed       []model.Event
	Replay         bool
}

type watchRow struct {
	Index     int
	Time      time.Duration
	Member    string
	Revision  int64
	Kind      string
	Events    []string
	Violation bool
}

// WatchSection renders the watch violation of a run whose watch stage
// found one: the watch (who opened it where, and its request), the
// responses around the violation as received, and next to them the
// replayed committed log's events that watch matches over the same
// revisions. It is empty when the watch stage did not fail.
func WatchSection(rec Record, sum Summary) template.HTML {
	var f *validate.WatchFinding
	for _, r := range sum.Results {
		if r.Validator == (validate.Watch{}).Name() && r.Verdict == validate.Illegal {
			f = r.WatchViolation
		}
	}
	if f == nil {
		return ""
	}
	replayed := f.Replayed
	w := f.Watch
	v := watchView{Check: f.Check, Message: f.Message, Watch: w, Request: compactJSON(w.Request), Replay: replayed != nil,
		From: max(0, f.Response-watchContext), To: min(len(w.Responses)-1, f.Response+watchContext)}
	members := map[string]bool{}
	v.Lo, v.Hi = f.Revision, f.Revision
	for i := v.From; i <= v.To; i++ {
		r := w.Responses[i]
		row := watchRow{Index: i, Time: r.Time, Revision: r.Header.Revision, Kind: responseKind(r), Violation: i == f.Response}
		if r.Header.MemberID != 0 {
			row.Member = MemberName(r.Header.MemberID)
			members[row.Member] = true
		}
		for _, e := range r.Events {
			row.Events = append(row.Events, showWatchEvent(e))
			v.Lo, v.Hi = min(v.Lo, e.KV.ModRevision), max(v.Hi, e.KV.ModRevision)
		}
		if r.IsProgressNotify() {
			v.Lo, v.Hi = min(v.Lo, r.Header.Revision), max(v.Hi, r.Header.Revision)
		}
		v.Responses = append(v.Responses, row)
	}
	for m := range members {
		v.Members += m + " "
	}
	for _, e := range replayed {
		if e.Revision >= v.Lo && e.Revision <= v.Hi {
			v.Replayed = append(v.Replayed, e)
		}
	}
	var b bytes.Buffer
	if err := watchTmpl.Execute(&b, v); err != nil {
		return template.HTML(template.HTMLEscapeString(fmt.Sprintf("watch section: %v", err)))
	}
	return template.HTML(b.String())
}

func responseKind(r history.WatchResponse) string {
	var parts []string
	switch {
	case r.Error != nil:
		return "stream error: " + r.Error.Error()
	case r.Created:
		parts = append(parts, "created")
	case r.Canceled:
		parts = append(parts, "canceled: "+r.CancelReason)
	case r.IsProgressNotify():
		parts = append(parts, fmt.Sprintf("progress notification at %d", r.Header.Revision))
	}
	if r.CompactRevision != 0 {
		parts = append(parts, fmt.Sprintf("compact revision %d", r.CompactRevision))
	}
	if r.Fragment {
		parts = append(parts, "fragment")
	}
	if len(r.Events) > 0 {
		parts = append(parts, fmt.Sprintf("%d events", len(r.Events)))
	}
	return strings.Join(parts, ", ")
}

func showWatchEvent(e history.WatchEvent) string {
	s := fmt.Sprintf("%s %s @%d", e.Type, e.KV.Key, e.KV.ModRevision)
	if e.Type == "PUT" {
		s = fmt.Sprintf("%s = %s @%d (create %d, version %d)", e.Type+" "+e.KV.Key, e.KV.Value, e.KV.ModRevision, e.KV.CreateRevision, e.KV.Version)
	}
	if e.PrevKV != nil {
		s += fmt.Sprintf(", prev %s @%d", e.PrevKV.Value, e.PrevKV.ModRevision)
	}
	return s
}

func showModelEvent(e model.Event) string {
	s := fmt.Sprintf("%s %s @%d", e.Type, e.KV.Key, e.Revision)
	if e.Type == model.EventPut {
		s = fmt.Sprintf("%s %s = %s @%d (create %d, version %d)", e.Type, e.KV.Key, e.KV.Value, e.Revision, e.KV.CreateRevision, e.KV.Version)
	}
	if e.PrevKV != nil {
		s += fmt.Sprintf(", prev %s @%d", e.PrevKV.Value, e.PrevKV.ModRevision)
	}
	return s
}

var watchTmpl = template.Must(template.New("watch").Funcs(template.FuncMap{
	"ms":    func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"event": showModelEvent,
	"join":  strings.Join,
}).Parse(`<h2 id="watch">Watch violation</h2>
<p>The <b>{{.Check}}</b> check: {{.Message}}.</p>
<table id="watch-request">
<tr><th>watch</th><td>{{.Watch.ID}}{{if ge .Watch.ResumedFrom 0}}, resuming watch {{.Watch.ResumedFrom}}{{end}}</td></tr>
<tr><th>watcher</th><td>{{.Watch.ClientID}} on {{join .Watch.Endpoints ", "}}</td></tr>
<tr><th>served by</th><td>{{.Members}}</td></tr>
<tr><th>request</th><td class="mono">{{.Request}}</td></tr>
<tr><th>opened, ended</th><td>{{ms .Watch.Call}}, {{ms .Watch.End}} ({{.Watch.EndReason}}){{if .Watch.Target}}; had to catch up to revision {{.Watch.Target}}{{end}}</td></tr>
</table>
<table><tr><td style="border:0;padding:0 1em 0 0">
<h3>Responses {{.From}} to {{.To}} of the stream, as received</h3>
<table id="watch-responses"><tr><th>#</th><th>received</th><th>member</th><th>header revision</th><th>what</th><th>events</th></tr>
{{range .Responses}}<tr{{if .Violation}} class="illegal"{{end}}><td>{{.Index}}</td><td>{{ms .Time}}</td><td>{{.Member}}</td><td>{{.Revision}}</td><td>{{.Kind}}</td><td class="mono">{{range .Events}}{{.}}<br>{{end}}</td></tr>
{{end}}</table>
</td><td style="border:0;padding:0">
<h3>Replayed events the watch matches, revisions {{.Lo}} to {{.Hi}}</h3>
{{if .Replay}}<table id="watch-replayed"><tr><th>event</th></tr>
{{range .Replayed}}<tr><td class="mono">{{event .}}</td></tr>
{{else}}<tr><td>none</td></tr>
{{end}}</table>{{else}}<p>The committed log could not be replayed, so there is nothing to compare with.</p>{{end}}
</td></tr></table>
`))

package report

import (
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Timeline geometry, in SVG user units.
const (
	tlWidth  = 1000
	tlLeft   = 60
	tlRight  = 150
	tlPanel  = 130
	tlGap    = 34
	tlTop    = 20
	tlBins   = 200
	tlMinBin = 50 * time.Millisecond
)

var memberColors = []string{"#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f"}

// bin is what happened in one slice of time.
type bin struct {
	perMember map[string]int
	latencies []time.Duration
	failed    int
	unknown   int
}

// MemberName names the member that served a response, by its ID.
func MemberName(id uint64) string {
	if id == 0 {
		return "unknown member"
	}
	return fmt.Sprintf("member %x", id)
}

// Timeline draws, from the run record, three panels on one time axis:
// successful requests per second for each member that served them, latency
// (median and maximum), and errors (failed and unknown outcome). Every fault
// is a band from when it took effect (or began, if it never did) to when it
// was healed.
func Timeline(rec Record) template.HTML {
	var end time.Duration
	for _, c := range rec.Clients {
		for _, op := range c.Operations {
			end = max(end, op.Return)
		}
	}
	for _, inj := range rec.Injections {
		end = max(end, inj.End)
	}
	if end <= 0 {
		return template.HTML(`<p>No operation was recorded, so there is no timeline.</p>`)
	}
	width := time.Duration(int64(end)/tlBins + 1)
	width = max(width, tlMinBin)
	n := int(end/width) + 1
	bins := make([]bin, n)
	members := map[string]bool{}
	for _, c := range rec.Clients {
		for _, op := range c.Operations {
			b := &bins[int(op.Return/width)]
			switch op.Outcome() {
			case history.Failed:
				b.failed++
			case history.Unknown:
				b.unknown++
			default:
				var id uint64
				if op.Response != nil {
					id = op.Response.Header.MemberID
				}
				m := MemberName(id)
				if b.perMember == nil {
					b.perMember = map[string]int{}
				}
				b.perMember[m]++
				members[m] = true
				b.latencies = append(b.latencies, op.Return-op.Call)
			}
		}
	}
	names := make([]string, 0, len(members))
	for m := range members {
		names = append(names, m)
	}
	sort.Strings(names)

	plotW := float64(tlWidth - tlLeft - tlRight)
	x := func(d time.Duration) float64 { return tlLeft + plotW*float64(d)/float64(end) }
	var s strings.Builder
	probeMembers := probedMembers(rec.Probes)
	height := tlTop + 3*(tlPanel+tlGap) + 10
	if len(probeMembers) > 0 {
		height += tlGap + len(probeMembers)*tlProbeRow
	}
	fmt.Fprintf(&s, `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, tlWidth, height, tlWidth, height)
	perSec := float64(time.Second) / float64(width)

	panel := func(i int, title string, maxY float64, unit string) (y0 float64, y func(v float64) float64) {
		top := float64(tlTop + i*(tlPanel+tlGap))
		y0 = top + tlPanel
		if maxY <= 0 {
			maxY = 1
		}
		fmt.Fprintf(&s, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`, tlLeft, top-6, html.EscapeString(title))
		fmt.Fprintf(&s, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`, tlLeft, top, plotW, tlPanel)
		for _, inj := range rec.Injections {
			from := inj.Effect
			if from <= 0 {
				from = inj.Start
			}
			color := "#f7d08a"
			if inj.Error != "" {
				color = "#f4a6a6"
			}
			fmt.Fprintf(&s, `<rect class="fault" x="%.1f" y="%.0f" width="%.1f" height="%d" fill="%s" fill-opacity="0.55"><title>%s</title></rect>`,
				x(from), top, max(x(inj.End)-x(from), 1), tlPanel, color, html.EscapeString(faultLabel(inj)))
			if i == 0 {
				fmt.Fprintf(&s, `<text x="%.1f" y="%.0f" fill="#8a5a00">%s</text>`, x(from)+2, top+12, html.EscapeString(inj.Name+" "+strings.Join(inj.Targets, ",")))
			}
			// A fault's own steps (a version fault's restarts), as ticks.
			for _, st := range inj.Steps {
				fmt.Fprintf(&s, `<line class="step" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#8a5a00" stroke-width="1"><title>%s</title></line>`,
					x(st.At), top, x(st.At), top+tlPanel, html.EscapeString(st.At.Round(time.Millisecond).String()+": "+st.What))
			}
		}
		fmt.Fprintf(&s, `<text x="%d" y="%.0f" text-anchor="end">%.0f</text><text x="%d" y="%.0f" text-anchor="end">0</text>`, tlLeft-4, top+10, maxY, tlLeft-4, y0)
		fmt.Fprintf(&s, `<text x="%d" y="%.0f" text-anchor="end" fill="#555">%s</text>`, tlLeft-4, top+tlPanel/2, html.EscapeString(unit))
		return y0, func(v float64) float64 { return y0 - float64(tlPanel)*min(v/maxY, 1) }
	}
	line := func(pts []float64, y func(float64) float64, color, label string, legend int, top float64) {
		var p strings.Builder
		for i, v := range pts {
			fmt.Fprintf(&p, "%.1f,%.1f ", x(time.Duration(i)*width+width/2), y(v))
		}
		fmt.Fprintf(&s, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, p.String(), color)
		fmt.Fprintf(&s, `<rect x="%d" y="%.0f" width="10" height="10" fill="%s"/><text x="%d" y="%.0f">%s</text>`,
			tlWidth-tlRight+10, top+float64(legend*16), color, tlWidth-tlRight+24, top+float64(legend*16)+9, html.EscapeString(label))
	}

	// Throughput per member.
	var maxRate float64
	rates := map[string][]float64{}
	for _, m := range names {
		r := make([]float64, n)
		for i, b := range bins {
			r[i] = float64(b.perMember[m]) * perSec
			maxRate = max(maxRate, r[i])
		}
		rates[m] = r
	}
	_, y := panel(0, "Successful requests per second, by the member that served them", maxRate, "req/s")
	for i, m := range names {
		line(rates[m], y, memberColors[i%len(memberColors)], m, i, float64(tlTop))
	}

	// Latency.
	med, mx := make([]float64, n), make([]float64, n)
	var maxLat float64
	for i, b := range bins {
		if len(b.latencies) == 0 {
			continue
		}
		sort.Slice(b.latencies, func(a, c int) bool { return b.latencies[a] < b.latencies[c] })
		med[i] = float64(b.latencies[len(b.latencies)/2]) / float64(time.Millisecond)
		mx[i] = float64(b.latencies[len(b.latencies)-1]) / float64(time.Millisecond)
		maxLat = max(maxLat, mx[i])
	}
	top := float64(tlTop + tlPanel + tlGap)
	_, y = panel(1, "Latency of successful requests (ms)", maxLat, "ms")
	line(mx, y, "#d62728", "max", 0, top)
	line(med, y, "#1f77b4", "median", 1, top)

	// Errors.
	var maxErr float64
	for _, b := range bins {
		maxErr = max(maxErr, float64(b.failed+b.unknown))
	}
	top = float64(tlTop + 2*(tlPanel+tlGap))
	y0, y := panel(2, "Errors per time slice", maxErr, "errors")
	bw := max(plotW/float64(n)-0.5, 0.5)
	for i, b := range bins {
		if b.failed+b.unknown == 0 {
			continue
		}
		xi := x(time.Duration(i) * width)
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728"><title>%d unknown outcome</title></rect>`,
			xi, y(float64(b.unknown)), bw, y0-y(float64(b.unknown)), b.unknown)
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ff7f0e"><title>%d failed</title></rect>`,
			xi, y(float64(b.unknown+b.failed)), bw, y(float64(b.unknown))-y(float64(b.unknown+b.failed)), b.failed)
	}
	fmt.Fprintf(&s, `<rect x="%d" y="%.0f" width="10" height="10" fill="#d62728"/><text x="%d" y="%.0f">unknown outcome</text>`, tlWidth-tlRight+10, top, tlWidth-tlRight+24, top+9)
	fmt.Fprintf(&s, `<rect x="%d" y="%.0f" width="10" height="10" fill="#ff7f0e"/><text x="%d" y="%.0f">failed</text>`, tlWidth-tlRight+10, top+16, tlWidth-tlRight+24, top+25)
	// The time axis.
	for t := time.Duration(0); t <= end; t += axisStep(end) {
		fmt.Fprintf(&s, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, x(t), y0+14, t)
	}
	fmt.Fprintf(&s, `<text x="%d" y="%.0f">%s per slice</text>`, tlWidth-tlRight+10, y0+14, width.Round(time.Millisecond))
	if len(probeMembers) > 0 {
		drawProbes(&s, rec.Probes, probeMembers, y0+float64(tlGap), plotW, end, x)
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

func axisStep(end time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute} {
		if end/s <= 12 {
			return s
		}
	}
	return 10 * time.Minute
}

func faultLabel(inj history.Injection) string {
	s := fmt.Sprintf("%s %s: began %s", inj.Name, strings.Join(inj.Targets, ","), inj.Start.Round(time.Millisecond))
	if inj.Effect > 0 {
		s += fmt.Sprintf(", in effect %s", inj.Effect.Round(time.Millisecond))
	}
	s += fmt.Sprintf(", healed %s", inj.End.Round(time.Millisecond))
	if inj.Error != "" {
		s += ": " + inj.Error
	}
	return s
}

// tlProbeRow is the height of one member's row of readiness probes.
const tlProbeRow = 18

// probedMembers are the members with readiness probes, sorted.
func probedMembers(probes []history.Probe) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range probes {
		if p.Endpoint != "/livez" && p.Served() && !seen[p.Member] {
			seen[p.Member] = true
			out = append(out, p.Member)
		}
	}
	sort.Strings(out)
	return out
}

// drawProbes draws one row per member below the panels: a green line
// where its readiness probes (/readyz, or /health) said ready, and a bar
// over each probe that did not, from its call to its answer (at least one
// probe interval wide): red when the harness had done nothing to the
// member, grey when it held the member down, paused or cut off (not ready
// is then the right answer).
func drawProbes(s *strings.Builder, probes []history.Probe, members []string, top, plotW float64, end time.Duration, x func(time.Duration) float64) {
	fmt.Fprintf(s, `<text x="%d" y="%.0f" font-weight="bold">Readiness probes (/readyz or /health): not ready in red, or grey while the member was down, paused or cut off</text>`, tlLeft, top-6)
	row := map[string]int{}
	for i, m := range members {
		row[m] = i
		y := top + float64(i*tlProbeRow)
		fmt.Fprintf(s, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`, tlLeft-4, y+12, html.EscapeString(m))
		fmt.Fprintf(s, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2ca02c" stroke-width="2"/>`, tlLeft, y+9, tlLeft+plotW, y+9)
	}
	for _, p := range probes {
		i, ok := row[p.Member]
		if !ok || p.Endpoint == "/livez" || !p.Served() || p.OK() || p.Call >= end {
			continue
		}
		color := "#d62728"
		switch p.Fault {
		case history.FaultDown, history.FaultPaused, history.FaultMinority, history.FaultChanging:
			color = "#999999"
		}
		to := min(max(p.Return, p.Call+250*time.Millisecond), end)
		what := p.Error
		if p.Status != 0 {
			what = fmt.Sprintf("%d %s", p.Status, p.Body)
		}
		if p.Fault != "" {
			what += " (member " + p.Fault + ")"
		}
		fmt.Fprintf(s, `<rect class="notready" x="%.1f" y="%.0f" width="%.1f" height="12" fill="%s"><title>%s</title></rect>`,
			x(p.Call), top+float64(i*tlProbeRow)+3, max(x(to)-x(p.Call), 1), color,
			html.EscapeString(fmt.Sprintf("%s %s at %s: %s", p.Member, p.Endpoint, p.Call.Round(time.Millisecond), what)))
	}
}

package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// What a person reads first of a run, at a glance: Headline, one line, and
// WriteStages, a table of the stages. summary.json keeps every message in
// full (Summary.Results) and the old one-line verdict (Summary.Verdict).

// HeadlineLimit bounds Headline, in characters.
const HeadlineLimit = 200

// MessageWidth is how much of a message the stage table shows.
const MessageWidth = 80

// Headline is the run's outcome in one short line (at most HeadlineLimit
// characters): for FAIL, the first stage that found the history illegal
// and the first sentence of what it found; for INCONCLUSIVE, the first
// stage that could not decide and why, else the first fault not injected;
// for PASS, how many operations were checked. A stage that runs named
// checks is named with the check, "watch/bookmarkable".
func Headline(outcome string, stats history.Stats, results []validate.Result, injections []history.Injection) string {
	line := outcome
	switch outcome {
	case "PASS":
		line = fmt.Sprintf("PASS: %d operations; all %d stages ok", stats.Operations, len(results))
	case "FAIL":
		for _, r := range results {
			if r.Verdict == validate.Illegal {
				name, msg := stageFinding(r)
				line = fmt.Sprintf("FAIL: %s: %s", name, FirstSentenceOf(oneLine(msg)))
				break
			}
		}
	default:
		for _, r := range results {
			if !r.Passed() {
				name, msg := stageFinding(r)
				if r.Verdict == validate.TimedOut {
					name += " timed out"
				}
				line = fmt.Sprintf("%s: %s: %s", outcome, name, FirstSentenceOf(oneLine(msg)))
				return Clip(line, HeadlineLimit)
			}
		}
		for _, inj := range injections {
			if inj.Error != "" {
				line = fmt.Sprintf("%s: fault %s not injected: %s", outcome, inj.Name, FirstSentenceOf(oneLine(inj.Error)))
				break
			}
		}
	}
	return Clip(line, HeadlineLimit)
}

// stageFinding names what a stage that did not pass found, and says it:
// the stage's message, or, for a stage of named checks, the first named
// check with the stage's verdict and its own message where the stage's
// message does not start with it.
func stageFinding(r validate.Result) (name, msg string) {
	name, msg = r.Validator, r.Message
	for _, nc := range r.Checks {
		if nc.Verdict != r.Verdict {
			continue
		}
		switch {
		case strings.HasPrefix(msg, nc.Name+": "):
			// The watch stage: "bookmarkable: what it found".
			name, msg = r.Validator+"/"+nc.Name, strings.TrimPrefix(msg, nc.Name+": ")
		case nc.Message != "" && strings.Contains(msg, nc.Name+": "+string(nc.Verdict)):
			// The kubernetes stage: every check's verdict and message, joined.
			name, msg = r.Validator+"/"+nc.Name, nc.Message
		case nc.Message != "" && strings.HasPrefix(msg, nc.Message):
			// The crash stage: the check's finding, and more.
			name = r.Validator + "/" + nc.Name
		}
		break
	}
	if msg == "" {
		msg = string(r.Verdict)
	}
	return name, msg
}

// FirstSentenceOf is s up to the end of its first sentence (a period and a
// space; "e.g." and "i.e." do not end one), without the period.
func FirstSentenceOf(s string) string {
	from := 0
	for {
		i := strings.Index(s[from:], ". ")
		if i < 0 {
			return strings.TrimSuffix(s, ".")
		}
		end := from + i
		if strings.HasSuffix(s[:end], "e.g") || strings.HasSuffix(s[:end], "i.e") {
			from = end + 2
			continue
		}
		return s[:end]
	}
}

// Clip shortens s to at most n characters, at a space if there is one in
// its last quarter, ending it with "…".
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	cut := string(r)
	if i := strings.LastIndex(cut, " "); i > len(cut)*3/4 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ,;:") + "…"
}

// Checked says what a stage checked: "9560 operations", or "nothing to
// check" when it checked nothing and passed, or "not finished" for a
// check that timed out having decided nothing; "-" for a stage of an old
// report that did not say.
func Checked(r validate.Result) string {
	switch {
	case r.Checked > 0 && r.CheckedWhat != "":
		return fmt.Sprintf("%d %s", r.Checked, r.CheckedWhat)
	case r.Checked > 0:
		return strconv.Itoa(r.Checked)
	case r.Passed() && r.CheckedWhat != "":
		return "nothing to check"
	case r.Verdict == validate.TimedOut:
		return "not finished" // a search that ran out of time decided nothing
	case r.CheckedWhat != "":
		return "0 " + r.CheckedWhat
	}
	return "-"
}

// StageRow is one row of the stage table: a stage, or (Check set) one of
// its named checks that did not pass.
type StageRow struct {
	// Name is the stage's name, or "stage/check" for a named check.
	Name    string
	Check   bool
	Verdict validate.Verdict
	Checked string
	Took    time.Duration
	Message string
}

// StageRows are the stage table's rows: every stage in order, each
// followed by its named checks that did not pass.
func StageRows(results []validate.Result) []StageRow {
	var out []StageRow
	for _, r := range results {
		out = append(out, StageRow{Name: r.Validator, Verdict: r.Verdict, Checked: Checked(r), Took: r.Took, Message: r.Message})
		for _, nc := range r.Checks {
			if nc.Verdict == validate.OK {
				continue
			}
			checked := "nothing to check"
			if nc.Checked > 0 {
				checked = strconv.Itoa(nc.Checked)
			}
			out = append(out, StageRow{Name: r.Validator + "/" + nc.Name, Check: true, Verdict: nc.Verdict, Checked: checked, Message: nc.Message})
		}
	}
	return out
}

// NotInjected lists the faults that were not injected, each with why, one
// line each: "kill member-1 at 2.5s: why".
func NotInjected(injections []history.Injection) []string {
	var out []string
	for _, inj := range injections {
		if inj.Error == "" {
			continue
		}
		f := inj.Name
		if len(inj.Targets) > 0 {
			f += " " + strings.Join(inj.Targets, ",")
		}
		out = append(out, fmt.Sprintf("%s at %s: %s", f, inj.Start.Round(time.Millisecond), inj.Error))
	}
	return out
}

// WriteStages writes the stage table: stage, verdict, what it checked, how
// long it took, and its message cut to MessageWidth. A stage's row starts
// with its name; a named check that did not pass follows its stage, on a
// row that starts with two spaces and "stage/check". The faults not
// injected follow the table, with their reasons in full.
func WriteStages(w io.Writer, results []validate.Result, injections []history.Injection) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tVERDICT\tCHECKED\tTOOK\tMESSAGE")
	for _, r := range StageRows(results) {
		name, took := r.Name, ""
		if r.Check {
			name = "  " + name
		} else {
			took = r.Took.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, r.Verdict, r.Checked, took, Clip(oneLine(r.Message), MessageWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if faults := NotInjected(injections); len(faults) > 0 {
		fmt.Fprintln(w, "\nfaults not injected:")
		for _, f := range faults {
			fmt.Fprintf(w, "  %s\n", oneLine(f))
		}
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// WriteWhy writes, after the table, what the first violation is in full:
// its stage or named check, its whole message and, when the stage gave
// one, its explanation in words, wrapped at 100 columns. It writes nothing
// when no stage found a violation.
func WriteWhy(w io.Writer, results []validate.Result) error {
	for _, r := range results {
		if r.Verdict != validate.Illegal {
			continue
		}
		name, msg := stageFinding(r)
		text := oneLine(msg)
		if r.Explanation != "" {
			text += "\n" + oneLine(r.Explanation)
		}
		if _, err := fmt.Fprintf(w, "\nWHY (%s):\n", name); err != nil {
			return err
		}
		for _, para := range strings.Split(text, "\n") {
			if _, err := fmt.Fprintln(w, wrap(para, 100, "  ")); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// wrap breaks s into lines of at most width columns at spaces, each
// starting with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

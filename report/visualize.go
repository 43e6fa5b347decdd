package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// MaxVisualizedOps bounds history.html: a history with more operations is
// shown as a window of about this many operations around the first
// violation. porcupine's page grows faster than linearly with the operations
// it shows (it keeps partial linearizations), so this bounds its size.
const MaxVisualizedOps = 1000

// windowCheckTimeout bounds the search over the window.
const windowCheckTimeout = 30 * time.Second

// visualModel is model.Porcupine starting from states, with each operation
// described with what the record says: the member that served it, the
// error it got.
func visualModel(rec Record, states []model.State) porcupine.Model {
	return (&porcupine.NondeterministicModel{
		Init: func() []interface{} {
			out := make([]interface{}, len(states))
			for i, s := range states {
				out[i] = s
			}
			return out
		},
		Step: func(state, input, output interface{}) []interface{} {
			next := model.Step(state.(model.State), input.(model.Request), output.(model.Response))
			out := make([]interface{}, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Equal: func(a, b interface{}) bool { return a.(model.State).Equal(b.(model.State)) },
		Hash:  func(s interface{}) uint64 { return s.(model.State).Hash() },
		DescribeOperation: func(input, output interface{}) string {
			return model.Describe(input.(model.Request), output.(model.Response))
		},
		DescribeOperationMetadata: func(info interface{}) string { return describeSource(rec, info) },
		DescribeState:             func(s interface{}) string { return s.(model.State).String() },
	}).ToModel()
}

var sourceExact = regexp.MustCompile(`^client (\d+) #(\d+)$`)

// describeSource adds to "client N #i" who served it or what error it got.
func describeSource(rec Record, info interface{}) string {
	src, _ := info.(string)
	m := sourceExact.FindStringSubmatch(src)
	if m == nil {
		return src
	}
	id, _ := strconv.Atoi(m[1])
	i, _ := strconv.Atoi(m[2])
	for _, c := range rec.Clients {
		if c.ID != id || i >= len(c.Operations) {
			continue
		}
		op := c.Operations[i]
		switch {
		case op.Error != nil:
			return fmt.Sprintf("%s: %s error %s: %s", src, op.Error.Outcome, op.Error.Code, op.Error.Message)
		case op.Response != nil:
			return fmt.Sprintf("%s: served by %s at revision %d", src, MemberName(op.Response.Header.MemberID), op.Response.Header.Revision)
		}
	}
	return src
}

// patchedOps rebuilds the operations the linearizability stage checked.
func patchedOps(rec Record) []porcupine.Operation {
	c := &validate.Check{Input: rec.Input}
	validate.EvidenceStage{}.Validate(context.Background(), c)
	validate.PatchStage{}.Validate(context.Background(), c)
	if c.Patched == nil {
		return nil
	}
	return validate.PorcupineOperations(c.Patched.Ops)
}

// Window is the part of a history history.html shows.
type Window struct {
	// States are the model states the window starts from.
	States []model.State
	Ops    []porcupine.Operation
	// Total is the whole history's operation count, Before the count of
	// operations ordered before the window.
	Total, Before int
	From, To      time.Duration
}

// HistoryWindow picks about max operations around the first operation the
// checker could not place (or, with no violation, the first ones). The
// operations of the longest partial linearization that were called before
// the window are replayed into the states the window starts from.
func HistoryWindow(ops []porcupine.Operation, info porcupine.LinearizationInfo, maxOps int) Window {
	var longest []porcupine.Operation
	for _, partition := range info.PartialLinearizationsOperations() {
		for _, lin := range partition {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	// The operations were derived twice (by the stage and here), so they
	// are matched by where they are, not by their pointers.
	inLongest := make(map[opKey]bool, len(longest))
	for _, op := range longest {
		inLongest[keyOf(op)] = true
	}
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].Call < ops[order[b]].Call })
	center := -1
	for pos, i := range order {
		if !inLongest[keyOf(ops[i])] && (center < 0 || ops[i].Return < ops[order[center]].Return) {
			center = pos
		}
	}
	lo := 0
	if center >= 0 {
		lo = max(0, min(center-maxOps/2, len(ops)-maxOps))
	}
	hi := min(len(ops), lo+maxOps)
	from, to := ops[order[lo]].Call, ops[order[hi-1]].Call

	// The prefix of the linearization called before the window.
	states := []model.State{model.InitialState()}
	prefix := map[opKey]bool{}
	for _, op := range longest {
		if op.Call >= from {
			break
		}
		var next []model.State
		for _, s := range states {
			for _, n := range model.Step(s, op.Input.(model.Request), op.Output.(model.Response)) {
				if !containsState(next, n) {
					next = append(next, n)
				}
			}
		}
		if len(next) == 0 || len(next) > 64 {
			break
		}
		states = next
		prefix[keyOf(op)] = true
	}
	w := Window{States: states, Total: len(ops), Before: len(prefix), From: time.Duration(from), To: time.Duration(to)}
	for _, op := range ops {
		if !prefix[keyOf(op)] && op.Call <= to {
			w.Ops = append(w.Ops, op)
		}
	}
	return w
}

type opKey struct {
	client    int
	call, ret int64
	source    string
}

func keyOf(op porcupine.Operation) opKey {
	return opKey{op.ClientId, op.Call, op.Return, fmt.Sprint(op.Metadata)}
}

func containsState(states []model.State, s model.State) bool {
	for _, o := range states {
		if o.Equal(s) {
			return true
		}
	}
	return false
}

// WriteHistory writes history.html for one result that carries porcupine's
// search: the whole history when it is small, else a window of it, checked
// again from the state the operations before it leave. It returns a
// description of the window, or "" when the whole history is shown.
func WriteHistory(dir string, rec Record, res validate.Result) (string, error) {
	info := *res.Linearization
	m := visualModel(rec, []model.State{model.InitialState()})
	desc := ""
	if ops := patchedOps(rec); len(ops) > MaxVisualizedOps {
		w := HistoryWindow(ops, info, MaxVisualizedOps)
		_, info = porcupine.CheckOperationsVerbose(visualModel(rec, w.States), w.Ops, windowCheckTimeout)
		m = visualModel(rec, w.States)
		where := "the first operations (the history is linearizable)"
		if res.Verdict == validate.Illegal {
			where = "around the first operation that could not be placed"
		}
		desc = fmt.Sprintf("a window of %d of the %d operations, called from %s to %s, %s; the %d operations ordered before it are folded into the starting state (%s)",
			len(w.Ops), w.Total, w.From.Round(time.Millisecond), w.To.Round(time.Millisecond), where, w.Before, statesString(w.States))
	}
	info.AddAnnotations(Annotations(rec.Injections))
	var b bytes.Buffer
	if err := porcupine.Visualize(m, info, &b); err != nil {
		return "", fmt.Errorf("report: writing %s: %w", HTMLFile, err)
	}
	page := b.String()
	// Open at the first violation, and say when a window is shown.
	banner := ""
	if desc != "" {
		banner = `<p id="window-note" style="background:#ffe;padding:4px">This page shows ` + htmlEscape(desc) + `. The whole history is in record.json.</p>`
	}
	script := banner + `<script>window.addEventListener('load',function(){var j=document.querySelector('#jump-link');if(j&&!j.classList.contains('inactive')){j.dispatchEvent(new MouseEvent('click',{bubbles:true}));}});</script>`
	if i := strings.LastIndex(page, "</body>"); i >= 0 {
		page = page[:i] + script + page[i:]
	} else {
		page += script
	}
	if err := os.WriteFile(filepath.Join(dir, HTMLFile), []byte(page), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return desc, nil
}

func statesString(states []model.State) string {
	var out []string
	for _, s := range states {
		out = append(out, s.String())
	}
	return strings.Join(out, " or ")
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

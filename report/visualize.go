package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// MaxVisualizedOps bounds history.html: a longer history is shown as a
// window of about this many operations (see validate.HistoryView, which
// the linearizability stage computes).
const MaxVisualizedOps = validate.MaxVisualizedOps

// visualModel is the model the linearizability stage searched with,
// starting from states, with each operation described with what the record
// says: the member that served it, the error it got.
func visualModel(rec Record, states []model.State) porcupine.Model {
	m := validate.PorcupineModel(states)
	m.DescribeOperationMetadata = func(info interface{}) string { return describeSource(rec, info) }
	return m
}

// describeSource adds to "client N #i" who served it or what error it got.
func describeSource(rec Record, info interface{}) string {
	src, _ := info.(string)
	if op, ok := recordedOp(rec, src); ok {
		switch {
		case op.Error != nil:
			return fmt.Sprintf("%s: %s error %s: %s", src, op.Error.Outcome, op.Error.Code, op.Error.Message)
		case op.Response != nil:
			return fmt.Sprintf("%s: served by %s at revision %d", src, MemberName(op.Response.Header.MemberID), op.Response.Header.Revision)
		}
	}
	return src
}

// WriteHistory writes history.html for a result that carries the
// linearizability stage's HistoryView: it only renders what the stage
// computed (the operations, their starting states and porcupine's search
// over them), with the faults on their own row and a banner that says
// which operations are shown. The record only describes operations and
// faults. It returns the view's description ("" when there is no view, and
// then it writes nothing).
func WriteHistory(dir string, rec Record, res validate.Result) (string, error) {
	v := res.History
	if v == nil {
		return "", nil
	}
	info := v.Info
	info.AddAnnotations(Annotations(rec.Injections))
	var b bytes.Buffer
	if err := porcupine.Visualize(visualModel(rec, v.States), info, &b); err != nil {
		return "", fmt.Errorf("report: writing %s: %w", HTMLFile, err)
	}
	page := b.String()
	// Open at the first violation, and say what is shown.
	banner := `<p id="window-note" style="background:#ffe;padding:4px">This page shows ` + htmlEscape(v.Description) + `. The whole history is in the run record, ` + RecordZstdFile + `.</p>`
	script := banner + `<script>window.addEventListener('load',function(){var j=document.querySelector('#jump-link');if(j&&!j.classList.contains('inactive')){j.dispatchEvent(new MouseEvent('click',{bubbles:true}));}});</script>`
	if i := strings.LastIndex(page, "</body>"); i >= 0 {
		page = page[:i] + script + page[i:]
	} else {
		page += script
	}
	if err := os.WriteFile(filepath.Join(dir, HTMLFile), []byte(page), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return v.Description, nil
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

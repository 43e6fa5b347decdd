// Package report writes what a run leaves behind for a person: a directory
// with the histories as JSON, the injected faults, the verdicts, and
// history.html, porcupine's visualization annotated with the faults. The
// cluster runner has already put each member's data dir and log in the same
// directory. Load reads a report back so it can be checked again.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// File names inside a report directory.
const (
	SummaryFile    = "summary.json"
	InjectionsFile = "injections.json"
	HistoryDir     = "history"
	HTMLFile       = "history.html"
)

// Summary is the run's description and outcome (summary.json).
type Summary struct {
	Scenario     scenarios.Scenario `json:"scenario"`
	EtcdVersions []string           `json:"etcd_versions"`
	Seed         int64              `json:"seed"`
	Start        time.Time          `json:"start"`
	Stats        history.Stats      `json:"stats"`
	Outcome      string             `json:"outcome"`
	Verdict      string             `json:"verdict"`
	Results      []validate.Result  `json:"results"`
}

// Report is everything a run recorded.
type Report struct {
	Summary    Summary
	Clients    []history.Client
	Injections []history.Injection
	// Results carry porcupine's search for the visualization; on Load they
	// come from summary.json without it.
	Results []validate.Result
}

// Write writes r into dir, which may already hold member data dirs and logs.
func Write(dir string, r Report) error {
	if err := os.MkdirAll(filepath.Join(dir, HistoryDir), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	r.Summary.Results = r.Results
	if err := writeJSON(filepath.Join(dir, SummaryFile), r.Summary); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, InjectionsFile), nonNil(r.Injections)); err != nil {
		return err
	}
	for _, c := range r.Clients {
		if err := writeJSON(filepath.Join(dir, HistoryDir, fmt.Sprintf("client-%d.json", c.ID)), c); err != nil {
			return err
		}
	}
	for _, res := range r.Results {
		if res.Linearization == nil {
			continue
		}
		info := *res.Linearization
		info.AddAnnotations(Annotations(r.Injections))
		if err := porcupine.VisualizePath(model.Porcupine, info, filepath.Join(dir, HTMLFile)); err != nil {
			return fmt.Errorf("report: writing %s: %w", HTMLFile, err)
		}
	}
	return nil
}

// Annotations shows each fault as a bar on its own row of the visualization,
// in the same time units as the operations.
func Annotations(injections []history.Injection) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, inj := range injections {
		desc := inj.Name
		if inj.Member != "" {
			desc += " " + inj.Member
		}
		details := fmt.Sprintf("%s from %s to %s", desc, inj.Start.Round(time.Millisecond), inj.End.Round(time.Millisecond))
		color := "#f7d08a"
		if inj.Error != "" {
			details += ": " + inj.Error
			color = "#f4a6a6"
		}
		out = append(out, porcupine.Annotation{
			Tag:             "fault",
			Start:           int64(inj.Start),
			End:             int64(inj.End),
			Description:     desc,
			Details:         details,
			BackgroundColor: color,
		})
	}
	return out
}

// Load reads a report directory written by Write.
func Load(dir string) (Report, error) {
	var r Report
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return r, fmt.Errorf("%s is not a report directory (it must hold %s, %s and %s/client-N.json)", dir, SummaryFile, InjectionsFile, HistoryDir)
	}
	if err := readJSON(filepath.Join(dir, SummaryFile), &r.Summary); err != nil {
		return r, err
	}
	r.Results = r.Summary.Results
	if err := readJSON(filepath.Join(dir, InjectionsFile), &r.Injections); err != nil {
		return r, err
	}
	files, err := filepath.Glob(filepath.Join(dir, HistoryDir, "client-*.json"))
	if err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	if len(files) == 0 {
		return r, fmt.Errorf("report %s is corrupt: no %s/client-N.json files", dir, HistoryDir)
	}
	sort.Strings(files)
	for _, f := range files {
		var c history.Client
		if err := readJSON(f, &c); err != nil {
			return r, err
		}
		if err := checkClient(c); err != nil {
			return r, fmt.Errorf("report %s is corrupt: %s: %w", dir, filepath.Base(f), err)
		}
		r.Clients = append(r.Clients, c)
	}
	return r, nil
}

// checkClient rejects histories the model cannot read.
func checkClient(c history.Client) error {
	for i, op := range c.Operations {
		switch {
		case op.Request.Type != model.Txn || op.Request.Txn == nil:
			return fmt.Errorf("operation %d: unknown request type %q (valid: %s)", i, op.Request.Type, model.Txn)
		case op.Return < op.Call:
			return fmt.Errorf("operation %d returns (%s) before it is called (%s)", i, op.Return, op.Call)
		case !op.Response.Failed() && op.Response.Txn == nil:
			return fmt.Errorf("operation %d: response has neither an error nor a result", i)
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report %s is corrupt: %s is missing", filepath.Dir(path), filepath.Base(path))
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("report %s is corrupt: %s: %w", filepath.Dir(path), filepath.Base(path), err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

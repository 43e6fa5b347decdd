// Package report writes what a run leaves behind for a person, and reads it
// back so it can be checked again:
//
//	record.json.zst  the run record: everything the checks read (format
//	                 below), as JSON compressed with zstd (see writeRecord)
//	record.json.sha256  the SHA-256 of the record's JSON
//	summary.json     the outcome and every stage's verdict
//	index.html       the page to read first: verdicts, the first violation
//	                 explained, a timeline, the run, links
//	history.html     porcupine's visualization, with the faults on their own row
//	member-N/        each member's log and data dir, as data.tar.gz (written by
//	                 the cluster runner, compressed by Write)
//
// The run record is versioned. Load reads a record of this version whole
// (from record.json.zst, or an earlier report's record.json.gz or
// record.json), or fails with one line that names the file and what is
// wrong; it never half-reads one.
package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// File names inside a report directory.
const (
	RecordFile = "record.json"
	// ChecksumFile holds the SHA-256 of the record's JSON (whichever form
	// the record is kept in), in sha256sum's format naming record.json, so
	// a record damaged into other valid JSON is still caught.
	ChecksumFile = "record.json.sha256"
	SummaryFile  = "summary.json"
	HTMLFile     = "history.html"
)

// Format and Version identify the run record's layout. Version changes
// whenever a field changes meaning or a field a check needs is added.
//
// Version 2 (this one):
//   - clients[].operations[]: what each client sent (request, a mirror of
//     etcd's request messages), when (call and return, ns since the run
//     started), and what came back: etcd's response with its header, or an
//     error with its gRPC code, message and outcome class;
//   - injections[]: the faults, with targets, when they took effect, and
//     what they say they did (detail);
//   - final_read_client: the client that read every key at the end;
//   - persisted: the committed raft log from the members' WALs, with each
//     member's hard state; evidence_error when it could not be read;
//   - end_states[]: each member's revision, compact revision and HashKV.
//
// Version 1 (before the run record) kept summary.json, injections.json and
// history/client-N.json with the model's reading of each response.
const (
	Format  = "etcd-robustness run record"
	Version = 2
)

// Record is the run record (the JSON of record.json.zst).
type Record struct {
	Format       string             `json:"format"`
	Version      int                `json:"version"`
	Scenario     scenarios.Scenario `json:"scenario"`
	EtcdVersions []string           `json:"etcd_versions"`
	Seed         int64              `json:"seed"`
	Start        time.Time          `json:"start"`
	// ReplayOf is the report directory this run replayed, if it did.
	ReplayOf string `json:"replay_of,omitempty"`
	validate.Input
}

// Summary is the run's outcome (summary.json), for people and for lists of
// many runs. It is derived from the record by the checks.
type Summary struct {
	Scenario     string            `json:"scenario"`
	EtcdVersions []string          `json:"etcd_versions"`
	Seed         int64             `json:"seed"`
	Stats        history.Stats     `json:"stats"`
	Outcome      string            `json:"outcome"`
	Verdict      string            `json:"verdict"`
	Results      []validate.Result `json:"results"`
	// Replay compares a replayed run with its original.
	Replay *Replay `json:"replay,omitempty"`
	// Scale is the run's size and cost (WriteScale); nil in a summary
	// written before it was kept.
	Scale *Scale `json:"scale,omitempty"`
}

// Write writes the record, the summary, history.html when a result carries
// the linearizability stage's HistoryView (a window of a long history, see
// MaxVisualizedOps), and index.html into dir. Member data dirs and large
// logs already in dir are compressed (see CompressMembers).
func Write(dir string, rec Record, sum Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rec.Format, rec.Version = Format, Version
	rec.Clients = nonNil(rec.Clients)
	rec.Injections = nonNil(rec.Injections)
	if err := writeRecord(dir, rec); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, SummaryFile), sum, "  "); err != nil {
		return err
	}
	window := ""
	for _, res := range sum.Results {
		if res.History == nil {
			continue
		}
		var err error
		if window, err = WriteHistory(dir, rec, res); err != nil {
			return err
		}
	}
	if err := CompressMembers(dir); err != nil {
		return err
	}
	return WriteIndex(dir, rec, sum, window)
}

// Annotations shows each fault as a bar on its own row of the visualization,
// in the same time units as the operations.
func Annotations(injections []history.Injection) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, inj := range injections {
		desc := inj.Name
		for _, t := range inj.Targets {
			desc += " " + t
		}
		details := fmt.Sprintf("%s from %s to %s", desc, inj.Start.Round(time.Millisecond), inj.End.Round(time.Millisecond))
		if inj.Effect > 0 {
			details += fmt.Sprintf(", in effect from %s", inj.Effect.Round(time.Millisecond))
		}
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

// Load reads the run record of a report directory written by Write. On
// error it returns no part of the record.
func Load(dir string) (Record, error) {
	rec, err := load(dir)
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

func load(dir string) (Record, error) {
	var rec Record
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return rec, fmt.Errorf("%s is not a report directory (it must hold %s)", dir, RecordFile)
	}
	name, digest, err := decodeRecord(dir, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "history")); err == nil {
			return rec, fmt.Errorf("report %s was written by an older etcd-robustness (record version 1: history/client-N.json, no %s); this one reads version %d, so run the scenario again to check it", dir, RecordFile, Version)
		}
		if j, jerr := ReadJournal(dir); jerr == nil {
			return rec, fmt.Errorf("report %s holds no %s, only the journal of a run that did not finish (%s: %s); read it with report.ReadJournal", dir, RecordFile, JournalFile, j.Counts())
		}
		return rec, fmt.Errorf("report %s is corrupt: %s is missing", dir, RecordFile)
	}
	if err != nil {
		return rec, err
	}
	if err := checkRecord(rec); err != nil {
		return rec, fmt.Errorf("report %s is corrupt: %s: %w", dir, name, err)
	}
	want, err := os.ReadFile(filepath.Join(dir, ChecksumFile))
	if err != nil {
		return rec, fmt.Errorf("report %s is corrupt: %s is missing, so damage to %s cannot be ruled out", dir, ChecksumFile, name)
	}
	if !strings.HasPrefix(string(want), digest+" ") {
		return rec, fmt.Errorf("report %s is corrupt: %s does not match its checksum in %s (the file was changed or damaged)", dir, name, ChecksumFile)
	}
	return rec, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkRecord rejects a record the checks cannot read.
func checkRecord(rec Record) error {
	if len(rec.Clients) == 0 {
		return errors.New("it holds no client history")
	}
	for _, c := range rec.Clients {
		for i, op := range c.Operations {
			switch {
			case op.Request.Kind() == "":
				return fmt.Errorf("client %d operation %d: the request is empty", c.ID, i)
			case op.Return < op.Call:
				return fmt.Errorf("client %d operation %d returns (%s) before it is called (%s)", c.ID, i, op.Return, op.Call)
			case op.Error == nil && op.Response == nil:
				return fmt.Errorf("client %d operation %d has neither a response nor an error", c.ID, i)
			case op.Error != nil && op.Error.Outcome != history.Failed && op.Error.Outcome != history.Unknown:
				return fmt.Errorf("client %d operation %d: error outcome %q (valid: %s, %s)", c.ID, i, op.Error.Outcome, history.Failed, history.Unknown)
			}
		}
	}
	return nil
}

// LoadSummary reads summary.json of a report directory.
func LoadSummary(dir string) (Summary, error) {
	var s Summary
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("report %s is corrupt: %s is missing", dir, SummaryFile)
	}
	if err != nil {
		return s, fmt.Errorf("report: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("report %s is corrupt: %s: %w", dir, SummaryFile, err)
	}
	return s, nil
}

func writeJSON(path string, v any, indent string) error {
	var b []byte
	var err error
	if indent == "" {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", indent)
	}
	if err != nil {
		return fmt.Errorf("report: encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/report"
	"github.com/etcd-robustness/etcd-robustness/robustness"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func TestBadInput(t *testing.T) {
	readOnly := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.Mkdir(readOnly, 0o555))
	notADir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o644))
	tests := []struct {
		name    string
		args    []string
		network bool // asks the Go module proxy
		want    string
	}{
		{"no command", nil, false, "usage: etcd-robustness run|check|summary"},
		{"unknown command", []string{"frobnicate"}, false, `unknown command "frobnicate" (valid: run, check, summary, list, failpoints, regression)`},
		{"unknown failpoint", []string{"run", "--failpoint", "nope"}, false, `unknown failpoint "nope" (valid: random, afterCommit:panic, afterCommit:sleep`},
		{"unknown scenario", []string{"run", "--scenario", "nope"}, false, `unknown scenario "nope" (valid: auth-14571, basic, etcd, explore`},
		{"bad members", []string{"run", "--members", "2"}, false, "members must be 1, 3 or 5, not 2"},
		{"malformed version", []string{"run", "--etcd-version", "latest"}, false, `"latest"`},
		{"versions do not match members", []string{"run", "--scenario", "basic", "--etcd-version", "v3.7.3,v3.6.1"}, false, "--etcd-version lists 2 releases for 3 members"},
		{"malformed version in a list", []string{"run", "--etcd-version", "v3.7.3,nope,v3.6.1"}, false, `"nope"`},
		{"unknown flag", []string{"run", "--frobnicate"}, false, "flag provided but not defined: -frobnicate"},
		{"results dir is a file", []string{"run", "--results-dir", filepath.Join(notADir, "x")}, false, "cannot be created"},
		{"etcd-bin without etcd", []string{"run", "--etcd-bin", t.TempDir(), "--results-dir", t.TempDir()}, false, "etcd"},
		{"corrupt report", []string{"check", t.TempDir()}, false, "record.json is missing"},
		{"version not served", []string{"run", "--etcd-version", "v3.5.26", "--results-dir", t.TempDir(), "--cache-dir", t.TempDir()}, true, "v3.5.26 is not served"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests = append(tests, struct {
			name    string
			args    []string
			network bool
			want    string
		}{"read-only results dir", []string{"run", "--results-dir", readOnly}, false, "is not writable"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network && testing.Short() {
				t.Skip("asks the Go module proxy")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			require.Equal(t, exitSetup, code, "stderr: %s", stderr.String())
			require.Contains(t, stderr.String(), tc.want)
			if tc.name == "unknown flag" { // the flag package prints usage after it
				return
			}
			// Progress lines may come first; the error is the last line, and
			// the only one.
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			require.Contains(t, last, tc.want)
			require.Equal(t, 1, strings.Count(stderr.String(), "etcd-robustness: "), "one error line, got: %s", stderr.String())
		})
	}
}

// TestInterruptLeavesNothingBehind sends SIGINT to a CLI run in the middle
// of its traffic and checks that it exits 130 and leaves no etcd process and
// no run directory behind.
func TestInterruptLeavesNothingBehind(t *testing.T) {
	bins := testetcd.Binaries(t)
	bin := buildCLI(t)

	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--scenario", "basic", "--etcd-bin", filepath.Dir(bins.Etcd), "--results-dir", results, "--duration", "60s")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "traffic started") {
			break
		}
	}
	time.Sleep(time.Second)
	pids := etcdPIDsUnder(t, results)
	require.Len(t, pids, 3, "three members are running before the interrupt")
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, exitInterrupted, exit.ExitCode())
	for _, pid := range pids {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "etcd pid %d survived the interrupt", pid)
	}
	entries, err := os.ReadDir(results)
	require.NoError(t, err)
	require.Empty(t, entries, "an interrupted run leaves no directory behind")
}

// etcdPIDsUnder lists processes whose command line mentions dir.
func etcdPIDsUnder(t *testing.T, dir string) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir)) || !bytes.Contains(b, []byte("--data-dir")) {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCheckSavedReport checks saved reports again: the verdict comes from
// the record, not from what the summary says, and a damaged record is one
// clear line and exit 2.
func TestCheckSavedReport(t *testing.T) {
	record := func(secondRev int64) report.Record {
		p1, p2 := ht.Put("a", "1"), ht.Put("a", "2")
		clients := ht.Clients(
			ht.Op(0, 1, 2, p1, ht.PutOK(2)),
			ht.Op(1, 3, 4, p2, ht.PutOK(secondRev)),
			ht.Op(2, 5, 6, history.RangeAll(), ht.GetOK(3, ht.KVAt("a", "2", 2, 3, 2))),
		)
		return report.Record{Input: validate.Input{Clients: clients, FinalRead: 2,
			Persisted: &evidence.Log{FirstIndex: 1, CommitIndex: 2, Complete: true, Members: []evidence.MemberWAL{{Member: "member-0", Commit: 2}},
				Entries: []evidence.Entry{{Index: 1, Term: 2, Request: &p1}, {Index: 2, Term: 2, Request: &p2}}}}}
	}
	tests := []struct {
		name   string
		rec    report.Record
		damage func(dir string)
		code   int
		stdout string // a regexp: the first line, then the stage's row
		stderr string
	}{
		// A built record has no probes, end states or healed fault, so the
		// health, convergence and recovery stages cannot decide: the run is
		// INCONCLUSIVE, never a PASS that checked less.
		{"linearizable", record(3), nil, exitViolation, `^INCONCLUSIVE: [^\n]*\n(?s:.*)\nlinearizability +ok +3 operations `, ""},
		{"revision reused", record(2), nil, exitViolation, `^FAIL: linearizability: 3 operations are not linearizable(?s:.*)\nlinearizability +illegal +3 operations `, ""},
		{"truncated record", record(3), func(dir string) {
			p := filepath.Join(dir, report.RecordZstdFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/3], 0o644)
		}, exitSetup, "", "is corrupt: record.json.zst: unexpected EOF (the file is cut short)"},
		{"garbled record", record(3), func(dir string) {
			os.WriteFile(filepath.Join(dir, report.RecordZstdFile), []byte("\x00\x01garbage"), 0o644)
		}, exitSetup, "", "is corrupt: record.json.zst: invalid input: magic number mismatch"},
		{"garbled plain record", record(3), func(dir string) {
			os.Remove(filepath.Join(dir, report.RecordZstdFile))
			os.WriteFile(filepath.Join(dir, report.RecordFile), []byte("\x00\x01garbage"), 0o644)
		}, exitSetup, "", "is corrupt: record.json: invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// The summary claims PASS either way; check must not trust it.
			require.NoError(t, report.Write(dir, tc.rec, report.Summary{Outcome: "PASS"}))
			if tc.damage != nil {
				tc.damage(dir)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"check", dir}, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			require.Regexp(t, tc.stdout, stdout.String())
			require.Contains(t, stderr.String(), tc.stderr)
			if tc.code == exitSetup {
				require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			}
		})
	}
}

// TestFinish: a verdict is never lost to an error that came after it. The
// output starts with the outcome at a glance, then the report's path, then
// the stage table.
func TestFinish(t *testing.T) {
	reportErr := errors.New("writing the report: disk full")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ok := validate.Result{Validator: "linearizability", Verdict: validate.OK, Checked: 9560, CheckedWhat: "operations", Took: 1500 * time.Millisecond,
		Message: "9560 operations are linearizable, in the committed log's order"}
	illegal := validate.Result{Validator: "patch", Verdict: validate.Illegal, Checked: 812, CheckedWhat: "committed entries", Took: 30 * time.Millisecond,
		Message: "lost write: put(k, v) (client 1 #8) was acknowledged at revision 218. No member kept it. " + strings.Repeat("Detail. ", 300)}
	notInjected := history.Injection{Name: "raftBeforeSave:panic", Targets: []string{"member-1"}, Start: 2500 * time.Millisecond, Error: "not triggered within 10s"}
	pass := &robustness.Result{Outcome: robustness.Pass, Results: []validate.Result{ok}, Stats: history.Stats{Operations: 9560}, Dir: "/results/default-1"}
	fail := &robustness.Result{Outcome: robustness.Fail, Results: []validate.Result{illegal, ok}, Injections: []history.Injection{notInjected}, Dir: "/results/default-2"}
	tests := []struct {
		name       string
		ctx        context.Context
		res        *robustness.Result
		err        error
		code       int
		stdout     string   // the first line, or a part of it
		rows       []string // regexps of the lines after it, in order; "" an empty line
		stderrPart string
	}{
		{"pass", context.Background(), pass, nil, exitPass, "PASS: 9560 operations; all 1 stages ok",
			[]string{"report: /results/default-1", "", `^STAGE +VERDICT`, `^linearizability +ok +9560 operations +1\.5s +9560 operations are linearizable`}, ""},
		{"violation", context.Background(), fail, nil, exitViolation, "FAIL: patch: lost write: put(k, v) (client 1 #8) was acknowledged at revision 218",
			[]string{"report: /results/default-2", "", `^STAGE`, `^patch +illegal +812 committed entries +30ms +lost write: .*…$`, `^linearizability +ok`,
				"", "faults not injected:", `^  raftBeforeSave:panic member-1 at 2\.5s: not triggered within 10s$`}, ""},
		{"an empty pass", context.Background(), &robustness.Result{Outcome: robustness.Pass}, nil, exitPass, "PASS", nil, ""},
		{"an empty violation", context.Background(), &robustness.Result{Outcome: robustness.Fail}, nil, exitViolation, "FAIL", nil, ""},
		{"violation, then the report failed", context.Background(), fail, reportErr, exitViolation, "FAIL: patch: lost write", nil, "disk full"},
		{"pass, then the report failed", context.Background(), pass, reportErr, exitSetup, "PASS", nil, "disk full"},
		{"setup error", context.Background(), nil, errors.New("no etcd"), exitSetup, "", nil, "no etcd"},
		{"interrupted", cancelled, nil, context.Canceled, exitInterrupted, "", nil, "interrupted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, tc.code, finish(tc.ctx, &stdout, &stderr, tc.res, tc.err))
			lines := strings.Split(stdout.String(), "\n")
			require.Contains(t, lines[0], tc.stdout)
			require.LessOrEqual(t, len([]rune(lines[0])), report.HeadlineLimit)
			for i, want := range tc.rows {
				require.Greater(t, len(lines), i+1, "stdout: %s", stdout.String())
				if want == "" {
					require.Empty(t, lines[i+1])
				} else {
					require.Regexp(t, want, lines[i+1])
				}
			}
			require.Contains(t, stderr.String(), tc.stderrPart)
		})
	}
}

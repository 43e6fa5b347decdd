package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/robustness"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// TestMakefilePatterns runs the Makefile's readers of run's output
// (OUTCOME, STAGE_ROW, CHECK_ROW, NOT_PASSED) on what verdict prints, so
// that a change to the output that breaks the make targets fails here.
func TestMakefilePatterns(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	def := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` = (.*)$`).FindSubmatch(mk)
		require.NotNil(t, m, "the Makefile defines %s", name)
		return strings.ReplaceAll(string(m[1]), "$$", "$")
	}
	call := func(name string, args ...string) string {
		s := def(name)
		for i, a := range args {
			s = strings.ReplaceAll(s, "$("+string(rune('1'+i))+")", a)
		}
		return s
	}
	sh := func(out, cmd string) (string, bool) {
		c := exec.Command("sh", "-c", cmd)
		c.Stdin = strings.NewReader(out)
		b, err := c.Output()
		return string(b), err == nil
	}

	res := &robustness.Result{Outcome: robustness.Fail, Dir: "/results/watch-1", Stats: history.Stats{Operations: 9560}, Results: []validate.Result{
		{Validator: "linearizability", Verdict: validate.TimedOut, Checked: 9560, CheckedWhat: "operations", Took: time.Minute, Message: "porcupine did not finish within 1m0s over 9560 operations"},
		{Validator: "watch", Verdict: validate.Illegal, Checked: 30, CheckedWhat: "watch streams", Message: "bookmarkable: watch 7 got a progress notification at revision 120 before revision 118",
			Checks: []validate.NamedCheck{{Name: "ordered", Verdict: validate.OK, Checked: 900}, {Name: "unique", Verdict: validate.OK, Checked: 900},
				{Name: "bookmarkable", Verdict: validate.Illegal, Checked: 12, Message: "watch 7 got a progress notification at revision 120 before revision 118"}}},
		{Validator: "health", Verdict: validate.OK, Checked: 82, CheckedWhat: "probes", Message: "82 probes"},
	}, Injections: []history.Injection{{Name: "kill", Error: "member-0 did not stop"}}}
	var b bytes.Buffer
	verdict(&b, res, res.Dir)
	out := b.String()

	got, _ := sh(out, def("OUTCOME"))
	require.Equal(t, "FAIL\n", got)
	got, _ = sh(out, call("STAGE_ROW", "linearizability")+" | grep -Eo '[0-9]+ operations' | head -1")
	require.Equal(t, "9560 operations\n", got, "profile-matrix's operation count, from a stage that timed out")
	got, ok := sh(out, call("STAGE_ROW", "watch"))
	require.True(t, ok)
	require.Regexp(t, `^watch +illegal +30 watch streams +0s +bookmarkable: watch 7`, got)
	_, ok = sh(out, call("CHECK_ROW", "watch/bookmarkable", "illegal"))
	require.True(t, ok, "reproduce-15220 finds the bookmarkable violation")
	_, ok = sh(out, call("CHECK_ROW", "watch/(ordered|unique)", "illegal"))
	require.False(t, ok, "reproduce-15271 finds no watch going back in time: ordered and unique passed")
	_, ok = sh(out, call("CHECK_ROW", "watch", "illegal"))
	require.False(t, ok, "a stage's row is not a named check's")
	got, _ = sh(out, def("NOT_PASSED"))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	require.Len(t, lines, 7, got)
	require.True(t, strings.HasPrefix(lines[0], "  FAIL: watch/bookmarkable: "), got)
	require.Equal(t, "  report: /results/watch-1", lines[1])
	require.Regexp(t, `^  linearizability +timed out`, lines[2])
	require.Regexp(t, `^  watch +illegal`, lines[3])
	require.Regexp(t, `^    watch/bookmarkable +illegal`, lines[4])
	require.Equal(t, "  faults not injected:", lines[5])
	require.Equal(t, "    kill at 0s: member-0 did not stop", lines[6])
}

package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// Stage results as the stages word them (taken from real runs).
var (
	okEvidence = validate.Result{Validator: "evidence", Verdict: validate.OK, Checked: 2605, CheckedWhat: "committed entries", Took: 5158 * time.Microsecond,
		Message: "1 members' WALs agree on 2605 committed entries (raft index 1 to 2605)"}
	okLin = validate.Result{Validator: "linearizability", Verdict: validate.OK, Checked: 4334, CheckedWhat: "operations", Took: 16157582,
		Message: "4334 operations are linearizable, in the committed log's order (0 of unknown outcome left open; checked in 12ms)"}
	okWatchNone = validate.Result{Validator: "watch", Verdict: validate.OK, CheckedWhat: "watch streams", Took: time.Millisecond,
		Message: "nothing to check: no watch was recorded (the run had no watch traffic)"}
	illegalPatch = validate.Result{Validator: "patch", Verdict: validate.Illegal, Checked: 1036, CheckedWhat: "committed entries", Took: 40 * time.Millisecond,
		Message: "lost write: put(key-8, 1-88) (client 1 #88) was acknowledged at revision 218 at 2.516s by member dda43fbd9b5c77a8. " +
			"The committed raft log read from the members' WALs is complete (1036 entries from index 1) and no entry carries its value, so no member kept it. " +
			strings.Repeat("More detail. ", 40)}
	illegalWatch = validate.Result{Validator: "watch", Verdict: validate.Illegal, Checked: 30, CheckedWhat: "watch streams", Took: 1200 * time.Millisecond,
		Message: "bookmarkable: watch 7 on member-0 got a progress notification at revision 120 before the event at revision 118 it vouches for",
		Checks: []validate.NamedCheck{
			{Name: "ordered", Verdict: validate.OK, Checked: 900},
			{Name: "bookmarkable", Verdict: validate.Illegal, Checked: 12, Message: "watch 7 on member-0 got a progress notification at revision 120 before the event at revision 118 it vouches for"},
			{Name: "reliable", Verdict: validate.Inconclusive, Message: "needs the replayed committed log"},
		}}
	illegalK8s = validate.Result{Validator: "kubernetes", Verdict: validate.Illegal, Checked: 472, CheckedWhat: "items over its checks",
		Message: "k8s-list-pages: ok (452 list pages); k8s-future-watch: illegal (1 violations: watch 3 from revision 900 delivered revision 850); k8s-require-leader: ok (nothing to check: no watch required a leader)",
		Checks: []validate.NamedCheck{
			{Name: "k8s-list-pages", Verdict: validate.OK, Checked: 452, Message: "452 list pages"},
			{Name: "k8s-future-watch", Verdict: validate.Illegal, Checked: 4, Message: "1 violations: watch 3 from revision 900 delivered revision 850"},
			{Name: "k8s-require-leader", Verdict: validate.OK, Message: "nothing to check: no watch required a leader"},
		}}
	illegalCrash = validate.Result{Validator: "crash", Verdict: validate.Illegal, Checked: 4, CheckedWhat: "member processes",
		Message: "member-1 (pid 4242) exited with status 2 at 3.1s, during kill: panic: runtime error: index out of range (4 member processes watched; 3 exits)",
		Checks: []validate.NamedCheck{
			{Name: "exits", Verdict: validate.Illegal, Checked: 3, Message: "member-1 (pid 4242) exited with status 2 at 3.1s"},
			{Name: "logged", Verdict: validate.OK, Message: "nothing to check"},
		}}
	timedOutLin = validate.Result{Validator: "linearizability", Verdict: validate.TimedOut, Checked: 9560, CheckedWhat: "operations", Took: time.Minute,
		Message: "porcupine did not finish within 1m0s over 9560 operations. The witness could not place 3 writes, e.g. put(k, v)"}
	inconclusiveHealth = validate.Result{Validator: "health", Verdict: validate.Inconclusive, CheckedWhat: "probes",
		Message: "no health probe was recorded, so the members' health endpoints were not checked"}
	okHealth = validate.Result{Validator: "health", Verdict: validate.OK, Checked: 82, CheckedWhat: "probes", Message: "82 probes"}

	injected    = history.Injection{Name: "kill", Targets: []string{"member-0"}, Start: 2500 * time.Millisecond, End: 4 * time.Second}
	notInjected = history.Injection{Name: "raftBeforeSave:panic", Targets: []string{"member-2"}, Start: 5 * time.Second,
		Error: "the failpoint was not triggered within 10s. The member took no write."}
)

func TestHeadline(t *testing.T) {
	stats := history.Stats{Operations: 4334}
	tests := []struct {
		name       string
		outcome    string
		results    []validate.Result
		injections []history.Injection
		want       string
	}{
		{"pass", "PASS", []validate.Result{okEvidence, okLin, okWatchNone}, []history.Injection{injected},
			"PASS: 4334 operations; all 3 stages ok"},
		{"fail: the first illegal stage, its first sentence", "FAIL", []validate.Result{okEvidence, illegalPatch, illegalWatch}, nil,
			"FAIL: patch: lost write: put(key-8, 1-88) (client 1 #88) was acknowledged at revision 218 at 2.516s by member dda43fbd9b5c77a8"},
		{"fail in a named watch check", "FAIL", []validate.Result{okEvidence, okLin, illegalWatch}, nil,
			"FAIL: watch/bookmarkable: watch 7 on member-0 got a progress notification at revision 120 before the event at revision 118 it vouches for"},
		{"fail in a named kubernetes check", "FAIL", []validate.Result{okLin, illegalK8s}, nil,
			"FAIL: kubernetes/k8s-future-watch: 1 violations: watch 3 from revision 900 delivered revision 850"},
		{"fail in the crash stage keeps the stage's fuller message", "FAIL", []validate.Result{illegalCrash, okLin}, nil,
			"FAIL: crash/exits: member-1 (pid 4242) exited with status 2 at 3.1s, during kill: panic: runtime error: index out of range (4 member processes watched; 3 exits)"},
		{"a violation even if a fault was not injected", "FAIL", []validate.Result{illegalPatch}, []history.Injection{notInjected},
			"FAIL: patch: lost write: put(key-8, 1-88) (client 1 #88) was acknowledged at revision 218 at 2.516s by member dda43fbd9b5c77a8"},
		{"timed out", "INCONCLUSIVE", []validate.Result{okEvidence, timedOutLin, inconclusiveHealth}, nil,
			"INCONCLUSIVE: linearizability timed out: porcupine did not finish within 1m0s over 9560 operations"},
		{"a stage that could not decide", "INCONCLUSIVE", []validate.Result{okEvidence, okLin, inconclusiveHealth}, nil,
			"INCONCLUSIVE: health: no health probe was recorded, so the members' health endpoints were not checked"},
		{"only a fault not injected", "INCONCLUSIVE", []validate.Result{okEvidence, okLin, okHealth}, []history.Injection{injected, notInjected},
			"INCONCLUSIVE: fault raftBeforeSave:panic not injected: the failpoint was not triggered within 10s"},
		{"a stage comes before a fault not injected", "INCONCLUSIVE", []validate.Result{inconclusiveHealth}, []history.Injection{notInjected},
			"INCONCLUSIVE: health: no health probe was recorded, so the members' health endpoints were not checked"},
		{"a watch check that could not run", "INCONCLUSIVE", []validate.Result{{Validator: "watch", Verdict: validate.Inconclusive,
			Message: "30 watch streams, 200 responses, 1000 events: ordered passed, but reliable (in full) did not run: the committed log could not be read",
			Checks:  []validate.NamedCheck{{Name: "reliable", Verdict: validate.Inconclusive, Message: "needs the replayed committed log"}}}}, nil,
			"INCONCLUSIVE: watch: 30 watch streams, 200 responses, 1000 events: ordered passed, but reliable (in full) did not run: the committed log could not be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Headline(tc.outcome, stats, tc.results, tc.injections)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "\n")
			require.True(t, strings.HasPrefix(got, tc.outcome+":"), "the first word is the outcome: %q", got)
		})
	}
}

// A headline stays within HeadlineLimit however long the message, and is
// cut at a word with an ellipsis.
func TestHeadlineBound(t *testing.T) {
	long := validate.Result{Validator: "linearizability", Verdict: validate.Illegal, Message: strings.Repeat("a long clause ", 100) + "; no period anywhere"}
	unicode := validate.Result{Validator: "stale-read", Verdict: validate.Illegal, Message: strings.Repeat("é–ü ", 150)}
	for _, r := range []validate.Result{long, unicode, illegalPatch} {
		got := Headline("FAIL", history.Stats{}, []validate.Result{r}, nil)
		require.LessOrEqual(t, utf8.RuneCountInString(got), HeadlineLimit, got)
		require.True(t, utf8.ValidString(got), got)
		require.True(t, strings.HasPrefix(got, "FAIL: "+r.Validator+": "), got)
		if r.Validator != "patch" {
			require.True(t, strings.HasSuffix(got, "…"), got)
		}
	}
	inc := Headline("INCONCLUSIVE", history.Stats{}, nil, []history.Injection{{Name: "kill", Error: strings.Repeat("x", 1000)}})
	require.LessOrEqual(t, utf8.RuneCountInString(inc), HeadlineLimit)
}

func TestFirstSentenceOf(t *testing.T) {
	for in, want := range map[string]string{
		"one. two":                           "one",
		"one.":                               "one",
		"no period":                          "no period",
		"3 reads, e.g. get(a). Then more":    "3 reads, e.g. get(a)",
		"healed by 3.51s: a write. The rest": "healed by 3.51s: a write",
	} {
		require.Equal(t, want, FirstSentenceOf(in), in)
	}
}

func TestStageRows(t *testing.T) {
	results := []validate.Result{okEvidence, okWatchNone, illegalWatch, timedOutLin, inconclusiveHealth, {Validator: "old", Verdict: validate.OK, Message: "an old report"}}
	got := StageRows(results)
	want := []StageRow{
		{Name: "evidence", Verdict: validate.OK, Checked: "2605 committed entries", Took: okEvidence.Took, Message: okEvidence.Message},
		{Name: "watch", Verdict: validate.OK, Checked: "nothing to check", Took: time.Millisecond, Message: okWatchNone.Message},
		{Name: "watch", Verdict: validate.Illegal, Checked: "30 watch streams", Took: 1200 * time.Millisecond, Message: illegalWatch.Message},
		// Named checks that did not pass, under their stage; the passing one is not listed.
		{Name: "watch/bookmarkable", Check: true, Verdict: validate.Illegal, Checked: "12", Message: illegalWatch.Checks[1].Message},
		{Name: "watch/reliable", Check: true, Verdict: validate.Inconclusive, Checked: "nothing to check", Message: "needs the replayed committed log"},
		{Name: "linearizability", Verdict: validate.TimedOut, Checked: "9560 operations", Took: time.Minute, Message: timedOutLin.Message},
		{Name: "health", Verdict: validate.Inconclusive, Checked: "0 probes", Message: inconclusiveHealth.Message},
		{Name: "old", Verdict: validate.OK, Checked: "-", Message: "an old report"},
	}
	require.Equal(t, want, got)
}

func TestWriteStages(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteStages(&b, []validate.Result{okEvidence, illegalPatch, illegalWatch, timedOutLin}, []history.Injection{injected, notInjected}))
	out := b.String()
	t.Log("\n" + out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Regexp(t, `^STAGE +VERDICT +CHECKED +TOOK +MESSAGE$`, lines[0])
	require.Regexp(t, `^evidence +ok +2605 committed entries +5ms +1 members' WALs agree on 2605 committed entries \(raft index 1 to 2605\)$`, lines[1])
	// A long message is cut to the column's width; summary.json keeps it whole.
	require.Regexp(t, `^patch +illegal +1036 committed entries +40ms +lost write: put\(key-8, 1-88\) .*…$`, lines[2])
	require.Regexp(t, `^watch +illegal +30 watch streams +1\.2s +bookmarkable: `, lines[3])
	// What the Makefile's reproduce targets grep for.
	require.Regexp(t, `(?m)^  watch/bookmarkable +illegal +12 +watch 7 on member-0`, out)
	require.Regexp(t, `(?m)^  watch/reliable +inconclusive +nothing to check +needs the replayed committed log$`, out)
	require.NotContains(t, out, "watch/ordered", "a named check that passed is not listed")
	require.Regexp(t, `(?m)^linearizability +timed out +9560 operations +1m0s +porcupine did not finish`, out)
	for _, l := range lines {
		require.LessOrEqual(t, utf8.RuneCountInString(l), 180, "a row is cut to a terminal's width: %q", l)
	}
	// The faults not injected follow the table, with the reason in full.
	require.Contains(t, out, "\nfaults not injected:\n  raftBeforeSave:panic member-2 at 5s: the failpoint was not triggered within 10s. The member took no write.\n")
	require.NotContains(t, out, "kill member-0")
}

func TestNotInjected(t *testing.T) {
	require.Empty(t, NotInjected([]history.Injection{injected}))
	require.Equal(t, []string{
		"raftBeforeSave:panic member-2 at 5s: " + notInjected.Error,
		"random at 0s: no fault applies",
	}, NotInjected([]history.Injection{injected, notInjected, {Name: "random", Error: "no fault applies"}}))
}

// What the CHECKED column says for each kind of result.
func TestCheckedColumn(t *testing.T) {
	tests := []struct {
		r    validate.Result
		want string
	}{
		{validate.Result{Verdict: validate.OK, Checked: 5, CheckedWhat: "operations"}, "5 operations"},
		{validate.Result{Verdict: validate.OK, CheckedWhat: "watch streams"}, "nothing to check"},
		{validate.Result{Verdict: validate.TimedOut, CheckedWhat: "operations"}, "not finished"},
		{validate.Result{Verdict: validate.Inconclusive, CheckedWhat: "probes"}, "0 probes"},
		{validate.Result{Verdict: validate.OK}, "-"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Checked(tc.r), "%+v", tc.r)
	}
}

func TestWriteWhy(t *testing.T) {
	long := strings.Repeat("word ", 60)
	tests := []struct {
		name    string
		results []validate.Result
		want    []string
	}{
		{"a pass says nothing", []validate.Result{{Validator: "watch", Verdict: validate.OK, Message: "fine"}}, nil},
		{"an inconclusive stage says nothing", []validate.Result{{Validator: "final-read", Verdict: validate.Inconclusive, Message: "no read"}}, nil},
		{"the first violation, its message and explanation, wrapped",
			[]validate.Result{
				{Validator: "patch", Verdict: validate.OK, Message: "ok"},
				{Validator: "linearizability", Verdict: validate.Illegal, Message: "lease 7 was revoked early", Explanation: long},
				{Validator: "watch", Verdict: validate.Illegal, Message: "second"},
			},
			[]string{"", "WHY (linearizability):", "  lease 7 was revoked early"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			require.NoError(t, WriteWhy(&b, tc.results))
			if tc.want == nil {
				require.Empty(t, b.String())
				return
			}
			lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
			require.Equal(t, tc.want, lines[:3])
			require.NotContains(t, b.String(), "second")
			require.Greater(t, len(lines), 4, "the explanation is wrapped over several lines")
			for _, l := range lines[3:] {
				require.LessOrEqual(t, len(l), 100)
				require.True(t, strings.HasPrefix(l, "  word"), l)
			}
		})
	}
}

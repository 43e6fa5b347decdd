package report

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// TestInjectedViolationInLongRecord injects one violation into a long
// run's record and checks that the check finds it, with its explanation,
// within the scale bounds (README, "Scale"): 10% of the traffic time and
// 2 GB. It runs only on a report named by ETCD_ROBUSTNESS_LONG_RECORD (a
// kept `make scale` run's directory); the record must pass as kept.
func TestInjectedViolationInLongRecord(t *testing.T) {
	dir := os.Getenv("ETCD_ROBUSTNESS_LONG_RECORD")
	if dir == "" {
		t.Skip("set ETCD_ROBUSTNESS_LONG_RECORD to a kept scale run's report directory")
	}
	// middlePut is the acknowledged put called nearest the middle of the
	// run, of a client other than the final read's.
	middlePut := func(rec *Record) *history.Operation {
		var best *history.Operation
		mid := rec.Scenario.Duration / 2
		for ci := range rec.Clients {
			for oi := range rec.Clients[ci].Operations {
				o := &rec.Clients[ci].Operations[oi]
				if rec.Clients[ci].ID == rec.FinalRead || o.Request.Put == nil || o.Error != nil || o.Response == nil {
					continue
				}
				if best == nil || (o.Call-mid).Abs() < (best.Call-mid).Abs() {
					best = o
				}
			}
		}
		require.NotNil(t, best)
		return best
	}
	tests := []struct {
		name   string
		inject func(rec *Record) string
	}{
		{"an acknowledged put's revision lowered by one", func(rec *Record) string {
			o := middlePut(rec)
			o.Response.Header.Revision--
			return describePut(o)
		}},
		{"an acknowledged put lost from the committed log", func(rec *Record) string {
			o := middlePut(rec)
			log := rec.Persisted
			i := slices.IndexFunc(log.Entries, func(e evidence.Entry) bool {
				return e.Request != nil && e.Request.Put != nil && *e.Request.Put == *o.Request.Put
			})
			require.GreaterOrEqual(t, i, 0)
			// The log loses the entry; the indexes after it close up.
			log.Entries = slices.Delete(log.Entries, i, i+1)
			for k := i; k < len(log.Entries); k++ {
				log.Entries[k].Index--
			}
			log.CommitIndex--
			return describePut(o)
		}},
		{"the final read misses an acknowledged write", func(rec *Record) string {
			c := rec.Clients[slices.IndexFunc(rec.Clients, func(c history.Client) bool { return c.ID == rec.FinalRead })]
			final := &c.Operations[len(c.Operations)-1]
			require.NotEmpty(t, final.Response.Range.KVs)
			kv := final.Response.Range.KVs[0]
			final.Response.Range.KVs = final.Response.Range.KVs[1:]
			return kv.Key + "=" + kv.Value
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := Load(dir)
			require.NoError(t, err)
			what := tc.inject(&rec)
			start := time.Now()
			rs := validate.Run(context.Background(), rec.Input, validate.Options{CheckTimeout: time.Minute})
			took := time.Since(start)
			var illegal []validate.Result
			var stages time.Duration
			var each []string
			for _, r := range rs {
				stages += r.Took
				each = append(each, r.Validator+" "+r.Took.Round(time.Millisecond).String())
				if r.Verdict != validate.OK {
					t.Logf("%s %s in %s: %.400s", r.Validator, r.Verdict, r.Took.Round(time.Millisecond), r.Message)
				}
				if r.Verdict == validate.Illegal {
					illegal = append(illegal, r)
				}
			}
			t.Logf("stages: %s", strings.Join(each, ", "))
			require.NotEmpty(t, illegal, "injected %s: no stage found it", what)
			require.NotEmpty(t, illegal[0].Explanation, "%s: %s", illegal[0].Validator, illegal[0].Message)
			var ru syscall.Rusage
			require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
			t.Logf("injected %s: %s illegal in %s (stages %s, %.1f%% of %s of traffic; peak RSS so far %.2f GB): %s",
				what, illegal[0].Validator, took.Round(time.Millisecond), stages.Round(time.Millisecond),
				100*stages.Seconds()/rec.Scenario.Duration.Seconds(), rec.Scenario.Duration, float64(ru.Maxrss)*1024/1e9, illegal[0].Explanation)
			require.LessOrEqual(t, stages.Seconds(), rec.Scenario.Duration.Seconds()/10, "the check takes at most 10% of the traffic time")
		})
	}
}

func describePut(o *history.Operation) string {
	return "put(" + o.Request.Put.Key + ", " + o.Request.Put.Value + ")"
}

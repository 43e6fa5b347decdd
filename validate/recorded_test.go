package validate

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// loadRecorded reads the run record a real run saved under testdata (see
// testdata/*/README): the input of every check, evidence included.
func loadRecorded(t testing.TB, name string) (Input, time.Duration) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name, "record.json.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var rec struct {
		Scenario struct {
			Duration time.Duration `json:"duration"`
		} `json:"scenario"`
		Input
	}
	require.NoError(t, json.NewDecoder(zr).Decode(&rec))
	require.NotNil(t, rec.Persisted, "the record holds the members' committed log")
	return rec.Input, rec.Scenario.Duration
}

// recorded are records of real runs against etcd (see testdata/*/README).
var recorded = []string{"v3.7.3-3members-12clients-kill", "v3.7.3-3members-24clients-etcd-high-kill"}

func TestRecordedHistories(t *testing.T) {
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			in, _ := loadRecorded(t, name)
			rs := Run(context.Background(), in, Options{})
			requireAllOK(t, in, rs)

			// Lose one acknowledged write: the final read no longer shows
			// its first key. Proving that illegal is porcupine's exhaustive
			// search over the whole run (minutes under -race); make test
			// runs it in its second, non-short pass.
			if testing.Short() {
				t.Skip("the search for the lost write runs without -short")
			}
			if name != recorded[0] {
				// Measured: on the 19,294-operation lease-heavy record,
				// porcupine's search for this violation did not finish
				// within its 1 min limit (TIMED OUT, never a pass).
				t.Skip("the exhaustive search runs on the etcd-kv record only")
			}
			in, _ = loadRecorded(t, name)
			final := finalReadOp(t, in)
			require.NotEmpty(t, final.Response.Range.KVs)
			final.Response.Range.KVs = final.Response.Range.KVs[1:]
			rs = Run(context.Background(), in, Options{})
			lin := stageResult(rs, Linearizability{}.Name())
			require.Equal(t, Illegal, lin.Verdict, lin.Message)
			t.Log(lin.Explanation)
			require.NotEmpty(t, lin.Involved)
			require.NotNil(t, lin.History)
			require.LessOrEqual(t, len(lin.History.Ops), MaxVisualizedOps+MaxVisualizedOps/10)
		})
	}
}

// stageResult is the result of the stage named name.
func stageResult(rs []Result, name string) Result {
	for _, r := range rs {
		if r.Validator == name {
			return r
		}
	}
	return Result{Validator: name, Verdict: Inconclusive, Message: "the stage did not run"}
}

func finalReadOp(t testing.TB, in Input) *history.Operation {
	for i := range in.Clients {
		if c := &in.Clients[i]; c.ID == in.FinalRead {
			ops := c.Operations
			return &ops[len(ops)-1]
		}
	}
	t.Fatal("no final read")
	return nil
}

// failWindow makes every request called in [from, from+d) time out with an
// unknown outcome, as when a paused leader stalls every client: the writes
// among them were applied all the same.
func failWindow(in Input, from, d time.Duration) (n int) {
	for ci := range in.Clients {
		for oi := range in.Clients[ci].Operations {
			op := &in.Clients[ci].Operations[oi]
			if in.Clients[ci].ID != in.FinalRead && op.Call >= from && op.Call < from+d && op.Error == nil {
				op.Response = nil
				op.Error = &history.Error{Code: "DeadlineExceeded", Message: "context deadline exceeded", Outcome: history.Unknown}
				n++
			}
		}
	}
	return n
}

// failWrites makes n random successful writes time out with an unknown
// outcome.
func failWrites(in Input, n int, seed int64) {
	var writes []*history.Operation
	for ci := range in.Clients {
		for oi := range in.Clients[ci].Operations {
			if op := &in.Clients[ci].Operations[oi]; op.Error == nil && !op.Request.ReadOnly() {
				writes = append(writes, op)
			}
		}
	}
	r := rand.New(rand.NewSource(seed))
	for _, i := range r.Perm(len(writes))[:n] {
		writes[i].Response = nil
		writes[i].Error = &history.Error{Code: "Unavailable", Message: "error reading from server: EOF", Outcome: history.Unknown}
	}
}

func TestRecordedWithUnknownOutcomes(t *testing.T) {
	for _, name := range recorded {
		in, _ := loadRecorded(t, name)
		n := failWindow(in, 3*time.Second, 2*time.Second)
		require.Greater(t, n, 1000)
		rs := Run(context.Background(), in, Options{})
		requireAllOK(t, in, rs)
	}
}

// BenchmarkCheck measures every stage over a recorded run, the patch
// included, and reports the check's time as a share of the traffic's.
func BenchmarkCheck(b *testing.B) {
	cases := []struct {
		name   string
		mutate func(in Input)
	}{
		{"as-recorded", func(Input) {}},
		{"2s-window-unknown", func(in Input) { failWindow(in, 3*time.Second, 2*time.Second) }},
		{"200-unknown-writes", func(in Input) { failWrites(in, 200, 1) }},
	}
	for _, name := range recorded {
		for _, tc := range cases {
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				in, traffic := loadRecorded(b, name)
				tc.mutate(in)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, r := range Run(context.Background(), in, Options{}) {
						// The fixture predates health probes (see requireAllOK).
						if r.Verdict != OK && !(r.Validator == (Health{}).Name() && len(in.Probes) == 0) {
							b.Fatalf("%s: %s", r.Validator, r.Message)
						}
					}
				}
				b.StopTimer()
				perOp := b.Elapsed() / time.Duration(b.N)
				b.ReportMetric(float64(history.Count(in.Clients).Operations), "operations")
				b.ReportMetric(100*perOp.Seconds()/traffic.Seconds(), "%-of-traffic")
			})
		}
	}
}

// requireAllOK requires every stage to pass, except the health stage on a
// record made before the runner probed the members' health endpoints: it
// must then say it could not check them.
func requireAllOK(t *testing.T, in Input, rs []Result) {
	t.Helper()
	for _, r := range rs {
		want := OK
		if r.Validator == (Health{}).Name() && len(in.Probes) == 0 {
			want = Inconclusive
		}
		require.Equal(t, want, r.Verdict, "%s: %s", r.Validator, r.Message)
	}
}

// `check DIR` and `run --keep` decide alike: on each recorded run, every
// stage gives the same verdict with and without Options.Visualize, and the
// kept passing run gets a HistoryView of at most MaxVisualizedOps
// operations, in the committed log's order from the initial state.
func TestKeepAndCheckAgree(t *testing.T) {
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			in, _ := loadRecorded(t, name)
			checked := Run(context.Background(), in, Options{})
			in, _ = loadRecorded(t, name)
			kept := Run(context.Background(), in, Options{Visualize: true})
			require.Len(t, kept, len(checked))
			for i := range checked {
				require.Equal(t, checked[i].Validator, kept[i].Validator)
				require.Equal(t, checked[i].Verdict, kept[i].Verdict, "%s: check says %q, run --keep says %q", checked[i].Validator, checked[i].Message, kept[i].Message)
				require.Equal(t, checked[i].Checked, kept[i].Checked, checked[i].Validator)
			}
			lin := stageResult(kept, Linearizability{}.Name())
			require.Equal(t, OK, lin.Verdict, lin.Message)
			require.Contains(t, lin.Message, "in the committed log's order")
			require.Nil(t, stageResult(checked, Linearizability{}.Name()).History, "check draws nothing for a pass")
			v := lin.History
			require.NotNil(t, v)
			require.LessOrEqual(t, len(v.Ops), MaxVisualizedOps)
			require.Equal(t, lin.Checked, v.Total)
			require.Zero(t, v.Folded)
			require.Len(t, v.States, 1)
			require.Contains(t, v.Description, "in the committed log's order")
			require.NotContains(t, v.Description, "did not end", "the first operations in the log's order are linearizable on their own")
			longest := 0
			for _, lin := range v.Info.PartialLinearizations()[0] {
				longest = max(longest, len(lin))
			}
			require.Equal(t, len(v.Ops), longest, "porcupine's info holds the whole order")
			require.NoError(t, porcupine.Visualize(PorcupineModel(v.States), v.Info, io.Discard), "the page draws it with the model itself")
		})
	}
}

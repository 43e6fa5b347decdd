package validate

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
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

// openDeletes makes n delete requests of the run open in a way the patch
// cannot settle: n acknowledged deletes that deleted something, spread
// over the run, become of unknown outcome, and each gets an identical copy
// of unknown outcome, sent at the same time by a client of its own. Each
// such group of identical deletes now holds one committed copy more than
// were acknowledged and one fewer than were sent, so counting settles
// neither unknown copy. The deletes are of different requests (keys) all
// of whose copies were answered, so each group holds one pair and no
// other open copy. It returns the sources of the pairs.
func openDeletes(in *Input, n int) [][2]string {
	var deletes []*history.Operation
	var sources []string
	// Requests some copy of which was not answered: their groups hold
	// open copies besides the pair.
	unanswered := map[string]bool{}
	for _, cl := range in.Clients {
		for _, op := range cl.Operations {
			if op.Request.DeleteRange != nil && op.Error != nil {
				unanswered[describeRecord(op.Request)] = true
			}
		}
	}
	for ci := range in.Clients {
		if in.Clients[ci].ID == in.FinalRead {
			continue
		}
		for oi := range in.Clients[ci].Operations {
			if op := &in.Clients[ci].Operations[oi]; op.Request.DeleteRange != nil && op.Wrote() && !unanswered[describeRecord(op.Request)] {
				deletes = append(deletes, op)
				sources = append(sources, fmt.Sprintf("client %d #%d", in.Clients[ci].ID, oi))
			}
		}
	}
	var pairs [][2]string
	used := map[string]bool{}
	for k := 0; k < n && len(deletes) > 0; k++ {
		i := k * len(deletes) / n
		// A request of its own for each pair (deletes of other keys), so
		// that each group holds one pair.
		for ; i < len(deletes) && used[describeRecord(deletes[i].Request)]; i++ {
		}
		if i == len(deletes) {
			break
		}
		op := deletes[i]
		used[describeRecord(op.Request)] = true
		op.Response = nil
		op.Error = &history.Error{Code: "Unavailable", Message: "error reading from server: EOF", Outcome: history.Unknown}
		cp := *op
		cp.ClientID = 10000 + k
		in.Clients = append(in.Clients, history.Client{ID: cp.ClientID, Operations: []history.Operation{cp}})
		pairs = append(pairs, [2]string{sources[i], fmt.Sprintf("client %d #0", cp.ClientID)})
	}
	return pairs
}

// TestRecordedOpenWrites: on each recorded run with three groups of
// identical deletes made of unknown outcome (openDeletes), the patch
// settles one copy of each pair at the committed entry and the other as
// never applied (pinIdentical: the complete log holds one copy), and the
// witness certifies the run. Without -short porcupine's search checks the etcd-kv
// record too (measured: 0.6 s there; on the 19,294-operation lease-heavy
// record it did not finish within its 1 min limit, as in the 60 s run the
// "scale" issue names, so it is not run).
func TestRecordedOpenWrites(t *testing.T) {
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			in, _ := loadRecorded(t, name)
			pairs := openDeletes(&in, 3)
			require.Len(t, pairs, 3)
			c := &Check{Input: in}
			patch := PatchStage{}.Validate(context.Background(), c)
			require.Equal(t, OK, patch.Verdict, patch.Message)
			bySource := map[string]*Op{}
			for i := range c.Patched.Ops {
				bySource[c.Patched.Ops[i].Source] = &c.Patched.Ops[i]
			}
			for _, pair := range pairs {
				a, b := bySource[pair[0]], bySource[pair[1]]
				require.True(t, (a == nil) != (b == nil), "one of %s and %s is settled as never applied: %s", pair[0], pair[1], patch.Message)
				if a == nil {
					a = b
				}
				require.Equal(t, model.StatusApplied, a.Response.Status, "the other is settled as applied")
				require.True(t, a.applied, "and placed at the entry")
			}
			start := time.Now()
			lin := Linearizability{}.Validate(context.Background(), c)
			took := time.Since(start)
			require.Equal(t, OK, lin.Verdict, lin.Message)
			require.Contains(t, lin.Message, "in the committed log's order")
			t.Logf("%d left open; witness: %s in %s", c.Patched.Open, lin.Verdict, took.Round(time.Millisecond))
			if testing.Short() || name != recorded[0] {
				return
			}
			start = time.Now()
			porc := Linearizability{SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, OK, porc.Verdict, porc.Message)
			t.Logf("porcupine alone: %s in %s", porc.Verdict, time.Since(start).Round(time.Millisecond))
		})
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

package validate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// loadRecorded reads client histories that a real run saved under testdata.
func loadRecorded(t testing.TB, name string) []history.Client {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", name, "client-*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var clients []history.Client
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var c history.Client
		require.NoError(t, json.Unmarshal(b, &c))
		clients = append(clients, c)
	}
	return clients
}

// recorded are histories of real runs against etcd (see testdata/*/README).
var recorded = []string{"v3.7.3-raftBeforeSave"}

func TestRecordedHistories(t *testing.T) {
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			clients := loadRecorded(t, name)
			r := Linearizability{Timeout: time.Minute}.Validate(context.Background(), Input{Clients: clients})
			require.Equal(t, OK, r.Verdict, r.Message)

			// Lose one acknowledged write: the final read (the last
			// client's only operation) no longer shows its first key.
			final := &clients[len(clients)-1].Operations[0]
			kvs := final.Response.Txn.Results[0].KVs
			require.NotEmpty(t, kvs)
			final.Response.Txn.Results[0].KVs = kvs[1:]
			r = Linearizability{Timeout: time.Minute}.Validate(context.Background(), Input{Clients: clients})
			require.Equal(t, Illegal, r.Verdict, r.Message)
		})
	}
}

func BenchmarkLinearizability(b *testing.B) {
	for _, name := range recorded {
		b.Run(name, func(b *testing.B) {
			clients := loadRecorded(b, name)
			in := Input{Clients: clients}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r := (Linearizability{}).Validate(context.Background(), in); r.Verdict != OK {
					b.Fatal(r.Message)
				}
			}
			b.ReportMetric(float64(history.Count(clients).Operations), "operations")
		})
	}
}

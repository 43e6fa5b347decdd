package robustness

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/history"
)

func TestProgressFields(t *testing.T) {
	tests := []struct {
		name          string
		elapsed, span time.Duration
		prev, now     client.Counts
		fault         string
		want          map[string]any
	}{
		{"first line, no fault", 5 * time.Second, 5 * time.Second, client.Counts{}, client.Counts{Operations: 1000, Failed: 3, Unknown: 1}, "",
			map[string]any{"elapsed": 5 * time.Second, "requests/s": 200.0, "requests": int64(1000), "failed": int64(3), "unknown": int64(1), "fault": "none"}},
		{"the rate is the last span's", 10*time.Second + 40*time.Millisecond, 5 * time.Second, client.Counts{Operations: 1000}, client.Counts{Operations: 1333, Unknown: 7}, "kill",
			map[string]any{"elapsed": 10 * time.Second, "requests/s": 66.6, "requests": int64(1333), "failed": int64(0), "unknown": int64(7), "fault": "kill"}},
		{"no span", 0, 0, client.Counts{}, client.Counts{}, "", map[string]any{"requests/s": 0.0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := zapcore.NewMapObjectEncoder()
			for _, f := range progressFields(tc.elapsed, tc.span, tc.prev, tc.now, tc.fault) {
				f.AddTo(enc)
			}
			for k, v := range tc.want {
				require.Equal(t, v, enc.Fields[k], k)
			}
		})
	}
}

// progress.log writes a line every interval while traffic runs, and none
// once stopped.
func TestProgressLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	p := &progress{}
	clock := history.NewClock()
	p.setFault("pause-leader")
	stop := p.log(context.Background(), zap.New(core), clock, clock.Now(), 20*time.Millisecond, nil)
	for range 50 {
		p.counter.Counts() // concurrent reads are safe
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	n := logs.Len()
	require.GreaterOrEqual(t, n, 2)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, n, logs.Len(), "no line after stop")
	line := logs.All()[0]
	require.Equal(t, "traffic progress", line.Message)
	require.Equal(t, "pause-leader", line.ContextMap()["fault"])
}

// With a status function (a terminal), the same figures come as a short
// line every StatusInterval, and "" once traffic ends, to clear it.
func TestProgressStatus(t *testing.T) {
	p := &progress{}
	clock := history.NewClock()
	p.setFault("kill")
	var mu sync.Mutex
	var lines []string
	stop := p.log(context.Background(), zap.NewNop(), clock, clock.Now(), time.Hour, func(l string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, l)
	})
	time.Sleep(StatusInterval + 300*time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, lines, 2, "one status line, then the clear")
	require.Regexp(t, `^traffic 1(\.\d)?s: 0 requests/s, 0 requests \(0 failed, 0 unknown\), fault kill$`, lines[0])
	require.Equal(t, "", lines[1])
}

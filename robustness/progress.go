package robustness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// ProgressInterval is how often a run logs its progress while traffic runs.
const ProgressInterval = 5 * time.Second

// progress is what a run's progress lines read: the traffic clients'
// requests as they return, and the fault under way.
type progress struct {
	counter client.Counter
	mu      sync.Mutex
	fault   string
}

func (p *progress) setFault(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = name
}

func (p *progress) currentFault() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// StatusInterval is how often a run updates its status line (Config.Status).
const StatusInterval = time.Second

// log logs a progress line every interval until ctx is done or the
// returned stop is called: the time since traffic started, the requests
// per second over the last interval, the requests and errors so far, and
// the fault under way. With status set (a terminal), it also gives it the
// same figures as one short line every StatusInterval, and "" once it
// stops, so that the line can be cleared.
func (p *progress) log(ctx context.Context, lg *zap.Logger, clock *history.Clock, start, interval time.Duration, status func(string)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		var tick <-chan time.Time
		if status != nil {
			st := time.NewTicker(StatusInterval)
			defer st.Stop()
			defer status("")
			tick = st.C
		}
		var prev, sprev client.Counts
		last, slast := clock.Now(), clock.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				now, counts := clock.Now(), p.counter.Counts()
				status(progressText(progressFields(now-start, now-slast, sprev, counts, p.currentFault())))
				sprev, slast = counts, now
			case <-t.C:
				now, counts := clock.Now(), p.counter.Counts()
				lg.Info("traffic progress", progressFields(now-start, now-last, prev, counts, p.currentFault())...)
				prev, last = counts, now
			}
		}
	}()
	return func() { cancel(); <-done }
}

// progressText is a progress line's fields as a status line: "traffic
// 12s: 1850 requests/s, 18450 requests (3 failed, 0 unknown), fault kill".
func progressText(fields []zap.Field) string {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	m := enc.Fields
	return fmt.Sprintf("traffic %v: %v requests/s, %v requests (%v failed, %v unknown), fault %v",
		m["elapsed"], m["requests/s"], m["requests"], m["failed"], m["unknown"], m["fault"])
}

// progressFields are one progress line's fields: elapsed since traffic
// started, requests/s over the last span, the totals so far, and the
// fault under way ("none").
func progressFields(elapsed, span time.Duration, prev, now client.Counts, fault string) []zap.Field {
	rate := 0.0
	if span > 0 {
		rate = float64(now.Operations-prev.Operations) / span.Seconds()
	}
	if fault == "" {
		fault = "none"
	}
	return []zap.Field{
		zap.Duration("elapsed", elapsed.Round(100*time.Millisecond)),
		zap.Float64("requests/s", float64(int(rate*10+0.5))/10),
		zap.Int64("requests", now.Operations),
		zap.Int64("failed", now.Failed),
		zap.Int64("unknown", now.Unknown),
		zap.String("fault", fault),
	}
}

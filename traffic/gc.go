package traffic

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The garbage collector's target while a run's traffic runs (TuneGC).
// The clients' gRPC calls and the cluster's proxies (which run in this
// process) allocate for every request while the recorded history, the
// live heap, keeps growing, so with Go's default of 100 the collector
// marks that history over and over: at 400 the harness used 2 to 4% of
// the 2-core machine less at 2,300-2,500 requests/s (make throughput,
// runs alternated with GOGC=100). But a fixed 400 lets the heap grow to
// five times what is live: the 300 s scale run, whose history and watch
// responses are a few GB live by its end, peaked at 5.94 GB. So the
// target is set from the live heap as it grows: the heap may grow by
// gcHeadroom past what is live, at most by gcMaxPercent of it (while it
// is small, where marking is cheap anyway) and at least by gcMinPercent.
const (
	gcHeadroom   = 512 << 20
	gcMaxPercent = 400
	gcMinPercent = 25
	// gcRetune is how often the target is set again.
	gcRetune = 500 * time.Millisecond
)

// gcPercent is the collector's target for a live heap of live bytes.
func gcPercent(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	return min(gcMaxPercent, max(gcMinPercent, int(100*uint64(gcHeadroom)/live)))
}

var gc struct {
	mu   sync.Mutex
	runs int           // TuneGC callers under way
	old  int           // the target before the first of them
	stop chan struct{} // ends the retuning goroutine
	done chan struct{}
}

// TuneGC sets the collector's target from the live heap (gcPercent), every
// gcRetune, until the returned function is called by every caller; then
// the target is what it was. It leaves the collector alone if the user
// set GOGC. Calls may nest (robustness.Run around traffic.Run).
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.runs == 0 {
		gc.old = debug.SetGCPercent(gcMaxPercent)
		gc.stop, gc.done = make(chan struct{}), make(chan struct{})
		go retuneGC(gc.stop, gc.done)
	}
	gc.runs++
	return func() {
		gc.mu.Lock()
		defer gc.mu.Unlock()
		if gc.runs--; gc.runs == 0 {
			close(gc.stop)
			<-gc.done
			debug.SetGCPercent(gc.old)
		}
	}
}

// retuneGC sets the target from the live heap the last collection marked,
// until stop is closed.
func retuneGC(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(gcRetune)
	defer t.Stop()
	last := gcMaxPercent
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			continue
		}
		if p := gcPercent(sample[0].Value.Uint64()); p != last {
			debug.SetGCPercent(p)
			last = p
		}
	}
}

package traffic

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// Watch traffic: watchers that watch what the request traffic writes, each
// watch recorded message by message (client.Stream), while faults are
// injected. When traffic stops, every watch must catch up to the last
// committed revision within a bound (Watchers.Finish).

// DefaultCatchUpBound is how long Finish waits for every watch to deliver
// up to the last committed revision.
const DefaultCatchUpBound = 10 * time.Second

// DefaultProgressRequestInterval is how often a watcher sends
// RequestProgress on each of its streams when WatchConfig leaves it zero.
const DefaultProgressRequestInterval = 500 * time.Millisecond

// DefaultSlowReadDelay is how long a slow watch waits before
// reading each message while traffic runs, when WatchConfig leaves
// SlowReadDelay zero.
const DefaultSlowReadDelay = 100 * time.Millisecond

// resumeBackoff is the pause before a broken watch is opened again.
const resumeBackoff = 100 * time.Millisecond

// maxResumeBackoff bounds the pause before a watch that failed to open
// again is retried.
const maxResumeBackoff = time.Second

// created reports whether etcd confirmed the watch.
func created(w history.Watch) bool {
	for _, r := range w.Responses {
		if r.Created {
			return true
		}
	}
	return false
}

// quietBeforeProgress is how long a stream must have received nothing,
// while Finish waits, before it asks for progress when AvoidProgressRequests
// applies: longer than an etcd member's pause between two batches for an
// unsynced watch (100 ms), with no write coming any more.
const quietBeforeProgress = 500 * time.Millisecond

// catchUpPoll is how often a watch that has not caught up asks for
// progress while Finish waits.
const catchUpPoll = 100 * time.Millisecond

// WatchConfig describes the watchers of a run.
type WatchConfig struct {
	// Profile is the request traffic's profile name: it decides which keys
	// are watched besides the whole key space (WatchedKeys).
	Profile string
	// Members are each member's client URL: one watcher is pinned to each.
	Members []string
	// Endpoints are every member's client URL, for one more watcher that
	// spreads over the cluster.
	Endpoints []string
	// Seed makes every choice of what to watch deterministic.
	Seed  int64
	Clock *history.Clock
	// FirstID is the first watcher's history client id; watcher i is
	// FirstID+i (its lists are recorded as operations of that client).
	FirstID int
	// Duration is how long the request traffic runs: watches that start
	// mid-run open at a quarter, a half and three quarters of it.
	Duration time.Duration
	// ProgressRequestInterval is how often every stream sends
	// RequestProgress; zero means DefaultProgressRequestInterval and a
	// negative value sends none.
	ProgressRequestInterval time.Duration
	// SlowReadDelay is how long each watcher's slow watch waits before
	// reading each message until traffic stops (then it reads at full
	// speed to catch up); zero means DefaultSlowReadDelay and a negative
	// value plans no slow watch.
	SlowReadDelay time.Duration
	Logger        *zap.Logger
	// Users, if set, gives the user watcher i watches as (nil: root, once
	// the harness enabled auth); see AuthWatcherUser.
	Users func(i int) *cluster.Credentials
	// Avoid is what the watches leave out for the etcd under test's known
	// bugs (AvoidFutureWatches, AvoidProgressRequests,
	// AvoidWatchAtCompactRevision, AvoidSlowWatch); see KnownBugs.
	Avoid []Avoidance
}

// KeySpace is the keys a traffic profile writes, for its watches: a
// prefix, and keys worth a single-key watch.
type KeySpace struct {
	Prefix string
	Keys   []string
}

// watchedKeys are the key spaces of the profiles that have one; every
// profile also gets watches of the whole key space.
var watchedKeys = map[string]KeySpace{
	"etcd-kv":    {Prefix: "key-", Keys: []string{"key-0", "key-1", "key-2"}},
	"etcd":       {Prefix: "key/", Keys: []string{"key/0/0", "key/0/1", "key/1/0"}},
	"kubernetes": {Prefix: "/registry/"},
}

// WatchedKeys is the key space watched for profile: its own, or the whole
// key space (prefix "") for a profile without one.
func WatchedKeys(profile string) KeySpace { return watchedKeys[profile] }

// allKeys are etcd's range for every key: key "\x00" and range end "\x00"
// (clientv3's WithPrefix on an empty key).
const allKeys = "\x00"

// watchRangeEnd is the range end that covers every key starting with prefix,
// or every key for an empty prefix.
func watchRangeEnd(prefix string) string {
	if prefix == "" || prefix == allKeys {
		return allKeys
	}
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return allKeys
}

// startKind is where a watch starts.
type startKind int

const (
	fromNow     startKind = iota // revision 0: the member's next revision
	fromFirst                    // revision 1: the whole history, unsynced at first
	fromPast                     // a recent past revision, read first
	fromFuture                   // a revision not written yet
	listThenWat                  // a range of the prefix, then from its revision + 1, as Kubernetes does
)

// watchSpec is one logical watch, which resumes after a broken stream.
type watchSpec struct {
	key, end string
	start    startKind
	// offset is how far back (fromPast) or ahead (fromFuture) it starts.
	offset         int64
	prevKV         bool
	progressNotify bool
	requireLeader  bool
	filters        []string
	// at is when it opens, from the start of traffic.
	at time.Duration
	// progressAtOpen: every stream of the watch that starts at a past
	// revision sends RequestProgress right after its create request,
	// while etcd is still catching it up (an unsynced watcher, whose
	// notification etcd must defer until it has sent the backlog).
	progressAtOpen bool
	// slow: the watch reads its stream slowly (WatchConfig.SlowReadDelay)
	// until traffic stops, so that etcd moves its watcher aside as a
	// victim; it sends no progress request while slow.
	slow bool
}

// plan decides every watch of every watcher from the seed. Besides the
// watches opened at the start and at each quarter of the run, each
// watcher opens four at random times all through it: one from revision 1
// (below the compact revision once the profile has compacted, so etcd
// must cancel it with the compact revision, and it resumes from there),
// one from 200 to 2,200 revisions back (a long backlog to catch up, or a
// compacted start), one from a recent past revision, and one list-then-
// watch; the first three ask for progress right after they are created.
// With slow, each watcher has one more watch of the whole key space, from
// now and with previous values (larger messages fill etcd's buffers
// sooner), that reads slowly.
func plan(rnd *rand.Rand, watchers int, ks KeySpace, duration time.Duration, slow bool) [][]watchSpec {
	prefixKey, prefixRangeEnd := allKeys, allKeys
	if ks.Prefix != "" {
		prefixKey, prefixRangeEnd = ks.Prefix, watchRangeEnd(ks.Prefix)
	}
	filters := [][]string{nil, nil, {"NODELETE"}, {"NOPUT"}}
	out := make([][]watchSpec, watchers)
	for i := range out {
		ws := []watchSpec{
			{key: allKeys, end: allKeys, start: fromNow, prevKV: rnd.Intn(2) == 0, progressNotify: true, requireLeader: rnd.Intn(2) == 0},
			{key: prefixKey, end: prefixRangeEnd, start: listThenWat, prevKV: true, progressNotify: true},
			{key: allKeys, end: allKeys, start: fromFirst, prevKV: true, requireLeader: rnd.Intn(3) == 0},
		}
		if len(ks.Keys) > 0 {
			ws = append(ws, watchSpec{key: ks.Keys[rnd.Intn(len(ks.Keys))], start: fromFirst, prevKV: rnd.Intn(2) == 0,
				filters: filters[rnd.Intn(len(filters))]})
		}
		for q := 1; q <= 3; q++ {
			at := duration * time.Duration(q) / 4
			ws = append(ws,
				watchSpec{key: prefixKey, end: prefixRangeEnd, start: fromPast, offset: 1 + rnd.Int63n(100), prevKV: rnd.Intn(2) == 0, at: at},
				watchSpec{key: prefixKey, end: prefixRangeEnd, start: listThenWat, prevKV: true, requireLeader: rnd.Intn(2) == 0, at: at})
			if rnd.Intn(2) == 0 {
				ws = append(ws, watchSpec{key: allKeys, end: allKeys, start: fromFuture, offset: 1 + rnd.Int63n(20), at: at})
			}
		}
		anytime := func() time.Duration { return time.Duration(rnd.Int63n(int64(max(duration, 1)))) }
		ws = append(ws,
			watchSpec{key: prefixKey, end: prefixRangeEnd, start: fromFirst, prevKV: rnd.Intn(2) == 0, progressAtOpen: true, at: anytime()},
			watchSpec{key: allKeys, end: allKeys, start: fromPast, offset: 200 + rnd.Int63n(2000), prevKV: rnd.Intn(2) == 0, progressAtOpen: true, at: anytime()},
			watchSpec{key: prefixKey, end: prefixRangeEnd, start: fromPast, offset: 1 + rnd.Int63n(100), progressAtOpen: true, at: anytime()},
			watchSpec{key: prefixKey, end: prefixRangeEnd, start: listThenWat, prevKV: true, at: anytime()})
		if slow {
			// One per watcher, so that a fault on one member leaves the
			// others' slow watches going (a slow reader sees its stream
			// break only once it has read what came before the break).
			ws = append(ws, watchSpec{key: allKeys, end: allKeys, start: fromNow, prevKV: true, slow: true})
		}
		out[i] = ws
	}
	return out
}

// leaveOut drops from a plan the watches a known bug says to avoid. It
// runs after plan, so every other watch is drawn as without it.
func leaveOut(specs [][]watchSpec, avoid []Avoidance) [][]watchSpec {
	if !slices.Contains(avoid, AvoidFutureWatches) {
		return specs
	}
	out := make([][]watchSpec, len(specs))
	for i, ws := range specs {
		for _, w := range ws {
			if w.start != fromFuture {
				out[i] = append(out[i], w)
			}
		}
	}
	return out
}

// Watchers runs the watches of a run until Finish.
type Watchers struct {
	cfg    WatchConfig
	lg     *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Duration
	wg     sync.WaitGroup

	mu       sync.Mutex
	nextID   int
	watchers []*watcher
	chains   []*chain
	watches  []history.Watch // ended watches

	// finishing is closed when Finish begins; target and deadline are set
	// before.
	finishing chan struct{}
	target    int64
	deadline  time.Time
}

// watcher is one connection: its watch streams and a recording client for
// its lists.
type watcher struct {
	w    *client.Watcher
	kv   *client.Client
	kvMu sync.Mutex // a recording client sends one request at a time
}

// chain is one logical watch: the streams it opened, one after another.
type chain struct {
	spec watchSpec
	mu   sync.Mutex
	cur  *client.Stream
}

// StartWatchers connects the watchers and opens their first watches; the
// rest open at their time. ctx bounds them all; Finish ends them.
func StartWatchers(ctx context.Context, cfg WatchConfig) (*Watchers, error) {
	if cfg.ProgressRequestInterval == 0 {
		cfg.ProgressRequestInterval = DefaultProgressRequestInterval
	}
	if cfg.SlowReadDelay == 0 {
		cfg.SlowReadDelay = DefaultSlowReadDelay
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	groups := make([][]string, 0, len(cfg.Members)+1)
	for _, m := range cfg.Members {
		groups = append(groups, []string{m})
	}
	groups = append(groups, cfg.Endpoints)
	ctx, cancel := context.WithCancel(ctx)
	ws := &Watchers{cfg: cfg, lg: lg, ctx: ctx, cancel: cancel, start: cfg.Clock.Now(), finishing: make(chan struct{})}
	for i, eps := range groups {
		id := cfg.FirstID + i
		var user *cluster.Credentials
		if cfg.Users != nil {
			user = cfg.Users(i)
		}
		w, err := client.NewWatcherAs(eps, id, cfg.Clock, user)
		if err == nil {
			var kv *client.Client
			if kv, err = client.NewAs(eps, id, cfg.Clock, 0, user); err == nil {
				ws.watchers = append(ws.watchers, &watcher{w: w, kv: kv})
				continue
			}
			w.Close()
		}
		ws.closeWatchers()
		cancel()
		return nil, fmt.Errorf("watch traffic: %w", err)
	}
	slow := cfg.SlowReadDelay > 0 && !ws.avoids(AvoidSlowWatch)
	specs := plan(rand.New(rand.NewSource(cfg.Seed)), len(ws.watchers), WatchedKeys(cfg.Profile), cfg.Duration, slow)
	specs = leaveOut(specs, cfg.Avoid)
	n := 0
	for i, w := range ws.watchers {
		for _, spec := range specs[i] {
			c := &chain{spec: spec}
			ws.chains = append(ws.chains, c)
			ws.wg.Go(func() { ws.run(w, c) })
			n++
		}
	}
	lg.Info("watch traffic started", zap.Int("watchers", len(ws.watchers)), zap.Int("watches", n),
		zap.Duration("progress-request-interval", cfg.ProgressRequestInterval), zap.Duration("slow-read-delay", cfg.SlowReadDelay))
	return ws, nil
}

func (ws *Watchers) closeWatchers() {
	for _, w := range ws.watchers {
		w.w.Close()
		w.kv.Close()
	}
}

// finished reports whether Finish has begun.
func (ws *Watchers) finished() bool {
	select {
	case <-ws.finishing:
		return true
	default:
		return false
	}
}

// sleep waits d, or until ctx is done or Finish begins; it reports whether
// the wait was cut short.
func (ws *Watchers) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-ws.ctx.Done():
		return true
	case <-ws.finishing:
		return true
	}
}

// run drives one logical watch: it opens it at its time, keeps asking for
// progress, opens it again after a broken stream (from the last revision
// it reached) or a compaction (from the compact revision), and ends when
// Finish says.
func (ws *Watchers) run(w *watcher, c *chain) {
	if wait := ws.start + c.spec.at - ws.cfg.Clock.Now(); wait > 0 && ws.sleep(wait) {
		return // Finish began before this watch was due: it never opens
	}
	req, ok := ws.firstRequest(w, c.spec)
	if !ok {
		return
	}
	resumedFrom := -1
	backoff := resumeBackoff
	for {
		ctx, cancel := ws.ctx, context.CancelFunc(func() {})
		if ws.finished() {
			// Opened while Finish waits: it must not outlive the bound.
			ctx, cancel = context.WithDeadline(ws.ctx, ws.deadline)
		}
		s := w.w.Open(ctx, ws.newID(), req, resumedFrom)
		slow := c.spec.slow && !ws.finished()
		if slow {
			s.SetReadDelay(ws.cfg.SlowReadDelay)
		}
		// Under the avoidance of etcd #20221 the request waits for the
		// created response, and is sent only if it shows the member at or
		// past the start (mayRequestProgress): a watch from the past on
		// one member may be a watch from the future on another, a
		// member cut off and behind (seen on v3.5.8, #15271's runs).
		// Under #15220's, none is sent at open.
		askAtOpen := c.spec.progressAtOpen && req.StartRevision > 0 && ws.cfg.ProgressRequestInterval > 0 &&
			!ws.avoids(AvoidProgressRequests)
		if askAtOpen && !ws.avoids(AvoidFutureWatches) {
			_ = s.RequestProgress() // the stream may have ended already: then nothing is sent
			askAtOpen = false
		}
		c.mu.Lock()
		c.cur = s
		c.mu.Unlock()
		ws.drive(s, slow, req.StartRevision, askAtOpen)
		if !s.Ended() { // only when the run's context is done
			s.Close("done")
		}
		cancel()
		rec := ws.keep(s)
		c.mu.Lock()
		c.cur = nil // the record is kept; the stream is done with
		c.mu.Unlock()
		if ws.ctx.Err() != nil || rec.EndReason == "done" || rec.EndReason == "caught-up timeout" {
			return
		}
		next, ok := resumeRequest(req, rec, ws.avoids(AvoidWatchAtCompactRevision))
		if !ok {
			return
		}
		// A watch that etcd refuses at once (require-leader on a member cut
		// off from its leader) is retried less and less often, up to a
		// second apart.
		if created(rec) {
			backoff = resumeBackoff
		} else {
			backoff = min(2*backoff, maxResumeBackoff)
		}
		if !pause(ws.ctx, backoff) || (ws.finished() && time.Now().After(ws.deadline)) {
			return
		}
		req, resumedFrom = next, rec.ID
	}
}

// pause waits d unless ctx is done first; it reports whether it waited.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drive keeps one stream going until it ends, or until Finish has seen it
// catch up or run out of time (then it returns with the stream still
// open, and Finish's verdict recorded by closing it).
//
// A slow stream sends no progress request until Finish begins, and then
// reads at full speed. A stream whose watch starts at start, under etcd
// #20221's avoidance, asks for progress only once the member has shown it
// reached start (mayRequestProgress). With askAtOpen it asks once its
// first response has come, if that shows the member reached start. With
// AvoidProgressRequests (#15220), no stream sends one until Finish begins,
// and then only once it has been quiet for quietBeforeProgress.
func (ws *Watchers) drive(s *client.Stream, slow bool, start int64, askAtOpen bool) {
	interval := ws.cfg.ProgressRequestInterval
	quietFirst := ws.avoids(AvoidProgressRequests)
	var tick <-chan time.Time
	if interval > 0 && !slow && !quietFirst {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	var opened <-chan struct{}
	if askAtOpen {
		opened = s.Notify()
	}
	finishing := ws.finishing
	for {
		select {
		case <-s.Done():
			return
		case <-ws.ctx.Done():
			return
		case <-opened:
			opened = nil
			if ws.mayRequestProgress(s, start) {
				_ = s.RequestProgress()
			}
		case <-tick:
			if ws.mayRequestProgress(s, start) {
				_ = s.RequestProgress()
			}
		case <-finishing:
			finishing, opened = nil, nil
			s.SetReadDelay(0)
			if ws.caughtUp(s) {
				s.Close("done")
				return
			}
			poll := time.NewTicker(catchUpPoll)
			defer poll.Stop()
			tick = poll.C
			lastHeard := time.Now() // with quietFirst: the last response, or Finish's start
			if !quietFirst {
				_ = s.RequestProgress()
			}
			deadline := time.NewTimer(time.Until(ws.deadline))
			defer deadline.Stop()
			for {
				select {
				case <-s.Done():
					return
				case <-ws.ctx.Done():
					return
				case <-s.Notify():
					lastHeard = time.Now()
					if ws.caughtUp(s) {
						s.Close("done")
						return
					}
				case <-tick:
					if ws.caughtUp(s) {
						s.Close("done")
						return
					}
					if !quietFirst || time.Since(lastHeard) >= quietBeforeProgress {
						_ = s.RequestProgress()
					}
				case <-deadline.C:
					if ws.caughtUp(s) {
						s.Close("done")
					} else {
						s.Close("caught-up timeout")
					}
					return
				}
			}
		}
	}
}

// avoids reports whether the run leaves out watches of kind a.
func (ws *Watchers) avoids(a Avoidance) bool { return slices.Contains(ws.cfg.Avoid, a) }

// mayRequestProgress reports whether a stream whose watch starts at start
// may ask for progress now. Releases with etcd #20221 answer a watch that
// starts past the store's revision with a notification below its start
// (fixed releases send none): a resumed watch starts one revision past the
// last it saw, and a member that has just restarted is often still there.
// Under the avoidance such a stream waits until one of its responses shows
// the member at or past start (an event, usually, within milliseconds
// under traffic). Finish's catch-up requests are not held back: by then
// the member has written what the watch waits for.
func (ws *Watchers) mayRequestProgress(s *client.Stream, start int64) bool {
	return progressAllowed(ws.avoids(AvoidFutureWatches), start, s.MemberRevision())
}

// progressAllowed is mayRequestProgress's rule, for a stream whose member
// has shown memberRev.
func progressAllowed(avoidFuture bool, start, memberRev int64) bool {
	return !avoidFuture || start <= 0 || memberRev >= start
}

// caughtUp reports whether s has shown it delivered everything up to the
// target: an event or progress notification at or past it, or a start
// revision past it (nothing of what it watches was written yet).
func (ws *Watchers) caughtUp(s *client.Stream) bool {
	if ws.target <= 0 {
		return true // the last committed revision is not known: nothing to wait for
	}
	s.SetTarget(ws.target)
	if s.Progress() >= ws.target {
		return true
	}
	return s.Request().StartRevision > ws.target
}

// firstRequest is the spec's first watch request; fromPast, fromFuture
// and list-then-watch read the current revision first (a recorded range).
func (ws *Watchers) firstRequest(w *watcher, spec watchSpec) (history.WatchRequest, bool) {
	req := history.WatchRequest{Key: spec.key, RangeEnd: spec.end, PrevKV: spec.prevKV, ProgressNotify: spec.progressNotify,
		Filters: spec.filters, RequireLeader: spec.requireLeader}
	switch spec.start {
	case fromFirst:
		req.StartRevision = 1
	case fromPast, fromFuture, listThenWat:
		rev, ok := ws.list(w, spec)
		if !ok {
			return req, false
		}
		switch spec.start {
		case fromPast:
			req.StartRevision = max(1, rev-spec.offset)
		case fromFuture:
			req.StartRevision = rev + spec.offset
		default:
			req.StartRevision = rev + 1
		}
	}
	return req, true
}

// list reads the watched range (recorded, so the model checks it too) and
// returns the revision it was read at, retrying until it succeeds or
// Finish begins.
func (ws *Watchers) list(w *watcher, spec watchSpec) (int64, bool) {
	for {
		w.kvMu.Lock()
		op := w.kv.Do(ws.ctx, history.Range(spec.key, spec.end))
		w.kvMu.Unlock()
		if op.Error == nil && op.Response != nil {
			return op.Response.Header.Revision, true
		}
		if ws.sleep(resumeBackoff) {
			return 0, false
		}
	}
}

// resumeRequest is the request that resumes a watch that ended: after a
// stream error, from the revision after the last one it reached (its last
// event or progress notification, else the revision it was created at);
// after a compaction, from the compact revision (or the one after it, with
// pastCompact: AvoidWatchAtCompactRevision). A watch canceled for another
// reason is not resumed.
func resumeRequest(req history.WatchRequest, rec history.Watch, pastCompact bool) (history.WatchRequest, bool) {
	if len(rec.Responses) == 0 {
		return req, true
	}
	last := rec.Responses[len(rec.Responses)-1]
	switch {
	case last.Canceled && last.CompactRevision > 0:
		req.StartRevision = last.CompactRevision
		if pastCompact {
			req.StartRevision++
		}
		return req, true
	case last.Canceled:
		return req, false
	}
	if p := client.Progress(rec); p > 0 {
		req.StartRevision = p + 1
		return req, true
	}
	for _, r := range rec.Responses {
		if r.Created && req.StartRevision == 0 {
			req.StartRevision = r.Header.Revision + 1
		}
	}
	return req, true
}

func (ws *Watchers) newID() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.nextID++
	return ws.nextID - 1
}

// keep keeps the ended stream's record (Stream.Take: the stream lets go
// of its own copy) and returns it.
func (ws *Watchers) keep(s *client.Stream) history.Watch {
	rec := s.Take()
	ws.mu.Lock()
	ws.watches = append(ws.watches, rec)
	ws.mu.Unlock()
	return rec
}

// Finish waits up to bound for every open watch to deliver everything up
// to target, the last committed revision (read with a linearizable read
// once traffic stopped; 0 if unknown, then nothing is waited for). A watch
// that catches up ends "done"; one that does not ends "caught-up timeout",
// which the watch checks report. It never waits longer than bound, even
// if etcd reported a revision it never committed. It returns every watch
// in ID order and every watcher's recorded lists.
func (ws *Watchers) Finish(target int64, bound time.Duration) ([]history.Watch, []history.Client) {
	if bound <= 0 {
		bound = DefaultCatchUpBound
	}
	start := time.Now()
	ws.target, ws.deadline = target, start.Add(bound)
	close(ws.finishing)
	done := make(chan struct{})
	go func() { ws.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound + 5*time.Second):
		ws.lg.Warn("watches did not stop after the catch-up bound; closing them")
	}
	ws.cancel()
	<-done
	ws.closeWatchers()
	ws.mu.Lock()
	watches := append([]history.Watch(nil), ws.watches...)
	ws.mu.Unlock()
	sortWatches(watches)
	var lists []history.Client
	timedOut := 0
	for _, w := range watches {
		if w.EndReason == "caught-up timeout" {
			timedOut++
		}
	}
	for _, w := range ws.watchers {
		if h := w.kv.History(); len(h.Operations) > 0 {
			lists = append(lists, h)
		}
	}
	ws.lg.Info("watch traffic stopped", zap.Int("watches", len(watches)), zap.Int64("target-revision", target),
		zap.Int("caught-up-timeouts", timedOut), zap.Duration("catch-up", time.Since(start)))
	return watches, lists
}

func sortWatches(ws []history.Watch) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].ID < ws[j-1].ID; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

package validate

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// Watch is the watch stage: it checks every recorded watch stream against
// etcd's watch guarantees with the named checks below, in order, and names
// the first one that failed. Definitions use these terms:
//
//   - A stream is one history.Watch: one gRPC Watch stream carrying one
//     watch, its messages in the order received.
//   - An event's revision is its KV's ModRevision.
//   - A response group is a response together with the fragments before it
//     (responses with Fragment set carry part of one revision's events).
//   - A progress notification is a response with no event that neither
//     creates nor cancels the watch (history.WatchResponse.IsProgressNotify),
//     after the response that created it: one that etcd sends before it
//     covers nothing on the watch (history.ProgressBeforeCreated); its
//     revision is its header's.
//   - The replayed events are the events of the committed log replayed
//     through the model (Check.Events); one matches a watch if its key is in
//     the watch's range and its type is not filtered out.
//   - S is the watch's requested start revision. G, the guaranteed start, is
//     S when S > 0 and otherwise the revision in the header of the response
//     that created the watch, plus one (etcd registers a watch from "now"
//     at its current revision + 1, read no later than that header).
//   - L is the last revision of the replayed log.
//
// Checks that need no replay run on every record. The others need the
// replayed committed log; without it the stage is inconclusive and says
// which checks did not run.
//
// The log is replayed once, by the patch stage; the stage indexes its
// events by revision and by key, and reads each stream once, running every
// check as it goes, so its time grows with the events delivered and the
// replayed events the watches match, not with streams times the log.
type Watch struct{}

// Name implements Validator.
func (Watch) Name() string { return "watch" }

// The named checks' parts, in the order they run and are reported. A
// name may have two parts: one that needs no replay and one that does.
const (
	ckFilter = iota
	ckOrdered
	ckUnique
	ckAtomicSplit
	ckAtomicWhole
	ckResumableBelow
	ckResumableFirst
	ckBookmarkAfter
	ckBookmarkDelivered
	ckReliable
	ckIsCreate
	ckPrevKV
	ckEqual
	ckCompacted
	ckCompactedCommitted
	ckCaughtUp
	ckPermitted
	numWatchChecks
)

// watchCheck is one part of a named check.
type watchCheck struct {
	name string
	// replay: the part needs the replayed committed log.
	replay bool
	// count is how many items of a stream the check reads (events,
	// progress notifications, ...): zero when the stream gives it nothing
	// to check.
	count func(streamCounts) int
}

// streamCounts are what one stream gives the checks to read.
type streamCounts struct {
	events, puts, eventResponses, progress, compacted int
	resumable, catchUp                                bool
	// permitted counts the creation and the events of a watch made under
	// auth (watch_auth.go).
	permitted int
}

// watchChecks are the checks in the order they run and are reported,
// indexed by the ck constants. Every part of every check reads a stream in
// the same single pass (streamChecker.check).
var watchChecks = [numWatchChecks]watchCheck{
	// filter: every event's key is in the watch's range (the key itself
	// when RangeEnd is empty; every key from Key on when RangeEnd is
	// "\x00"), and no event is of a type the watch filters out (NOPUT: PUT,
	// NODELETE: DELETE).
	ckFilter: {name: "filter", count: countEvents},
	// ordered: an event's revision is never lower than an earlier event's
	// on the stream (within a response or across responses).
	ckOrdered: {name: "ordered", count: countEvents},
	// unique: no (key, revision) is delivered twice on one stream.
	ckUnique: {name: "unique", count: countEvents},
	// atomic: the events of one revision arrive in one response group: a
	// response whose first event has the revision of the previous
	// response's last event must follow a fragment; and with the replay,
	// every matching replayed event of a delivered revision is in that
	// response group.
	ckAtomicSplit: {name: "atomic", count: countEventResponses},
	ckAtomicWhole: {name: "atomic", replay: true, count: countEventResponses},
	// resumable: a watch from revision S > 0 delivers no event below S;
	// and with the replay, its first event is the first matching replayed
	// event at or after S.
	ckResumableBelow: {name: "resumable", count: countResumable},
	ckResumableFirst: {name: "resumable", replay: true, count: countResumable},
	// bookmarkable: after a progress notification at P, no event at or
	// below P arrives on the stream; and with the replay, when a progress
	// notification at P arrives, every matching replayed event with a
	// revision from G to min(P, L) has been delivered before it.
	ckBookmarkAfter:     {name: "bookmarkable", count: countProgress},
	ckBookmarkDelivered: {name: "bookmarkable", replay: true, count: countProgress},
	// reliable: between the first and the last event revision delivered on
	// a stream, every matching replayed event is delivered.
	ckReliable: {name: "reliable", replay: true, count: countEvents},
	// iscreate: a PUT event says it created its key (CreateRevision ==
	// ModRevision) exactly when the replayed event at that key and revision
	// created it (the key did not exist at revision - 1).
	ckIsCreate: {name: "iscreate", replay: true, count: countPuts},
	// prevkv: on a watch without prev_kv no event carries a previous KV;
	// on a watch with it, an event's PrevKV equals the key as the replay
	// has it at revision - 1 (none for a key that did not exist). It may be
	// missing only where etcd could not read revision - 1 any more: when a
	// recorded compaction asked for a revision above revision - 1.
	ckPrevKV: {name: "prevkv", replay: true, count: countEvents},
	// equal: every event equals the replayed event at its key and revision,
	// field by field (type, and every field the model's KeyValue has); an
	// event the replayed log does not hold (at a revision up to L, or past
	// L) was never committed.
	ckEqual: {name: "equal", replay: true, count: countEvents},
	// compacted: a response with a compact revision C cancels the watch
	// (Canceled set, with no cancel reason or etcd's compacted error) and
	// is the stream's last; a recorded compaction asked for revision C;
	// and C is above what the watch still needed: above S (S > 0) and
	// above its last event's revision + 1, since etcd cancels only a
	// watcher whose next revision is below C (revision C itself stays
	// readable). With the replay, C is also at most L.
	ckCompacted:          {name: "compacted", count: countCompacted},
	ckCompactedCommitted: {name: "compacted", replay: true, count: countCompacted},
	// caught-up: when traffic stopped, every open watch delivered an event
	// or a progress notification at or above the last committed revision
	// (read with a linearizable read) within the bound; one recorded as
	// "caught-up timeout" did not.
	ckCaughtUp: {name: "caught-up", count: countCatchUp},
	// permitted: with auth enabled, a watch delivers no event unless its
	// user could read its whole range when the member created it, and is
	// not refused with "permission denied" when the user could; see
	// watch_auth.go for the auth states a creation is judged by, and for
	// how permission changes during a watch are treated.
	ckPermitted: {name: "permitted", replay: true, count: countPermitted},
}

// What the checks count, per stream (watchCheck.count).
func countEvents(s streamCounts) int         { return s.events }
func countPuts(s streamCounts) int           { return s.puts }
func countEventResponses(s streamCounts) int { return s.eventResponses }
func countProgress(s streamCounts) int       { return s.progress }

func countResumable(s streamCounts) int {
	if !s.resumable {
		return 0
	}
	return s.events
}

// countCompacted: the responses that carry a compact revision.
func countCompacted(s streamCounts) int { return s.compacted }
func countPermitted(s streamCounts) int { return s.permitted }

// countCatchUp: a stream that was open when traffic stopped had to catch up.
func countCatchUp(s streamCounts) int {
	if s.catchUp {
		return 1
	}
	return 0
}

// WatchCheckNames are the names of the watch checks, in order.
func WatchCheckNames() []string {
	var out []string
	for _, c := range watchChecks {
		if len(out) == 0 || out[len(out)-1] != c.name {
			out = append(out, c.name)
		}
	}
	return out
}

// WatchFinding is a violation of one watch check on one stream.
type WatchFinding struct {
	// Check is the name of the check that failed.
	Check string
	// Watch is the stream, as recorded.
	Watch history.Watch
	// Response is the index in Watch.Responses of the response where the
	// violation shows.
	Response int
	// Revision is the revision it concerns.
	Revision int64
	// Message says what is wrong, in one sentence.
	Message string
	// Replayed are the replayed committed log's events that the watch
	// matches (by key range and filters), in revision order, for the report;
	// nil without a replayed log, empty when none matches.
	Replayed []model.Event
}

// watchEnv is what the checks read besides the stream: the replayed log,
// once, indexed by revision and by key.
type watchEnv struct {
	replayed bool
	// last is L, the last revision of the replayed log.
	last int64
	// events are the replayed events in revision order (Check.Events, or a
	// sorted copy if they were not in order).
	events []model.Event
	// revStart[r] is the index in events of revision r's first event, and
	// revStart[r+1] ends them; revisions past the index have none.
	revStart []int32
	// byKey are each key's events, as indexes into events, ascending.
	byKey map[string][]int32
	// keys are the keys of byKey, sorted.
	keys []string
	// compactedBelow is the highest revision a recorded compaction asked
	// for: revisions below it may be unreadable.
	compactedBelow int64
	// compactions are the revisions recorded compactions asked for.
	compactions map[int64]bool
	// auth are the replayed log's auth states (Check.Auth), and floor
	// each member's revisions as its answers showed them (watch_auth.go).
	auth  []AuthAt
	floor map[uint64][]shown
}

func newWatchEnv(c *Check) *watchEnv {
	env := &watchEnv{compactions: map[int64]bool{}}
	if c.Replayed != nil {
		env.replayed = true
		env.last = int64(len(c.Replayed) - 1)
		env.index(c.Events)
		env.indexAuth(c)
	}
	for _, cl := range c.Clients {
		for _, op := range cl.Operations {
			if op.Request.Compaction != nil {
				env.compactedBelow = max(env.compactedBelow, op.Request.Compaction.Revision)
				env.compactions[op.Request.Compaction.Revision] = true
			}
		}
	}
	return env
}

// index indexes the replayed events by revision and by key. The patch
// stage gives them in revision order; others are sorted (stably, so that
// one revision's events keep their order).
func (env *watchEnv) index(evs []model.Event) {
	if !slices.IsSortedFunc(evs, func(a, b model.Event) int { return cmp.Compare(a.Revision, b.Revision) }) {
		evs = slices.Clone(evs)
		slices.SortStableFunc(evs, func(a, b model.Event) int { return cmp.Compare(a.Revision, b.Revision) })
	}
	env.events = evs
	top := env.last
	if len(evs) > 0 {
		top = max(top, evs[len(evs)-1].Revision)
	}
	env.revStart = make([]int32, max(top, 0)+2)
	env.byKey = map[string][]int32{}
	r := int64(0)
	for i, e := range evs {
		for ; r <= e.Revision && r < int64(len(env.revStart)); r++ {
			env.revStart[r] = int32(i)
		}
		if _, ok := env.byKey[e.KV.Key]; !ok {
			env.keys = append(env.keys, e.KV.Key)
		}
		env.byKey[e.KV.Key] = append(env.byKey[e.KV.Key], int32(i))
	}
	for ; r < int64(len(env.revStart)); r++ {
		env.revStart[r] = int32(len(evs))
	}
	sort.Strings(env.keys)
}

// atRev are the indexes [lo, hi) in env.events of revision rev's events.
func (env *watchEnv) atRev(rev int64) (lo, hi int) {
	if rev < 0 || rev+1 >= int64(len(env.revStart)) {
		return 0, 0
	}
	return int(env.revStart[rev]), int(env.revStart[rev+1])
}

// find is the index of the replayed event at key and revision, or -1.
func (env *watchEnv) find(key string, rev int64) int {
	lo, hi := env.atRev(rev)
	for i := lo; i < hi; i++ {
		if env.events[i].KV.Key == key {
			return i
		}
	}
	return -1
}

// fewKeys is how many keys a watch's range may hold for matching to walk
// their events key by key rather than every event in the revisions asked.
const fewKeys = 8

// selection is what a watch selects of the replayed log: the event lists
// of the keys in its range when there are at most fewKeys of them, else
// nil with scan set (every event in the revisions asked is tested).
type selection struct {
	req   history.WatchRequest
	lists [][]int32
	scan  bool
}

func (env *watchEnv) selection(req history.WatchRequest) selection {
	sel := selection{req: req}
	if req.RangeEnd == "" {
		if l := env.byKey[req.Key]; len(l) > 0 {
			sel.lists = append(sel.lists, l)
		}
		return sel
	}
	for k := sort.SearchStrings(env.keys, req.Key); k < len(env.keys) && watchInRange(req, env.keys[k]); k++ {
		if len(sel.lists) == fewKeys {
			return selection{req: req, scan: true}
		}
		sel.lists = append(sel.lists, env.byKey[env.keys[k]])
	}
	return sel
}

// matching calls fn with the index of each replayed event that sel's
// watch matches with a revision from from to to (both included, to capped
// at L), in revision order, until fn returns false.
func (env *watchEnv) matching(sel *selection, from, to int64, fn func(i int) bool) {
	to = min(to, env.last)
	if from > to || len(env.events) == 0 {
		return
	}
	lo, _ := env.atRev(max(from, 0))
	_, hi := env.atRev(to)
	if lo >= hi {
		return
	}
	req := sel.req
	if sel.scan {
		for i := lo; i < hi; i++ {
			e := &env.events[i]
			if watchMatches(req, e.KV.Key, string(e.Type)) && !fn(i) {
				return
			}
		}
		return
	}
	// Merge the keys' lists from lo by index: that is revision order, and
	// within a revision the order Apply gave.
	var pos [fewKeys]int
	for j, l := range sel.lists {
		pos[j] = sort.Search(len(l), func(x int) bool { return int(l[x]) >= lo })
	}
	for {
		best, next := -1, hi
		for j, l := range sel.lists {
			if pos[j] < len(l) && int(l[pos[j]]) < next {
				best, next = j, int(l[pos[j]])
			}
		}
		if best < 0 {
			return
		}
		pos[best]++
		if e := &env.events[next]; !watchFiltered(req, string(e.Type)) && !fn(next) {
			return
		}
	}
}

// firstMatching is the first replayed event sel's watch matches from from
// to to, or -1.
func (env *watchEnv) firstMatching(sel *selection, from, to int64) int {
	found := -1
	env.matching(sel, from, to, func(i int) bool { found = i; return false })
	return found
}

// Validate implements Validator.
func (Watch) Validate(_ context.Context, c *Check) Result {
	if len(c.Watches) == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no watch was recorded (the run had no watch traffic)", CheckedWhat: "watch streams"}
	}
	f, skipped, checks := findWatchViolation(c)
	if f != nil {
		if c.Replayed != nil {
			f.Replayed = []model.Event{} // replayed, even if none matches
		}
		for _, e := range c.Events {
			if watchMatches(f.Watch.Request, e.KV.Key, string(e.Type)) {
				f.Replayed = append(f.Replayed, e)
			}
		}
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%s: %s", f.Check, f.Message), Explanation: explainWatchFinding(f), WatchViolation: f,
			Checked: len(c.Watches), CheckedWhat: "watch streams", Checks: checks}
	}
	events, responses := 0, 0
	for _, w := range c.Watches {
		responses += len(w.Responses)
		for _, r := range w.Responses {
			events += len(r.Events)
		}
	}
	summary := fmt.Sprintf("%d watch streams, %d responses, %d events", len(c.Watches), responses, events)
	r := Result{Checked: len(c.Watches), CheckedWhat: "watch streams", Checks: checks}
	if len(skipped) > 0 {
		r.Verdict, r.Message = Inconclusive, fmt.Sprintf("%s: %s passed, but %s did not run: %s", summary,
			strings.Join(watchChecksRan(skipped), ", "), strings.Join(skipped, ", ")+" (in full)", watchReplayMissing(c))
		return r
	}
	var idle []string
	for _, nc := range checks {
		if nc.Checked == 0 {
			idle = append(idle, nc.Name)
		}
	}
	r.Verdict, r.Message = OK, summary+": "+strings.Join(WatchCheckNames(), ", ")+" hold"
	if len(idle) > 0 {
		r.Message += "; nothing to check for " + strings.Join(idle, ", ")
	}
	return r
}

// watchChecksRan is the check names not in skipped.
func watchChecksRan(skipped []string) []string {
	var out []string
	for _, n := range WatchCheckNames() {
		if !containsName(skipped, n) {
			out = append(out, n)
		}
	}
	return out
}

func containsName(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// replayMissing says why there is no replayed log.
func watchReplayMissing(c *Check) string {
	switch {
	case c.Persisted == nil:
		return "the committed log could not be read"
	case !c.Persisted.Complete:
		return "the committed log is not complete from index 1"
	}
	return "the committed log could not be replayed (it holds a request the model does not apply yet)"
}

// findWatchViolation runs every check over every stream and returns the
// first violation: of the first check (in order) that any stream violates,
// on the first such stream by ID. skipped are the replay checks that could
// not run (partly, if another part of the same name ran). checks give each
// named check's verdict and how many items it read over all streams (the
// most any of its parts read).
//
// Each stream is read once, by streamChecker.check, which runs every part
// of every check as it goes; the parts' first findings are then put in the
// order the checks are defined in.
func findWatchViolation(c *Check) (*WatchFinding, []string, []NamedCheck) {
	env := newWatchEnv(c)
	order := make([]int, len(c.Watches))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return c.Watches[order[i]].ID < c.Watches[order[j]].ID })
	var first [numWatchChecks]*WatchFinding // each part's first finding, on the first stream by ID
	var counts [numWatchChecks]int
	sc := newStreamChecker(env)
	for _, wi := range order {
		w := &c.Watches[wi]
		found, n := sc.check(w)
		for k := range numWatchChecks {
			if watchChecks[k].replay && !env.replayed {
				continue
			}
			counts[k] += watchChecks[k].count(n)
			if found[k] != nil && first[k] == nil {
				found[k].Check, found[k].Watch = watchChecks[k].name, *w
				first[k] = found[k]
			}
		}
	}
	var skipped []string
	var overall *WatchFinding
	checks := make([]NamedCheck, 0, len(WatchCheckNames()))
	named := map[string]*NamedCheck{}
	for _, name := range WatchCheckNames() {
		checks = append(checks, NamedCheck{Name: name, Verdict: OK})
	}
	for i := range checks {
		named[checks[i].Name] = &checks[i]
	}
	for k, wc := range watchChecks {
		nc := named[wc.name]
		if wc.replay && !env.replayed {
			if !containsName(skipped, wc.name) {
				skipped = append(skipped, wc.name)
			}
			if nc.Verdict == OK {
				nc.Verdict, nc.Message = Inconclusive, "needs the replayed committed log"
			}
			continue
		}
		if f := first[k]; f != nil {
			if nc.Verdict != Illegal {
				nc.Verdict, nc.Message = Illegal, f.Message
			}
			if overall == nil {
				overall = f
			}
		}
		nc.Checked = max(nc.Checked, counts[k])
	}
	for i := range checks {
		if checks[i].Verdict == OK && checks[i].Checked == 0 {
			checks[i].Message = "nothing to check"
		}
	}
	return overall, skipped, checks
}

// watchInRange reports whether key is in the watch's range.
func watchInRange(req history.WatchRequest, key string) bool {
	switch req.RangeEnd {
	case "":
		return key == req.Key
	case "\x00":
		return key >= req.Key
	}
	return key >= req.Key && key < req.RangeEnd
}

// watchFiltered reports whether the watch filters out events of type typ.
func watchFiltered(req history.WatchRequest, typ string) bool {
	for _, f := range req.Filters {
		if (f == "NOPUT" && typ == "PUT") || (f == "NODELETE" && typ == "DELETE") {
			return true
		}
	}
	return false
}

func watchMatches(req history.WatchRequest, key, typ string) bool {
	return watchInRange(req, key) && !watchFiltered(req, typ)
}

func evRev(e history.WatchEvent) int64 { return e.KV.ModRevision }

type watchKey struct {
	key string
	rev int64
}

func watchFindingAt(resp int, revision int64, format string, args ...any) *WatchFinding {
	return &WatchFinding{Response: resp, Revision: revision, Message: fmt.Sprintf(format, args...)}
}

// streamChecker checks one stream at a time, reusing its sets from one
// stream to the next.
type streamChecker struct {
	env *watchEnv
	// delivered marks the replayed events the stream has delivered, by
	// index into env.events; marked lists them, to clear it.
	delivered []uint64
	marked    []int
	// other holds the delivered (key, revision)s the replayed log does not
	// have, with the response that first delivered each.
	other map[watchKey]int
	// inGroup marks the replayed events of the current response group, and
	// groupMarked lists them; groupRevs are the group's revisions.
	inGroup     []uint64
	groupMarked []int
	groupRevs   []int64
}

func newStreamChecker(env *watchEnv) *streamChecker {
	words := (len(env.events) + 63) / 64
	return &streamChecker{env: env, delivered: make([]uint64, words), inGroup: make([]uint64, words)}
}

func bit(set []uint64, i int) bool { return set[i/64]&(1<<(i%64)) != 0 }
func setBit(set []uint64, i int)   { set[i/64] |= 1 << (i % 64) }
func clearBits(set []uint64, is []int) {
	for _, i := range is {
		set[i/64] &^= 1 << (i % 64)
	}
}

// check reads w once, response by response and event by event, and
// returns each check part's first finding on it and what it counted. The
// parts that need the replay run only with it. Each part keeps its own
// first finding and stops looking once it has one; so every part finds
// what it would find reading the stream alone.
func (sc *streamChecker) check(w *history.Watch) (found [numWatchChecks]*WatchFinding, n streamCounts) {
	env := sc.env
	replay := env.replayed
	req := w.Request
	s := req.StartRevision
	clearBits(sc.delivered, sc.marked)
	sc.marked = sc.marked[:0]
	clear(sc.other)
	set := func(k int, f *WatchFinding) {
		if found[k] == nil {
			found[k] = f
		}
	}
	n.resumable = s > 0
	var sel selection
	if replay {
		sel = env.selection(req)
	}
	n.catchUp = w.Target > 0

	var (
		prev              *history.WatchEvent // the previous event (ordered)
		prevResp          = -1
		firstRev, lastRev int64
		lastEventResp     = -1 // the last response with events (atomic)
		groupStart        = -1
		bookmark          int64 // the highest progress notification so far (bookmarkable)
		bookmarkAt        = -1
		guaranteed        int64 // G, 0 while unknown
		vouched           int64 // matching events up to here were verified (bookmarkable)
		reached           int64 // caught-up
		anyEvent          bool
		announced         bool // the created response has arrived
	)
	if s > 0 {
		guaranteed = s
	}
	for i := range w.Responses {
		r := &w.Responses[i]
		if groupStart < 0 {
			groupStart = i
		}
		if guaranteed == 0 && r.Created {
			guaranteed = r.Header.Revision + 1
		}
		// A progress notification before the created response vouches for
		// nothing on this watch (history.ProgressBeforeCreated).
		progress := announced && r.IsProgressNotify()
		if r.Created {
			announced = true
		}
		if progress {
			n.progress++
			reached = max(reached, r.Header.Revision)
			if r.Header.Revision > bookmark {
				bookmark, bookmarkAt = r.Header.Revision, i
			}
		}
		if len(r.Events) > 0 {
			n.eventResponses++
			if lastEventResp >= 0 && found[ckAtomicSplit] == nil {
				p := &w.Responses[lastEventResp]
				last := p.Events[len(p.Events)-1]
				if evRev(r.Events[0]) == evRev(last) && !p.Fragment {
					set(ckAtomicSplit, watchFindingAt(i, evRev(last), "watch %d split revision %d's events over responses %d and %d, and response %d is not a fragment",
						w.ID, evRev(last), lastEventResp, i, lastEventResp))
				}
			}
			lastEventResp = i
		}
		for j := range r.Events {
			e := &r.Events[j]
			rev := evRev(*e)
			n.events++
			if e.Type == "PUT" {
				n.puts++
			}
			reached = max(reached, rev)
			if !anyEvent {
				anyEvent, firstRev = true, rev
				if replay && s > 0 && found[ckResumableFirst] == nil {
					if k := env.firstMatching(&sel, s, rev); k >= 0 && env.events[k].Revision < rev {
						set(ckResumableFirst, watchFindingAt(i, env.events[k].Revision, "watch %d from revision %d began with %s, but the first event it matches at or after %d is %s",
							w.ID, s, watchShowEvent(*e), s, env.events[k]))
					}
				}
			}
			lastRev = rev
			if found[ckFilter] == nil {
				if !watchInRange(req, e.KV.Key) {
					set(ckFilter, watchFindingAt(i, rev, "watch %d delivered %s, a key outside its range %s", w.ID, watchShowEvent(*e), watchShowRange(req)))
				} else if watchFiltered(req, e.Type) {
					set(ckFilter, watchFindingAt(i, rev, "watch %d delivered %s although it filters out %s events (%s)", w.ID, watchShowEvent(*e), e.Type, strings.Join(req.Filters, ", ")))
				}
			}
			if prev != nil && rev < evRev(*prev) && found[ckOrdered] == nil {
				set(ckOrdered, watchFindingAt(i, rev, "watch %d delivered %s (response %d) after %s (response %d): its revision went back",
					w.ID, watchShowEvent(*e), i, watchShowEvent(*prev), prevResp))
			}
			prev, prevResp = e, i
			if s > 0 && rev < s && found[ckResumableBelow] == nil {
				set(ckResumableBelow, watchFindingAt(i, rev, "watch %d asked to start at revision %d but delivered %s", w.ID, s, watchShowEvent(*e)))
			}
			if bookmarkAt >= 0 && rev <= bookmark && found[ckBookmarkAfter] == nil {
				set(ckBookmarkAfter, watchFindingAt(i, rev, "watch %d delivered %s in response %d after a progress notification at revision %d (response %d)",
					w.ID, watchShowEvent(*e), i, bookmark, bookmarkAt))
			}
			// unique, and the sets the replay checks read.
			k := -1
			if replay {
				k = env.find(e.KV.Key, rev)
			}
			if k >= 0 {
				if bit(sc.delivered, k) {
					if found[ckUnique] == nil {
						set(ckUnique, watchFindingAt(i, rev, "watch %d delivered %s twice, in responses %d and %d", w.ID, watchShowEvent(*e), firstDelivery(w, e.KV.Key, rev), i))
					}
				} else {
					setBit(sc.delivered, k)
					sc.marked = append(sc.marked, k)
				}
				if !bit(sc.inGroup, k) {
					setBit(sc.inGroup, k)
					sc.groupMarked = append(sc.groupMarked, k)
				}
			} else {
				if sc.other == nil {
					sc.other = map[watchKey]int{}
				}
				wk := watchKey{e.KV.Key, rev}
				if first, ok := sc.other[wk]; ok {
					if found[ckUnique] == nil {
						set(ckUnique, watchFindingAt(i, rev, "watch %d delivered %s twice, in responses %d and %d", w.ID, watchShowEvent(*e), first, i))
					}
				} else {
					sc.other[wk] = i
				}
			}
			if replay {
				sc.groupRevs = append(sc.groupRevs, rev)
				sc.checkEvent(&found, w, i, e, k)
			}
		}
		if replay && progress && found[ckBookmarkDelivered] == nil {
			p := r.Header.Revision
			if guaranteed != 0 && p > vouched {
				env.matching(&sel, max(guaranteed, vouched+1), p, func(k int) bool {
					if bit(sc.delivered, k) {
						return true
					}
					set(ckBookmarkDelivered, watchFindingAt(i, env.events[k].Revision, "watch %d got a progress notification at revision %d (response %d) before %s, which it matches and had not delivered",
						w.ID, p, i, env.events[k]))
					return false
				})
				vouched = p
			}
		}
		if !r.Fragment {
			sc.endGroup(&found, w, i)
			groupStart = -1
		}
	}
	if groupStart >= 0 {
		sc.endGroup(&found, w, len(w.Responses)-1)
	}
	if replay && anyEvent {
		env.matching(&sel, firstRev, lastRev, func(k int) bool {
			if bit(sc.delivered, k) {
				return true
			}
			e := env.events[k]
			found[ckReliable] = watchFindingAt(firstAfter(w, e.Revision), e.Revision, "watch %d delivered revisions %d to %d but not %s, which it matches", w.ID, firstRev, lastRev, e)
			return false
		})
	}
	if w.EndReason == "caught-up timeout" {
		found[ckCaughtUp] = watchFindingAt(len(w.Responses)-1, w.Target, "watch %d had reached revision %d when traffic stopped and did not catch up to the last committed revision %d within the bound (it gave up at %s)",
			w.ID, reached, w.Target, w.End)
	}
	// compacted reads only the responses that carry a compact revision.
	for i := range w.Responses {
		if w.Responses[i].CompactRevision > 0 {
			n.compacted++
		}
	}
	if n.compacted > 0 {
		set(ckCompacted, checkCompacted(env, w))
		if replay {
			set(ckCompactedCommitted, checkCompactedCommitted(env, w))
		}
	}
	if replay {
		var f *WatchFinding
		f, n.permitted = env.checkPermitted(w)
		set(ckPermitted, f)
	}
	return found, n
}

// endGroup checks the response group that response end closes (atomic):
// every replayed event the watch matches at a revision the group
// delivered is in the group. The group's revisions are checked in
// ascending order.
func (sc *streamChecker) endGroup(found *[numWatchChecks]*WatchFinding, w *history.Watch, end int) {
	defer func() {
		clearBits(sc.inGroup, sc.groupMarked)
		sc.groupMarked, sc.groupRevs = sc.groupMarked[:0], sc.groupRevs[:0]
	}()
	if found[ckAtomicWhole] != nil || len(sc.groupRevs) == 0 {
		return
	}
	revs := sc.groupRevs
	if !slices.IsSorted(revs) {
		slices.Sort(revs)
	}
	revs = slices.Compact(revs)
	env := sc.env
	for _, r := range revs {
		lo, hi := env.atRev(r)
		for k := lo; k < hi; k++ {
			e := &env.events[k]
			if !bit(sc.inGroup, k) && watchMatches(w.Request, e.KV.Key, string(e.Type)) {
				found[ckAtomicWhole] = watchFindingAt(end, r, "watch %d delivered revision %d in response %d without %s, which the same revision wrote and the watch matches",
					w.ID, r, end, *e)
				return
			}
		}
	}
}

// checkEvent runs the checks of one delivered event against the replayed
// event k at its key and revision (-1: none): iscreate, prevkv and equal.
func (sc *streamChecker) checkEvent(found *[numWatchChecks]*WatchFinding, w *history.Watch, i int, e *history.WatchEvent, k int) {
	env := sc.env
	rev := evRev(*e)
	var r *model.Event
	if k >= 0 {
		r = &env.events[k]
	}
	set := func(c int, f *WatchFinding) {
		if found[c] == nil {
			found[c] = f
		}
	}
	if found[ckIsCreate] == nil && r != nil && e.Type == "PUT" && r.Type == model.EventPut {
		isCreate := e.KV.CreateRevision == e.KV.ModRevision
		if want := r.PrevKV == nil; isCreate != want {
			says, has := "created", fmt.Sprintf("has the key at revision %d", rev-1)
			if !isCreate {
				says, has = "did not create", "has no such key before it"
			}
			set(ckIsCreate, watchFindingAt(i, rev, "watch %d delivered %s with create revision %d, so it says it %s the key, but the replayed log %s",
				w.ID, watchShowEvent(*e), e.KV.CreateRevision, says, has))
		}
	}
	if found[ckPrevKV] == nil {
		switch {
		case !w.Request.PrevKV:
			if e.PrevKV != nil {
				set(ckPrevKV, watchFindingAt(i, rev, "watch %d did not ask for previous values but %s carries one", w.ID, watchShowEvent(*e)))
			}
		case r == nil: // equal reports it
		case e.PrevKV == nil && r.PrevKV == nil:
		case e.PrevKV == nil:
			if env.compactedBelow > rev-1 {
				break // revision - 1 may have been compacted when etcd read it
			}
			set(ckPrevKV, watchFindingAt(i, rev, "watch %d asked for previous values but %s has none, while the key was %s (no compaction reached revision %d)",
				w.ID, watchShowEvent(*e), watchShowModelKV(*r.PrevKV), rev-1))
		case r.PrevKV == nil:
			set(ckPrevKV, watchFindingAt(i, rev, "%s on watch %d carries the previous value %s, but the key did not exist at revision %d",
				watchShowEvent(*e), w.ID, watchShowKV(*e.PrevKV), rev-1))
		default:
			if !watchEqualKV(*e.PrevKV, *r.PrevKV) {
				set(ckPrevKV, watchFindingAt(i, rev, "%s on watch %d carries the previous value %s, but the key was %s at revision %d (%s)",
					watchShowEvent(*e), w.ID, watchShowKV(*e.PrevKV), watchShowModelKV(*r.PrevKV), rev-1, watchDiffKV(*e.PrevKV, *r.PrevKV)))
			}
		}
	}
	if found[ckEqual] == nil {
		switch {
		case r == nil && rev > env.last:
			set(ckEqual, watchFindingAt(i, rev, "watch %d delivered %s, past the committed log, which ends at revision %d", w.ID, watchShowEvent(*e), env.last))
		case r == nil:
			set(ckEqual, watchFindingAt(i, rev, "watch %d delivered %s, but no write of the committed log changed %s at revision %d",
				w.ID, watchShowEvent(*e), e.KV.Key, rev))
		case e.Type != string(r.Type):
			set(ckEqual, watchFindingAt(i, rev, "watch %d delivered %s, but the committed log holds %s", w.ID, watchShowEvent(*e), *r))
		case !watchEqualKV(e.KV, r.KV):
			set(ckEqual, watchFindingAt(i, rev, "watch %d delivered %s as %s, but the replayed log has %s (%s)",
				w.ID, watchShowEvent(*e), watchShowKV(e.KV), watchShowModelKV(r.KV), watchDiffKV(e.KV, r.KV)))
		}
	}
}

// compactedCancelReason reports whether reason may go with a cancellation
// for a compaction: etcd's watch stream leaves it empty, and a cancel for a
// start revision it cannot serve names its compacted error.
func compactedCancelReason(reason string) bool {
	return reason == "" || strings.Contains(reason, "compacted")
}

func checkCompacted(env *watchEnv, w *history.Watch) *WatchFinding {
	var lastEv int64
	for i, r := range w.Responses {
		if r.CompactRevision <= 0 {
			for _, e := range r.Events {
				lastEv = max(lastEv, evRev(e))
			}
			continue
		}
		c := r.CompactRevision
		switch {
		case !r.Canceled:
			return watchFindingAt(i, c, "watch %d got compact revision %d in response %d, which does not cancel the watch", w.ID, c, i)
		case !compactedCancelReason(r.CancelReason):
			return watchFindingAt(i, c, "watch %d was canceled with compact revision %d but the reason %q, not a compaction", w.ID, c, r.CancelReason)
		case i != len(w.Responses)-1:
			return watchFindingAt(i+1, c, "watch %d was canceled for compact revision %d in response %d, and response %d came after it", w.ID, c, i, i+1)
		case len(r.Events) > 0:
			return watchFindingAt(i, c, "watch %d was canceled for compact revision %d in a response that also carries %d events", w.ID, c, len(r.Events))
		case !env.compactions[c]:
			return watchFindingAt(i, c, "watch %d was canceled for compact revision %d, but no recorded compaction asked for revision %d", w.ID, c, c)
		case w.Request.StartRevision > 0 && c <= w.Request.StartRevision:
			return watchFindingAt(i, c, "watch %d from revision %d was canceled for compact revision %d, which leaves revision %d readable", w.ID, w.Request.StartRevision, c, w.Request.StartRevision)
		case lastEv > 0 && c <= lastEv+1:
			return watchFindingAt(i, c, "watch %d was canceled for compact revision %d after delivering revision %d, although revision %d, the next it needed, is still readable",
				w.ID, c, lastEv, lastEv+1)
		}
	}
	return nil
}

func checkCompactedCommitted(env *watchEnv, w *history.Watch) *WatchFinding {
	for i, r := range w.Responses {
		if r.CompactRevision > env.last {
			return watchFindingAt(i, r.CompactRevision, "watch %d was canceled for compact revision %d, past the committed log, which ends at revision %d", w.ID, r.CompactRevision, env.last)
		}
	}
	return nil
}

// firstDelivery is the first response of w that delivered key at rev.
func firstDelivery(w *history.Watch, key string, rev int64) int {
	for i, r := range w.Responses {
		for _, e := range r.Events {
			if e.KV.Key == key && evRev(e) == rev {
				return i
			}
		}
	}
	return -1
}

// firstAfter is the first response of w with an event past rev, or the
// last response with an event (reliable names where a missing event
// should have been).
func firstAfter(w *history.Watch, rev int64) int {
	last := -1
	for i, r := range w.Responses {
		for _, e := range r.Events {
			if evRev(e) > rev {
				return i
			}
			last = i
		}
	}
	return last
}

// watchEqualKV reports whether got has every field of the model's
// KeyValue equal to want's (watchDiffKV is empty). It compares the six
// fields the model's KeyValue has today directly, which is what makes the
// equal check cheap per event; should the model's KeyValue gain a field,
// kvFieldsKnown is false and every comparison goes by reflection instead.
func watchEqualKV(got history.KeyValue, want model.KeyValue) bool {
	if !kvFieldsKnown {
		return watchDiffKV(got, want) == ""
	}
	return got.Key == want.Key && got.Value == want.Value && got.CreateRevision == want.CreateRevision &&
		got.ModRevision == want.ModRevision && got.Version == want.Version && got.Lease == want.Lease
}

// kvFieldsKnown: the model's KeyValue has exactly the fields that
// watchEqualKV compares directly.
var kvFieldsKnown = func() bool {
	t := reflect.TypeOf(model.KeyValue{})
	known := []string{"Key", "Value", "CreateRevision", "ModRevision", "Version", "Lease"}
	if t.NumField() != len(known) {
		return false
	}
	for _, name := range known {
		if _, ok := t.FieldByName(name); !ok {
			return false
		}
	}
	return true
}()

// watchDiffKV names the fields of the model's KeyValue whose value differs in
// got, by name: every field the model has is compared, so a field the
// model learns is compared without a change here.
func watchDiffKV(got history.KeyValue, want model.KeyValue) string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	var diffs []string
	for i := 0; i < wv.NumField(); i++ {
		name := wv.Type().Field(i).Name
		g := gv.FieldByName(name)
		if !g.IsValid() {
			continue // the record has no such field (TestKeyValueFieldsMatch keeps this from happening)
		}
		if !reflect.DeepEqual(g.Interface(), wv.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s %v, not %v", name, g.Interface(), wv.Field(i).Interface()))
		}
	}
	return strings.Join(diffs, "; ")
}

func watchShowEvent(e history.WatchEvent) string {
	if e.Type == "DELETE" {
		return fmt.Sprintf("delete %s @%d", e.KV.Key, evRev(e))
	}
	return fmt.Sprintf("put %s=%s @%d", e.KV.Key, e.KV.Value, evRev(e))
}

func watchShowKV(kv history.KeyValue) string {
	return fmt.Sprintf("%s=%s (create %d, mod %d, version %d, lease %d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func watchShowModelKV(kv model.KeyValue) string {
	return fmt.Sprintf("%s=%s (create %d, mod %d, version %d, lease %d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func watchShowRange(req history.WatchRequest) string {
	switch req.RangeEnd {
	case "":
		return fmt.Sprintf("[%q]", req.Key)
	case "\x00":
		return fmt.Sprintf("[%q, end)", req.Key)
	}
	return fmt.Sprintf("[%q, %q)", req.Key, req.RangeEnd)
}

// explainWatchFinding explains a finding for a person: the check, the watch, and
// where on the stream it showed.
func explainWatchFinding(f *WatchFinding) string {
	w := f.Watch
	var b strings.Builder
	fmt.Fprintf(&b, "The %s check failed: %s. ", f.Check, f.Message)
	fmt.Fprintf(&b, "Watch %d was opened by watcher %d on %s at %s for keys %s", w.ID, w.ClientID, strings.Join(w.Endpoints, ", "), w.Call, watchShowRange(w.Request))
	if w.Request.StartRevision > 0 {
		fmt.Fprintf(&b, " from revision %d", w.Request.StartRevision)
	} else {
		b.WriteString(" from the member's current revision")
	}
	var opts []string
	if w.Request.PrevKV {
		opts = append(opts, "prev_kv")
	}
	if w.Request.ProgressNotify {
		opts = append(opts, "progress_notify")
	}
	if w.Request.RequireLeader {
		opts = append(opts, "require leader")
	}
	if len(w.Request.Filters) > 0 {
		opts = append(opts, "filters "+strings.Join(w.Request.Filters, ","))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(opts, ", "))
	}
	if w.ResumedFrom >= 0 {
		fmt.Fprintf(&b, ", resuming watch %d", w.ResumedFrom)
	}
	b.WriteString(".")
	if f.Response >= 0 && f.Response < len(w.Responses) {
		r := w.Responses[f.Response]
		fmt.Fprintf(&b, " Response %d of %d arrived at %s from member %x with header revision %d.", f.Response, len(w.Responses), r.Time, r.Header.MemberID, r.Header.Revision)
	}
	fmt.Fprintf(&b, " The stream ended at %s (%s).", w.End, w.EndReason)
	return b.String()
}

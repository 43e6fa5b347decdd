package validate

import (
	"context"
	"fmt"
	"reflect"
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
//     creates nor cancels the watch (history.WatchResponse.IsProgressNotify);
//     its revision is its header's.
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
type Watch struct{}

// Name implements Validator.
func (Watch) Name() string { return "watch" }

// watchCheck is one named check of a stream.
type watchCheck struct {
	name string
	// replay: the check needs the replayed committed log.
	replay bool
	check  func(*watchEnv, history.Watch) *WatchFinding
	// count is how many items of a stream the check reads (events,
	// progress notifications, ...): zero when the stream gives it nothing
	// to check.
	count func(history.Watch) int
}

// watchChecks are the checks in the order they run and are reported.
var watchChecks = []watchCheck{
	// filter: every event's key is in the watch's range (the key itself
	// when RangeEnd is empty; every key from Key on when RangeEnd is
	// "\x00"), and no event is of a type the watch filters out (NOPUT: PUT,
	// NODELETE: DELETE).
	{name: "filter", check: checkFilter, count: countEvents},
	// ordered: an event's revision is never lower than an earlier event's
	// on the stream (within a response or across responses).
	{name: "ordered", check: checkOrdered, count: countEvents},
	// unique: no (key, revision) is delivered twice on one stream.
	{name: "unique", check: checkUnique, count: countEvents},
	// atomic: the events of one revision arrive in one response group: a
	// response whose first event has the revision of the previous
	// response's last event must follow a fragment; and with the replay,
	// every matching replayed event of a delivered revision is in that
	// response group.
	{name: "atomic", check: checkAtomicSplit, count: countEventResponses},
	{name: "atomic", replay: true, check: checkAtomicWhole, count: countEventResponses},
	// resumable: a watch from revision S > 0 delivers no event below S;
	// and with the replay, its first event is the first matching replayed
	// event at or after S.
	{name: "resumable", check: checkResumableBelow, count: countResumable},
	{name: "resumable", replay: true, check: checkResumableFirst, count: countResumable},
	// bookmarkable: after a progress notification at P, no event at or
	// below P arrives on the stream; and with the replay, when a progress
	// notification at P arrives, every matching replayed event with a
	// revision from G to min(P, L) has been delivered before it.
	{name: "bookmarkable", check: checkBookmarkAfter, count: countProgress},
	{name: "bookmarkable", replay: true, check: checkBookmarkDelivered, count: countProgress},
	// reliable: between the first and the last event revision delivered on
	// a stream, every matching replayed event is delivered.
	{name: "reliable", replay: true, check: checkReliable, count: countEvents},
	// iscreate: a PUT event says it created its key (CreateRevision ==
	// ModRevision) exactly when the replayed event at that key and revision
	// created it (the key did not exist at revision - 1).
	{name: "iscreate", replay: true, check: checkIsCreate, count: countPuts},
	// prevkv: on a watch without prev_kv no event carries a previous KV;
	// on a watch with it, an event's PrevKV equals the key as the replay
	// has it at revision - 1 (none for a key that did not exist). It may be
	// missing only where etcd could not read revision - 1 any more: when a
	// recorded compaction asked for a revision above revision - 1.
	{name: "prevkv", replay: true, check: checkPrevKV, count: countEvents},
	// equal: every event equals the replayed event at its key and revision,
	// field by field (type, and every field the model's KeyValue has); an
	// event the replayed log does not hold (at a revision up to L, or past
	// L) was never committed.
	{name: "equal", replay: true, check: checkEqual, count: countEvents},
	// compacted: a response with a compact revision C cancels the watch
	// (Canceled set, with no cancel reason or etcd's compacted error) and
	// is the stream's last; a recorded compaction asked for revision C;
	// and C is above what the watch still needed: above S (S > 0) and
	// above its last event's revision + 1, since etcd cancels only a
	// watcher whose next revision is below C (revision C itself stays
	// readable). With the replay, C is also at most L.
	{name: "compacted", check: checkCompacted, count: countCompacted},
	{name: "compacted", replay: true, check: checkCompactedCommitted, count: countCompacted},
	// caught-up: when traffic stopped, every open watch delivered an event
	// or a progress notification at or above the last committed revision
	// (read with a linearizable read) within the bound; one recorded as
	// "caught-up timeout" did not.
	{name: "caught-up", check: checkCaughtUp, count: countCatchUp},
}

// What the checks count, per stream (watchCheck.count).
func countEvents(w history.Watch) int {
	n := 0
	for _, r := range w.Responses {
		n += len(r.Events)
	}
	return n
}

func countPuts(w history.Watch) int {
	n := 0
	for _, r := range w.Responses {
		for _, e := range r.Events {
			if e.Type == "PUT" {
				n++
			}
		}
	}
	return n
}

func countEventResponses(w history.Watch) int {
	n := 0
	for _, r := range w.Responses {
		if len(r.Events) > 0 {
			n++
		}
	}
	return n
}

func countResumable(w history.Watch) int {
	if w.Request.StartRevision <= 0 {
		return 0
	}
	return countEvents(w)
}

func countProgress(w history.Watch) int {
	n := 0
	for _, r := range w.Responses {
		if r.IsProgressNotify() {
			n++
		}
	}
	return n
}

// countCompacted: the responses that carry a compact revision.
func countCompacted(w history.Watch) int {
	n := 0
	for _, r := range w.Responses {
		if r.CompactRevision > 0 {
			n++
		}
	}
	return n
}

// countCatchUp: a stream that was open when traffic stopped had to catch up.
func countCatchUp(w history.Watch) int {
	if w.Target > 0 {
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

// watchEnv is what the checks read besides the stream.
type watchEnv struct {
	replayed bool
	// last is L, the last revision of the replayed log.
	last int64
	// byRev are the replayed events of each revision.
	byRev map[int64][]model.Event
	// revs are the revisions that have events, ascending.
	revs []int64
	// compactedBelow is the highest revision a recorded compaction asked
	// for: revisions below it may be unreadable.
	compactedBelow int64
	// compactions are the revisions recorded compactions asked for.
	compactions map[int64]bool
}

func newWatchEnv(c *Check) *watchEnv {
	env := &watchEnv{byRev: map[int64][]model.Event{}, compactions: map[int64]bool{}}
	if c.Replayed != nil {
		env.replayed = true
		env.last = int64(len(c.Replayed) - 1)
		for _, e := range c.Events {
			if _, ok := env.byRev[e.Revision]; !ok {
				env.revs = append(env.revs, e.Revision)
			}
			env.byRev[e.Revision] = append(env.byRev[e.Revision], e)
		}
		sort.Slice(env.revs, func(i, j int) bool { return env.revs[i] < env.revs[j] })
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
func findWatchViolation(c *Check) (*WatchFinding, []string, []NamedCheck) {
	env := newWatchEnv(c)
	watches := append([]history.Watch(nil), c.Watches...)
	sort.SliceStable(watches, func(i, j int) bool { return watches[i].ID < watches[j].ID })
	var skipped []string
	var first *WatchFinding
	checks := make([]NamedCheck, 0, len(WatchCheckNames()))
	named := map[string]*NamedCheck{}
	for _, name := range WatchCheckNames() {
		checks = append(checks, NamedCheck{Name: name, Verdict: OK})
	}
	for i := range checks {
		named[checks[i].Name] = &checks[i]
	}
	for _, wc := range watchChecks {
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
		n := 0
		for _, w := range watches {
			n += wc.count(w)
			if f := wc.check(env, w); f != nil {
				if nc.Verdict != Illegal {
					nc.Verdict, nc.Message = Illegal, f.Message
				}
				if first == nil {
					f.Check, f.Watch = wc.name, w
					first = f
				}
			}
		}
		nc.Checked = max(nc.Checked, n)
	}
	for i := range checks {
		if checks[i].Verdict == OK && checks[i].Checked == 0 {
			checks[i].Message = "nothing to check"
		}
	}
	return first, skipped, checks
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

// deliveredEvent is one event as delivered: where and what.
type deliveredEvent struct {
	resp, index int
	ev          history.WatchEvent
}

func evRev(e history.WatchEvent) int64 { return e.KV.ModRevision }

// watchEvents lists the stream's events in the order received.
func watchEvents(w history.Watch) []deliveredEvent {
	var out []deliveredEvent
	for i, r := range w.Responses {
		for j, e := range r.Events {
			out = append(out, deliveredEvent{resp: i, index: j, ev: e})
		}
	}
	return out
}

type watchKey struct {
	key string
	rev int64
}

func watchFindingAt(resp int, revision int64, format string, args ...any) *WatchFinding {
	return &WatchFinding{Response: resp, Revision: revision, Message: fmt.Sprintf(format, args...)}
}

func checkFilter(_ *watchEnv, w history.Watch) *WatchFinding {
	for _, d := range watchEvents(w) {
		if !watchInRange(w.Request, d.ev.KV.Key) {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s, a key outside its range %s", w.ID, watchShowEvent(d.ev), watchShowRange(w.Request))
		}
		if watchFiltered(w.Request, d.ev.Type) {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s although it filters out %s events (%s)", w.ID, watchShowEvent(d.ev), d.ev.Type, strings.Join(w.Request.Filters, ", "))
		}
	}
	return nil
}

func checkOrdered(_ *watchEnv, w history.Watch) *WatchFinding {
	var prev *deliveredEvent
	for _, d := range watchEvents(w) {
		if prev != nil && evRev(d.ev) < evRev(prev.ev) {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s (response %d) after %s (response %d): its revision went back",
				w.ID, watchShowEvent(d.ev), d.resp, watchShowEvent(prev.ev), prev.resp)
		}
		prev = &d
	}
	return nil
}

func checkUnique(_ *watchEnv, w history.Watch) *WatchFinding {
	seen := map[watchKey]int{}
	for _, d := range watchEvents(w) {
		k := watchKey{d.ev.KV.Key, evRev(d.ev)}
		if first, ok := seen[k]; ok {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s twice, in responses %d and %d", w.ID, watchShowEvent(d.ev), first, d.resp)
		}
		seen[k] = d.resp
	}
	return nil
}

func checkAtomicSplit(_ *watchEnv, w history.Watch) *WatchFinding {
	lastResp := -1 // the last response with events
	for i, r := range w.Responses {
		if len(r.Events) == 0 {
			continue
		}
		if lastResp >= 0 {
			p := w.Responses[lastResp]
			last := p.Events[len(p.Events)-1]
			if evRev(r.Events[0]) == evRev(last) && !p.Fragment {
				return watchFindingAt(i, evRev(last), "watch %d split revision %d's events over responses %d and %d, and response %d is not a fragment",
					w.ID, evRev(last), lastResp, i, lastResp)
			}
		}
		lastResp = i
	}
	return nil
}

// watchGroups are the stream's response groups: each a run of fragments and
// the response that ends them, as the indexes of its first and last
// response.
func watchGroups(w history.Watch) [][2]int {
	var out [][2]int
	start := -1
	for i, r := range w.Responses {
		if start < 0 {
			start = i
		}
		if !r.Fragment {
			out = append(out, [2]int{start, i})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, [2]int{start, len(w.Responses) - 1})
	}
	return out
}

func checkAtomicWhole(env *watchEnv, w history.Watch) *WatchFinding {
	for _, g := range watchGroups(w) {
		got := map[watchKey]bool{}
		revs := map[int64]bool{}
		for i := g[0]; i <= g[1]; i++ {
			for _, e := range w.Responses[i].Events {
				got[watchKey{e.KV.Key, evRev(e)}] = true
				revs[evRev(e)] = true
			}
		}
		for r := range revs {
			for _, e := range env.byRev[r] {
				if watchMatches(w.Request, e.KV.Key, string(e.Type)) && !got[watchKey{e.KV.Key, r}] {
					return watchFindingAt(g[1], r, "watch %d delivered revision %d in response %d without %s, which the same revision wrote and the watch matches",
						w.ID, r, g[1], e)
				}
			}
		}
	}
	return nil
}

func checkResumableBelow(_ *watchEnv, w history.Watch) *WatchFinding {
	s := w.Request.StartRevision
	if s <= 0 {
		return nil
	}
	for _, d := range watchEvents(w) {
		if evRev(d.ev) < s {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d asked to start at revision %d but delivered %s", w.ID, s, watchShowEvent(d.ev))
		}
	}
	return nil
}

// matching are the replayed events w matches with a revision from from to
// to (both included, to capped at L), in revision order.
func (env *watchEnv) matching(w history.Watch, from, to int64) []model.Event {
	to = min(to, env.last)
	i := sort.Search(len(env.revs), func(i int) bool { return env.revs[i] >= from })
	var out []model.Event
	for ; i < len(env.revs) && env.revs[i] <= to; i++ {
		for _, e := range env.byRev[env.revs[i]] {
			if watchMatches(w.Request, e.KV.Key, string(e.Type)) {
				out = append(out, e)
			}
		}
	}
	return out
}

func checkResumableFirst(env *watchEnv, w history.Watch) *WatchFinding {
	s := w.Request.StartRevision
	evs := watchEvents(w)
	if s <= 0 || len(evs) == 0 {
		return nil
	}
	first := evs[0]
	want := env.matching(w, s, evRev(first.ev))
	if len(want) > 0 && want[0].Revision < evRev(first.ev) {
		return watchFindingAt(first.resp, want[0].Revision, "watch %d from revision %d began with %s, but the first event it watchMatches at or after %d is %s",
			w.ID, s, watchShowEvent(first.ev), s, want[0])
	}
	return nil
}

func checkBookmarkAfter(_ *watchEnv, w history.Watch) *WatchFinding {
	var bookmark int64
	at := -1
	for i, r := range w.Responses {
		if r.IsProgressNotify() && r.Header.Revision > bookmark {
			bookmark, at = r.Header.Revision, i
		}
		for _, e := range r.Events {
			if at >= 0 && evRev(e) <= bookmark {
				return watchFindingAt(i, evRev(e), "watch %d delivered %s in response %d after a progress notification at revision %d (response %d)",
					w.ID, watchShowEvent(e), i, bookmark, at)
			}
		}
	}
	return nil
}

// watchGuaranteedStart is G (see Watch), 0 while unknown.
func watchGuaranteedStart(w history.Watch, upTo int) int64 {
	if w.Request.StartRevision > 0 {
		return w.Request.StartRevision
	}
	for i := 0; i <= upTo && i < len(w.Responses); i++ {
		if w.Responses[i].Created {
			return w.Responses[i].Header.Revision + 1
		}
	}
	return 0
}

func checkBookmarkDelivered(env *watchEnv, w history.Watch) *WatchFinding {
	got := map[watchKey]bool{}
	var checked int64 // matching events up to here were verified
	for i, r := range w.Responses {
		for _, e := range r.Events {
			got[watchKey{e.KV.Key, evRev(e)}] = true
		}
		if !r.IsProgressNotify() {
			continue
		}
		g := watchGuaranteedStart(w, i)
		p := r.Header.Revision
		if g == 0 || p <= checked {
			continue
		}
		for _, e := range env.matching(w, max(g, checked+1), p) {
			if !got[watchKey{e.KV.Key, e.Revision}] {
				return watchFindingAt(i, e.Revision, "watch %d got a progress notification at revision %d (response %d) before %s, which it watchMatches and had not delivered",
					w.ID, p, i, e)
			}
		}
		checked = p
	}
	return nil
}

func checkReliable(env *watchEnv, w history.Watch) *WatchFinding {
	evs := watchEvents(w)
	if len(evs) == 0 {
		return nil
	}
	got := map[watchKey]int{}
	for _, d := range evs {
		got[watchKey{d.ev.KV.Key, evRev(d.ev)}] = d.resp
	}
	first, last := evRev(evs[0].ev), evRev(evs[len(evs)-1].ev)
	for _, e := range env.matching(w, first, last) {
		if _, ok := got[watchKey{e.KV.Key, e.Revision}]; !ok {
			resp := evs[len(evs)-1].resp
			for _, d := range evs {
				if evRev(d.ev) > e.Revision {
					resp = d.resp
					break
				}
			}
			return watchFindingAt(resp, e.Revision, "watch %d delivered revisions %d to %d but not %s, which it matches", w.ID, first, last, e)
		}
	}
	return nil
}

// replayedEvent is the replayed event at e's key and revision.
func (env *watchEnv) replayedEvent(e history.WatchEvent) (model.Event, bool) {
	for _, r := range env.byRev[evRev(e)] {
		if r.KV.Key == e.KV.Key {
			return r, true
		}
	}
	return model.Event{}, false
}

func checkIsCreate(env *watchEnv, w history.Watch) *WatchFinding {
	for _, d := range watchEvents(w) {
		r, ok := env.replayedEvent(d.ev)
		if !ok || d.ev.Type != "PUT" || r.Type != model.EventPut {
			continue // equal reports it
		}
		isCreate := d.ev.KV.CreateRevision == d.ev.KV.ModRevision
		if want := r.PrevKV == nil; isCreate != want {
			says, has := "created", fmt.Sprintf("has the key at revision %d", evRev(d.ev)-1)
			if !isCreate {
				says, has = "did not create", "has no such key before it"
			}
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s with create revision %d, so it says it %s the key, but the replayed log %s",
				w.ID, watchShowEvent(d.ev), d.ev.KV.CreateRevision, says, has)
		}
	}
	return nil
}

func checkPrevKV(env *watchEnv, w history.Watch) *WatchFinding {
	for _, d := range watchEvents(w) {
		if !w.Request.PrevKV {
			if d.ev.PrevKV != nil {
				return watchFindingAt(d.resp, evRev(d.ev), "watch %d did not ask for previous values but %s carries one", w.ID, watchShowEvent(d.ev))
			}
			continue
		}
		r, ok := env.replayedEvent(d.ev)
		if !ok {
			continue // equal reports it
		}
		switch {
		case d.ev.PrevKV == nil && r.PrevKV == nil:
		case d.ev.PrevKV == nil:
			if env.compactedBelow > evRev(d.ev)-1 {
				continue // revision - 1 may have been compacted when etcd read it
			}
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d asked for previous values but %s has none, while the key was %s (no compaction reached revision %d)",
				w.ID, watchShowEvent(d.ev), watchShowModelKV(*r.PrevKV), evRev(d.ev)-1)
		case r.PrevKV == nil:
			return watchFindingAt(d.resp, evRev(d.ev), "%s on watch %d carries the previous value %s, but the key did not exist at revision %d",
				watchShowEvent(d.ev), w.ID, watchShowKV(*d.ev.PrevKV), evRev(d.ev)-1)
		default:
			if diff := watchDiffKV(*d.ev.PrevKV, *r.PrevKV); diff != "" {
				return watchFindingAt(d.resp, evRev(d.ev), "%s on watch %d carries the previous value %s, but the key was %s at revision %d (%s)",
					watchShowEvent(d.ev), w.ID, watchShowKV(*d.ev.PrevKV), watchShowModelKV(*r.PrevKV), evRev(d.ev)-1, diff)
			}
		}
	}
	return nil
}

func checkEqual(env *watchEnv, w history.Watch) *WatchFinding {
	for _, d := range watchEvents(w) {
		r, ok := env.replayedEvent(d.ev)
		switch {
		case !ok && evRev(d.ev) > env.last:
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s, past the committed log, which ends at revision %d", w.ID, watchShowEvent(d.ev), env.last)
		case !ok:
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s, but no write of the committed log changed %s at revision %d",
				w.ID, watchShowEvent(d.ev), d.ev.KV.Key, evRev(d.ev))
		case d.ev.Type != string(r.Type):
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s, but the committed log holds %s", w.ID, watchShowEvent(d.ev), r)
		}
		if diff := watchDiffKV(d.ev.KV, r.KV); diff != "" {
			return watchFindingAt(d.resp, evRev(d.ev), "watch %d delivered %s as %s, but the replayed log has %s (%s)",
				w.ID, watchShowEvent(d.ev), watchShowKV(d.ev.KV), watchShowModelKV(r.KV), diff)
		}
	}
	return nil
}

// compactedCancelReason reports whether reason may go with a cancellation
// for a compaction: etcd's watch stream leaves it empty, and a cancel for a
// start revision it cannot serve names its compacted error.
func compactedCancelReason(reason string) bool {
	return reason == "" || strings.Contains(reason, "compacted")
}

func checkCompacted(env *watchEnv, w history.Watch) *WatchFinding {
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

func checkCompactedCommitted(env *watchEnv, w history.Watch) *WatchFinding {
	for i, r := range w.Responses {
		if r.CompactRevision > env.last {
			return watchFindingAt(i, r.CompactRevision, "watch %d was canceled for compact revision %d, past the committed log, which ends at revision %d", w.ID, r.CompactRevision, env.last)
		}
	}
	return nil
}

func checkCaughtUp(_ *watchEnv, w history.Watch) *WatchFinding {
	if w.EndReason != "caught-up timeout" {
		return nil
	}
	reached := int64(0)
	for _, r := range w.Responses {
		if r.IsProgressNotify() {
			reached = max(reached, r.Header.Revision)
		}
		for _, e := range r.Events {
			reached = max(reached, evRev(e))
		}
	}
	return watchFindingAt(len(w.Responses)-1, w.Target, "watch %d had reached revision %d when traffic stopped and did not catch up to the last committed revision %d within the bound (it gave up at %s)",
		w.ID, reached, w.Target, w.End)
}

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

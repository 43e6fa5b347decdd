package validate

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// This file checks the parts of etcd's contract that Kubernetes relies on
// beyond linearizable KV requests: paginated lists at a fixed revision,
// watch progress on request, watches from a future revision, watches across
// a compaction, optimistic concurrency on a key's mod revision, and watches
// that require a leader. Each check is a Validator of its own; Kubernetes
// runs them all as one stage.

// Kubernetes runs every Kubernetes–etcd contract check (KubernetesChecks)
// over one Check and reports the worst verdict: Illegal if any check found a
// violation, else TimedOut or Inconclusive if any could not decide, else OK.
// Its message gives each check's verdict and message, so a failure names the
// check that failed.
type Kubernetes struct{}

// KubernetesChecks are the checks Kubernetes runs, in order.
func KubernetesChecks() []Validator {
	return []Validator{
		K8sListPages{},
		K8sProgressAfterRequest{},
		K8sFutureWatch{},
		K8sWatchNoGap{},
		K8sOptimisticUpdate{},
		K8sRequireLeader{},
	}
}

// Name implements Validator.
func (Kubernetes) Name() string { return "kubernetes" }

// Validate implements Validator.
func (Kubernetes) Validate(ctx context.Context, c *Check) Result {
	rank := map[Verdict]int{OK: 0, Inconclusive: 1, TimedOut: 2, Illegal: 3}
	out := Result{Verdict: OK}
	var msgs, why []string
	for _, v := range KubernetesChecks() {
		if err := ctx.Err(); err != nil {
			return Result{Verdict: TimedOut, Message: fmt.Sprintf("stopped before %s: %v; %s", v.Name(), err, strings.Join(msgs, "; "))}
		}
		r := v.Validate(ctx, c)
		if rank[r.Verdict] > rank[out.Verdict] {
			out.Verdict = r.Verdict
		}
		out.Checks = append(out.Checks, NamedCheck{Name: v.Name(), Verdict: r.Verdict, Checked: r.Checked, Message: r.Message})
		out.Checked += r.Checked
		out.Involved = append(out.Involved, r.Involved...)
		msgs = append(msgs, fmt.Sprintf("%s: %s (%s)", v.Name(), r.Verdict, r.Message))
		if r.Explanation != "" {
			why = append(why, v.Name()+": "+r.Explanation)
		}
	}
	out.Message = strings.Join(msgs, "; ")
	if out.Checked == 0 && out.Verdict == OK {
		out.Message = "nothing to check: " + out.Message
	}
	out.Explanation = strings.Join(why, " ")
	out.CheckedWhat = "items over its checks"
	return out
}

// --- 1. paginated lists ---------------------------------------------------

// K8sListPages checks every successful top-level range read that has a
// limit or a revision (a page of a Kubernetes list, or a get at a fixed
// revision), which the linearizability check does not read. Let R be the
// page's revision: the request's Revision when set, else its header's. On
// each page:
//   - the header revision is at least R;
//   - the keys are strictly ascending and inside [Key, RangeEnd);
//   - every key's create revision <= mod revision <= R;
//   - len(KVs) = min(Limit, Count) (Count when there is no limit), and More
//     is true exactly when Count > len(KVs): etcd fetches Limit+1 keys and
//     sets More when it found more than Limit;
//   - when the replayed log reaches R (Check.Replayed[R]), Count is the
//     number of keys of the state at R in [Key, RangeEnd), and the page's
//     keys are the first len(KVs) of them, with the same value (unless
//     KeysOnly) and mod revision, and the same create revision and version
//     where the model states them.
//
// The pages of one list are consecutive ranges of one client with the same
// RangeEnd and Revision R, each starting at the previous page's last key +
// "\x00" after a page with More set. They add up: a page's Count equals the
// previous page's Count minus the previous page's len(KVs), since at one
// revision the keys in [start, end) are the previous page's keys and those
// after its last one. This holds without the replayed log.
//
// Reads with a sort order other than by key ascending, count-only reads and
// reads filtered by min/max revisions are left out (counted in the message).
type K8sListPages struct{}

// Name implements Validator.
func (K8sListPages) Name() string { return "k8s-list-pages" }

// Validate implements Validator.
func (K8sListPages) Validate(_ context.Context, c *Check) Result {
	var findings []string
	pages, skipped, chained, compared, beyond := 0, 0, 0, 0, 0
	for _, cl := range c.Clients {
		var prev *history.Operation // the previous page of a list, with More set
		for i := range cl.Operations {
			op := &cl.Operations[i]
			r := op.Request.Range
			if r == nil || (r.Limit == 0 && r.Revision == 0) {
				continue
			}
			if op.Error != nil || op.Response == nil || op.Response.Range == nil {
				prev = nil // the list was broken off (or retried with a new revision)
				continue
			}
			if !pageCheckable(r) {
				skipped++
				prev = nil
				continue
			}
			pages++
			resp := op.Response.Range
			rev := pageRevision(op)
			where := fmt.Sprintf("client %d #%d (%s at revision %d)", cl.ID, i, describeRange(r), rev)
			findings = append(findings, pageFindings(op, rev, where)...)

			if prev != nil && continues(prev, op) {
				chained++
				want := prev.Response.Range.Count - int64(len(prev.Response.Range.KVs))
				if resp.Count != want {
					findings = append(findings, fmt.Sprintf("%s continues a list whose previous page counted %d keys and returned %d, so %d were left, but it counts %d",
						where, prev.Response.Range.Count, len(prev.Response.Range.KVs), want, resp.Count))
				}
			}
			prev = nil
			if resp.More && len(resp.KVs) > 0 {
				prev = op
			}

			if c.Replayed == nil {
				continue
			}
			if rev < 1 || rev >= int64(len(c.Replayed)) {
				beyond++
				continue
			}
			compared++
			findings = append(findings, pageAgainstState(op, c.Replayed[rev], rev, where)...)
		}
	}
	msg := fmt.Sprintf("%d list pages and reads at a fixed revision (%d continued a list), %d compared with the replayed state", pages, chained, compared)
	if skipped > 0 {
		msg += fmt.Sprintf(", %d left out (sorted, count-only or filtered)", skipped)
	}
	if beyond > 0 {
		msg += fmt.Sprintf(", %d at a revision the replayed log does not reach", beyond)
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: pages, CheckedWhat: "pages",
			Explanation: strings.Join(findings, " ") + " A read at one revision must return exactly the keys of the store at that revision, and the pages of a list must add up."}
	}
	if pages == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no range read had a limit or a revision" + skippedNote(skipped), CheckedWhat: "pages"}
	}
	if c.Replayed == nil {
		return Result{Verdict: Inconclusive, Checked: pages, CheckedWhat: "pages", Message: msg + "; no replayed log, so the pages were only checked against each other, not against the store's state"}
	}
	if compared == 0 {
		return Result{Verdict: Inconclusive, Checked: pages, CheckedWhat: "pages", Message: msg + "; none could be compared with the store's state"}
	}
	return Result{Verdict: OK, Message: msg, Checked: pages, CheckedWhat: "pages"}
}

func skippedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" that this check reads (%d sorted, count-only or filtered ones left out)", n)
}

// pageCheckable reports whether the range's keys come back in key order,
// unfiltered, with their values or keys.
func pageCheckable(r *history.RangeRequest) bool {
	return (r.SortOrder == "" || r.SortOrder == "NONE" || (r.SortOrder == "ASCEND" && (r.SortTarget == "" || r.SortTarget == "KEY"))) &&
		(r.SortTarget == "" || r.SortTarget == "KEY") && !r.CountOnly &&
		r.MinModRevision == 0 && r.MaxModRevision == 0 && r.MinCreateRevision == 0 && r.MaxCreateRevision == 0
}

// pageRevision is the revision whose state a range read returned.
func pageRevision(op *history.Operation) int64 {
	if op.Request.Range.Revision > 0 {
		return op.Request.Range.Revision
	}
	return op.Response.Header.Revision
}

// continues reports whether next is the page after prev in one list.
func continues(prev, next *history.Operation) bool {
	p, n := prev.Request.Range, next.Request.Range
	kvs := prev.Response.Range.KVs
	return n.RangeEnd == p.RangeEnd && n.Revision == pageRevision(prev) && n.Key == kvs[len(kvs)-1].Key+"\x00"
}

func describeRange(r *history.RangeRequest) string {
	s := fmt.Sprintf("range [%q, %q)", r.Key, r.RangeEnd)
	if r.RangeEnd == "" {
		s = fmt.Sprintf("get %q", r.Key)
	}
	if r.Limit > 0 {
		s += fmt.Sprintf(" limit %d", r.Limit)
	}
	return s
}

// inRange reports whether key is in etcd's range [start, end): end "" is
// the single key start, end "\x00" every key from start on.
func inRange(key, start, end string) bool {
	switch end {
	case "":
		return key == start
	case model.FromKey:
		return key >= start
	}
	return key >= start && key < end
}

// pageFindings are what one page shows wrong on its own.
func pageFindings(op *history.Operation, rev int64, where string) []string {
	r, resp := op.Request.Range, op.Response.Range
	var out []string
	if op.Response.Header.Revision < rev {
		out = append(out, fmt.Sprintf("%s answered with header revision %d, below the revision it read", where, op.Response.Header.Revision))
	}
	for j, kv := range resp.KVs {
		if !inRange(kv.Key, r.Key, r.RangeEnd) {
			out = append(out, fmt.Sprintf("%s returned %q, outside its range", where, kv.Key))
		}
		if j > 0 && kv.Key <= resp.KVs[j-1].Key {
			out = append(out, fmt.Sprintf("%s returned %q after %q: keys not strictly ascending", where, kv.Key, resp.KVs[j-1].Key))
		}
		if kv.ModRevision > rev || kv.CreateRevision > kv.ModRevision {
			out = append(out, fmt.Sprintf("%s returned %q with create revision %d and mod revision %d", where, kv.Key, kv.CreateRevision, kv.ModRevision))
		}
	}
	want := resp.Count
	if r.Limit > 0 && r.Limit < want {
		want = r.Limit
	}
	if int64(len(resp.KVs)) != want {
		out = append(out, fmt.Sprintf("%s returned %d keys with count %d", where, len(resp.KVs), resp.Count))
	}
	if resp.More != (resp.Count > int64(len(resp.KVs))) {
		out = append(out, fmt.Sprintf("%s returned %d keys of %d with more=%t", where, len(resp.KVs), resp.Count, resp.More))
	}
	return out
}

// pageAgainstState compares a page with the store's state at its revision.
func pageAgainstState(op *history.Operation, s model.State, rev int64, where string) []string {
	r, resp := op.Request.Range, op.Response.Range
	want := stateRange(s, r.Key, r.RangeEnd)
	var out []string
	if resp.Count != int64(len(want)) {
		out = append(out, fmt.Sprintf("%s counts %d keys, but the store held %d there at revision %d", where, resp.Count, len(want), rev))
	}
	for j, got := range resp.KVs {
		if j >= len(want) {
			out = append(out, fmt.Sprintf("%s returned %q, which the store did not hold at revision %d", where, got.Key, rev))
			break
		}
		w := want[j]
		if got.Key != w.Key || (!r.KeysOnly && got.Value != w.Value) || got.ModRevision != w.ModRevision ||
			(w.CreateRevision != 0 && got.CreateRevision != w.CreateRevision) || (w.Version != 0 && got.Version != w.Version) {
			out = append(out, fmt.Sprintf("%s returned %s as its key %d, but at revision %d the store's key %d was %s",
				where, kvString(got.Key, got.Value, got.ModRevision), j+1, rev, j+1, kvString(w.Key, w.Value, w.ModRevision)))
			break
		}
	}
	return out
}

func kvString(k, v string, mod int64) string { return fmt.Sprintf("%s=%s@%d", k, v, mod) }

// stateRange is the keys of s in etcd's range [key, end), in key order, as
// the model answers a range request (made as root: the keys, whoever may
// read them).
func stateRange(s model.State, key, end string) []model.KeyValue {
	req := model.RangeRequest(key, end)
	req.User = model.RootUser
	_, resp, _ := s.Apply(req)
	if resp.Txn == nil || len(resp.Txn.Results) == 0 {
		return nil
	}
	return resp.Txn.Results[0].KVs
}

// --- 2. progress on request -----------------------------------------------

// K8sProgressAfterRequest checks that a progress notification that answers
// a RequestProgress is at least as recent as the member that sent it was
// known to be when the request was sent.
//
// etcd (v3rpc watch.go, mvcc progressIfSync) answers a progress request
// with at most one notification, at the member's store revision when it
// handles the request, and none when a watcher of the stream is unsynced;
// the request is neither queued nor linearized with the cluster. So for a
// request sent at t, answered by notification N from member m:
// rev(N) >= the header revision of every successful KV response (a read,
// serializable or not, or a write) that member m gave before t, because one
// member's store revision never goes down while the process lives.
//
// The rule is per member on purpose: the brief asked for every
// linearizable read, but a member that is cut off or lagging answers with
// its own older revision, which is legal; a read from another member says
// nothing about it.
//
// N answers the request at t_j (the j-th of the watch's ProgressRequests)
// only when it is the first progress notification received after t_j,
// received before t_{j+1}, and every earlier request t_i was followed by a
// notification before t_{i+1}; at most one notification answers a request,
// so then every earlier one is accounted for. The watch must not have asked
// for periodic notifications (ProgressNotify), which could arrive
// in between. A response counts only if no fault that may restart a member
// (anything but a partition, a degraded link, a pause or a sleep) ran
// between its return and N: a restarted member can answer from an older
// store while it replays its log.
type K8sProgressAfterRequest struct{}

// Name implements Validator.
func (K8sProgressAfterRequest) Name() string { return "k8s-progress-after-request" }

// Validate implements Validator.
func (K8sProgressAfterRequest) Validate(_ context.Context, c *Check) Result {
	byMember := responsesByMember(c.Clients)
	restarts := restartWindows(c.Injections)
	var findings []string
	requests, paired, periodic := 0, 0, 0
	var reqs []time.Duration
	for wi := range c.Watches {
		w := &c.Watches[wi]
		if len(w.ProgressRequests) == 0 {
			continue
		}
		requests += len(w.ProgressRequests)
		if w.Request.ProgressNotify {
			periodic++
			continue
		}
		var notes []int // indices into w.Responses
		for i := range w.Responses {
			if w.Vouches(i) {
				notes = append(notes, i)
			}
		}
		reqs = append(reqs[:0], w.ProgressRequests...)
		slices.Sort(reqs)
		for j, t := range reqs {
			next := time.Duration(1<<63 - 1)
			if j+1 < len(reqs) {
				next = reqs[j+1]
			}
			k := sort.Search(len(notes), func(i int) bool { return w.Responses[notes[i]].Time > t })
			if k == len(notes) || w.Responses[notes[k]].Time >= next {
				break // unanswered: later notifications cannot be paired for sure
			}
			n := &w.Responses[notes[k]]
			paired++
			m := n.Header.MemberID
			if m == 0 {
				continue
			}
			if o := byMember[m].newerBefore(t, n.Header.Revision, restarts.lastEndBy(n.Time)); o != nil {
				findings = append(findings, fmt.Sprintf("watch %d asked for progress at %s and member %x answered at revision %d, but client %d's %s had returned at revision %d from that member at %s",
					w.ID, t.Round(time.Millisecond), m, n.Header.Revision, o.ClientID, describeRecord(o.Request), o.Response.Header.Revision, o.Return.Round(time.Millisecond)))
			}
		}
	}
	msg := fmt.Sprintf("%d progress requests, %d answered by a notification that could be paired with them", requests, paired)
	if periodic > 0 {
		msg += fmt.Sprintf(", %d watches with periodic notifications left out", periodic)
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: paired, CheckedWhat: "answered progress requests",
			Explanation: strings.Join(findings, " ") + " A member's store revision never goes down, so its answer to a progress request cannot be older than what it had already answered."}
	}
	if requests == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no watch requested progress", CheckedWhat: "answered progress requests"}
	}
	if paired == 0 {
		return Result{Verdict: OK, Message: "nothing to check: " + msg, CheckedWhat: "answered progress requests"}
	}
	return Result{Verdict: OK, Message: msg, Checked: paired, CheckedWhat: "answered progress requests"}
}

// memberResponses are one member's successful KV responses, by return
// time, with a sparse table of their revisions' maxima, so that whether
// one in a stretch of them is above a revision takes constant time.
type memberResponses struct {
	ops []*history.Operation
	// top[k][i] is the highest revision among ops[i : i+2^k].
	top [][]int64
}

// responsesByMember lists every successful KV response by the member that
// sent it, by return time.
func responsesByMember(clients []history.Client) map[uint64]*memberResponses {
	out := map[uint64]*memberResponses{}
	for ci := range clients {
		for oi := range clients[ci].Operations {
			o := &clients[ci].Operations[oi]
			if o.Error != nil || o.Response == nil || o.Response.Header.MemberID == 0 || o.Response.Header.Revision == 0 {
				continue
			}
			m := out[o.Response.Header.MemberID]
			if m == nil {
				m = &memberResponses{}
				out[o.Response.Header.MemberID] = m
			}
			m.ops = append(m.ops, o)
		}
	}
	for _, m := range out {
		sort.SliceStable(m.ops, func(i, j int) bool { return m.ops[i].Return < m.ops[j].Return })
		row := make([]int64, len(m.ops))
		for i, o := range m.ops {
			row[i] = o.Response.Header.Revision
		}
		m.top = append(m.top, row)
		for w := 1; 2*w <= len(row); w *= 2 {
			prev := m.top[len(m.top)-1]
			next := make([]int64, len(prev)-w)
			for i := range next {
				next[i] = max(prev[i], prev[i+w])
			}
			m.top = append(m.top, next)
		}
	}
	return out
}

// highest is the highest revision among ops[lo:hi], lo < hi.
func (m *memberResponses) highest(lo, hi int) int64 {
	k := bits.Len(uint(hi-lo)) - 1
	return max(m.top[k][lo], m.top[k][hi-(1<<k)])
}

// newerBefore is the first response, by return time, that returned after
// after and before t at a revision above rev; nil if none.
func (m *memberResponses) newerBefore(t time.Duration, rev int64, after time.Duration) *history.Operation {
	if m == nil {
		return nil
	}
	lo := sort.Search(len(m.ops), func(i int) bool { return m.ops[i].Return > after })
	hi := sort.Search(len(m.ops), func(i int) bool { return m.ops[i].Return >= t })
	if lo >= hi || m.highest(lo, hi) <= rev {
		return nil
	}
	for _, o := range m.ops[lo:hi] {
		if o.Response.Header.Revision > rev {
			return o
		}
	}
	return nil
}

type window struct{ from, to time.Duration }

type windows []window

// lastEndBy is the latest end of a window that began at or before t, so
// that a window meets [from, t] exactly when from <= lastEndBy(t); -1<<63
// when none began by t.
func (ws windows) lastEndBy(t time.Duration) time.Duration {
	end := time.Duration(-1 << 63)
	for _, w := range ws {
		if w.from <= t {
			end = max(end, w.to)
		}
	}
	return end
}

// any reports whether a window meets [from, to].
func (ws windows) any(from, to time.Duration) bool {
	for _, w := range ws {
		if w.from <= to && w.to >= from {
			return true
		}
	}
	return false
}

// restartWindows are the times of faults that may restart a member (or
// swap it for a new one): all but partitions, degraded links, pauses and
// sleeps. A fault that never ended lasts forever.
func restartWindows(injections []history.Injection) windows {
	var out windows
	for _, in := range injections {
		if !mayRestart(in.Name) {
			continue
		}
		end := in.End
		if end == 0 {
			end = 1<<63 - 1
		}
		out = append(out, window{in.Start, end})
	}
	return out
}

func mayRestart(name string) bool {
	switch name {
	case "blackhole-member", "isolate-leader", "partition-majority", "blackhole-until-snapshot", "client-partition",
		"delay-peers", "drop-packets":
		return false
	}
	return !strings.HasPrefix(name, "pause-") && !strings.HasSuffix(name, ":sleep")
}

// --- 3. watches from a future revision ------------------------------------

// K8sFutureWatch checks watches opened at a start revision F > 0: no event
// below F, and no progress notification below F.
//
// The notification rule is etcd's own: since the fix for etcd #20221
// (reported fixed in v3.6.2; progressIfSync in mvcc/watchable_store.go of
// v3.5.35, v3.6.16 and v3.7.3 returns without a notification when the
// store's revision is below a watcher's start revision), a watch never
// reports progress below where it starts. P = F−1 would still be true as
// "every event up to P was delivered" (there are none below F), but etcd's
// code sends nothing while rev < startRev, so the fixed releases never send
// it, and this check follows the code: P >= F. v3.5.4 and v3.5.7 do not
// have the fix (read in their source), so this check
// finds the bug there when a watch starts in the future. A watch whose
// start revision is at or below the current revision meets the rule
// trivially, so every watch with F > 0 is checked; the message counts the
// ones that started in the future (F > the created response's revision).
type K8sFutureWatch struct{}

// Name implements Validator.
func (K8sFutureWatch) Name() string { return "k8s-future-watch" }

// Validate implements Validator.
func (K8sFutureWatch) Validate(_ context.Context, c *Check) Result {
	var findings []string
	checked, future := 0, 0
	for _, w := range c.Watches {
		f := w.Request.StartRevision
		if f <= 0 {
			continue
		}
		checked++
		for i, r := range w.Responses {
			if r.Created && r.Header.Revision < f {
				future++
			}
			for _, e := range r.Events {
				if e.KV.ModRevision < f {
					findings = append(findings, fmt.Sprintf("watch %d from revision %d delivered %s at revision %d", w.ID, f, e.Type, e.KV.ModRevision))
				}
			}
			if w.Vouches(i) && r.Header.Revision < f {
				findings = append(findings, fmt.Sprintf("watch %d from revision %d got a progress notification at revision %d at %s",
					w.ID, f, r.Header.Revision, r.Time.Round(time.Millisecond)))
			}
		}
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: checked, CheckedWhat: "watches with a start revision",
			Explanation: strings.Join(findings, " ") + " A watch from revision F delivers nothing below F, and since etcd #20221 reports no progress below F."}
	}
	if checked == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no watch had a start revision", CheckedWhat: "watches with a start revision"}
	}
	return Result{Verdict: OK, Message: fmt.Sprintf("%d watches with a start revision, %d of them in the future", checked, future), Checked: checked, CheckedWhat: "watches with a start revision"}
}

// --- 4. no gap across compaction ------------------------------------------

// K8sWatchNoGap checks that no watch skips an event, in particular across a
// compaction: a watch either delivers every matching event or is canceled
// with a compact revision, never a gap.
//
// For a watch over [Key, RangeEnd) with filters, let S be its start
// revision: StartRevision when set; otherwise the created response's
// revision + 1, or the first delivered event's revision if lower (etcd
// reads its current revision after registering the watcher, so a write can
// fall in between). Let U be the highest revision the watch vouched for
// before it was canceled or broke: its last event's revision or a progress
// notification's revision (which says every event up to it was delivered),
// capped at the replayed log's last revision. Then the events it delivered
// at revisions S..U are exactly Check.Events in S..U that match its range
// and filters, in order, compared by revision, type, key and (for a put)
// value. A cancellation with a compact revision ends U where it is, so it
// is allowed; a skipped event before U is not. This is the shape of etcd
// #18089 (an event dropped when compacting on a delete) and #19179 (a
// delete missing on a watch opened at the compaction revision).
type K8sWatchNoGap struct{}

// Name implements Validator.
func (K8sWatchNoGap) Name() string { return "k8s-watch-no-gap" }

// Validate implements Validator.
func (K8sWatchNoGap) Validate(_ context.Context, c *Check) Result {
	if len(c.Watches) == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no watches", CheckedWhat: "watches"}
	}
	if c.Events == nil || len(c.Replayed) < 2 {
		return Result{Verdict: Inconclusive, Message: fmt.Sprintf("no replayed log, so the events of %d watches could not be compared with the committed ones", len(c.Watches))}
	}
	last := int64(len(c.Replayed) - 1)
	compactions := compactionTimes(c.Clients)
	var findings []string
	checked, events, acrossCompaction, canceled := 0, 0, 0, 0
	for wi := range c.Watches {
		w := &c.Watches[wi]
		cut, start, upTo, compacted, ok := vouched(w)
		if !ok {
			continue
		}
		upTo = min(upTo, last)
		if upTo < start {
			continue
		}
		checked++
		if compacted {
			canceled++
		}
		end := w.End
		if end == 0 {
			end = 1<<63 - 1
		}
		if compactions.any(w.Call, end) {
			acrossCompaction++
		}
		n, f := compareEvents(w, w.Responses[:cut], matching(c.Events, w.Request, start, upTo), start, upTo)
		events += n
		if f != "" {
			findings = append(findings, f)
		}
	}
	msg := fmt.Sprintf("%d watches delivered %d events with no gap (%d open across a compaction, %d canceled for one)", checked, events, acrossCompaction, canceled)
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: checked, CheckedWhat: "watches",
			Explanation: strings.Join(findings, " ") + " A watch must deliver every matching event up to the revision it reached, or be canceled with a compact revision."}
	}
	if checked == 0 {
		return Result{Verdict: OK, Message: fmt.Sprintf("nothing to check: none of %d watches vouched for any revision", len(c.Watches)), CheckedWhat: "watches"}
	}
	return Result{Verdict: OK, Message: msg, Checked: checked, CheckedWhat: "watches"}
}

// vouched reads a watch up to its cancellation or error: how many of its
// responses come before (cut), its start revision S, the highest revision
// U it vouched for, and whether a compaction canceled it. ok is false when
// S is unknown.
func vouched(w *history.Watch) (cut int, start, upTo int64, compacted, ok bool) {
	start = w.Request.StartRevision
	created := int64(-1)
	first := int64(-1) // the first delivered event's revision
	cut = len(w.Responses)
	for i, r := range w.Responses {
		if r.Error != nil {
			cut = i
			break
		}
		if r.Created && created < 0 {
			created = r.Header.Revision
		}
		if r.Canceled || r.CompactRevision > 0 {
			compacted = r.CompactRevision > 0
			cut = i
			break
		}
		for _, e := range r.Events {
			if first < 0 {
				first = e.KV.ModRevision
			}
			upTo = max(upTo, e.KV.ModRevision)
		}
		if w.Vouches(i) {
			upTo = max(upTo, r.Header.Revision)
		}
	}
	if start <= 0 {
		switch {
		case created >= 0:
			start = created + 1
		case first >= 0:
			start = first
		default:
			return 0, 0, 0, compacted, false
		}
		if first >= 0 {
			start = min(start, first)
		}
	}
	return cut, start, upTo, compacted, true
}

// eventsOf are the matching events of the log a watch must deliver at
// revisions from..to, walked in order without a copy.
type eventsOf struct {
	all             []model.Event
	i               int
	key, end        string
	to              int64
	noPut, noDelete bool
}

// matching are the events of the log a watch must deliver at revisions
// from..to.
func matching(all []model.Event, req history.WatchRequest, from, to int64) eventsOf {
	it := eventsOf{all: all, key: req.Key, end: req.RangeEnd, to: to}
	it.i = sort.Search(len(all), func(i int) bool { return all[i].Revision >= from })
	for _, f := range req.Filters {
		switch f {
		case "NOPUT":
			it.noPut = true
		case "NODELETE":
			it.noDelete = true
		}
	}
	return it
}

// next is the next event the watch must deliver; nil past the last.
func (it *eventsOf) next() *model.Event {
	for ; it.i < len(it.all) && it.all[it.i].Revision <= it.to; it.i++ {
		e := &it.all[it.i]
		if !inRange(e.KV.Key, it.key, it.end) || (it.noPut && e.Type == model.EventPut) || (it.noDelete && e.Type == model.EventDelete) {
			continue
		}
		it.i++
		return e
	}
	return nil
}

// compareEvents describes the first difference between the events a watch
// must deliver (want) and those its responses delivered at revisions
// from..to; "" if none. n counts the delivered events it compared.
func compareEvents(w *history.Watch, responses []history.WatchResponse, want eventsOf, from, to int64) (n int, finding string) {
	for ri := range responses {
		for gi := range responses[ri].Events {
			g := &responses[ri].Events[gi]
			if g.KV.ModRevision < from || g.KV.ModRevision > to {
				continue
			}
			n++
			e := want.next()
			if e == nil {
				return n, fmt.Sprintf("watch %d delivered %s %s at revision %d, which the committed log does not hold", w.ID, g.Type, g.KV.Key, g.KV.ModRevision)
			}
			if g.KV.ModRevision != e.Revision || g.Type != string(e.Type) || g.KV.Key != e.KV.Key || (e.Type == model.EventPut && g.KV.Value != e.KV.Value) {
				if g.KV.ModRevision > e.Revision || (g.KV.ModRevision == e.Revision && g.KV.Key > e.KV.Key) {
					return n, fmt.Sprintf("watch %d skipped %s: it delivered %s %s=%s at revision %d next (gap)", w.ID, *e, g.Type, g.KV.Key, g.KV.Value, g.KV.ModRevision)
				}
				return n, fmt.Sprintf("watch %d delivered %s %s=%s at revision %d where the committed log has %s", w.ID, g.Type, g.KV.Key, g.KV.Value, g.KV.ModRevision, *e)
			}
		}
	}
	if e := want.next(); e != nil {
		return n, fmt.Sprintf("watch %d vouched for revisions %d to %d but never delivered %s", w.ID, from, to, *e)
	}
	return n, ""
}

// compactionTimes are the intervals of the clients' compaction requests.
func compactionTimes(clients []history.Client) windows {
	var out windows
	for _, cl := range clients {
		for _, o := range cl.Operations {
			if o.Request.Compaction != nil && o.Outcome() != history.Failed {
				out = append(out, window{o.Call, o.Return})
			}
		}
	}
	return out
}

// --- 5. optimistic updates -------------------------------------------------

// K8sOptimisticUpdate checks Kubernetes' optimistic concurrency: a
// transaction if(mod(K) == M) then {put or delete K, ...} succeeds at most
// once per (K, M) with M > 0. After one succeeds, K's mod revision is a
// later revision (or K is gone, mod 0), and a key's mod revision never
// returns to an earlier one, so a second success is a violation. Counted
// over acknowledged successes (the response says succeeded).
//
// For creates (M = 0, a then branch that puts K; one that only deletes K
// deletes nothing and may succeed any number of times) a second success is
// legal after a delete; with the
// replayed log, two acknowledged creates of K at revisions r1 < r2 need a
// delete of K in Check.Events between them (and r1 != r2).
//
// With the replayed log, it also checks each acknowledged answer of such a
// transaction whose then branch puts a value the else branch does not
// write: a success must have its put in Check.Events, a failure must not.
// Counting committed successes in the replayed log instead would only
// count what the model decided.
type K8sOptimisticUpdate struct{}

// Name implements Validator.
func (K8sOptimisticUpdate) Name() string { return "k8s-optimistic-update" }

type casKey struct {
	key string
	mod int64
}

// Validate implements Validator.
func (K8sOptimisticUpdate) Validate(_ context.Context, c *Check) Result {
	type success struct {
		op  history.Operation
		rev int64
	}
	wins := map[casKey][]success{}
	var order []casKey
	puts := map[string]bool{}
	for _, e := range c.Events {
		if e.Type == model.EventPut {
			puts[e.KV.Key+"\x00"+e.KV.Value] = true
		}
	}
	written := map[string]int{} // value -> how many client requests write it
	for _, cl := range c.Clients {
		for _, o := range cl.Operations {
			for _, v := range o.Request.PutValues() {
				written[v]++
			}
		}
	}
	var findings []string
	txns, acked := 0, 0
	for _, cl := range c.Clients {
		for _, o := range cl.Operations {
			k, value, ok := optimisticForm(o.Request)
			if !ok {
				continue
			}
			txns++
			if o.Error != nil || o.Response == nil || o.Response.Txn == nil {
				continue
			}
			acked++
			won := o.Response.Txn.Succeeded
			// With M = 0 only a then branch that puts K creates it; one that
			// only deletes K finds nothing to delete and may win again.
			if won && (k.mod > 0 || putsKey(o.Request.Txn.Success, k.key)) {
				if wins[k] == nil {
					order = append(order, k)
				}
				wins[k] = append(wins[k], success{o, o.Response.Header.Revision})
			}
			if c.Events != nil && value != "" && written[value] == 1 && o.Response.Header.Revision < int64(len(c.Replayed)) {
				if inLog := puts[k.key+"\x00"+value]; inLog != won {
					findings = append(findings, fmt.Sprintf("client %d's %s answered succeeded=%t at revision %d, but in the committed log its put %s",
						o.ClientID, describeRecord(o.Request), won, o.Response.Header.Revision, map[bool]string{true: "was applied", false: "was not applied"}[inLog]))
				}
			}
		}
	}
	creates, unchecked := 0, 0
	for _, k := range order {
		ws := wins[k]
		if k.mod > 0 {
			if len(ws) > 1 {
				findings = append(findings, fmt.Sprintf("if(mod(%s)==%d) succeeded %d times: client %d at revision %d and client %d at revision %d",
					k.key, k.mod, len(ws), ws[0].op.ClientID, ws[0].rev, ws[1].op.ClientID, ws[1].rev))
			}
			continue
		}
		creates += len(ws)
		if len(ws) < 2 {
			continue
		}
		if c.Events == nil {
			unchecked += len(ws)
			continue
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].rev < ws[j].rev })
		for i := 1; i < len(ws); i++ {
			a, b := ws[i-1], ws[i]
			if a.rev == b.rev || !deletedBetween(c.Events, k.key, a.rev, b.rev) {
				findings = append(findings, fmt.Sprintf("%s was created twice, at revisions %d (client %d) and %d (client %d), and the committed log has no delete of it in between",
					k.key, a.rev, a.op.ClientID, b.rev, b.op.ClientID))
			}
		}
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: acked, CheckedWhat: "answered optimistic transactions",
			Explanation: strings.Join(findings, " ") + " A key's mod revision never comes back, so an update conditioned on it can succeed only once."}
	}
	if txns == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no transaction conditioned on one key's mod revision wrote that key", CheckedWhat: "answered optimistic transactions"}
	}
	if acked == 0 {
		return Result{Verdict: OK, Message: fmt.Sprintf("nothing to check: none of %d optimistic transactions was answered", txns), CheckedWhat: "answered optimistic transactions"}
	}
	msg := fmt.Sprintf("%d optimistic transactions, %d answered; each (key, mod revision) won at most once; %d acknowledged creates", txns, acked, creates)
	if unchecked > 0 {
		return Result{Verdict: Inconclusive, Message: msg + fmt.Sprintf("; %d repeated creates could not be checked without the replayed log", unchecked), Checked: acked, CheckedWhat: "answered optimistic transactions"}
	}
	return Result{Verdict: OK, Message: msg, Checked: acked, CheckedWhat: "answered optimistic transactions"}
}

// optimisticForm reports whether r is if(mod(K)==M) then {... put or
// delete K ...}, and returns (K, M) and the value its then branch puts to
// K when the else branch writes no such value ("" otherwise).
func optimisticForm(r history.Request) (casKey, string, bool) {
	t := r.Txn
	if t == nil || len(t.Compare) != 1 {
		return casKey{}, "", false
	}
	cmp := t.Compare[0]
	if cmp.Target != "MOD" || cmp.Result != "EQUAL" || cmp.RangeEnd != "" {
		return casKey{}, "", false
	}
	k := casKey{cmp.Key, cmp.ModRevision}
	writes, value := false, ""
	for _, op := range t.Success {
		switch {
		case op.Put != nil && op.Put.Key == k.key:
			writes, value = true, op.Put.Value
		case op.DeleteRange != nil && op.DeleteRange.Key == k.key && op.DeleteRange.RangeEnd == "":
			writes = true
		}
	}
	for _, op := range t.Failure {
		if op.Put != nil && op.Put.Value == value || op.Txn != nil {
			value = ""
		}
	}
	return k, value, writes
}

// putsKey reports whether ops put key.
func putsKey(ops []history.RequestOp, key string) bool {
	for _, op := range ops {
		if op.Put != nil && op.Put.Key == key {
			return true
		}
	}
	return false
}

// deletedBetween reports whether events delete key at a revision in
// (from, to).
func deletedBetween(events []model.Event, key string, from, to int64) bool {
	i := sort.Search(len(events), func(i int) bool { return events[i].Revision > from })
	for ; i < len(events) && events[i].Revision < to; i++ {
		if events[i].Type == model.EventDelete && events[i].KV.Key == key {
			return true
		}
	}
	return false
}

// --- 6. RequireLeader ------------------------------------------------------

// RequireLeaderBound is how long after a member is cut off from its peers a
// watch opened on it with RequireLeader must be canceled, with etcd's
// default 100 ms heartbeat and 1 s election timeout (ET; the cluster sets
// neither). The member loses its leader within 2 ET: a follower starts an
// election (a pre-vote, which clears its leader) after a randomized timeout
// in [ET, 2 ET), and a cut-off leader steps down at its next quorum check,
// every ET. etcd's monitorLeader (v3rpc interceptor.go, the same in 3.5,
// 3.6 and 3.7) looks every ET and cancels the streams that require a
// leader once it has seen no leader maxNoLeaderCnt = 3 times in a row:
// within 4 ET of losing it. One more second covers delivering the
// cancellation: 2 + 4 + 1 = 7 s.
const RequireLeaderBound = 7 * time.Second

// Isolation is a member (by raft ID) known to be cut off from a majority of
// its peers for the whole of From..To.
type Isolation struct {
	MemberID uint64
	From, To time.Duration
}

// K8sRequireLeader checks that a watch opened with RequireLeader on a
// member that lost its leader does not hang. For an Isolation of member m
// lasting at least RequireLeaderBound, every RequireLeader watch served by
// m (the member ID of its responses' headers), opened by From and not
// ended before it, was canceled or its stream broke by From +
// RequireLeaderBound. A watch whose watcher stopped reading before that,
// uncanceled, tells nothing and is not counted.
//
// Isolations are read from the health probes: a run of consecutive probes
// of one member (all its endpoints, by call time) in which the harness saw
// it in a minority (history.FaultMinority, at call and at return), all
// inside one injection's Start..End, isolates it from the first probe's
// call to the last one's return. One injection cuts links once and heals
// them once, so the member was in a minority in between too. A test may
// set Isolations instead.
//
// Without probes that carry member IDs the check cannot tell which watch
// was on a cut-off member: it is inconclusive if a RequireLeader watch was
// open during a partition, and has nothing to check otherwise.
type K8sRequireLeader struct {
	Isolations []Isolation
}

// Name implements Validator.
func (K8sRequireLeader) Name() string { return "k8s-require-leader" }

// isolating names the faults that cut members off from their peers
// (client-partition cuts clients off, and the member keeps its leader).
var isolating = map[string]bool{"blackhole-member": true, "isolate-leader": true, "partition-majority": true, "blackhole-until-snapshot": true}

// Validate implements Validator.
func (v K8sRequireLeader) Validate(_ context.Context, c *Check) Result {
	var watches []history.Watch
	for _, w := range c.Watches {
		if w.Request.RequireLeader {
			watches = append(watches, w)
		}
	}
	if len(watches) == 0 {
		return Result{Verdict: OK, Message: "nothing to check: no watch required a leader", CheckedWhat: "RequireLeader watches on cut-off members"}
	}
	isolations := v.Isolations
	if isolations == nil {
		identified := false
		for _, p := range c.Probes {
			identified = identified || p.MemberID != 0
		}
		if !identified {
			during := 0
			for _, in := range c.Injections {
				if !isolating[in.Name] || in.Effect == 0 || in.Error != "" {
					continue
				}
				for _, w := range watches {
					if w.Call <= in.End && w.End >= in.Effect {
						during++
					}
				}
			}
			if during == 0 {
				return Result{Verdict: OK, Message: fmt.Sprintf("nothing to check: no partition cut a member off while any of %d RequireLeader watches was open", len(watches)), CheckedWhat: "RequireLeader watches on cut-off members"}
			}
			return Result{Verdict: Inconclusive, Message: fmt.Sprintf("%d RequireLeader watches were open during a partition, but no health probe names a member's raft ID, so which member was cut off when is unknown", during)}
		}
		isolations = isolationsFromProbes(c.Probes, c.Injections)
	}
	var findings []string
	checked := 0
	long := 0
	for _, is := range isolations {
		if is.To-is.From < RequireLeaderBound {
			continue
		}
		long++
		deadline := is.From + RequireLeaderBound
		for _, w := range watches {
			if servedBy(w) != is.MemberID || w.Call > is.From {
				continue
			}
			ended := time.Duration(-1)
			for _, r := range w.Responses {
				if r.Canceled || r.Error != nil {
					ended = r.Time
					break
				}
			}
			if ended >= 0 && ended < is.From {
				continue // it ended before the partition
			}
			if ended < 0 && w.End < deadline {
				continue // the watcher stopped reading before the bound, uncanceled: it tells nothing
			}
			checked++
			if ended < 0 || ended > deadline {
				findings = append(findings, fmt.Sprintf("watch %d required a leader on member %x, which was cut off from a majority from %s to %s, but was not canceled by %s",
					w.ID, is.MemberID, is.From.Round(time.Millisecond), is.To.Round(time.Millisecond), deadline.Round(time.Millisecond)))
			}
		}
	}
	if len(findings) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("%d violations: %s", len(findings), findings[0]), Checked: checked, CheckedWhat: "RequireLeader watches on cut-off members",
			Explanation: strings.Join(findings, " ") + fmt.Sprintf(" etcd cancels the streams that require a leader once a member has had none for 3 election timeouts; %s covers losing it and noticing.", RequireLeaderBound)}
	}
	if checked == 0 {
		return Result{Verdict: OK, Message: fmt.Sprintf("nothing to check: no RequireLeader watch was open on a member cut off for %s (%d isolations seen, %d long enough)", RequireLeaderBound, len(isolations), long), CheckedWhat: "RequireLeader watches on cut-off members"}
	}
	return Result{Verdict: OK, Message: fmt.Sprintf("%d RequireLeader watches on cut-off members were canceled within %s", checked, RequireLeaderBound), Checked: checked, CheckedWhat: "RequireLeader watches on cut-off members"}
}

// servedBy is the raft ID of the member whose headers a watch's responses
// carry, 0 if none does.
func servedBy(w history.Watch) uint64 {
	for _, r := range w.Responses {
		if r.Header.MemberID != 0 {
			return r.Header.MemberID
		}
	}
	return 0
}

// isolationsFromProbes reads the runs of probes that saw a member in a
// minority, each inside one injection (see K8sRequireLeader).
func isolationsFromProbes(probes []history.Probe, injections []history.Injection) []Isolation {
	byMember := map[uint64][]history.Probe{}
	var ids []uint64
	for _, p := range probes {
		if p.MemberID == 0 {
			continue
		}
		if byMember[p.MemberID] == nil {
			ids = append(ids, p.MemberID)
		}
		byMember[p.MemberID] = append(byMember[p.MemberID], p)
	}
	within := func(from, to time.Duration) int {
		for i, in := range injections {
			if in.Start <= from && (in.End == 0 || to <= in.End) {
				return i
			}
		}
		return -1
	}
	var out []Isolation
	for _, id := range ids {
		ps := byMember[id]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Call < ps[j].Call })
		var cur *Isolation
		curIn := -1
		flush := func() {
			if cur != nil {
				out = append(out, *cur)
			}
			cur = nil
		}
		for _, p := range ps {
			in := within(p.Call, p.Return)
			if p.Fault != history.FaultMinority || in < 0 {
				flush()
				continue
			}
			if cur != nil && in != curIn {
				flush()
			}
			if cur == nil {
				cur, curIn = &Isolation{MemberID: id, From: p.Call, To: p.Return}, in
			}
			cur.To = max(cur.To, p.Return)
		}
		flush()
	}
	return out
}

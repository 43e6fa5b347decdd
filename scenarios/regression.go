package scenarios

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// Regression is one past etcd bug the harness reproduces: the release that
// has it, the first release with the fix (etcd's CHANGELOG), the scenario
// that aims at it, and the stages or named checks whose violation is the
// bug. `etcd-robustness regression ISSUE` runs it (make
// test-robustness-issueNNNNN): on Release until a run is caught, on Fixed
// (or any later release) where every run must pass.
type Regression struct {
	// Issue is etcd's GitHub issue number.
	Issue int
	// Summary says what goes wrong, in a few words.
	Summary string
	// Release has the bug; Fixed is the first release with the fix.
	Release, Fixed string
	// FixedRelease, if set, is the release `regression --fixed` runs
	// instead of Fixed: one from Fixed on that lacks the bugs in
	// AlsoExposes too, where Fixed still has one of them (a fixed run
	// must pass, and the target sends what shows those bugs).
	FixedRelease string
	// Scenario is the registered scenario that reproduces it. It pins
	// Release and names the source patches its faults need, which a
	// release that has the points of its own does without.
	Scenario string
	// FixedFailpoint, if set, replaces the scenario's faults on releases
	// from Fixed on: the fix moved the code path the fault aims at (etcd
	// #14370's fix sends a single member's raft save through
	// raftBeforeSaveWaitWalSync).
	FixedFailpoint string
	// Catches are the stages ("patch") or named checks ("watch/reliable")
	// whose violation is the bug: a run whose verdict names one of them
	// caught it. A run that fails only elsewhere did not.
	Catches []string
	// AlsoExposes names other known bugs (traffic.KnownBug IDs) its runs
	// send anyway: ones the traffic steers around the same way as this
	// bug, so that avoiding them would avoid this one too.
	AlsoExposes []string
}

// CaughtBy returns the first of r.Catches that a run's verdicts show
// illegal, or "". illegal reports whether a stage or a stage/check was
// found illegal.
func (r Regression) CaughtBy(illegal func(name string) bool) string {
	for _, c := range r.Catches {
		if illegal(c) {
			return c
		}
	}
	return ""
}

// KnownBugID is the regression's ID among traffic.KnownBugs ("etcd#20221"),
// which its runs do not avoid: a regression reproduces its own bug even
// where the traffic steers around it by default.
func (r Regression) KnownBugID() string { return fmt.Sprintf("etcd#%d", r.Issue) }

// Exposed are the known bugs the regression's runs never avoid: its own,
// and AlsoExposes.
func (r Regression) Exposed() []string { return append([]string{r.KnownBugID()}, r.AlsoExposes...) }

// FixedRun is the release `regression --fixed` runs: FixedRelease, else
// Fixed.
func (r Regression) FixedRun() string {
	if r.FixedRelease != "" {
		return r.FixedRelease
	}
	return r.Fixed
}

// HasBug reports whether release version comes before the fix.
func (r Regression) HasBug(version string) bool { return versionBefore(version, r.Fixed) }

// ScenarioFor returns the regression's scenario for release version: as
// registered, pinned to version, with FixedFailpoint's faults on releases
// from Fixed on.
func (r Regression) ScenarioFor(version string) (Scenario, error) {
	sc, err := Lookup(r.Scenario)
	if err != nil {
		return Scenario{}, err
	}
	if r.FixedFailpoint != "" && !versionBefore(version, r.Fixed) {
		sc.Failpoint = r.FixedFailpoint
		sc.Faults = nil
		for _, f := range strings.Split(r.FixedFailpoint, ",") {
			sc.Faults = append(sc.Faults, Fault{Name: f, Start: sc.Duration / 4})
		}
		sc.Failpoint = FaultNames(sc.Faults)
	}
	return sc, nil
}

// regressions are the past bugs, by issue.
var regressions = map[int]Regression{}

// registerRegression adds r, and registers sc as its scenario, issue-NNNNN,
// pinned to r.Release. A regression whose Scenario names one registered
// elsewhere passes no sc.
func registerRegression(r Regression, sc *Scenario) {
	if sc != nil {
		sc.Name = fmt.Sprintf("issue-%d", r.Issue)
		sc.EtcdVersion = r.Release
		register(*sc)
		r.Scenario = sc.Name
	}
	regressions[r.Issue] = r
}

// LookupRegression returns the regression of etcd issue n ("14370" or
// "#14370"), or an error naming the known ones.
func LookupRegression(issue string) (Regression, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(issue), "#"))
	if r, ok := regressions[n]; ok && err == nil {
		return r, nil
	}
	var known []string
	for _, r := range Regressions() {
		known = append(known, strconv.Itoa(r.Issue))
	}
	return Regression{}, fmt.Errorf("unknown regression %q: no reproduction of that etcd issue here (valid: %s)", issue, strings.Join(known, ", "))
}

// Regressions lists every regression, by issue number.
func Regressions() []Regression {
	var out []Regression
	for _, r := range regressions {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Regression) int { return a.Issue - b.Issue })
	return out
}

// versionBefore reports whether release a is older than b (both
// normalized, "v3.5.13"); malformed versions compare as equal.
func versionBefore(a, b string) bool {
	pa, pb := releaseNumbers(a), releaseNumbers(b)
	return slices.Compare(pa[:], pb[:]) < 0
}

func releaseNumbers(v string) [3]int {
	var out [3]int
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	for i, p := range strings.SplitN(core, ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}

func init() {
	// etcd #13766: v3.5.0–3.5.2 set the consistent index of an entry
	// before its apply took the backend's batch tx lock, and the
	// backend's periodic commit (every 100 ms) saved whatever index was
	// set. A commit that took the lock between the two saved the index of
	// an entry whose data was not in it; a crash before the next commit
	// made the member skip that entry on restart and end one revision
	// behind its peers. The window is microseconds wide: a SIGKILL, or a
	// panic right after any commit, at a random moment did not land in it
	// (3 runs each). So a source patch adds a point there, every apply of
	// a follower sleeps at it, and the follower panics right after the
	// next commit (crash-in-apply-window). v3.5.3 sets an applying index
	// there instead, which a commit saves only with the entry's data.
	registerRegression(Regression{Issue: 13766, Summary: "inconsistent revision after a crash under high load",
		Release: "v3.5.2", Fixed: "v3.5.3", Catches: []string{"convergence", "linearizability", "patch"}},
		&Scenario{
			Description: "etcd #13766 on v3.5.2 (patched with applyAfterSetConsistentIndex): 3 members under 500 requests/s of KV traffic, at 3 s a follower's applies held between setting the consistent index and writing the data, and the follower panics right after the next backend commit, then restarts",
			Members:     3, Failpoint: failpoint.ApplyWindowCrashName, Faults: []Fault{{Name: failpoint.ApplyWindowCrashName, Start: 3 * time.Second}},
			Traffic: "etcd-kv", Duration: 10 * time.Second, QPS: 500, Clients: 12,
			EtcdPatches: []string{"applyAfterSetConsistentIndex"},
		})
	// etcd #14370: before v3.5.5 a single member acknowledged a write
	// before its raft entry was in the WAL; a crash at raftBeforeSave lost
	// it. From v3.5.5 a single member saves through
	// raftBeforeSaveWaitWalSync, the same place in the loop.
	registerRegression(Regression{Issue: 14370, Summary: "a single-member cluster loses an acknowledged write on crash",
		Release: "v3.5.4", Fixed: "v3.5.5", FixedFailpoint: "raftBeforeSaveWaitWalSync:panic",
		Catches: []string{"patch", "linearizability", "final-read"}},
		&Scenario{
			Description: "etcd #14370 on v3.5.4: 1 member, KV traffic, the member panics at raftBeforeSave and restarts",
			Members:     1, Failpoint: "raftBeforeSave:panic", Traffic: "etcd-kv", Duration: 10 * time.Second, Rate: traffic.Medium,
		})
	// etcd #14685: before v3.5.6 a defragmentation committed the backend
	// without saving the consistent index; a crash in the middle of it made
	// the member apply entries twice on restart.
	registerRegression(Regression{Issue: 14685, Summary: "inconsistent revision after a crash during defrag",
		Release: "v3.5.5", Fixed: "v3.5.6", Catches: []string{"linearizability", "patch", "convergence"}},
		&Scenario{
			Description: "etcd #14685 on v3.5.5: 1 member, KV traffic, the member panics at defragBeforeCopy during a defragmentation and restarts",
			Members:     1, Failpoint: "defragBeforeCopy:panic", Traffic: "etcd-kv", Duration: 10 * time.Second, Rate: traffic.Medium,
		})
	// etcd #15220 and #15271: see watch.go.
	registerRegression(Regression{Issue: 15220, Summary: "watch progress notification not in sync with the event stream",
		Release: "v3.5.7", Fixed: "v3.5.8", Scenario: "watch-15220", Catches: []string{"watch/bookmarkable"}}, nil)
	registerRegression(Regression{Issue: 15271, Summary: "watch goes back in time after a network partition",
		Release: "v3.5.7", Fixed: "v3.5.8", Scenario: "watch-15271", Catches: []string{"watch/ordered", "watch/unique"}}, nil)
	// etcd #15247: a leader whose raft loop was blocked (a slow fdatasync)
	// for longer than a lease's TTL still believed it led: its lessor,
	// still primary, renewed the leases of keepalives that reached it
	// (which the new leader never saw), and saw the leases expire that
	// clients kept alive through the new leader, and revoked them once it
	// ran again (raft forwarded the revokes to the new leader). v3.5.13
	// checks leadership before it renews or revokes. A lease shows it only
	// if its client keeps renewing it through the stall: the profile's
	// leases are kept alive for 1–6 s at most, so the scenario keeps every
	// lease alive for longer than the run. Clients are pinned to members,
	// so that keepalives reach each side.
	registerRegression(Regression{Issue: 15247, Summary: "leases revoked although kept alive, after the leader was blocked longer than their TTL",
		Release: "v3.5.12", Fixed: "v3.5.13", Catches: []string{"patch", "linearizability"}},
		&Scenario{
			Description: "etcd #15247 on v3.5.12: 3 members, etcd traffic with every lease kept alive, by clients pinned to members, the leader's raft loop blocked once for 6 s at raftBeforeSave",
			Members:     3, Failpoint: "stall-leader", Faults: []Fault{{Name: "stall-leader", Start: 3 * time.Second, Duration: 8 * time.Second}},
			Traffic: "etcd", Duration: 16 * time.Second, Rate: traffic.Medium, Placement: traffic.Pinned, LeaseKeepAlive: time.Minute,
		})
	// etcd #17529: before v3.5.13 a watch that fell behind while its
	// stream could not send (its buffer full) and whose next revision was
	// then compacted skipped ahead without the compacted cancel: events
	// lost in the middle of the stream. A sleep before every send starves
	// the member's streams while the etcd profile compacts every 100–200 ms.
	registerRegression(Regression{Issue: 17529, Summary: "watch events lost during stream starvation",
		Release: "v3.5.12", Fixed: "v3.5.13", Catches: []string{"watch/reliable", "kubernetes/k8s-watch-no-gap"}},
		&Scenario{
			Description: "etcd #17529 on v3.5.12 (patched with beforeSendWatchResponse): 1 member, etcd traffic compacting every 100–200 ms, watches, every watch response held 200 ms for 4 s",
			Members:     1, Failpoint: "beforeSendWatchResponse:sleep", Faults: []Fault{{Name: "beforeSendWatchResponse:sleep", Start: 2 * time.Second, Duration: 4 * time.Second}},
			Traffic: "etcd", Duration: 12 * time.Second, Rate: traffic.Medium, CompactionInterval: 100 * time.Millisecond, Watch: &Watch{},
			EtcdPatches: []string{"beforeSendWatchResponse"},
		})
	// etcd #17780: before v3.5.14, compacting at a revision that is a
	// delete removed the store's latest revision; a crash after the
	// batches that removed it were committed and before the finished
	// compaction was recorded restored a lower revision, and etcd handed
	// out revisions again. A batch limit of 1 commits every batch, the
	// compaction is at a fresh tombstone, and the traffic is slow enough
	// that no write lands after it before the crash (the fault comes after
	// the 2 s the recovery stage compares throughput with).
	registerRegression(Regression{Issue: 17780, Summary: "revision goes down after a crash during compaction",
		Release: "v3.5.13", Fixed: "v3.5.14", Catches: []string{"linearizability", "patch"}},
		&Scenario{
			Description: "etcd #17780 on v3.5.13 (patched with compactBeforeSetFinishedCompact): 1 member, 5 requests/s of KV traffic, batch limit 1, at 2.5 s a panic in the last batch of a compaction at a tombstone",
			Members:     1, Failpoint: "compactBeforeSetFinishedCompact:panic",
			Faults:  []Fault{{Name: "compactBeforeSetFinishedCompact:panic", Start: 2500 * time.Millisecond}},
			Traffic: "etcd-kv", Duration: 10 * time.Second, QPS: 5, Clients: 2,
			Etcd:        &EtcdSettings{CompactionBatchLimit: 1},
			EtcdPatches: []string{"compactBeforeSetFinishedCompact"},
		})
	// etcd #18089: before v3.5.16 (CHANGELOG-3.5: PR #18474, "Keep the
	// tombstone during compaction if it happens to be the compaction
	// revision", under v3.5.16; v3.5.16's mvcc/hash.go says "<= 3.5.15"
	// delete it) a watch opened at a compaction's revision, when that
	// revision was a delete, did not get the delete: its first event was
	// the next one. The watches from revision 1 are canceled with the
	// compact revision and resume there (the resumable check wants the
	// first event at or after it); the etcd profile, deletes included,
	// compacts every 100–200 ms, and a kill makes every watch resume. No
	// watch response is held back, so that #17529, which v3.5.12 also
	// has, does not show instead. --fixed runs v3.5.18: v3.5.16 and
	// v3.5.17 still have #19179, which the target exposes.
	registerRegression(Regression{Issue: 18089, Summary: "watch drops an event when compacting on a delete",
		Release: "v3.5.12", Fixed: "v3.5.16", FixedRelease: "v3.5.18", Catches: []string{"watch/resumable"},
		// #19179 (also in v3.5.12) is avoided as #18089 is: by
		// compacting at puts only.
		AlsoExposes: []string{"etcd#19179"}},
		resumeAtCompactions("etcd #18089 on v3.5.12"))
	// etcd #19179: before v3.5.18 a member restoring its key index from
	// the backend left out a key whose only revision was a tombstone.
	// After a compaction at a delete (#18089's fix keeps that tombstone)
	// interrupted before its finished revision was saved, the restarted
	// member resumes the compaction with an index that lacks the key, so
	// the resumed compaction removes the tombstone too, and a watch opened
	// at the compact revision misses the delete there (found by etcd's own
	// #17780 reproduction). The #17780 fault on v3.5.17 (which has the
	// point), with watches: those from revision 1 opened after the restart
	// are canceled with the compact revision and resume there. No progress
	// notifications or requests, so that #20221 (which failed the watch
	// scenarios on v3.5.17 with progress notifications) does not show
	// instead.
	registerRegression(Regression{Issue: 19179, Summary: "missing delete event on a watch opened at the compaction revision",
		Release: "v3.5.17", Fixed: "v3.5.18", Catches: []string{"watch/resumable"}},
		withWatches(mustLookup("issue-17780"),
			"etcd #19179 on v3.5.17: 1 member, 5 requests/s of KV traffic, batch limit 1, watches without progress notifications, at 2.5 s a panic in the last batch of a compaction at a tombstone; the restarted member resumes the compaction",
			Watch{ProgressRequestInterval: -1, ProgressNotifyInterval: 10 * time.Minute}))
	// etcd #20221: v3.6.0–3.6.1 sent a watch on a future revision progress
	// notifications (and events) from before its start revision. Watches
	// from future revisions with frequent progress notifications and
	// requests.
	registerRegression(Regression{Issue: 20221, Summary: "watch on a future revision gets notifications or old events",
		Release: "v3.6.1", Fixed: "v3.6.2", Catches: []string{"kubernetes/k8s-future-watch", "watch/bookmarkable", "watch/resumable", "watch/filter"}},
		&Scenario{
			Description: "etcd #20221 on v3.6.1: 1 member, KV traffic, watches (some from future revisions) with progress notifications every 100 ms and requests every 100 ms, the member SIGKILLed and restarted",
			Members:     1, Failpoint: "kill", Traffic: "etcd-kv", Duration: 10 * time.Second, QPS: 200, Clients: 6,
			Watch: &Watch{ProgressRequestInterval: 100 * time.Millisecond, ProgressNotifyInterval: 100 * time.Millisecond},
		})
}

// mustLookup returns a registered scenario, for one built on another.
func mustLookup(name string) Scenario {
	sc, err := Lookup(name)
	if err != nil {
		panic(err)
	}
	return sc
}

// withWatches is sc with watch traffic w and description d.
func withWatches(sc Scenario, d string, w Watch) *Scenario {
	sc.Description, sc.Watch = d, &w
	return &sc
}

// resumeAtCompactions is the scenario of #18089 and #19179: watches that
// compactions cancel, resuming at the compact revisions.
func resumeAtCompactions(what string) *Scenario {
	return &Scenario{
		Description: what + ": 1 member, etcd traffic compacting every 100–200 ms, watches resuming at compact revisions, the member SIGKILLed and restarted",
		Members:     1, Failpoint: "kill", Traffic: "etcd", Duration: 12 * time.Second, Rate: traffic.Medium,
		CompactionInterval: 100 * time.Millisecond, Watch: &Watch{},
	}
}

package traffic

import (
	"fmt"
	"strings"
	"time"
)

// KnownBug is a bug of released etcd versions that the traffic steers
// around by default, so that CI against those releases checks everything
// else instead of failing on the same known bug in every run. The check is
// never changed: a run with the avoidance turned off (run
// --expose-known-bugs, or make reproduce-22209) finds the bug again.
type KnownBug struct {
	// ID is the upstream issue, e.g. "etcd#22209".
	ID string
	// Summary says what etcd does wrong.
	Summary string
	// Avoid is what the profiles leave out while the bug applies.
	Avoid Avoidance
	// Affects reports whether a release (e.g. "v3.7.3") has the bug.
	Affects func(version string) bool
	// Auth says the bug shows only with auth enabled, so a run without
	// auth has nothing to avoid.
	Auth bool
}

// Avoidance names a kind of request the profiles can leave out.
type Avoidance string

// AvoidKeysOnly: no keys_only ranges.
const AvoidKeysOnly Avoidance = "keys-only ranges"

// AvoidNestedTxns: no nested txns (the etcd profile sends them only under
// auth).
const AvoidNestedTxns Avoidance = "nested txns"

// AvoidProgressRequests: the watch traffic sends no RequestProgress while
// the request traffic runs, and, while it waits for the watches to catch
// up, sends one on a stream only after the stream has been quiet for
// quietBeforeProgress (etcd then has nothing left to send it).
const AvoidProgressRequests Avoidance = "watch progress requests while events may be on their way"

// AvoidSlowWatch: the watch traffic plans no slow watch (WatchConfig's
// SlowReadDelay), the one meant to make etcd set its watcher aside as a
// victim.
const AvoidSlowWatch Avoidance = "the slow watch"

// AvoidWatchAtCompactRevision: a watch that a compaction canceled resumes
// from the compact revision + 1, not from the compact revision itself.
const AvoidWatchAtCompactRevision Avoidance = "watches resumed at the compact revision"

// KnownBugs are the bugs the traffic knows how to avoid.
var KnownBugs = []KnownBug{{
	ID: "etcd#22209",
	Summary: "a keys_only range leaves each key's lease out of the response: the fast keys-only path added in v3.7 reads " +
		"the in-memory index, which has no lease (fix proposed in etcd PR #22212)",
	Avoid:   AvoidKeysOnly,
	Affects: func(v string) bool { return strings.HasPrefix(v, "v3.7.") },
}, {
	ID: "CVE-2026-33343",
	Summary: "with auth, the operations of a nested txn skip the permission check: a user writes and reads keys " +
		"outside its permissions (fixed in v3.4.42, v3.5.28 and v3.6.9)",
	Avoid:   AvoidNestedTxns,
	Affects: before("v3.4.42", "v3.5.28", "v3.6.9"),
	Auth:    true,
}, {
	ID: "etcd#15220",
	Summary: "a requested progress notification carries the store's current revision, sent past the events still " +
		"queued for the stream or still to come for an unsynced watch (fixed in v3.4.25 by PR #15697, and in v3.5.8; " +
		"only the v3.4 line is listed: the regression target runs v3.5.7 to catch it)",
	Avoid:   AvoidProgressRequests,
	Affects: before("v3.4.25"),
}, {
	ID: "etcd#18089",
	Summary: "a compaction at a delete removes the tombstone, so a watch from the compact revision misses that delete " +
		"(fixed in v3.4.34 by PR #18475, and in v3.5.16 by PR #18474; only the v3.4 line is listed: the regression target runs " +
		"v3.5.12 to catch it)",
	Avoid:   AvoidWatchAtCompactRevision,
	Affects: before("v3.4.34"),
}, {
	ID: "etcd#17529",
	Summary: "a watcher set aside as a victim (its stream's buffer full) whose next revision is then compacted skips " +
		"ahead without the compacted cancel: events lost in the middle of the stream (fix PR #17555, in v3.5.13; on " +
		"release-3.4 from the CHANGELOG update of 2024-03-20, taken here as v3.4.31; only the v3.4 line is listed: the " +
		"regression target runs v3.5.12 to catch it)",
	Avoid:   AvoidSlowWatch,
	Affects: before("v3.4.31"),
}}

// before is Affects for a bug fixed in each line at the given release: a
// version of one of those lines below its fix has it; other lines do not.
func before(fixed ...string) func(string) bool {
	return func(v string) bool {
		minor, patch, ok := minorPatch(v)
		if !ok {
			return false
		}
		for _, f := range fixed {
			if fm, fp, _ := minorPatch(f); fm == minor {
				return patch < fp
			}
		}
		return false
	}
}

// minorPatch parses "v3.M.P" (with any suffix after P ignored).
func minorPatch(v string) (minor, patch int, ok bool) {
	var major int
	n, _ := fmt.Sscanf(v, "v%d.%d.%d", &major, &minor, &patch)
	return minor, patch, n == 3 && major == 3
}

// KnownBugsOf returns the known bugs that any of versions has, leaving
// out those that need auth when auth is off.
func KnownBugsOf(versions []string, auth bool) []KnownBug {
	var out []KnownBug
	for _, b := range KnownBugs {
		if b.Auth && !auth {
			continue
		}
		for _, v := range versions {
			if b.Affects(v) {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// AvoidFutureWatches: no watch opened at a revision the member has not
// reached yet (the watchers' fromFuture watches).
const AvoidFutureWatches Avoidance = "watches from future revisions"

// EtcdIssue20221 is the ID of etcd #20221 among KnownBugs.
const EtcdIssue20221 = "etcd#20221"

// etcd #20221: a watch opened at a future revision F got progress
// notifications at the store's revision, below F, and after a restore
// could have its revision lowered and get events below F. Fixed in v3.6.2
// (PR #20241) and backported to v3.5.22 (PRs #20245, #20290: read in the
// module cache, v3.5.21's progressIfSync has no start-revision test and
// v3.5.22's has). The 3.4 line got backports too (PRs #20250, #20291), in
// a release not checked here, so no 3.4 release is listed: a v3.4 run
// still sends these watches. The k8s-future-watch check catches it on the
// v3.5 releases before v3.5.22, and so fails the watch scenarios of other
// bugs' first fixed releases (seen on v3.5.17: a watch resumed after a
// kill at one past the restarted member's revision got a notification at
// that revision, in answer to a progress request; on v3.5.8, #15271's
// runs: a watch from a recent revision, opened on a member cut off and
// far behind, asked for progress at once). The avoidance: the
// watches from future revisions are left out (leaveOut), and a stream
// whose watch starts past every revision its member has shown sends no
// progress request until the member shows it reached the start
// (mayRequestProgress; the request a watch from the past sends at open
// waits for its created response; list-then-watch and resumed watches
// still open one revision ahead). Progress notifications etcd sends of its own (the
// watch's progress_notify) are not held back.
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID: EtcdIssue20221,
		Summary: "a watch from a future revision gets progress notifications (and after a restore events) below its " +
			"start revision (fixed in v3.5.22 and v3.6.2)",
		Avoid:   AvoidFutureWatches,
		Affects: before("v3.5.22", "v3.6.2"),
	})
}

// AvoidCompactAtDelete: the etcd profile's compactor compacts only at the
// revision of one of its own plain puts, never at one that may be a delete
// (the kubernetes profile compacts at its compact_rev_key put already).
const AvoidCompactAtDelete Avoidance = "compactions at a delete's revision"

// EtcdIssue18089 and EtcdIssue19179 are the IDs of etcd #18089 and #19179
// among KnownBugs.
const (
	EtcdIssue18089 = "etcd#18089"
	EtcdIssue19179 = "etcd#19179"
)

// etcd #18089: a watch opened at a compaction's revision, when that
// revision was a delete, did not get the delete (the compaction had
// removed the tombstone); fixed in v3.5.16 by PR #18474 (CHANGELOG-3.5;
// v3.5.16's mvcc/hash.go says releases up to 3.5.15 and 3.4.33 delete
// the tombstone; scenarios/regression.go; the 3.6 line came after the fix;
// the 3.4 line has an entry of its own above). The watch/resumable check
// catches it when a watch canceled by a compaction resumes at the compact
// revision, which fails the watch runs of other bugs' first fixed
// releases: v3.5.13, the first with #17529's fix (seen there, seed 100: a
// resumed watch from 1887 began at 1888, the delete at 1887 missing).
// Compacting at a put's revision leaves the compacted and resumable checks
// as they were.
//
// etcd #19179: a watch opened at the revision of a compaction still being
// applied, when that revision was a delete, missed the delete; fixed in
// v3.5.18 (scenarios/regression.go; 3.6 came after the fix, 3.4 is not
// checked here). A member that restarts in the middle of a compaction at a
// delete restores a key index without the key whose only revision is the
// tombstone, and the resumed compaction removes the tombstone #18089's fix
// keeps. It shows as #18089 does, and is avoided the same way, by
// compacting at puts only. (v3.5.15, first taken here for #18089's fixed
// release, failed watch/resumable that way in 5 of 20 runs, e.g. seed 11:
// a watch from 259, a delete, began at 260; that was #18089 itself, which
// v3.5.15 still has.)
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID:      EtcdIssue18089,
		Summary: "a watch from a compaction's revision misses the delete at that revision (fixed in v3.5.16)",
		Avoid:   AvoidCompactAtDelete,
		Affects: before("v3.5.16"),
	}, KnownBug{
		ID:      EtcdIssue19179,
		Summary: "a watch opened at the revision of a compaction being applied misses the delete there (fixed in v3.5.18)",
		Avoid:   AvoidCompactAtDelete,
		Affects: before("v3.5.18"),
	})
}

// AvoidShortLeasesAcrossLeaderPause: no lease TTL short enough that a
// paused leader's lessor sees it run out before the leader steps down (the
// etcd profile draws its TTLs from Config.MinLeaseTTL up; see
// LeaseTTLAcrossLeaderPause).
const AvoidShortLeasesAcrossLeaderPause Avoidance = "lease TTLs a leader pause can outlast"

// PausedLeaderExpiry is the ID of the paused leader's stale expiries.
const PausedLeaderExpiry = "paused-leader-expiry"

// The mechanism (found by the scale runs on v3.7.3: `make scale` seeds 1
// and 5 and the 300 s run, each with one pause-leader): the leader is
// SIGSTOPped while its lessor holds each lease's deadline as of the last
// grant or keepalive it answered. Another member becomes leader and
// answers keepalives, which push the deadlines on from its own clock.
// When the old leader is SIGCONTed, its lessor still thinks it is primary
// until the raft loop hands it the step-down; it runs at once, and every
// lease whose old deadline passed during the pause is revoked by its own
// stale clock. etcd #15247's fix (ensureLeadership in
// revokeExpiredLeases) skips its check while the member ticked within the
// last few ticks (isActive), and a process that was stopped ticks as soon
// as it runs, so the check is skipped; the revokes are forwarded to the
// new leader, which commits them. A leader blocked inside its raft loop
// (#15247's slow fdatasync, the stall-leader fault) does not tick, so the
// fix covers that case (v3.5.13 and later) and not a pause of the whole
// process. From the source, not traced on a member.
//
// The avoidance is on the plan's side only: when the plan pauses the
// leader, every lease TTL drawn is long enough that no lease a client
// keeps alive runs out by the old leader's clock before it steps down
// (LeaseTTLAcrossLeaderPause). The check is not changed: an expiry
// applied before a deadline etcd acknowledged is a violation, and
// --expose-known-bugs draws the profile's own short TTLs again. Runs whose
// plan has no leader pause avoid nothing (stall-leader is not a pause:
// the #15247 regression keeps its short TTLs and catches #15247).
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID: PausedLeaderExpiry,
		Summary: "a leader SIGSTOPped and then SIGCONTed revokes, by its own stale deadlines, leases that the newer " +
			"leader renewed during the pause (#15247's fix skips its leadership check for a member that just ticked); " +
			"seen on v3.7.3, the mechanism is in every release",
		Avoid:   AvoidShortLeasesAcrossLeaderPause,
		Affects: func(string) bool { return true },
	})
}

// Terms of LeaseTTLAcrossLeaderPause's bound.
const (
	// pausedLeaderStepDown bounds how long a SIGCONTed leader runs before
	// its lessor is demoted: it steps down at the first message of the
	// newer term, a heartbeat (100 ms) away; 2 s is two election
	// timeouts of the cluster package's settings, for a loaded machine.
	pausedLeaderStepDown = 2 * time.Second
	// renewalLatency bounds how long before the pause the old leader
	// answered a client's last keepalive or grant, past the client's
	// renewal period (it renews every TTL/3 after it sent the last one).
	renewalLatency = time.Second
)

// LeaseTTLAcrossLeaderPause is the shortest lease TTL, in seconds, that a
// pause of the leader for up to pause cannot make the old leader revoke
// early. The argument: a client keeping a lease alive sent a renewal at
// most TTL/3 before the pause, answered within renewalLatency, so the old
// leader's deadline is at least 2·TTL/3 − renewalLatency after the pause
// began. The old leader revokes by that deadline only if it passes before
// its lessor is demoted, at most pause + pausedLeaderStepDown after the
// pause began. So TTL ≥ 1.5·(pause + pausedLeaderStepDown +
// renewalLatency) leaves it none to revoke that a client still renews. A
// lease no client renews after the old leader's last answer expires by
// the same deadline on every member, so it is never early. Zero when
// pause is zero.
func LeaseTTLAcrossLeaderPause(pause time.Duration) int64 {
	if pause <= 0 {
		return 0
	}
	d := 3 * (pause + pausedLeaderStepDown + renewalLatency) / 2
	return int64((d + time.Second - 1) / time.Second)
}

// AvoidTxnRanges: no range operations in a txn that writes (a txn of
// reads only is served by the member it is sent to, through no log).
const AvoidTxnRanges Avoidance = "range ops in txns that write"

// AvoidTxnLeases: no lease attached by a put inside a txn.
const AvoidTxnLeases Avoidance = "leases attached by txn puts"

// AvoidLeaseKeys: no lease time-to-live that asks for the lease's keys.
const AvoidLeaseKeys Avoidance = "lease time-to-live with keys"

// The auth runs of etcd #14571's scenario found these three on v3.5.5 and
// v3.5.6 (the replay of the committed log ended behind the members).
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID: "etcd#18667",
		Summary: "a member that did not propose a txn drops the txn's range operations before it applies it (removeNeedlessRangeReqs), " +
			"and with them their permission check: with auth, the member that proposed it refuses a txn whose user may not read one of " +
			"its ranges, the others apply it, and the members diverge (the range is dropped in v3.4 to v3.6; v3.7 no longer drops it)",
		Avoid:   AvoidTxnRanges,
		Affects: func(v string) bool { minor, _, ok := minorPatch(v); return ok && minor <= 6 },
		Auth:    true,
	}, KnownBug{
		ID: "CVE-2026-44283",
		Summary: "with auth, a put inside a txn attaches a lease without the check that the user may write every key already " +
			"attached to it (and reads its prev_kv without read permission) (fixed in v3.4.44, v3.5.30 and v3.6.11)",
		Avoid:   AvoidTxnLeases,
		Affects: before("v3.4.44", "v3.5.30", "v3.6.11"),
		Auth:    true,
	}, KnownBug{
		ID: "CVE-2023-32082",
		Summary: "with auth, a lease time-to-live asking for the lease's keys returns them without checking that the user may " +
			"read them (fixed in v3.4.26 and v3.5.9)",
		Avoid:   AvoidLeaseKeys,
		Affects: before("v3.4.26", "v3.5.9"),
		Auth:    true,
	})
}

// AvoidLeaseKeysUnreadable: a lease time-to-live asks for the lease's keys
// only from a client whose user may read every key (root, or rw: see
// ReadsEveryKey), for whom etcd's permission check cannot fail.
const AvoidLeaseKeysUnreadable Avoidance = "lease time-to-live with keys by users who may not read every key"

// LeaseTTLKeysRace is the ID of the time-to-live's unchecked keys.
const LeaseTTLKeysRace = "lease-ttl-keys-race"

// The mechanism (found by the auth matrix on v3.7.3, 3 members, jwt, kill,
// seed 1, by the permission model; read in v3.5.35's, v3.6.16's and
// v3.7.3's v3_server.go): LeaseTimeToLive with keys checks
// (checkLeaseTimeToLive) that the user may read every key its member's own
// lessor has attached to the lease, and then answers with the keys the
// leader's lessor has: a follower forwards the request to the leader, and
// a leader looks the lease up again after waiting for its applied index.
// Keys attached in between are returned unchecked. In the run, user wo
// (write on key/2/, no read) put key/2/2 with its lease, answered by the
// leader at revision 431, and at once asked a follower for the lease's
// keys: the follower, which had not applied the put, found no key to check
// and forwarded the request; the leader answered key/2/2. The model
// refuses that answer at every point in the order (before the put there is
// no key/2/2 to return; after it, wo may not read it), so no order fits.
// Not filed upstream. Every release with the check (from v3.4.26 and
// v3.5.9) has it; those before have no check at all (CVE-2023-32082,
// avoided by asking for no keys).
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID: LeaseTTLKeysRace,
		Summary: "with auth, a lease time-to-live asking for the lease's keys checks the user's read permission on the keys its " +
			"member's lessor holds, then returns the keys the leader's lessor holds (a follower forwards it; the leader looks the " +
			"lease up again after waiting for its applied index), so a user gets the names of keys attached in between that it " +
			"may not read (found here on v3.7.3, not filed upstream)",
		Avoid:   AvoidLeaseKeysUnreadable,
		Affects: func(v string) bool { return !before("v3.4.26", "v3.5.9")(v) },
		Auth:    true,
	})
}

// AvoidSingleMemberCrashes: on a cluster of one member, `random` draws no
// fault that crashes it (a kill, or an injected panic). Faults named
// outright still run.
const AvoidSingleMemberCrashes Avoidance = "crashes drawn for a single member"

// EtcdIssue14370 is the ID of etcd #14370 among KnownBugs.
const EtcdIssue14370 = "etcd#14370"

// etcd #14370: a single member applied and acknowledged a write before its
// raft entry was synced to the WAL, so a crash lost the acknowledged write
// (fixed in v3.5.5, and in v3.4.21 by PR #14423, "Durability API guarantee
// broken in single node cluster", CHANGELOG-3.4). No traffic can steer
// around it; the avoidance is on the plan's side (robustness: the random
// pool of a 1-member cluster leaves out the crashes), so that the 3.4
// line's runs on v3.4.12 check the rest. The check is not changed: a
// write acknowledged and then lost is a violation, --expose-known-bugs
// draws the crashes again, and the #14370 regression names its fault
// (raftBeforeSave:panic on v3.5.4).
func init() {
	KnownBugs = append(KnownBugs, KnownBug{
		ID: EtcdIssue14370,
		Summary: "a single-member cluster acknowledges a write before its WAL is synced, so a crash loses it " +
			"(fixed in v3.4.21 and v3.5.5)",
		Avoid:   AvoidSingleMemberCrashes,
		Affects: before("v3.4.21", "v3.5.5"),
	})
}

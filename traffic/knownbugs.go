package traffic

import (
	"fmt"
	"strings"
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
		"(fixed in v3.4.34 by PR #18475, and in v3.5.15; only the v3.4 line is listed: the regression target runs " +
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

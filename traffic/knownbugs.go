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

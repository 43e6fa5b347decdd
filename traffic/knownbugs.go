package traffic

import (
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
}

// Avoidance names a kind of request the profiles can leave out.
type Avoidance string

// AvoidKeysOnly: no keys_only ranges.
const AvoidKeysOnly Avoidance = "keys-only ranges"

// KnownBugs are the bugs the traffic knows how to avoid.
var KnownBugs = []KnownBug{{
	ID: "etcd#22209",
	Summary: "a keys_only range leaves each key's lease out of the response: the fast keys-only path added in v3.7 reads " +
		"the in-memory index, which has no lease (fix proposed in etcd PR #22212)",
	Avoid:   AvoidKeysOnly,
	Affects: func(v string) bool { return strings.HasPrefix(v, "v3.7.") },
}}

// KnownBugsOf returns the known bugs that any of versions has.
func KnownBugsOf(versions []string) []KnownBug {
	var out []KnownBug
	for _, b := range KnownBugs {
		for _, v := range versions {
			if b.Affects(v) {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

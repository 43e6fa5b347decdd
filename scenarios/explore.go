package scenarios

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// ExploreName is the default scenario: every run draws its cluster, its
// traffic, its watches, its faults and etcd's settings from its seed.
const ExploreName = "explore"

// Exploration is what an explore scenario drew from its seed, kept in the
// record so that a report says what ran and a replay draws the same.
type Exploration struct {
	// Seed is the seed the draws came from.
	Seed int64 `json:"seed"`
	// Releases are the etcd releases the run was given to draw from; with
	// more than one, MemberVersions says which member runs which.
	Releases []string `json:"releases,omitempty"`
	// MemberVersions is each member's release, by member index, when
	// several releases were given.
	MemberVersions []string `json:"member_versions,omitempty"`
	// Faults is how many faults were drawn; each is picked, once the
	// cluster is up, among those available for its binaries and size.
	Faults int `json:"faults"`
}

// EtcdSettings are etcd flags a scenario sets on every member. A zero
// field leaves etcd's default. The run spells each flag as the member's
// binary knows it (the --experimental- forms before 3.6) and leaves out,
// with a warning, a flag a binary does not have.
type EtcdSettings struct {
	// SnapshotCount is --snapshot-count: how many applied entries a member
	// keeps before it snapshots and compacts its raft log.
	SnapshotCount int `json:"snapshot_count,omitempty"`
	// SnapshotCatchUpEntries is --snapshot-catchup-entries: how many
	// entries the leader keeps for a slow follower after a snapshot.
	SnapshotCatchUpEntries int `json:"snapshot_catchup_entries,omitempty"`
	// CompactionBatchLimit is --compaction-batch-limit: how many keys one
	// compaction transaction deletes.
	CompactionBatchLimit int `json:"compaction_batch_limit,omitempty"`
	// HeartbeatInterval and ElectionTimeout are --heartbeat-interval and
	// --election-timeout. The checks' timing bounds assume an election
	// timeout of at most etcd's default, 1 s, so Explore never draws more.
	HeartbeatInterval time.Duration `json:"heartbeat_interval,omitempty"`
	ElectionTimeout   time.Duration `json:"election_timeout,omitempty"`
}

// Describe says which settings differ from etcd's defaults, or "".
func (e *EtcdSettings) Describe() string {
	if e == nil {
		return ""
	}
	var parts []string
	if e.SnapshotCount > 0 {
		parts = append(parts, fmt.Sprintf("snapshot count %d", e.SnapshotCount))
	}
	if e.SnapshotCatchUpEntries > 0 {
		parts = append(parts, fmt.Sprintf("catch-up entries %d", e.SnapshotCatchUpEntries))
	}
	if e.CompactionBatchLimit > 0 {
		parts = append(parts, fmt.Sprintf("compaction batch limit %d", e.CompactionBatchLimit))
	}
	if e.HeartbeatInterval > 0 {
		parts = append(parts, fmt.Sprintf("heartbeat %s", e.HeartbeatInterval))
	}
	if e.ElectionTimeout > 0 {
		parts = append(parts, fmt.Sprintf("election timeout %s", e.ElectionTimeout))
	}
	return strings.Join(parts, ", ")
}

// exploreDuration is the traffic time an explore run asks for; the run
// stretches it to fit its faults, each with its heal and a recovery window.
const exploreDuration = 10 * time.Second

func init() {
	register(Scenario{
		Name:        ExploreName,
		Description: "drawn from the seed: cluster size, client and peer TLS (one run in four), traffic profile, rate and placement, watches, 1–3 faults available for the binaries and the size, and etcd's snapshot, compaction and election settings",
		Members:     3,
		Failpoint:   "random",
		Traffic:     "etcd",
		Duration:    exploreDuration,
		Rate:        traffic.Medium,
		Explore:     &Exploration{},
	})
}

// weighted picks one of choices, each with its weight.
func weighted[T any](r *rand.Rand, choices []T, weights []int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.Intn(total)
	for i, w := range weights {
		if n < w {
			return choices[i]
		}
		n -= w
	}
	return choices[len(choices)-1]
}

// Draw returns the scenario an explore run with this seed runs: sc's
// fields drawn from the seed, given the releases the run may use (the
// first is used when there is one). A scenario that does not explore is
// returned as it is. The same seed and releases give the same scenario:
// the draws use their own source, in a fixed order.
//
// The faults are drawn as a count of "random" faults; the run picks each,
// from the same seed, among the faults available once the cluster is up
// (robustness resolves them before traffic starts and records their names).
func (s Scenario) Draw(seed int64, releases []string) (Scenario, error) {
	if s.Explore == nil {
		return s, nil
	}
	r := rand.New(rand.NewSource(seed))
	s.Members = weighted(r, []int{1, 3, 5}, []int{30, 55, 15})
	s.Traffic = weighted(r, []string{"etcd", "kubernetes", "etcd-kv"}, []int{40, 35, 25})
	s.Rate = weighted(r, []string{traffic.Low, traffic.Medium, traffic.High}, []int{25, 50, 25})
	s.QPS, s.Clients = 0, 0
	s.Placement = weighted(r, []string{traffic.Mixed, traffic.Pinned, traffic.Spread}, []int{50, 25, 25})
	s.Watch = nil
	if r.Intn(4) > 0 {
		s.Watch = &Watch{
			ProgressRequestInterval: weighted(r, []time.Duration{0, 100 * time.Millisecond, 20 * time.Millisecond}, []int{50, 30, 20}),
			ProgressNotifyInterval:  weighted(r, []time.Duration{0, 100 * time.Millisecond, time.Second}, []int{50, 30, 20}),
		}
	}
	s.CompactionInterval = weighted(r, []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond}, []int{50, 30, 20})
	if s.Traffic == "etcd-kv" {
		s.CompactionInterval = 0 // it sends no compaction
	}
	n := 1 + r.Intn(3)
	s.Failpoint = strings.TrimSuffix(strings.Repeat("random,", n), ",")
	s.Faults = nil
	s.Duration = exploreDuration
	e := &EtcdSettings{}
	switch r.Intn(3) {
	case 1: // a small raft log: slow followers catch up from snapshots
		e.SnapshotCount, e.SnapshotCatchUpEntries = 100, 20
	case 2:
		e.SnapshotCount = 1000
	}
	e.CompactionBatchLimit = weighted(r, []int{0, 10, 100}, []int{50, 25, 25})
	e.ElectionTimeout = weighted(r, []time.Duration{0, 500 * time.Millisecond}, []int{70, 30})
	election := e.ElectionTimeout
	if election == 0 {
		election = time.Second
	}
	// etcd wants the election timeout at least five heartbeats.
	e.HeartbeatInterval = weighted(r, []time.Duration{0, 50 * time.Millisecond, election / 5}, []int{50, 25, 25})
	if e.HeartbeatInterval == 100*time.Millisecond {
		e.HeartbeatInterval = 0 // etcd's default
	}
	s.Etcd = nil
	if *e != (EtcdSettings{}) {
		s.Etcd = e
	}
	s.Explore = &Exploration{Seed: seed, Faults: n, Releases: slices.Clone(releases)}
	s.TLS = drawTLS(seed)
	s = s.DrawVersions()
	s, err := s.Resolve()
	if err != nil {
		return s, err
	}
	s.Description = s.Describe()
	return s, s.Validate()
}

// tlsSalt keeps the draw of TLS apart from the others, so that adding it
// changed no other draw of a seed.
const tlsSalt = 0x7157_7157

// drawTLS is whether an explore run of this seed runs over TLS: one run
// in four.
func drawTLS(seed int64) bool {
	return rand.New(rand.NewSource(seed^tlsSalt)).Intn(4) == 0
}

// versionSalt keeps the draw of the members' releases apart from the
// others, so that it can be drawn again for another cluster size.
const versionSalt = 0x7e55_1075

// DrawVersions is s with Explore.MemberVersions drawn, from the seed, for
// its cluster size: call it again once a flag changed the size. With one
// release or none given there is nothing to draw.
func (s Scenario) DrawVersions() Scenario {
	if s.Explore == nil {
		return s
	}
	x := *s.Explore
	x.MemberVersions = nil
	if len(x.Releases) > 1 {
		x.MemberVersions = drawVersions(rand.New(rand.NewSource(x.Seed^versionSalt)), x.Releases, s.Members)
	}
	s.Explore = &x
	return s
}

// drawVersions gives each of members a release: every release is used
// when there are enough members (a random few when there are not), the
// rest are drawn, and the order is shuffled so that the first member
// (often the first leader) may run any.
func drawVersions(r *rand.Rand, releases []string, members int) []string {
	perm := r.Perm(len(releases))
	out := make([]string, members)
	for i := range out {
		if i < len(perm) {
			out[i] = releases[perm[i]]
		} else {
			out[i] = releases[r.Intn(len(releases))]
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

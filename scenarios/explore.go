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
	// Older, when several releases were given, is how many members run a
	// release older than the newest: "minority" or "majority" of the
	// cluster ("half" for an even size with no strict either, "" for one
	// member).
	Older string `json:"older,omitempty"`
	// LeaderOn is the side the leader is on when traffic starts, "newer"
	// or "older": the run moves the leadership there (MoveLeader) if the
	// first election put it on the other side.
	LeaderOn string `json:"leader_on,omitempty"`
	// Leader is the member that led when traffic started, and Moved
	// whether the run moved the leadership there (the run fills both).
	Leader string `json:"leader,omitempty"`
	Moved  bool   `json:"leader_moved,omitempty"`
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
		Description: "drawn from the seed: cluster size, client and peer TLS (one run in four), auth with simple or jwt tokens (one run in four of those without TLS), traffic profile, rate and placement, watches, 1–3 faults available for the binaries and the size, and etcd's snapshot, compaction and election settings",
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
	s.Auth = drawAuth(seed, s.TLS)
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

// authSalt keeps the draw of auth apart from the others, so that adding it
// changed no other draw of a seed.
const authSalt = 0x0a07_4a07

// drawAuth is the auth an explore run of this seed enables, "" for none:
// one run in four, simple or jwt tokens alike, drawn apart from TLS; but a
// run that drew TLS runs without auth, since TLS with auth is not covered
// (under --client-cert-auth etcd takes a request without a token to be by
// the user its certificate names).
func drawAuth(seed int64, tls bool) string {
	r := rand.New(rand.NewSource(seed ^ authSalt))
	on := r.Intn(4) == 0
	names := traffic.AuthNames()
	name := names[r.Intn(len(names))]
	if !on || tls {
		return ""
	}
	return name
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
	x.MemberVersions, x.Older, x.LeaderOn, x.Leader, x.Moved = nil, "", "", "", false
	if len(x.Releases) > 1 {
		x.MemberVersions, x.Older, x.LeaderOn = drawVersions(rand.New(rand.NewSource(x.Seed^versionSalt)), x.Releases, s.Members)
	}
	s.Explore = &x
	return s
}

// drawVersions gives each of members a release. The newest release given
// is the newer side; every other is older. It draws whether a minority or
// a majority of the members run an older release (each drawn among the
// older ones), and which side the leader is to be on, then shuffles the
// members' order so that the first member (often the first leader) may
// run either. One member runs any of the releases.
func drawVersions(r *rand.Rand, releases []string, members int) (versions []string, older, leaderOn string) {
	newest := releases[0]
	for _, v := range releases[1:] {
		if versionLess(newest, v) {
			newest = v
		}
	}
	var olds []string
	for _, v := range releases {
		if v != newest && !slices.Contains(olds, v) {
			olds = append(olds, v)
		}
	}
	if members == 1 || len(olds) == 0 {
		out := make([]string, members)
		for i := range out {
			out[i] = releases[r.Intn(len(releases))]
		}
		return out, "", ""
	}
	// Minority: 1..(n-1)/2 older; majority: n/2+1..n-1.
	minLo, minHi := 1, (members-1)/2
	majLo, majHi := members/2+1, members-1
	var k int
	switch {
	case minHi >= minLo && (majHi < majLo || r.Intn(2) == 0):
		older, k = "minority", minLo+r.Intn(minHi-minLo+1)
	case majHi >= majLo:
		older, k = "majority", majLo+r.Intn(majHi-majLo+1)
	default: // two members
		older, k = "half", members/2
	}
	leaderOn = []string{"newer", "older"}[r.Intn(2)]
	versions = make([]string, members)
	for i := range versions {
		if i < k {
			versions[i] = olds[r.Intn(len(olds))]
		} else {
			versions[i] = newest
		}
	}
	r.Shuffle(len(versions), func(i, j int) { versions[i], versions[j] = versions[j], versions[i] })
	return versions, older, leaderOn
}

// versionLess orders etcd versions ("v3.6.16" < "v3.7.3"), by major,
// minor and patch, then as strings.
func versionLess(a, b string) bool {
	var av, bv [3]int
	_, errA := fmt.Sscanf(strings.TrimPrefix(a, "v"), "%d.%d.%d", &av[0], &av[1], &av[2])
	_, errB := fmt.Sscanf(strings.TrimPrefix(b, "v"), "%d.%d.%d", &bv[0], &bv[1], &bv[2])
	if errA != nil || errB != nil || av == bv {
		return a < b
	}
	return slices.Compare(av[:], bv[:]) < 0
}

// LeaderSide is the indexes of the members on the side the leader is to
// be on, or nil when the draw left the leader where the election put it.
func (x *Exploration) LeaderSide() []int {
	if x == nil || x.LeaderOn == "" {
		return nil
	}
	newest := x.MemberVersions[0]
	for _, v := range x.MemberVersions {
		if versionLess(newest, v) {
			newest = v
		}
	}
	var out []int
	for i, v := range x.MemberVersions {
		if (v == newest) == (x.LeaderOn == "newer") {
			out = append(out, i)
		}
	}
	return out
}

// Package scenarios names the runs the harness knows: a cluster shape, a
// traffic profile, a fault, and how long to run. A scenario is plain data;
// the robustness package runs it.
package scenarios

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// Scenario describes one run.
type Scenario struct {
	Name string `json:"name"`
	// Description says what the scenario runs: the registered text, or,
	// once flags changed the scenario (Flags), Describe's.
	Description string `json:"description"`
	// Flags are the command-line flags that changed the named scenario, as
	// given ("--traffic etcd --failpoint kill"); empty when none did. See
	// Overridden and Title.
	Flags string `json:"flags,omitempty"`
	// Members is the cluster size: 1, 3 or 5.
	Members int `json:"members"`
	// TLS runs the members with client and peer TLS, each asking for a
	// certificate of the run's CA (made at run time, kept in the report's
	// tls/ directory); every client of the run presents one.
	TLS bool `json:"tls,omitempty"`
	// Failpoint is a --failpoint spec: a name from package failpoint,
	// "random", or a comma-separated list of either. The faults are spread
	// over the run (see Schedule), unless Faults gives their times.
	Failpoint string `json:"failpoint,omitempty"`
	// Faults is an explicit schedule. It is used when Failpoint is empty
	// or names exactly its faults (FaultNames); a --failpoint that names
	// others replaces it.
	Faults []Fault `json:"faults,omitempty"`
	// Traffic is a profile name from package traffic.
	Traffic string `json:"traffic"`
	// Duration is how long traffic runs (at least until the fault has been
	// injected and the cluster has recovered).
	Duration time.Duration `json:"duration"`
	// Rate is a rate level of the traffic profile (traffic.Low, Medium or
	// High): Resolve sets QPS and Clients from it where they are zero.
	Rate string `json:"rate,omitempty"`
	// QPS is the total request rate over all clients.
	QPS float64 `json:"qps"`
	// Clients is the number of concurrent clients.
	Clients int `json:"clients"`
	// Placement is how clients are placed on members: traffic.Mixed (the
	// default when empty), traffic.Pinned or traffic.Spread.
	Placement string `json:"placement,omitempty"`
	// ClientMembers is filled in by a run: for each traffic client, by
	// id, the member it was pinned to, or "" for a client spread over
	// every member.
	ClientMembers []string `json:"client_members,omitempty"`
	// KnownBugsAvoided is filled in by a run: the known etcd bugs
	// (traffic.KnownBugs) of the versions under test that the traffic
	// steered around, by ID.
	KnownBugsAvoided []string `json:"known_bugs_avoided,omitempty"`
	// EtcdVersion pins a release (for reproductions of past bugs); empty
	// means the version the user chose.
	EtcdVersion string `json:"etcd_version,omitempty"`
	// EtcdPatches name source patches (etcdbuild.PatchNames) that add a
	// gofail point the scenario's faults need to releases that lack it;
	// a release that has the point of its own is built as published.
	EtcdPatches []string `json:"etcd_patches,omitempty"`
	// CompactionInterval, if set, is how often the traffic's compactor
	// compacts: it waits between the interval and twice it (etcd's own
	// suite compacts every 100–200 ms). Zero keeps the profile's 1–2 s.
	CompactionInterval time.Duration `json:"compaction_interval,omitempty"`
	// LeaseKeepAlive, if set, makes the etcd profile keep every lease it
	// grants alive for this long (traffic.Config.LeaseKeepAlive); zero
	// keeps the profile's mix of kept, revoked and abandoned leases.
	LeaseKeepAlive time.Duration `json:"lease_keep_alive,omitempty"`
	// Watch is the scenario's watch traffic (watch.go); nil runs none.
	Watch *Watch `json:"watch,omitempty"`
	// Etcd are etcd settings every member runs with; nil leaves etcd's
	// defaults.
	Etcd *EtcdSettings `json:"etcd,omitempty"`
	// Auth, when set, enables auth once the cluster has started: etcd's
	// "simple" tokens or "jwt" tokens (traffic.AuthNames). The traffic
	// then runs as several users (traffic.AuthUsers) and an admin changes
	// their permissions during the run.
	Auth string `json:"auth,omitempty"`
	// Explore, when set, makes the scenario one that draws its fields
	// from the run's seed (Draw); once drawn, it records the draws.
	Explore *Exploration `json:"explore,omitempty"`
}

// Fault is one entry of a schedule.
type Fault struct {
	// Name is a fault name or "random".
	Name string `json:"name"`
	// Start is when it is injected, from the start of traffic. A fault
	// starts no earlier than the cluster's recovery from the one before.
	Start time.Duration `json:"start"`
	// Duration is how long a lasting fault (pause, sleep, partition)
	// lasts; zero means a random 1–5 s. Other faults ignore it.
	Duration time.Duration `json:"duration,omitempty"`
}

// Schedule is the scenario's faults in order: Faults, or else the names of
// Failpoint spread evenly over the middle half of the run (one fault starts
// a quarter of the way in).
func (s Scenario) Schedule() []Fault {
	if s.Failpoint == "" || (len(s.Faults) > 0 && s.Failpoint == FaultNames(s.Faults)) {
		return append([]Fault(nil), s.Faults...)
	}
	names := strings.Split(s.Failpoint, ",")
	out := make([]Fault, len(names))
	for i, n := range names {
		start := s.Duration/4 + time.Duration(i)*(s.Duration/2)/time.Duration(len(names))
		out[i] = Fault{Name: strings.TrimSpace(n), Start: start.Round(time.Millisecond)}
	}
	return out
}

// FaultNames is the --failpoint spec that names a schedule's faults.
func FaultNames(faults []Fault) string {
	names := make([]string, len(faults))
	for i, f := range faults {
		names[i] = f.Name
	}
	return strings.Join(names, ",")
}

// Validate reports a scenario that cannot run.
func (s Scenario) Validate() error {
	switch {
	case s.Failpoint == "" && len(s.Faults) == 0:
		return fmt.Errorf("scenario %s: no fault: give a failpoint or a schedule of faults", s.Name)
	case s.Members != 1 && s.Members != 3 && s.Members != 5:
		return fmt.Errorf("scenario %s: members must be 1, 3 or 5, not %d", s.Name, s.Members)
	case s.Duration <= 0:
		return fmt.Errorf("scenario %s: duration must be positive, not %s", s.Name, s.Duration)
	case s.QPS <= 0:
		return fmt.Errorf("scenario %s: qps must be positive, not %g", s.Name, s.QPS)
	case s.Clients <= 0:
		return fmt.Errorf("scenario %s: clients must be positive, not %d", s.Name, s.Clients)
	case s.Placement != "" && !slices.Contains(traffic.PlacementNames(), s.Placement):
		return fmt.Errorf("scenario %s: unknown client placement %q (valid: %s)", s.Name, s.Placement, strings.Join(traffic.PlacementNames(), ", "))
	case s.Auth != "" && !slices.Contains(traffic.AuthNames(), s.Auth):
		return fmt.Errorf("scenario %s: unknown auth mode %q (valid: %s)", s.Name, s.Auth, strings.Join(traffic.AuthNames(), ", "))
	}
	return nil
}

// Resolve returns s with QPS and Clients taken from its traffic profile's
// rate level where they are zero. It fails on an unknown profile or level.
func (s Scenario) Resolve() (Scenario, error) {
	p, err := traffic.Lookup(s.Traffic)
	if err != nil {
		return s, fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	if s.Rate == "" {
		return s, nil
	}
	r, err := p.Rates().Level(s.Rate)
	if err != nil {
		return s, fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	if s.QPS == 0 {
		s.QPS = r.QPS
	}
	if s.Clients == 0 {
		s.Clients = r.Clients
	}
	return s, nil
}

// DefaultName is the scenario the CLI and `go test` run by default: one
// drawn from the seed.
const DefaultName = ExploreName

// BasicName is the first scenario, the thinnest run: etcd-kv traffic on
// 10 keys and one kill on 3 members.
const BasicName = "basic"

var all = map[string]Scenario{}

// register adds a scenario, resolved (see Resolve).
func register(s Scenario) {
	s, err := s.Resolve()
	if err == nil {
		err = s.Validate()
	}
	if err != nil {
		panic(err)
	}
	all[s.Name] = s
}

func init() {
	register(Scenario{
		Name:        BasicName,
		Description: "3 members, etcd-style KV traffic, one member SIGKILLed and restarted",
		Members:     3,
		Failpoint:   "kill",
		Traffic:     "etcd-kv",
		Duration:    10 * time.Second,
		Rate:        traffic.Medium,
	})
	register(Scenario{
		Name:        "pause-and-partition",
		Description: "3 members, etcd-style KV traffic for 20 s: the leader paused, then a minority partitioned, then a follower's raft saves slowed",
		Members:     3,
		Failpoint:   "pause-leader,partition-majority,raftBeforeSave:sleep",
		Faults: []Fault{
			{Name: "pause-leader", Start: 3 * time.Second, Duration: 2 * time.Second},
			{Name: "partition-majority", Start: 8 * time.Second, Duration: 3 * time.Second},
			{Name: "raftBeforeSave:sleep", Start: 14 * time.Second, Duration: 2 * time.Second},
		},
		Traffic:  "etcd-kv",
		Duration: 20 * time.Second,
		Rate:     traffic.Medium,
	})
	register(Scenario{
		Name:        "etcd",
		Description: "3 members, etcd-style traffic over the whole KV and lease API (compaction, defragmentation), one member SIGKILLed and restarted",
		Members:     3,
		Failpoint:   "kill",
		Traffic:     "etcd",
		Duration:    10 * time.Second,
		Rate:        traffic.Medium,
	})
	register(Scenario{
		Name:        "kubernetes",
		Description: "3 members, Kubernetes API server traffic (guarded writes, paginated lists, compaction through compact_rev_key), one member SIGKILLed and restarted",
		Members:     3,
		Failpoint:   "kill",
		Traffic:     "kubernetes",
		Duration:    10 * time.Second,
		Rate:        traffic.Medium,
	})
}

// Lookup returns the scenario called name, or an error naming the valid ones.
func Lookup(name string) (Scenario, error) {
	if s, ok := all[name]; ok {
		return s, nil
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the scenarios, sorted.
func Names() []string { return slices.Sorted(maps.Keys(all)) }

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
)

// Scenario describes one run.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Members is the cluster size: 1, 3 or 5.
	Members int `json:"members"`
	// Failpoint is a name from package failpoint.
	Failpoint string `json:"failpoint"`
	// Traffic is a profile name from package traffic.
	Traffic string `json:"traffic"`
	// Duration is how long traffic runs (at least until the fault has been
	// injected and the cluster has recovered).
	Duration time.Duration `json:"duration"`
	// QPS is the total request rate over all clients.
	QPS float64 `json:"qps"`
	// Clients is the number of concurrent clients.
	Clients int `json:"clients"`
	// EtcdVersion pins a release (for reproductions of past bugs); empty
	// means the version the user chose.
	EtcdVersion string `json:"etcd_version,omitempty"`
}

// Validate reports a scenario that cannot run.
func (s Scenario) Validate() error {
	switch {
	case s.Members != 1 && s.Members != 3 && s.Members != 5:
		return fmt.Errorf("scenario %s: members must be 1, 3 or 5, not %d", s.Name, s.Members)
	case s.Duration <= 0:
		return fmt.Errorf("scenario %s: duration must be positive, not %s", s.Name, s.Duration)
	case s.QPS <= 0:
		return fmt.Errorf("scenario %s: qps must be positive, not %g", s.Name, s.QPS)
	case s.Clients <= 0:
		return fmt.Errorf("scenario %s: clients must be positive, not %d", s.Name, s.Clients)
	}
	return nil
}

// DefaultName is the scenario the CLI and `go test` run by default.
const DefaultName = "default"

var all = map[string]Scenario{}

func register(s Scenario) {
	if err := s.Validate(); err != nil {
		panic(err)
	}
	all[s.Name] = s
}

func init() {
	register(Scenario{
		Name:        DefaultName,
		Description: "3 members, etcd-style KV traffic, one member SIGKILLed and restarted",
		Members:     3,
		Failpoint:   "kill",
		Traffic:     "etcd-kv",
		Duration:    10 * time.Second,
		QPS:         200,
		Clients:     6,
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

package history

import "time"

// Probe is one poll of a member's health endpoint (/livez and /readyz on
// etcd 3.6 and later, /health before).
type Probe struct {
	Member   string        `json:"member"`
	Endpoint string        `json:"endpoint"` // "/livez", "/readyz" or "/health"
	Call     time.Duration `json:"call"`
	Return   time.Duration `json:"return"`
	// Status is the HTTP status code, 0 when no answer came (Error says
	// why: refused, timed out).
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
	Error  string `json:"error,omitempty"`
	// MemberID is the member's raft ID, as response headers carry it; 0
	// if the harness did not know it.
	MemberID uint64 `json:"member_id,omitempty"`
	// Fault is what the harness had done to the member, read from the
	// harness's own state both when the poll was sent and when it
	// returned: one of the Fault* constants.
	Fault string `json:"fault,omitempty"`
}

// The harness's view of a member during a probe (Probe.Fault).
const (
	// FaultNone: the process was running, not paused, and its peer links
	// joined it to a majority of the members, at call and at return.
	FaultNone = ""
	// FaultDown: no process was running, at call and at return.
	FaultDown = "down"
	// FaultPaused: the process was SIGSTOPped, at call and at return.
	FaultPaused = "paused"
	// FaultMinority: the process ran, but the cut peer links left it
	// unable to reach a majority of the members (counting itself), at
	// call and at return.
	FaultMinority = "minority"
	// FaultChanging: the state at return was not the state at call.
	FaultChanging = "changing"
)

// OK reports whether the member answered that it is healthy.
func (p Probe) OK() bool { return p.Status == 200 && p.Error == "" }

// Served reports whether the member serves the endpoint at all: 404 is the
// answer of a release that does not have it (/livez and /readyz before
// 3.5.11 and 3.6).
func (p Probe) Served() bool { return p.Status != 404 }

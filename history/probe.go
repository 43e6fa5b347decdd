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
}

// OK reports whether the member answered that it is healthy.
func (p Probe) OK() bool { return p.Status == 200 && p.Error == "" }

// Package history holds what a run recorded: every client's operations and
// the fault injections, all timed on one monotonic clock that starts with the
// run. It is plain data, written by traffic and failpoint, read by validate
// and report, and saved as JSON so a report can be checked again later.
package history

import (
	"time"

	"github.com/etcd-robustness/etcd-robustness/model"
)

// Clock measures time since the start of a run. It uses Go's monotonic
// clock, so wall-clock jumps do not reorder operations.
type Clock struct{ start time.Time }

// NewClock starts a clock at zero now.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the time since the clock started.
func (c *Clock) Now() time.Duration { return time.Since(c.start) }

// Start is the wall-clock time the clock started.
func (c *Clock) Start() time.Time { return c.start }

// Operation is one request a client sent and what came back. Call is taken
// just before the request is sent and Return just after its answer (or error)
// arrives.
type Operation struct {
	ClientID int            `json:"client"`
	Call     time.Duration  `json:"call"`
	Return   time.Duration  `json:"return"`
	Request  model.Request  `json:"request"`
	Response model.Response `json:"response"`
}

// Client is everything one client recorded, in the order it happened.
// Watch responses will be recorded here too, on the same clock.
type Client struct {
	ID         int         `json:"id"`
	Operations []Operation `json:"operations"`
}

// Injection is one fault the run injected.
type Injection struct {
	Name   string        `json:"name"`
	Member string        `json:"member,omitempty"`
	Start  time.Duration `json:"start"`
	End    time.Duration `json:"end"`
	// Error is set when the fault could not be injected or the cluster did
	// not recover from it.
	Error string `json:"error,omitempty"`
}

// Recorder collects one client's operations. It is not safe for concurrent
// use: each client sends one request at a time.
type Recorder struct {
	clock  *Clock
	client Client
}

// NewRecorder records for client id on clock.
func NewRecorder(id int, clock *Clock) *Recorder {
	return &Recorder{clock: clock, client: Client{ID: id}}
}

// Now is the recorder's clock reading, for a call time.
func (r *Recorder) Now() time.Duration { return r.clock.Now() }

// Record appends an operation that was called at call and has just returned.
func (r *Recorder) Record(call time.Duration, req model.Request, resp model.Response) {
	r.client.Operations = append(r.client.Operations, Operation{
		ClientID: r.client.ID,
		Call:     call,
		Return:   r.clock.Now(),
		Request:  req,
		Response: resp,
	})
}

// Client returns what was recorded so far.
func (r *Recorder) Client() Client { return r.client }

// Stats counts operations in a set of client histories.
type Stats struct {
	Operations       int `json:"operations"`
	Failed           int `json:"failed"`
	SuccessfulWrites int `json:"successful_writes"`
}

// Count computes Stats over clients.
func Count(clients []Client) Stats {
	var s Stats
	for _, c := range clients {
		for _, op := range c.Operations {
			s.Operations++
			if op.Response.Failed() {
				s.Failed++
			}
			if model.Wrote(op.Request, op.Response) {
				s.SuccessfulWrites++
			}
		}
	}
	return s
}

// Package history holds what a run recorded: every client's operations and
// the fault injections, all timed on one monotonic clock that starts with the
// run. An operation keeps what etcd said as it said it (etcd.go mirrors
// etcd's messages); the model derives its own view when a check runs. It is
// plain data, written by traffic and failpoint, read by validate and report.
package history

import (
	"time"
)

// Clock measures time since the start of a run. It uses Go's monotonic
// clock, so wall-clock jumps do not reorder operations.
type Clock struct {
	start   time.Time
	journal Journal
}

// NewClock starts a clock at zero now.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the time since the clock started.
func (c *Clock) Now() time.Duration { return time.Since(c.start) }

// Start is the wall-clock time the clock started.
func (c *Clock) Start() time.Time { return c.start }

// Outcome says whether a request took effect.
type Outcome string

const (
	// Succeeded: etcd answered with a response.
	Succeeded Outcome = "succeeded"
	// Failed: etcd answered with an error that means nothing was applied.
	Failed Outcome = "failed"
	// Unknown: no answer says whether the request was applied (a timeout,
	// a lost connection, a leader change mid-request). etcd may apply it
	// later, even after every other request.
	Unknown Outcome = "unknown"
)

// Error is an error etcd (or the connection to it) returned.
type Error struct {
	// Code is the gRPC status code's name, e.g. "Unavailable"; a context
	// error is "DeadlineExceeded" or "Canceled".
	Code string `json:"code"`
	// Message is the error's text, e.g. "etcdserver: mvcc: required
	// revision has been compacted".
	Message string `json:"message"`
	// Outcome is Failed or Unknown.
	Outcome Outcome `json:"outcome"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Operation is one request a client sent and what came back: a Response or
// an Error. Call is taken just before the request is sent and Return just
// after its answer (or error) arrives.
type Operation struct {
	ClientID int           `json:"client"`
	Call     time.Duration `json:"call"`
	Return   time.Duration `json:"return"`
	Request  Request       `json:"request"`
	Response *Response     `json:"response,omitempty"`
	Error    *Error        `json:"error,omitempty"`
}

// Outcome classifies the operation.
func (o Operation) Outcome() Outcome {
	if o.Error == nil {
		return Succeeded
	}
	return o.Error.Outcome
}

// Wrote reports whether etcd answered that the request changed its state:
// a put, a delete that deleted something, or a transaction whose taken
// branch did either.
func (o Operation) Wrote() bool {
	if o.Error != nil || o.Response == nil {
		return false
	}
	switch {
	case o.Request.Put != nil:
		return true
	case o.Request.DeleteRange != nil:
		return o.Response.DeleteRange != nil && o.Response.DeleteRange.Deleted > 0
	case o.Request.Txn != nil:
		return o.Response.Txn != nil && txnWrote(o.Request.Txn, o.Response.Txn)
	case o.Request.LeaseGrant != nil, o.Request.LeaseRevoke != nil, o.Request.Compaction != nil:
		return true
	}
	return false
}

func txnWrote(req *TxnRequest, resp *TxnResponse) bool {
	ops := req.Success
	if !resp.Succeeded {
		ops = req.Failure
	}
	for i, op := range ops {
		if i >= len(resp.Responses) {
			break
		}
		r := resp.Responses[i]
		switch {
		case op.Put != nil:
			return true
		case op.DeleteRange != nil && r.DeleteRange != nil && r.DeleteRange.Deleted > 0:
			return true
		case op.Txn != nil && r.Txn != nil && txnWrote(op.Txn, r.Txn):
			return true
		}
	}
	return false
}

// Client is everything one client recorded, in the order it happened.
type Client struct {
	ID         int         `json:"id"`
	Operations []Operation `json:"operations"`
}

// Injection is one fault the run injected.
type Injection struct {
	Name string `json:"name"`
	// Targets are the members the fault acted on.
	Targets []string `json:"targets,omitempty"`
	// Start is when the injection began.
	Start time.Duration `json:"start"`
	// Effect is when the fault took effect (the panic, the pause, the
	// partition in place); zero if it never did.
	Effect time.Duration `json:"effect,omitempty"`
	// End is when the fault was healed and the cluster had recovered.
	End time.Duration `json:"end"`
	// Error is set when the fault could not be injected, did not take
	// effect, or the cluster did not recover from it.
	Error string `json:"error,omitempty"`
	// Detail is what the fault says it did and saw (which bytes a disk
	// fault dropped, what etcd did with the data it left), in words.
	Detail string `json:"detail,omitempty"`
	// Explains are the member exits and logged panic or fatal lines the
	// fault accounts for (a gofail panic, a stopped disk, a removal); see
	// ExitExplained. Faults that explain no exit declare nothing.
	Explains []ExitExplained `json:"explains,omitempty"`
	// Steps are what a fault of several steps did, each at its run-clock
	// time (a version fault: each member's release and the cluster's
	// versions before and after each step), for the report's timeline.
	Steps []FaultStep `json:"steps,omitempty"`
}

// FaultStep is one step of a fault, as the fault recorded it.
type FaultStep struct {
	At   time.Duration `json:"at"`
	What string        `json:"what"`
	// Begin is set on a step that spans time (a version fault's member
	// swap: from its stop to its catch-up; the downgrade's enable; a
	// disturbance): it began at Begin and ended at At. The recovery stage
	// judges throughput after each such step against the traffic before
	// it, in place of the whole fault's. Zero for a step that is a moment.
	Begin time.Duration `json:"begin,omitempty"`
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

// Record appends an operation that was called at call and has just
// returned with resp or err (exactly one is non-nil).
func (r *Recorder) Record(call time.Duration, req Request, resp *Response, err *Error) {
	op := Operation{
		ClientID: r.client.ID,
		Call:     call,
		Return:   r.clock.Now(),
		Request:  req,
		Response: resp,
		Error:    err,
	}
	r.client.Operations = append(r.client.Operations, op)
	if j := r.clock.Journal(); j != nil {
		j.Operation(op)
	}
}

// Client returns what was recorded so far.
func (r *Recorder) Client() Client { return r.client }

// Stats counts operations in a set of client histories.
type Stats struct {
	Operations       int `json:"operations"`
	Failed           int `json:"failed"`
	Unknown          int `json:"unknown"`
	SuccessfulWrites int `json:"successful_writes"`
}

// Count computes Stats over clients.
func Count(clients []Client) Stats {
	var s Stats
	for _, c := range clients {
		for _, op := range c.Operations {
			s.Operations++
			switch op.Outcome() {
			case Failed:
				s.Failed++
			case Unknown:
				s.Unknown++
			}
			if op.Wrote() {
				s.SuccessfulWrites++
			}
		}
	}
	return s
}

package client

import (
	"sync/atomic"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Counter counts the requests of the clients that share it as they return,
// for progress lines while traffic runs. It is safe for concurrent use.
type Counter struct {
	ops, failed, unknown atomic.Int64
}

// Counts are a Counter's totals so far.
type Counts struct {
	// Operations is every request that returned; Failed and Unknown are
	// those that returned an error, by outcome class.
	Operations, Failed, Unknown int64
}

// Counts returns the totals so far.
func (c *Counter) Counts() Counts {
	return Counts{Operations: c.ops.Load(), Failed: c.failed.Load(), Unknown: c.unknown.Load()}
}

func (c *Counter) add(op history.Operation) {
	c.ops.Add(1)
	switch op.Outcome() {
	case history.Failed:
		c.failed.Add(1)
	case history.Unknown:
		c.unknown.Add(1)
	}
}

// CountOn has c count every request the client records from now on.
func (c *Client) CountOn(counter *Counter) { c.counter = counter }

package history

import "time"

// MemberExit is one end of a member's etcd process during a run, or a
// panic or fatal line a member logged while it kept running, as the harness
// saw it. The crash stage decides whether an injected fault explains it.
type MemberExit struct {
	// Member is the member's name (as in Injection.Targets).
	Member string `json:"member"`
	// Time is when the harness saw the process end (or the line logged),
	// on the run's clock.
	Time time.Duration `json:"time"`
	// Status is the process's exit status as exec reports it ("exit
	// status 2", "signal: killed"); empty for a line logged by a member
	// that did not exit.
	Status string `json:"status,omitempty"`
	// Log holds the member's log lines that explain the exit: the first
	// panic or fatal line and the trace after it, bounded.
	Log []string `json:"log,omitempty"`
}

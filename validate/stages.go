package validate

import (
	"context"
	"fmt"
	"strings"
)

// EvidenceStage checks that the run's evidence is there: every member's WAL
// was read, and the members agree on the committed log. Two members that
// hold different entries at one committed index break raft's safety.
type EvidenceStage struct{}

// Name implements Validator.
func (EvidenceStage) Name() string { return "evidence" }

// Validate implements Validator.
func (EvidenceStage) Validate(_ context.Context, c *Check) Result {
	log := c.Persisted
	if log == nil {
		return Result{Verdict: Inconclusive, Message: "no member's WAL could be read: " + firstNonEmpty(c.EvidenceError, "not collected")}
	}
	if len(log.Conflicts) > 0 {
		return Result{Verdict: Illegal, Message: fmt.Sprintf("members' WALs hold different committed entries: %s", strings.Join(log.Conflicts, "; ")),
			Checked: len(log.Entries), CheckedWhat: "committed entries"}
	}
	var unread []string
	for _, m := range log.Members {
		if m.Error != "" {
			unread = append(unread, fmt.Sprintf("%s: %s", m.Member, m.Error))
		}
	}
	if len(unread) > 0 {
		return Result{Verdict: Inconclusive, Message: "a member's WAL could not be read, so its evidence is missing: " + strings.Join(unread, "; ")}
	}
	msg := fmt.Sprintf("%d members' WALs agree on %d committed entries (raft index %d to %d)", len(log.Members), len(log.Entries), log.FirstIndex, log.CommitIndex)
	if log.Replaced > 0 {
		msg += fmt.Sprintf("; the first %d only in logs that received snapshots later replaced (read from before each snapshot's marker)", log.Replaced)
	}
	if len(log.Uncommitted) > 0 {
		msg += fmt.Sprintf(", and %d entries past the commit index", len(log.Uncommitted))
	}
	return Result{Verdict: OK, Message: msg, Checked: len(log.Entries), CheckedWhat: "committed entries"}
}

// FinalRead checks that the read of every key made once the faults were
// over succeeded. Without it, an acknowledged write that was lost and that
// no client read afterwards goes unnoticed.
type FinalRead struct{}

// Name implements Validator.
func (FinalRead) Name() string { return "final-read" }

// Validate implements Validator.
func (FinalRead) Validate(_ context.Context, c *Check) Result {
	if c.FinalRead < 0 {
		return Result{Verdict: Inconclusive, Message: "the run made no final read, so lost writes that no client read were not looked for"}
	}
	attempts := 0
	for _, cl := range c.Clients {
		if cl.ID != c.FinalRead {
			continue
		}
		for _, op := range cl.Operations {
			attempts++
			if op.Error == nil && op.Response != nil && op.Response.Range != nil {
				return Result{Verdict: OK, Message: fmt.Sprintf("read all %d keys at revision %d after the faults (attempt %d)",
					len(op.Response.Range.KVs), op.Response.Header.Revision, attempts), Checked: 1, CheckedWhat: "final read of every key"}
			}
		}
	}
	return Result{Verdict: Inconclusive, Message: fmt.Sprintf("the final read of every key did not succeed in %d attempts, so the check for lost acknowledged writes did not run", attempts)}
}

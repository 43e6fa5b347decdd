package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// healthKey is the key read by health checks.
const healthKey = "health"

// WaitHealthy polls (every ~100ms) until the member serves a linearizable
// Get through its client URL alone, or ctx is done. If the member's process
// is not running, or exits while waiting, it returns right away with an
// error wrapping ErrExited that names the member, its exit status and the
// last lines of its log file.
func (m *Member) WaitHealthy(ctx context.Context) error {
	_, pid, exited, ok := m.current()
	if !ok {
		return m.exitedError(pid)
	}
	// Cancel in-flight checks as soon as the process exits.
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-waitCtx.Done():
		}
	}()

	ticker := time.NewTicker(healthPollInterval)
	defer ticker.Stop()
	for {
		err := m.checkHealth(waitCtx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return m.exitedError(pid)
		default:
		}
		select {
		case <-exited:
			return m.exitedError(pid)
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (pid %d) to be healthy: %w (last error: %v)", m.name, pid, ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

// checkHealth performs one linearizable Get against this member only, with
// a fresh client (so no gRPC reconnect backoff carries over between attempts).
// It dials the member's real listener, a path no fault cuts: a member that
// a client-side partition hides is still healthy.
func (m *Member) checkHealth(ctx context.Context) error {
	cli, err := m.dial(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	reqCtx, cancel := context.WithTimeout(ctx, healthRequestTimeout)
	defer cancel()
	_, err = cli.Get(reqCtx, healthKey)
	return err
}

// exitedError describes a member whose process is not running.
func (m *Member) exitedError(pid int) error {
	tail := logTail(m.logPath, logTailLines)
	exitErr := m.ExitErr()
	switch {
	case pid == 0:
		return fmt.Errorf("%s: %w: never started", m.name, ErrExited)
	case exitErr == nil:
		return fmt.Errorf("%s (pid %d): %w: exit status 0; last lines of %s:\n%s",
			m.name, pid, ErrExited, m.logPath, tail)
	default:
		return fmt.Errorf("%s (pid %d): %w: %w; last lines of %s:\n%s",
			m.name, pid, ErrExited, exitErr, m.logPath, tail)
	}
}

// logTail returns the last n lines of the file at path, indented, or a
// note explaining why they are unavailable.
func logTail(path string, n int) string {
	const maxRead = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return "    (log unavailable: " + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		_, _ = f.Seek(-maxRead, io.SeekEnd)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return "    (log unavailable: " + err.Error() + ")"
	}
	lines := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "    (log empty)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Leader returns the member that currently considers itself the raft leader
// (the one with the highest term if several do, e.g. a stale leader in a
// minority partition). Only running members are asked, each through its own
// client URL; members that do not answer before ctx is done are ignored.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	type answer struct {
		m    *Member
		term uint64
	}
	members := c.Members()
	answers := make(chan answer, len(members))
	var errs []error
	var errsMu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		if !m.Running() {
			continue
		}
		wg.Go(func() {
			resp, err := m.status(ctx)
			if err != nil {
				errsMu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
				errsMu.Unlock()
				return
			}
			if resp.Leader != 0 && resp.Header.GetMemberId() == resp.Leader {
				answers <- answer{m: m, term: resp.RaftTerm}
			}
		})
	}
	wg.Wait()
	close(answers)
	var best *answer
	for a := range answers {
		if best == nil || a.term > best.term {
			best = &a
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no member reports itself as leader: %w", errors.Join(append(errs, ErrNoLeader)...))
	}
	return best.m, nil
}

// status asks this member alone for its maintenance status.
func (m *Member) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	cli, err := m.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx, m.DirectClientURL())
}

// Status asks this member alone, on a path no fault cuts, for its
// maintenance status (raft index, term, leader, member ID).
func (m *Member) Status(ctx context.Context) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, healthRequestTimeout)
	defer cancel()
	return m.status(ctx)
}

// ID returns the member's raft member ID.
func (m *Member) ID(ctx context.Context) (uint64, error) {
	resp, err := m.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("member ID of %s: %w", m.name, err)
	}
	return resp.Header.GetMemberId(), nil
}

// dial connects a client to this member alone, through its real listener:
// the harness's own checks take a path no fault cuts.
func (m *Member) dial(ctx context.Context) (*clientv3.Client, error) {
	return clientv3.New(WithRootCredentials(clientv3.Config{
		Endpoints:   []string{m.DirectClientURL()},
		DialTimeout: healthDialTimeout,
		Context:     ctx,
		Logger:      zap.NewNop(),
	}))
}

package failpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

// gofailPanics are the gofail points that, set to panic, crash a member at a
// spot where a crash has found bugs. The names are the // gofail: comments in
// etcd's server module; which exist depends on the release (Available checks
// the running binary).
var gofailPanics = []string{
	// raft loop, every release
	"raftBeforeSave", "raftAfterSave",
	"raftBeforeSaveSnap", "raftAfterSaveSnap",
	"raftBeforeLeaderSend", "raftBeforeFollowerSend",
	"raftBeforeApplySnap", "raftAfterApplySnap",
	"raftAfterWALRelease", "raftBeforeWALSaveSnaphot",
	// single-member save path, v3.5.5+ (the fix for etcd #14370)
	"raftBeforeSaveWaitWalSync",
	// backend commits, every release
	"beforeCommit", "afterCommit",
	// v3.5.12+
	"beforeApplyOneEntryNormal", "beforeWritebackBuf", "walBeforeSync", "walAfterSync",
}

func init() {
	for _, name := range gofailPanics {
		register(GofailPanic{Point: name})
	}
}

// GofailPanic makes a random member panic at a gofail point, waits for the
// process to exit, and restarts it.
type GofailPanic struct {
	Point string
	// TriggerTimeout is how long to wait for the point to be reached;
	// zero means 10s.
	TriggerTimeout time.Duration
}

// ErrNotTriggered means a gofail point was armed but never reached.
var ErrNotTriggered = errors.New("failpoint was not triggered")

// Name implements Failpoint.
func (f GofailPanic) Name() string { return f.Point }

// Available implements Failpoint: every member's binary must have the point.
func (f GofailPanic) Available(ctx context.Context, c *cluster.Cluster) error {
	for _, m := range c.Members() {
		points, err := gofailList(ctx, m)
		if err != nil {
			return err
		}
		if !slices.Contains(points, f.Point) {
			return fmt.Errorf("failpoint %s is not in the etcd binary of %s (%s); it has: %s",
				f.Point, m.Name(), m.EtcdPath(), strings.Join(points, ", "))
		}
	}
	return nil
}

// Inject implements Failpoint.
func (f GofailPanic) Inject(ctx context.Context, env Env) (string, error) {
	m := pickMember(env)
	timeout := f.TriggerTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	env.Logger.Info("arming gofail panic", zap.String("member", m.Name()), zap.String("failpoint", f.Point))
	if err := gofailSet(ctx, m, f.Point, "panic"); err != nil {
		return m.Name(), err
	}
	select {
	case <-m.Exited():
		env.Logger.Info("member panicked", zap.String("member", m.Name()), zap.String("failpoint", f.Point))
	case <-time.After(timeout):
		err := gofailClear(ctx, m, f.Point)
		return m.Name(), errors.Join(fmt.Errorf("%s on %s within %s: %w", f.Point, m.Name(), timeout, ErrNotTriggered), err)
	case <-ctx.Done():
		return m.Name(), ctx.Err()
	}
	return m.Name(), restart(ctx, m)
}

var gofailHTTP = &http.Client{Timeout: 5 * time.Second}

// gofailList returns the names of the gofail points a member's binary has.
func gofailList(ctx context.Context, m *cluster.Member) ([]string, error) {
	body, err := gofailDo(ctx, http.MethodGet, m.GofailURL()+"/", "")
	if err != nil {
		return nil, fmt.Errorf("listing gofail points of %s: %w", m.Name(), err)
	}
	var points []string
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if name, _, _ := strings.Cut(line, "="); name != "" {
			points = append(points, name)
		}
	}
	if len(points) == 0 {
		return nil, fmt.Errorf("the etcd binary of %s (%s) has no gofail points: was it built with failpoints enabled?", m.Name(), m.EtcdPath())
	}
	slices.Sort(points)
	return points, nil
}

// gofailSet sets a gofail point's action, e.g. "panic" or "sleep(100)".
func gofailSet(ctx context.Context, m *cluster.Member, point, action string) error {
	if _, err := gofailDo(ctx, http.MethodPut, m.GofailURL()+"/"+point, action); err != nil {
		return fmt.Errorf("setting %s=%s on %s: %w", point, action, m.Name(), err)
	}
	return nil
}

// gofailClear turns a gofail point off.
func gofailClear(ctx context.Context, m *cluster.Member, point string) error {
	if _, err := gofailDo(ctx, http.MethodDelete, m.GofailURL()+"/"+point, ""); err != nil {
		return fmt.Errorf("clearing %s on %s: %w", point, m.Name(), err)
	}
	return nil
}

func gofailDo(ctx context.Context, method, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := gofailHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

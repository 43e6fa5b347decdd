package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Health endpoints, as etcd serves them on every client URL.
//
// /livez and /readyz exist from etcd 3.6 on, and in the 3.5 releases they
// were backported to (3.5.35 has them, 3.5.4 and 3.5.7 answer 404):
//   - /livez runs one check, serializable_read: a local Range (keys only,
//     limit 1) on the member's own store. It says the process and its
//     store answer; it does not need a leader or a quorum.
//   - /readyz runs data_corruption (no CORRUPT alarm is active),
//     serializable_read, linearizable_read (a Range that waits for a
//     ReadIndex confirmed by a quorum, and for the member to apply up to
//     it) and non_learner. It says the member can serve linearizable
//     requests. The reads run under the HTTP request's own context, with
//     no timeout of etcd's own: on a member cut off from the quorum the
//     request hangs until the caller gives up (or etcd's ReadIndex gives
//     up with "request timed out"), so the probe's timeout is what ends
//     it.
//   - Both answer 200 "ok" or 503 with "[-]check failed: reason" lines.
//
// /health (every release; the only one before 3.5.11/3.6): 200 and
// {"health":"true"} only if no alarm is active (in 3.5 and later all
// alarms count, NOSPACE too), the member knows a raft leader, and a
// linearizable Range (keys only, limit 1) succeeds within etcd's request
// timeout (5 s + 2 × election timeout); 503 otherwise (read in 3.5.4,
// 3.5.7 and 3.5.35's etcdhttp). For 3.4 the module cache holds only an
// etcd snapshot of August 2020, the time of 3.4.12: there the last check
// is a v2 quorum GET proposed through raft with a 1 s timeout, and the
// answer has no "reason" field, as 3.4.12 answered here ({"health":"true"}
// and 503 {"health":"false"}). Either way /health, like /readyz, says the
// member can serve requests that need a quorum. /health?serializable=true
// (3.5 and later) skips the leader check and reads locally; the prober
// does not use it.
const (
	PathLivez  = "/livez"
	PathReadyz = "/readyz"
	PathHealth = "/health"
)

// Probing cadence.
const (
	// ProbeInterval is how often each endpoint of each member is polled.
	ProbeInterval = 250 * time.Millisecond
	// ProbeTimeout bounds one poll. A member that does not answer within
	// it (paused, or hung on a linearizable read it cannot complete) is
	// recorded with Status 0 and the timeout as Error.
	ProbeTimeout = time.Second
	// legacyRetry is how long a member whose /readyz answered 404 is polled
	// on /health before /readyz is tried again (a member may be restarted
	// on another release).
	legacyRetry = 5 * time.Second
	// probeBodyLimit caps the body kept per probe.
	probeBodyLimit = 512
)

// Prober polls every member's health endpoints on the member's real client
// listener (DirectClientURL, a path no fault cuts: the answer is the
// member's own, never a proxy's) and records every poll as a
// history.Probe. Each member's readiness (/readyz, or /health where
// /readyz is not served) and liveness (/livez) are polled by their own
// loops, every ProbeInterval, each poll bounded by ProbeTimeout
// (readiness polls overlap; a liveness poll waits for the one before).
// Members
// added while it runs are picked up within one interval.
type Prober struct {
	c      *Cluster
	now    func() time.Duration
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	probes  []history.Probe
	started map[string]bool
	stopped bool
}

// StartProber starts polling; now is the run's clock. Stop ends it. The
// prober stops by itself when ctx is done.
func (c *Cluster) StartProber(ctx context.Context, now func() time.Duration) *Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{
		c:       c,
		now:     now,
		cancel:  cancel,
		started: map[string]bool{},
		// No keep-alive: each poll opens its own connection, so a
		// connection left hanging by a paused member never delays the
		// next poll, and a restarted member is reached at once.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if c.sec != nil {
		// Over TLS, with the harness's client certificate.
		p.client.Transport.(*http.Transport).TLSClientConfig = c.sec.client.Clone()
	}
	p.wg.Go(func() { p.supervise(ctx) })
	return p
}

// Stop ends polling, waits for the polls in flight (each is bounded by
// ProbeTimeout) and returns every probe, in the order they returned.
func (p *Prober) Stop() []history.Probe {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	return append([]history.Probe(nil), p.probes...)
}

// supervise starts the loops of every member it has not seen yet.
func (p *Prober) supervise(ctx context.Context) {
	t := time.NewTicker(ProbeInterval)
	defer t.Stop()
	for {
		for _, m := range p.c.Members() {
			if p.started[m.Name()] {
				continue
			}
			p.started[m.Name()] = true
			p.wg.Go(func() { p.readiness(ctx, m) })
			p.wg.Go(func() { p.liveness(ctx, m) })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readiness polls /readyz, falling back to /health for legacyRetry when the
// member does not serve /readyz. Its polls overlap: a new one starts every
// ProbeInterval even while earlier ones wait for an answer (at most
// 2×ProbeTimeout/ProbeInterval at once), so a member that hangs on its
// readiness check is still asked every ProbeInterval.
func (p *Prober) readiness(ctx context.Context, m *Member) {
	var mu sync.Mutex
	var legacyUntil time.Time
	slots := make(chan struct{}, 2*int(ProbeTimeout/ProbeInterval))
	var wg sync.WaitGroup
	defer wg.Wait()
	p.every(ctx, m, func() {
		select {
		case slots <- struct{}{}:
		default:
			return // every slot waits for an answer already
		}
		wg.Go(func() {
			defer func() { <-slots }()
			mu.Lock()
			legacy := time.Now().Before(legacyUntil)
			mu.Unlock()
			if legacy {
				p.poll(ctx, m, PathHealth)
				return
			}
			if pr := p.poll(ctx, m, PathReadyz); !pr.Served() {
				mu.Lock()
				legacyUntil = time.Now().Add(legacyRetry)
				mu.Unlock()
				p.poll(ctx, m, PathHealth)
			}
		})
	})
}

// liveness polls /livez; a member that does not serve it is asked again
// only every legacyRetry.
func (p *Prober) liveness(ctx context.Context, m *Member) {
	var skipUntil time.Time
	p.every(ctx, m, func() {
		if time.Now().Before(skipUntil) {
			return
		}
		if pr := p.poll(ctx, m, PathLivez); !pr.Served() {
			skipUntil = time.Now().Add(legacyRetry)
		}
	})
}

// every runs f every ProbeInterval (or as soon as the previous run ended,
// if it took longer) until ctx is done or m leaves the cluster.
func (p *Prober) every(ctx context.Context, m *Member, f func()) {
	t := time.NewTicker(ProbeInterval)
	defer t.Stop()
	for {
		if !p.isMember(m) {
			return
		}
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Prober) isMember(m *Member) bool {
	for _, x := range p.c.Members() {
		if x == m {
			return true
		}
	}
	return false
}

// poll sends one GET to the member's endpoint and records it. A poll cut
// short because the prober stopped is not recorded: it says nothing about
// the member.
func (p *Prober) poll(ctx context.Context, m *Member, path string) history.Probe {
	pr := history.Probe{Member: m.Name(), Endpoint: path, MemberID: p.c.network.memberID(m.Name())}
	before := p.c.faultOf(m)
	pr.Call = p.now()
	status, body, err := p.get(ctx, m.DirectClientURL()+path)
	pr.Return = p.now()
	after := p.c.faultOf(m)
	if ctx.Err() != nil {
		return pr
	}
	pr.Status, pr.Body = status, body
	if err != nil {
		pr.Error = err.Error()
	}
	pr.Fault = before
	if after != before {
		pr.Fault = history.FaultChanging
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.probes = append(p.probes, pr)
	}
	return pr
}

// get is one bounded GET: the status, the body (trimmed, capped) and the
// error of a poll that got no answer.
func (p *Prober) get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", fmt.Errorf("no answer within %v", ProbeTimeout)
		}
		return 0, "", shortNetErr(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, probeBodyLimit))
	if err != nil {
		return resp.StatusCode, strings.TrimSpace(string(b)), fmt.Errorf("reading the answer: %w", shortNetErr(err))
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// shortNetErr drops the URL from a net/http error: the probe names the
// member and endpoint already.
func shortNetErr(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil && strings.HasPrefix(err.Error(), "Get ") {
			return inner
		}
	}
	return err
}

// faultOf is what the harness has done to m right now (a history.Fault*
// value): its process down or paused, or its peer links cut so that it
// cannot reach a majority of the members.
func (c *Cluster) faultOf(m *Member) string {
	switch {
	case !m.Running():
		return history.FaultDown
	case m.Paused():
		return history.FaultPaused
	}
	var names []string
	for _, x := range c.Members() {
		names = append(names, x.Name())
	}
	if !c.network.inMajority(m.Name(), names) {
		return history.FaultMinority
	}
	return history.FaultNone
}

// inMajority reports whether member, following only peer links that are
// not cut in either direction, reaches more than half of members (itself
// included).
func (n *Network) inMajority(member string, members []string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	open := func(a, b string) bool {
		for _, l := range []Link{{From: a, To: b}, {From: b, To: a}} {
			p, ok := n.links[l.To][l.From]
			if !ok || p.held() {
				return false
			}
		}
		return true
	}
	seen := map[string]bool{member: true}
	queue := []string{member}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		for _, b := range members {
			if !seen[b] && open(a, b) {
				seen[b] = true
				queue = append(queue, b)
			}
		}
	}
	return 2*len(seen) > len(members)
}

// memberID is the raft ID the network knows for member, 0 if none.
func (n *Network) memberID(member string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	for hex, name := range n.ids {
		if name == member {
			var id uint64
			if _, err := fmt.Sscanf(hex, "%x", &id); err == nil {
				return id
			}
		}
	}
	return 0
}

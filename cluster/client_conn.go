package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
)

// The recording clients run in the harness's process, as do the client
// proxies in front of the members. A client connection through a proxy
// costs two TCP hops and the proxy's reads and writes for every message,
// which at 2,000 requests a second was a fifth of the harness's CPU.
// DialClient spares that hop: a client of this process that dials a client
// proxy's address is connected straight to the member's client listener,
// and the connection applies that proxy's faults itself, to each chunk it
// reads and before each write, as the proxy would to the same bytes. The
// proxy keeps listening for anyone else (etcdctl, another process), and a
// client-side partition, a reset and the proxy's close act on both kinds
// of connection alike.

var (
	inProcessMu sync.Mutex
	inProcess   = map[string]*faultProxy{} // client proxy address → proxy
)

// serveInProcess makes p's address one DialClient connects in process.
func (p *faultProxy) serveInProcess() {
	inProcessMu.Lock()
	defer inProcessMu.Unlock()
	inProcess[p.addr] = p
}

func (p *faultProxy) stopInProcess() {
	inProcessMu.Lock()
	defer inProcessMu.Unlock()
	if inProcess[p.addr] == p {
		delete(inProcess, p.addr)
	}
}

// DialClient dials addr (host:port) for a client in this process: a client
// proxy of a cluster of this process is connected in process, as above;
// any other address is dialed as it is. It has the signature of gRPC's
// WithContextDialer.
func DialClient(ctx context.Context, addr string) (net.Conn, error) {
	inProcessMu.Lock()
	p := inProcess[addr]
	inProcessMu.Unlock()
	if p == nil {
		network := "tcp"
		if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
			network, addr = "unix", strings.TrimPrefix(rest, "//")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return p.dialInProcess(ctx)
}

func (p *faultProxy) dialInProcess(ctx context.Context) (net.Conn, error) {
	if !p.track() {
		return nil, fmt.Errorf("dial %s: %w", p.addr, net.ErrClosed)
	}
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// A held proxy still accepts and dials its target; so does this.
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.to)
	if err != nil {
		return nil, fmt.Errorf("dial %s (in process, to %s): %w", p.addr, p.to, err)
	}
	c := &pipe{in: conn, out: conn, done: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.close()
		return nil, fmt.Errorf("dial %s: %w", p.addr, net.ErrClosed)
	}
	p.pipes[c] = struct{}{}
	return &gatedConn{Conn: conn, p: p, c: c}, nil
}

// gatedConn is an in-process client connection under a proxy's faults.
// With no fault set, each Read and Write costs one atomic load more than
// the plain connection.
type gatedConn struct {
	net.Conn
	p *faultProxy
	c *pipe
}

// Read reads a chunk and, under a fault, lets it through only as the
// proxy would: late, or once the hold is lifted.
func (g *gatedConn) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if n > 0 && g.p.faulted.Load() && !g.p.await(g.c) {
		return 0, net.ErrClosed
	}
	return n, err
}

// Write writes b once the proxy's faults let it.
func (g *gatedConn) Write(b []byte) (int, error) {
	if g.p.faulted.Load() && !g.p.await(g.c) {
		return 0, net.ErrClosed
	}
	return g.Conn.Write(b)
}

// Close closes the connection and forgets it.
func (g *gatedConn) Close() error {
	g.p.mu.Lock()
	delete(g.p.pipes, g.c)
	g.p.mu.Unlock()
	g.c.close()
	return nil
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// faultProxy forwards every TCP connection it is given to one address and
// applies one link's faults to the bytes, in both directions. A link is
// fed by its own listener and, without a TCP hop, by a member's peer
// demultiplexer (serve).
//
// Two paths carry the bytes:
//   - the fast path, while the link has no fault: each direction is one
//     io.Copy between the two *net.TCPConn, which Linux does with
//     splice(2), so no per-chunk code of ours runs and the bytes never
//     reach user space;
//   - the slow path, while a fault is set: chunk by chunk (a read of up to
//     chunkSize bytes), each one delayed or held before it is written.
//
// Setting a fault moves every fast copy to the slow path: it puts the
// copy's source read deadline in the past, and waits until the copy has
// left the fast path. A splice (and a plain read) that is woken by its
// deadline has read nothing, and what a copy read before is written in
// full before it looks at the deadline again, so no byte is lost,
// duplicated or reordered on the switch. Bytes that reach the proxy after
// the fault is set are forwarded under it: a copy woken by its deadline
// may still find data that came in meanwhile and forward it, which is why
// setting a fault waits. A slow copy goes back to the fast path once it has
// forwarded a chunk with no fault set.
//
// pkg/v3/proxy carried these links before. It copies in user space and
// builds its debug fields (two humanized sizes, two formatted URLs) for
// every chunk even with debug logging off; pprof put a third of the
// harness's CPU in its copy loop at 2,000 requests a second. It also
// listens on every interface, where the harness keeps to 127.0.0.1.
type faultProxy struct {
	lg   *zap.Logger
	addr string // where ln listens (host:port)
	to   string // the address every connection is forwarded to
	ln   net.Listener

	ctx    context.Context // cancelled by close; bounds the dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every serve

	// faulted is !f.none(), for the in-process client connections
	// (client_conn.go) to check without the lock.
	faulted atomic.Bool

	mu     sync.Mutex
	closed bool
	f      faults
	// changed is closed, and replaced, whenever f changes: a chunk held
	// by the slow path waits on it.
	changed chan struct{}
	// fast holds the source of every copy on the fast path, and a channel
	// the copy closes when it leaves it.
	fast  map[net.Conn]chan struct{}
	pipes map[*pipe]struct{}
}

// faults is what a link does to each chunk, in this order (that of
// pkg/v3/proxy, which carried the links before): a lost chunk waits rto
// (TCP resends it), a held chunk waits until the hold is lifted, then
// every chunk waits latency ± jitter, drawn anew for each chunk.
type faults struct {
	hold            bool
	latency, jitter time.Duration
	lose            func() bool // whether this chunk is lost once; nil: none is
	rto             time.Duration
}

func (f faults) none() bool { return !f.hold && f.latency <= 0 && f.lose == nil }

// chunkSize is the slow path's read size: pkg/v3/proxy's default buffer,
// so that a per-chunk fault acts on chunks of the size it did.
const chunkSize = 48 << 10

// dialTimeout bounds a proxy's dial to its target.
const dialTimeout = 5 * time.Second

// aLongTimeAgo is a read deadline that has passed: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// switchTimeout bounds how long setting a fault waits for the fast copies
// to leave the fast path. Only a copy whose destination does not read (a
// stopped member) takes long: it is writing what it read before the fault.
const switchTimeout = time.Second

// newFaultProxy listens on addr and forwards to to.
func newFaultProxy(lg *zap.Logger, addr, to string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s→%s: %w", addr, to, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &faultProxy{
		lg: lg, addr: addr, to: to, ln: ln, ctx: ctx, cancel: cancel,
		changed: make(chan struct{}),
		fast:    map[net.Conn]chan struct{}{},
		pipes:   map[*pipe]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A passing error (out of file descriptors): try again soon.
			p.lg.Warn("proxy accept", zap.String("addr", p.addr), zap.Error(err))
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if !p.track() {
			_ = c.Close()
			return
		}
		go func() {
			defer p.wg.Done()
			p.forwardConn(c, nil)
		}()
	}
}

// track counts one more goroutine that close waits for, unless the proxy
// is closed.
func (p *faultProxy) track() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// pipe is one forwarded connection: in was accepted, out was dialed.
type pipe struct {
	in, out net.Conn
	done    chan struct{} // closed by close
	once    sync.Once
}

func (c *pipe) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.in.Close()
		_ = c.out.Close()
	})
}

// serve forwards in until either side ends it, the link is reset, or the
// proxy closes; it closes in. prefix goes to the target before anything
// read from in, under the link's faults like every other byte (the
// demultiplexer has read it already).
func (p *faultProxy) serve(in net.Conn, prefix []byte) {
	if !p.track() {
		_ = in.Close()
		return
	}
	defer p.wg.Done()
	p.forwardConn(in, prefix)
}

func (p *faultProxy) forwardConn(in net.Conn, prefix []byte) {
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	out, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.to)
	cancel()
	if err != nil {
		_ = in.Close()
		return
	}
	c := &pipe{in: in, out: out, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.pipes[c] = struct{}{}
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.forward(in, out, nil, c)
	}()
	p.forward(out, in, prefix, c)
	<-done
	p.mu.Lock()
	delete(p.pipes, c)
	p.mu.Unlock()
}

// forward copies src to dst until src ends or fails, then closes both
// sides of the pipe (as pkg/v3/proxy did: no half-closed connections).
func (p *faultProxy) forward(dst, src net.Conn, prefix []byte, c *pipe) {
	defer c.close()
	if len(prefix) > 0 && !p.pass(dst, prefix, c) {
		return
	}
	var buf []byte
	for {
		if left, ok := p.enterFast(src); ok {
			_, err := io.Copy(dst, src)
			p.leaveFast(src, left)
			// A nil error is the end of src; only a deadline, which a
			// fault set, sends the copy to the slow path.
			if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			continue
		}
		if buf == nil {
			buf = make([]byte, chunkSize)
		}
		n, err := src.Read(buf)
		if n > 0 && !p.pass(dst, buf[:n], c) {
			return
		}
		if err != nil {
			return
		}
	}
}

// enterFast registers src's copy on the fast path, if the link has no
// fault; a fault set from then on wakes it.
func (p *faultProxy) enterFast(src net.Conn) (left chan struct{}, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.f.none() {
		return nil, false
	}
	left = make(chan struct{})
	p.fast[src] = left
	return left, true
}

// leaveFast unregisters src's copy and clears the deadline that woke it.
// Both happen under the lock a fault is set under, so a later fault
// cannot find the copy gone from the fast path with its deadline cleared.
func (p *faultProxy) leaveFast(src net.Conn, left chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.fast, src)
	_ = src.SetReadDeadline(time.Time{})
	close(left)
}

// pass writes one chunk under the link's faults. It returns false if the
// chunk was not written: the pipe was closed (a reset, the proxy's close)
// or the write failed.
func (p *faultProxy) pass(dst net.Conn, b []byte, c *pipe) bool {
	if !p.await(c) {
		return false
	}
	_, err := dst.Write(b)
	return err == nil
}

// await applies the link's faults to one chunk: it returns when the chunk
// may go on, or false if the pipe was closed first.
func (p *faultProxy) await(c *pipe) bool {
	f, _ := p.faults()
	if f.lose != nil && f.lose() && !wait(f.rto, c.done) {
		return false
	}
	for {
		var changed <-chan struct{}
		f, changed = p.faults()
		if !f.hold {
			break
		}
		select {
		case <-changed:
		case <-c.done:
			return false
		}
	}
	return f.latency <= 0 || wait(jittered(f.latency, f.jitter), c.done)
}

func (p *faultProxy) faults() (faults, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f, p.changed
}

// jittered is latency ± jitter, uniformly drawn; jitter is at most latency.
func jittered(latency, jitter time.Duration) time.Duration {
	jitter = min(max(jitter, -jitter), latency)
	if jitter == 0 {
		return latency
	}
	return latency - jitter + rand.N(2*jitter+1)
}

// wait sleeps d, or less if done closes first; it reports whether it
// slept the whole d.
func wait(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// set changes the link's faults. If the link has a fault afterwards,
// every copy on the fast path is woken to take the slow one, and set
// returns once they all have (or after switchTimeout).
func (p *faultProxy) set(update func(*faults)) {
	p.mu.Lock()
	waits := p.setLocked(update)
	p.mu.Unlock()
	p.awaitSlow(waits)
}

// setLocked changes the faults and wakes the fast copies; it returns what
// to wait on for them to leave the fast path.
func (p *faultProxy) setLocked(update func(*faults)) []chan struct{} {
	update(&p.f)
	p.faulted.Store(!p.f.none())
	close(p.changed)
	p.changed = make(chan struct{})
	if p.f.none() {
		return nil
	}
	waits := make([]chan struct{}, 0, len(p.fast))
	for src, left := range p.fast {
		_ = src.SetReadDeadline(aLongTimeAgo)
		waits = append(waits, left)
	}
	return waits
}

func (p *faultProxy) awaitSlow(waits []chan struct{}) {
	if len(waits) == 0 {
		return
	}
	t := time.NewTimer(switchTimeout)
	defer t.Stop()
	for _, left := range waits {
		select {
		case <-left:
		case <-t.C:
			p.lg.Warn("a copy is still on the fast path after the fault was set; its destination does not read",
				zap.String("proxy", p.addr), zap.String("to", p.to), zap.Duration("waited", switchTimeout))
			return
		}
	}
}

// held reports whether the link holds its bytes.
func (p *faultProxy) held() bool {
	f, _ := p.faults()
	return f.hold
}

// release lifts the hold. With reset, every connection the link carries
// is closed first, in the same step, so none of the bytes it held reaches
// the other side.
func (p *faultProxy) release(reset bool) {
	p.mu.Lock()
	if !p.f.hold {
		p.mu.Unlock()
		return
	}
	if reset {
		for c := range p.pipes {
			c.close()
		}
	}
	waits := p.setLocked(func(f *faults) { f.hold = false })
	p.mu.Unlock()
	p.awaitSlow(waits)
}

// close stops the listener, closes every connection and waits for every
// goroutine of the proxy.
func (p *faultProxy) close() error {
	p.stopInProcess()
	p.mu.Lock()
	p.closed = true
	pipes := make([]*pipe, 0, len(p.pipes))
	for c := range p.pipes {
		pipes = append(pipes, c)
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range pipes {
		c.close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

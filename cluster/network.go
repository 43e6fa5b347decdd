package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Network is the fault proxy that carries the cluster's traffic.
//
// Every member advertises addresses that belong to the harness:
//   - its client URL is a fault proxy (faultProxy, proxy.go) in front of
//     the member's real client listener (client-side partitions cut it);
//   - its peer URL is a small demultiplexer. Each peer connection starts with
//     an HTTP request, and raft's requests name their sender in the
//     X-Server-From header; the demultiplexer reads that header and hands the
//     connection, in the process, to the fault proxy of that one link
//     (sender → receiver), which dials the receiver's real peer listener.
//     Connections that name no sender (version and health probes) go to the
//     receiver's "unknown sender" link. Under peer TLS (Config.TLS) the
//     header is encrypted and the proxies do not terminate TLS: the
//     demultiplexer tells the sender by the member process that dialed the
//     connection instead (dialerOf, from /proc), and forwards every byte
//     as it came.
//
// A proxy only on each member's advertised port would not isolate a member,
// because a member also dials out to its peers (etcd #17737); with one proxy
// per directed link, cutting a link in both directions cuts every
// connection between the two members, whoever dialed it.
//
// The harness's own health checks, leader look-ups and fault triggers dial
// the members' real listeners, which no fault cuts.
type Network struct {
	lg *zap.Logger

	mu      sync.Mutex
	closed  bool
	clients map[string]*faultProxy            // member name → client proxy
	demux   map[string]*demux                 // member name → peer demultiplexer
	links   map[string]map[string]*faultProxy // receiver → sender ("" = unknown) → link proxy
	ids     map[string]string                 // raft member ID (hex) → member name
	listen  map[string]string                 // member name → real peer listen URL
	members map[string]*Member                // member name → member
	// bySender makes the demultiplexers tell a connection's sender by the
	// process that dialed it rather than by its first request's header:
	// under peer TLS the header is encrypted, and the proxies forward
	// bytes without terminating TLS.
	bySender bool
	// ports were allocated together with the members' ports, so that no
	// link proxy takes a port a member has not bound yet. Each link proxy
	// also listens on its own port, so a link can be dialed directly (the
	// tests do); the demultiplexers hand it connections without that hop.
	ports []int
}

func newNetwork(lg *zap.Logger) *Network {
	return &Network{
		lg:      lg,
		clients: map[string]*faultProxy{},
		demux:   map[string]*demux{},
		links:   map[string]map[string]*faultProxy{},
		ids:     map[string]string{},
		listen:  map[string]string{},
		members: map[string]*Member{},
	}
}

// UnknownSender is the sender name of peer connections that do not say who
// sent them.
const UnknownSender = ""

// harnessSender names the harness's own process among a demultiplexer's
// dialers; no member is named so (member names are member-N).
const harnessSender = "(the harness)"

// addMember starts the proxies of a member: its client proxy (advertise →
// listen), its peer demultiplexer on the advertised peer address, and one
// link proxy per existing member in each direction.
func (n *Network) addMember(m *Member) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	cs, err := newFaultProxy(n.lg, hostPort(m.clientAdvertise), hostPort(m.clientListen))
	if err != nil {
		return fmt.Errorf("client proxy of %s: %w", m.name, err)
	}
	cs.serveInProcess()
	n.clients[m.name] = cs
	n.listen[m.name] = m.peerListen
	n.members[m.name] = m
	n.links[m.name] = map[string]*faultProxy{}
	// Links into the new member, from every member (itself excluded) and from unknown senders.
	senders := []string{UnknownSender}
	for other := range n.listen {
		if other != m.name {
			senders = append(senders, other)
		}
	}
	for _, from := range senders {
		if err := n.addLinkLocked(from, m.name); err != nil {
			return err
		}
		if from != UnknownSender {
			if err := n.addLinkLocked(m.name, from); err != nil {
				return err
			}
		}
	}
	d, err := newDemux(n, m.name, hostPort(m.peerAdvertise))
	if err != nil {
		return fmt.Errorf("peer proxy of %s: %w", m.name, err)
	}
	n.demux[m.name] = d
	return nil
}

// linkPorts is how many link proxies a cluster of size members has: one
// per ordered pair and one unknown-sender link per member.
func linkPorts(size int) int { return size * size }

func (n *Network) addLinkLocked(from, to string) error {
	if len(n.ports) == 0 {
		ports, err := allocatePorts(1)
		if err != nil {
			return err
		}
		n.ports = ports
	}
	port := n.ports[0]
	n.ports = n.ports[1:]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := newFaultProxy(n.lg, addr, hostPort(n.listen[to]))
	if err != nil {
		return fmt.Errorf("link proxy %s→%s: %w", senderName(from), to, err)
	}
	n.links[to][from] = p
	return nil
}

// setMemberID tells the network which raft member ID a member has, so that
// its peer requests can be attributed to it.
func (n *Network) setMemberID(id uint64, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids[fmt.Sprintf("%x", id)] = name
}

// linkFor is the link proxy the demultiplexer of receiver hands a
// connection whose X-Server-From is fromID.
func (n *Network) linkFor(fromID, receiver string) (*faultProxy, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	from, ok := n.ids[fromID]
	if !ok {
		from = UnknownSender
	}
	return n.linkFromLocked(from, receiver)
}

// linkFrom is the link proxy of the connections sender (a member name, or
// UnknownSender) dials to receiver.
func (n *Network) linkFrom(sender, receiver string) (*faultProxy, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkFromLocked(sender, receiver)
}

func (n *Network) linkFromLocked(from, receiver string) (*faultProxy, bool) {
	l, ok := n.links[receiver][from]
	if !ok {
		l, ok = n.links[receiver][UnknownSender]
	}
	return l, ok
}

// Link is one direction of peer traffic between two members: the
// connections From dialed to To. Both directions of a raft link carry data
// both ways, so a partition between A and B names Link{A, B} and Link{B, A}.
type Link struct{ From, To string }

// Links returns every directed link touching member, in both directions,
// including the member's unknown-sender link.
func (n *Network) Links(member string) []Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Link
	for to, froms := range n.links {
		for from := range froms {
			if to == member || from == member {
				out = append(out, Link{From: from, To: to})
			}
		}
	}
	sortLinks(out)
	return out
}

// LinksBetween returns the directed links between the two groups, both ways.
func (n *Network) LinksBetween(a, b []string) []Link {
	var out []Link
	for _, x := range a {
		for _, y := range b {
			if x != y {
				out = append(out, Link{From: x, To: y}, Link{From: y, To: x})
			}
		}
	}
	sortLinks(out)
	return out
}

func sortLinks(ls []Link) {
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].To != ls[j].To {
			return ls[i].To < ls[j].To
		}
		return ls[i].From < ls[j].From
	})
}

func (n *Network) link(l Link) (*faultProxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.links[l.To][l.From]
	if !ok {
		return nil, fmt.Errorf("no link %s→%s", senderName(l.From), l.To)
	}
	return p, nil
}

// Blackhole cuts the links: no byte passes, in either direction of any
// connection on them, old or new, until Unblackhole. Connections stay
// open, as in a real partition, and etcd notices by its own timeouts.
//
// The proxy holds the bytes rather than dropping them: raft's streams have
// no checksums, so a stream with bytes missing in the middle decodes into
// garbage messages, which no real network delivers (TCP resends what it
// loses).
func (n *Network) Blackhole(links ...Link) error {
	return n.each(links, func(p *faultProxy) { p.set(func(f *faults) { f.hold = true }) })
}

// Unblackhole heals the links. The connections that were cut are reset
// first, as TCP gives up on a connection whose packets were lost for long,
// so what they held is lost and etcd dials again; new connections pass.
// (Released instead, the held bytes would reach the peer intact and late,
// and a follower would never fall behind the leader's compacted log.)
// Only a link that is cut is reset: healing twice must not break the
// connections made since the first heal.
func (n *Network) Unblackhole(links ...Link) error {
	return n.each(links, func(p *faultProxy) { p.release(true) })
}

// Delay adds latency ± jitter (uniformly random, drawn for each chunk) to
// every chunk read on the links, in both directions. A latency of zero or
// less changes nothing (as with pkg/v3/proxy).
func (n *Network) Delay(latency, jitter time.Duration, links ...Link) error {
	if latency <= 0 {
		return n.each(links, func(*faultProxy) {})
	}
	return n.each(links, func(p *faultProxy) {
		p.set(func(f *faults) { f.latency, f.jitter = latency, jitter })
	})
}

// Undelay removes the latency.
func (n *Network) Undelay(links ...Link) error {
	return n.each(links, func(p *faultProxy) { p.set(func(f *faults) { f.latency, f.jitter = 0, 0 }) })
}

// Retransmit models a share (0..1) of lost packets on the links, in both
// directions. TCP resends a lost packet after a retransmission timeout,
// so a lost chunk arrives late but intact: each chunk the proxy reads is,
// with probability share, held for rto before it is forwarded. (Dropping
// the bytes instead would corrupt the stream, which TCP never does.) One
// source of randomness, seeded with seed, decides for all the links.
func (n *Network) Retransmit(share float64, rto time.Duration, seed int64, links ...Link) error {
	var mu sync.Mutex
	r := rand.New(rand.NewSource(seed))
	lose := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64() < share
	}
	return n.each(links, func(p *faultProxy) { p.set(func(f *faults) { f.lose, f.rto = lose, rto }) })
}

// Unretransmit stops Retransmit.
func (n *Network) Unretransmit(links ...Link) error {
	return n.each(links, func(p *faultProxy) { p.set(func(f *faults) { f.lose, f.rto = nil, 0 }) })
}

// BlackholeClient cuts the member's client proxy (traffic clients dial it;
// the harness's own checks do not), as Blackhole cuts a link.
func (n *Network) BlackholeClient(member string) error {
	s, err := n.client(member)
	if err != nil {
		return err
	}
	s.set(func(f *faults) { f.hold = true })
	return nil
}

// UnblackholeClient heals BlackholeClient.
func (n *Network) UnblackholeClient(member string) error {
	s, err := n.client(member)
	if err != nil {
		return err
	}
	s.release(false)
	return nil
}

func (n *Network) client(member string) (*faultProxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.clients[member]
	if !ok {
		return nil, fmt.Errorf("no client proxy for %s", member)
	}
	return s, nil
}

// Heal removes every fault from every proxy. It is the last word of every
// network fault, and Close runs it too. It resets no connection.
func (n *Network) Heal() {
	for _, p := range n.proxies() {
		p.set(func(f *faults) { *f = faults{} })
	}
}

// proxies is every client and link proxy.
func (n *Network) proxies() []*faultProxy {
	n.mu.Lock()
	defer n.mu.Unlock()
	var all []*faultProxy
	for _, s := range n.clients {
		all = append(all, s)
	}
	for _, froms := range n.links {
		for _, l := range froms {
			all = append(all, l)
		}
	}
	return all
}

func (n *Network) each(links []Link, f func(*faultProxy)) error {
	var errs []error
	for _, l := range links {
		s, err := n.link(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f(s)
	}
	return errors.Join(errs...)
}

// close stops every demultiplexer and proxy, and waits for their
// goroutines.
func (n *Network) close() error {
	n.mu.Lock()
	n.closed = true
	demuxes := make([]*demux, 0, len(n.demux))
	for _, d := range n.demux {
		demuxes = append(demuxes, d)
	}
	n.mu.Unlock()
	for _, d := range demuxes {
		d.close()
	}
	var errs []error
	for _, s := range n.proxies() {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }

func senderName(from string) string {
	if from == UnknownSender {
		return "(unknown sender)"
	}
	return from
}

func hostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// demux listens on a member's advertised peer address and hands each
// connection to the link proxy of its sender.
type demux struct {
	n        *Network
	receiver string
	ln       net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{} // nil once closed
	wg    sync.WaitGroup
}

// headerTimeout bounds the wait for a peer connection's first request head.
const headerTimeout = 5 * time.Second

func newDemux(n *Network, receiver, addr string) (*demux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	d := &demux{n: n, receiver: receiver, ln: ln, conns: map[net.Conn]struct{}{}}
	d.wg.Add(1)
	go d.serve()
	return d, nil
}

func (d *demux) serve() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		if !d.track(c) {
			c.Close()
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer d.untrack(c)
			d.handle(c)
		}()
	}
}

func (d *demux) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return false
	}
	d.conns[c] = struct{}{}
	return true
}

func (d *demux) untrack(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns, c)
	c.Close()
}

// handle reads the first request head, picks the link and hands the
// connection to it, with what was read so far.
func (d *demux) handle(in net.Conn) {
	if d.n.bySender {
		d.handleBySender(in)
		return
	}
	_ = in.SetReadDeadline(time.Now().Add(headerTimeout))
	br := bufio.NewReaderSize(in, 16<<10)
	var head bytes.Buffer
	from := ""
	req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(br, &head)))
	parsed := err == nil
	if parsed {
		from = req.Header.Get("X-Server-From")
	}
	_ = in.SetReadDeadline(time.Time{})
	link, ok := d.n.linkFor(from, d.receiver)
	if !ok {
		return
	}
	// What the header parser read (the head, and maybe more) goes first,
	// then what br holds beyond it; after that the link reads in itself.
	first := head.Bytes()
	if parsed && from == "" {
		first = closeAfter(first)
	}
	rest, _ := br.Peek(br.Buffered())
	link.serve(in, append(first, rest...))
}

// handleBySender hands the connection to the link of the member whose
// etcd process dialed it (dialerOf), reading nothing: under peer TLS
// every byte is the TLS stream's, forwarded as it is. One the harness
// itself dialed, or whose dialer had already closed it (it can send
// nothing more), goes to the unknown-sender link. One that could not be
// told (no member's process and not the harness, or no /proc) is closed,
// and logged: on the unknown-sender link it could carry a member's raft
// messages past a partition of that member, and etcd dials again.
func (d *demux) handleBySender(in net.Conn) {
	d.n.mu.Lock()
	members := make([]*Member, 0, len(d.n.members))
	for _, m := range d.n.members {
		members = append(members, m)
	}
	d.n.mu.Unlock()
	pids := map[int]string{}
	for _, m := range members {
		if _, pid, _, ok := m.current(); ok {
			pids[pid] = m.name
		}
	}
	pids[os.Getpid()] = harnessSender
	from, found, closed := dialerOf(in, pids)
	switch {
	case closed:
		// Its dialer can send nothing more: what it sent goes through.
		from = UnknownSender
	case !found:
		d.n.lg.Warn("peer connection from no member's process: closed, so that it cannot pass a partition",
			zap.String("receiver", d.receiver), zap.String("from", in.RemoteAddr().String()))
		_ = in.Close()
		return
	case from == harnessSender:
		from = UnknownSender
	}
	link, ok := d.n.linkFrom(from, d.receiver)
	if !ok {
		return
	}
	link.serve(in, nil)
}

// closeAfter asks etcd to close a connection after its first request, for
// a request that does not name its sender (a health probe, a version
// check). etcd's peer transport reuses idle connections for raft messages,
// so a connection that began with a probe could otherwise carry one
// member's raft messages on the unknown-sender link, past a partition.
// The header goes right after the request line, so it is the first
// Connection header.
func closeAfter(head []byte) []byte {
	i := bytes.Index(head, []byte("\r\n"))
	if i < 0 {
		return head
	}
	out := make([]byte, 0, len(head)+19)
	out = append(out, head[:i+2]...)
	out = append(out, "Connection: close\r\n"...)
	return append(out, head[i+2:]...)
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func (d *demux) close() {
	_ = d.ln.Close()
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	d.wg.Wait()
}

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
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
)

// Network is the fault proxy that carries the cluster's traffic.
//
// Every member advertises addresses that belong to the harness:
//   - its client URL is a pkg/v3/proxy server in front of the member's real
//     client listener (client-side partitions cut it);
//   - its peer URL is a small demultiplexer. Each peer connection starts with
//     an HTTP request, and raft's requests name their sender in the
//     X-Server-From header; the demultiplexer reads that header and hands the
//     connection to the pkg/v3/proxy server of that one link (sender →
//     receiver). Connections that name no sender (version and health probes)
//     go to the receiver's "unknown sender" link.
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
	clients map[string]proxy.Server          // member name → client proxy
	demux   map[string]*demux                // member name → peer demultiplexer
	links   map[string]map[string]*linkProxy // receiver → sender ("" = unknown) → proxy
	ids     map[string]string                // raft member ID (hex) → member name
	listen  map[string]string                // member name → real peer listen URL
	cut     map[proxy.Server]bool            // proxies whose traffic is held (Blackhole)
	// ports were allocated together with the members' ports, so that no
	// link proxy takes a port a member has not bound yet.
	ports []int
}

// linkProxy carries the connections one sender dialed to one receiver.
type linkProxy struct {
	srv  proxy.Server
	addr string // host:port the proxy listens on
}

func newNetwork(lg *zap.Logger) *Network {
	return &Network{
		lg:      lg,
		clients: map[string]proxy.Server{},
		demux:   map[string]*demux{},
		links:   map[string]map[string]*linkProxy{},
		ids:     map[string]string{},
		listen:  map[string]string{},
		cut:     map[proxy.Server]bool{},
	}
}

// UnknownSender is the sender name of peer connections that do not say who
// sent them.
const UnknownSender = ""

// addMember starts the proxies of a member: its client proxy (advertise →
// listen), its peer demultiplexer on the advertised peer address, and one
// link proxy per existing member in each direction.
func (n *Network) addMember(m *Member) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	cs, err := startProxy(n.lg, hostPort(m.clientAdvertise), hostPort(m.clientListen))
	if err != nil {
		return fmt.Errorf("client proxy of %s: %w", m.name, err)
	}
	n.clients[m.name] = cs
	n.listen[m.name] = m.peerListen
	n.links[m.name] = map[string]*linkProxy{}
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
	srv, err := startProxy(n.lg, addr, hostPort(n.listen[to]))
	if err != nil {
		return fmt.Errorf("link proxy %s→%s: %w", senderName(from), to, err)
	}
	n.links[to][from] = &linkProxy{srv: srv, addr: addr}
	return nil
}

// setMemberID tells the network which raft member ID a member has, so that
// its peer requests can be attributed to it.
func (n *Network) setMemberID(id uint64, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids[fmt.Sprintf("%x", id)] = name
}

// linkAddr is where the demultiplexer of receiver sends a connection whose
// X-Server-From is fromID.
func (n *Network) linkAddr(fromID, receiver string) (addr, from string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	from, ok = n.ids[fromID]
	if !ok {
		from = UnknownSender
	}
	l, ok := n.links[receiver][from]
	if !ok {
		from = UnknownSender
		l, ok = n.links[receiver][UnknownSender]
	}
	if !ok {
		return "", "", false
	}
	return l.addr, from, true
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

func (n *Network) link(l Link) (proxy.Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.links[l.To][l.From]
	if !ok {
		return nil, fmt.Errorf("no link %s→%s", senderName(l.From), l.To)
	}
	return p.srv, nil
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
	return n.each(links, n.hold)
}

// Unblackhole heals the links. The connections that were cut are reset
// first, as TCP gives up on a connection whose packets were lost for long,
// so what they held is lost and etcd dials again; new connections pass.
// (Released instead, the held bytes would reach the peer intact and late,
// and a follower would never fall behind the leader's compacted log.)
func (n *Network) Unblackhole(links ...Link) error {
	var errs []error
	for _, l := range links {
		s, err := n.link(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.mu.Lock()
		// Only a link that is cut is reset: healing twice must not break
		// the connections made since the first heal.
		if n.cut[s] {
			if d, ok := n.demux[l.To]; ok {
				d.reset(l.From)
			}
		}
		n.mu.Unlock()
		n.release(s)
	}
	return errors.Join(errs...)
}

func (n *Network) hold(s proxy.Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.cut[s] {
		n.cut[s] = true
		s.PauseTx()
		s.PauseRx()
	}
}

func (n *Network) release(s proxy.Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[s] {
		delete(n.cut, s)
		s.UnpauseTx()
		s.UnpauseRx()
	}
}

// Delay adds latency ± jitter (uniformly random) to every chunk read on
// the links, in both directions.
func (n *Network) Delay(latency, jitter time.Duration, links ...Link) error {
	return n.each(links, func(s proxy.Server) { s.DelayTx(latency, jitter); s.DelayRx(latency, jitter) })
}

// Undelay removes the latency.
func (n *Network) Undelay(links ...Link) error {
	return n.each(links, func(s proxy.Server) { s.UndelayTx(); s.UndelayRx() })
}

// Retransmit models a share (0..1) of lost packets on the links, in both
// directions. TCP resends a lost packet after a retransmission timeout,
// so a lost chunk arrives late but intact: each chunk the proxy reads is,
// with probability share, held for rto before it is forwarded. (Dropping
// the bytes instead would corrupt the stream, which TCP never does.)
func (n *Network) Retransmit(share float64, rto time.Duration, seed int64, links ...Link) error {
	var mu sync.Mutex
	r := rand.New(rand.NewSource(seed))
	lose := func(b []byte) []byte {
		mu.Lock()
		lost := r.Float64() < share
		mu.Unlock()
		if lost {
			time.Sleep(rto)
		}
		return b
	}
	return n.each(links, func(s proxy.Server) { s.ModifyTx(lose); s.ModifyRx(lose) })
}

// Unretransmit stops Retransmit.
func (n *Network) Unretransmit(links ...Link) error {
	return n.each(links, func(s proxy.Server) { s.UnmodifyTx(); s.UnmodifyRx() })
}

// BlackholeClient cuts the member's client proxy (traffic clients dial it;
// the harness's own checks do not), as Blackhole cuts a link.
func (n *Network) BlackholeClient(member string) error {
	s, err := n.client(member)
	if err != nil {
		return err
	}
	n.hold(s)
	return nil
}

// UnblackholeClient heals BlackholeClient.
func (n *Network) UnblackholeClient(member string) error {
	s, err := n.client(member)
	if err != nil {
		return err
	}
	n.release(s)
	return nil
}

func (n *Network) client(member string) (proxy.Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.clients[member]
	if !ok {
		return nil, fmt.Errorf("no client proxy for %s", member)
	}
	return s, nil
}

// Heal removes every fault from every proxy. It is the last word of every
// network fault, and Close runs it too.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.cut {
		s.UnpauseTx()
		s.UnpauseRx()
	}
	clear(n.cut)
	var all []proxy.Server
	for _, s := range n.clients {
		all = append(all, s)
	}
	for _, froms := range n.links {
		for _, l := range froms {
			all = append(all, l.srv)
		}
	}
	for _, s := range all {
		s.UndelayTx()
		s.UndelayRx()
		s.UnmodifyTx()
		s.UnmodifyRx()
	}
}

func (n *Network) each(links []Link, f func(proxy.Server)) error {
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

// close stops every proxy and demultiplexer.
func (n *Network) close() error {
	n.mu.Lock()
	n.closed = true
	var servers []proxy.Server
	for _, s := range n.clients {
		servers = append(servers, s)
	}
	for _, froms := range n.links {
		for _, l := range froms {
			servers = append(servers, l.srv)
		}
	}
	demuxes := make([]*demux, 0, len(n.demux))
	for _, d := range n.demux {
		demuxes = append(demuxes, d)
	}
	n.mu.Unlock()
	var errs []error
	for _, d := range demuxes {
		d.close()
	}
	for _, s := range servers {
		if err := s.Close(); err != nil && !isClosedErr(err) {
			errs = append(errs, err)
		}
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

// startProxy starts a pkg/v3/proxy server from → to and drains its error
// channel (the proxy blocks on it otherwise).
func startProxy(lg *zap.Logger, from, to string) (proxy.Server, error) {
	s := proxy.NewServer(proxy.ServerConfig{
		Logger: lg.Named("proxy").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		From:   url.URL{Scheme: "tcp", Host: from},
		To:     url.URL{Scheme: "tcp", Host: to},
	})
	select {
	case <-s.Ready():
	case err := <-s.Error():
		_ = s.Close()
		return nil, err
	case <-time.After(5 * time.Second):
		_ = s.Close()
		return nil, fmt.Errorf("proxy %s→%s not ready after 5s", from, to)
	}
	go func() {
		for {
			select {
			case <-s.Error():
			case <-s.Done():
				return
			}
		}
	}()
	return s, nil
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
	conns map[net.Conn]string // connection → sender name
	wg    sync.WaitGroup
}

// headerTimeout bounds the wait for a peer connection's first request head.
const headerTimeout = 5 * time.Second

func newDemux(n *Network, receiver, addr string) (*demux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	d := &demux{n: n, receiver: receiver, ln: ln, conns: map[net.Conn]string{}}
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
		if !d.track(c, UnknownSender) {
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

func (d *demux) track(c net.Conn, from string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return false
	}
	d.conns[c] = from
	return true
}

// reset closes every connection from sender.
func (d *demux) reset(from string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c, f := range d.conns {
		if f == from {
			c.Close()
		}
	}
}

func (d *demux) untrack(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns, c)
	c.Close()
}

// handle reads the first request head, picks the link and splices.
func (d *demux) handle(in net.Conn) {
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
	addr, sender, ok := d.n.linkAddr(from, d.receiver)
	if !ok {
		return
	}
	if !d.track(in, sender) {
		return
	}
	out, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	if !d.track(out, sender) {
		out.Close()
		return
	}
	defer d.untrack(out)
	// What the header parser read (the head, and maybe more) goes first.
	first := head.Bytes()
	if parsed && from == "" {
		first = closeAfter(first)
	}
	if _, err := out.Write(first); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, br); closeWrite(out); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); closeWrite(in); done <- struct{}{} }()
	<-done
	<-done
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

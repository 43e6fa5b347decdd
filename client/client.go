// Package client is the etcd client the traffic uses. It sends etcd's own
// protobuf requests through clientv3's connection (with clientv3's retry
// rules), and records every request with its call and return time and what
// etcd answered, field for field, or the error it returned with its class.
package client

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// DefaultRequestTimeout bounds one request. A request that runs out of time
// is recorded with an unknown outcome: etcd may still apply it later.
const DefaultRequestTimeout = 2 * time.Second

// Client is a recording etcd client. Like a real client of etcd it sends
// one request at a time; it is not safe for concurrent use.
type Client struct {
	*Conn
	ownConn bool
	rec     *history.Recorder
	timeout time.Duration
	counter *Counter // nil: not counted
}

// Conn is a connection to etcd, with clientv3's retry rules, that several
// recording clients can share, as an application's goroutines share one
// clientv3 client. gRPC then multiplexes their requests on one TCP
// connection and batches their frames, which costs the harness fewer
// system calls than a connection per client.
type Conn struct {
	etcd  *clientv3.Client
	kv    pb.KVClient
	lease pb.LeaseClient
	// user is who the connection authenticates as ("" for no one): every
	// request sent on it is recorded as made by this user.
	user string
}

// reconnect caps gRPC's reconnect backoff at a second. Its default grows
// toward two minutes, so after a member restarts, clients would wait
// seconds to reconnect and the history would show little of etcd after
// the fault, where bugs are.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
}

// callOpts are clientv3's defaults: wait for a connection rather than fail
// at once while the balancer reconnects.
var callOpts = []grpc.CallOption{grpc.WaitForReady(true)}

// Dial connects to endpoints. It does not wait for a connection: requests
// to an unreachable cluster fail.
//
// With the cluster's auth enabled by the harness, it authenticates as
// root (cluster.WithRootCredentials); DialAs as another user.
func Dial(endpoints []string) (*Conn, error) { return DialAs(endpoints, nil) }

// DialAs connects to endpoints as the user cr (nil: root, when the harness
// enabled the cluster's auth, else no one).
func DialAs(endpoints []string, cr *cluster.Credentials) (*Conn, error) {
	c, err := newEtcdClient(endpoints, cr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", endpoints, err)
	}
	return &Conn{etcd: c, kv: clientv3.RetryKVClient(c), lease: clientv3.RetryLeaseClient(c), user: c.Username}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.etcd.Close() }

// New connects a client with the given history id to endpoints, on a
// connection of its own. It does not wait for a connection: requests to
// an unreachable cluster fail and are recorded as failed.
func New(endpoints []string, id int, clock *history.Clock, timeout time.Duration) (*Client, error) {
	return NewAs(endpoints, id, clock, timeout, nil)
}

// NewAs is New authenticated as cr (nil: see DialAs).
func NewAs(endpoints []string, id int, clock *history.Clock, timeout time.Duration, cr *cluster.Credentials) (*Client, error) {
	conn, err := DialAs(endpoints, cr)
	if err != nil {
		return nil, fmt.Errorf("client %d: %w", id, err)
	}
	c := NewOnConn(conn, id, clock, timeout)
	c.ownConn = true
	return c, nil
}

// NewOnConn is a client with the given history id that sends on conn,
// which it does not close. Each client still sends one request at a time.
func NewOnConn(conn *Conn, id int, clock *history.Clock, timeout time.Duration) *Client {
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	return &Client{Conn: conn, rec: history.NewRecorder(id, clock), timeout: timeout}
}

// Close closes the client's connection if it has its own.
func (c *Client) Close() error {
	if c.ownConn {
		return c.Conn.Close()
	}
	return nil
}

// History is what this client recorded.
func (c *Client) History() history.Client { return c.rec.Client() }

// Do sends req, records it, and returns the recorded operation: etcd's
// response or the error it returned. A failed request is a fact of the
// history, not a Go error.
func (c *Client) Do(ctx context.Context, req history.Request) history.Operation {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if req.User == "" {
		req.User = c.user
	}
	call := c.rec.Now()
	resp, err := c.send(ctx, req)
	herr := Classify(err)
	if herr != nil {
		resp = nil
	}
	c.rec.Record(call, req, resp, herr)
	ops := c.rec.Client().Operations
	if c.counter != nil {
		c.counter.add(ops[len(ops)-1])
	}
	return ops[len(ops)-1]
}

// send sends one request and returns etcd's answer in record form.
func (c *Client) send(ctx context.Context, req history.Request) (*history.Response, error) {
	switch {
	case req.Range != nil && req.Range.Stream:
		return c.rangeStream(ctx, req.Range)
	case req.Range != nil:
		r, err := c.kv.Range(ctx, req.Range.PB(), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), Range: history.RangeResponseFromPB(r)}, nil
	case req.Put != nil:
		r, err := c.kv.Put(ctx, req.Put.PB(), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), Put: history.PutResponseFromPB(r)}, nil
	case req.DeleteRange != nil:
		r, err := c.kv.DeleteRange(ctx, req.DeleteRange.PB(), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), DeleteRange: history.DeleteRangeResponseFromPB(r)}, nil
	case req.Txn != nil:
		r, err := c.kv.Txn(ctx, req.Txn.PB(), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), Txn: history.TxnResponseFromPB(r)}, nil
	case req.Compaction != nil:
		r, err := c.kv.Compact(ctx, req.PB().(*pb.CompactionRequest), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), Compaction: &history.CompactionResponse{}}, nil
	case req.LeaseGrant != nil:
		r, err := c.lease.LeaseGrant(ctx, req.PB().(*pb.LeaseGrantRequest), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header),
			LeaseGrant: &history.LeaseGrantResponse{ID: r.ID, TTL: r.TTL, Error: r.Error}}, nil
	case req.LeaseRevoke != nil:
		r, err := c.lease.LeaseRevoke(ctx, req.PB().(*pb.LeaseRevokeRequest), callOpts...)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), LeaseRevoke: &history.LeaseRevokeResponse{}}, nil
	case req.LeaseKeepAlive != nil:
		return c.keepAliveOnce(ctx, req.PB().(*pb.LeaseKeepAliveRequest))
	case req.LeaseTimeToLive != nil:
		r, err := c.lease.LeaseTimeToLive(ctx, req.PB().(*pb.LeaseTimeToLiveRequest), callOpts...)
		if err != nil {
			return nil, err
		}
		ttl := &history.LeaseTimeToLiveResponse{ID: r.ID, TTL: r.TTL, GrantedTTL: r.GrantedTTL}
		for _, k := range r.Keys {
			ttl.Keys = append(ttl.Keys, string(k))
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), LeaseTimeToLive: ttl}, nil
	case req.LeaseLeases != nil:
		r, err := c.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{}, callOpts...)
		if err != nil {
			return nil, err
		}
		ls := &history.LeaseLeasesResponse{}
		for _, l := range r.Leases {
			ls.Leases = append(ls.Leases, l.ID)
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), LeaseLeases: ls}, nil
	case req.Defragment != nil:
		// A defragmentation runs on one member: the first endpoint.
		r, err := c.etcd.Defragment(ctx, c.etcd.Endpoints()[0])
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(r.Header), Defragment: &history.DefragmentResponse{}}, nil
	case req.Auth != nil:
		h, err := c.sendAuth(ctx, req.Auth)
		if err != nil {
			return nil, err
		}
		return &history.Response{Header: history.HeaderFromPB(h), Auth: &history.AuthResponse{}}, nil
	}
	panic(fmt.Sprintf("client: empty request %+v", req))
}

// sendAuth sends an auth admin request through clientv3's Auth API and
// returns the answer's header.
func (c *Client) sendAuth(ctx context.Context, a *history.AuthRequest) (*pb.ResponseHeader, error) {
	e := c.etcd
	switch a.Op {
	case history.AuthEnable:
		r, err := e.AuthEnable(ctx)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthDisable:
		r, err := e.AuthDisable(ctx)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthUserAdd:
		if a.NoPassword {
			r, err := e.UserAddWithOptions(ctx, a.User, "", &clientv3.UserAddOptions{NoPassword: true})
			return header(r, err, func() *pb.ResponseHeader { return r.Header })
		}
		r, err := e.UserAdd(ctx, a.User, a.Password)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthUserDelete:
		r, err := e.UserDelete(ctx, a.User)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthUserChangePassword:
		r, err := e.UserChangePassword(ctx, a.User, a.Password)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthUserGrantRole:
		r, err := e.UserGrantRole(ctx, a.User, a.Role)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthUserRevokeRole:
		r, err := e.UserRevokeRole(ctx, a.User, a.Role)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthRoleAdd:
		r, err := e.RoleAdd(ctx, a.Role)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthRoleDelete:
		r, err := e.RoleDelete(ctx, a.Role)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthRoleGrantPermission:
		typ, ok := clientv3.PermissionType(0), false
		switch a.PermType {
		case "READ":
			typ, ok = clientv3.PermissionType(clientv3.PermRead), true
		case "WRITE":
			typ, ok = clientv3.PermissionType(clientv3.PermWrite), true
		case "READWRITE":
			typ, ok = clientv3.PermissionType(clientv3.PermReadWrite), true
		}
		if !ok {
			return nil, fmt.Errorf("client: permission type %q", a.PermType)
		}
		r, err := e.RoleGrantPermission(ctx, a.Role, a.Key, a.RangeEnd, typ)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	case history.AuthRoleRevokePermission:
		r, err := e.RoleRevokePermission(ctx, a.Role, a.Key, a.RangeEnd)
		return header(r, err, func() *pb.ResponseHeader { return r.Header })
	}
	return nil, fmt.Errorf("client: unknown auth request %q", a.Op)
}

// header is an answer's header, or its error.
func header[T any](r *T, err error, h func() *pb.ResponseHeader) (*pb.ResponseHeader, error) {
	if err != nil {
		return nil, err
	}
	return h(), nil
}

// keepAliveOnce renews a lease once over its own stream, as clientv3's
// KeepAliveOnce does, but records the answer as etcd gave it.
func (c *Client) keepAliveOnce(ctx context.Context, req *pb.LeaseKeepAliveRequest) (*history.Response, error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.lease.LeaseKeepAlive(streamCtx, callOpts...)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	r, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return &history.Response{Header: history.HeaderFromPB(r.Header),
		LeaseKeepAlive: &history.LeaseKeepAliveResponse{ID: r.ID, TTL: r.TTL}}, nil
}

// newEtcdClient is the one clientv3 configuration of the recording clients
// and watchers: the cluster's (cluster.ClientConfig: TLS when the members
// serve it, root's credentials when the harness enabled their auth, no
// client logging), gRPC's reconnect backoff capped (reconnect),
// keepalives, and cluster.DialClient, which connects a client proxy of
// this process's cluster in process, under its faults, without the TCP
// hop through it (a fifth of the harness's CPU at the high rate). Under
// TLS the handshake runs over that connection, so the faults act on the
// encrypted bytes, as the proxy's would.
//
// cr is the user to authenticate as; nil is root when the harness enabled
// the cluster's auth, else no one. clientv3 authenticates when it
// connects, and again when etcd answers that the token is invalid or the
// auth revision old; its Authenticate requests go out without a token
// (authenticateWithoutToken).
func newEtcdClient(endpoints []string, cr *cluster.Credentials) (*clientv3.Client, error) {
	cfg := etcdConfig(endpoints)
	if cr != nil {
		cfg.Username, cfg.Password = cr.User, cr.Password
	}
	if cfg.Username == "" {
		return clientv3.New(cfg)
	}
	plainCfg := etcdConfig(endpoints)
	plainCfg.Username, plainCfg.Password = "", ""
	plain, err := clientv3.New(plainCfg)
	if err != nil {
		return nil, err
	}
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(authenticateWithoutToken(plain.ActiveConnection())))
	c, err := clientv3.New(cfg)
	if err != nil {
		_ = plain.Close()
		return nil, err
	}
	go func() {
		<-c.Ctx().Done() // closed by c.Close
		_ = plain.Close()
	}()
	return c, nil
}

func etcdConfig(endpoints []string) clientv3.Config {
	cfg := cluster.ClientConfig(endpoints)
	cfg.DialTimeout = 5 * time.Second
	cfg.DialKeepAliveTime = 10 * time.Second
	cfg.DialKeepAliveTimeout = 5 * time.Second
	cfg.DialOptions = []grpc.DialOption{grpc.WithConnectParams(reconnect), grpc.WithContextDialer(cluster.DialClient)}
	return cfg
}

// authenticateMethod is etcd's Authenticate RPC.
const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// authenticateWithoutToken sends clientv3's Authenticate requests on
// plain, a connection with no credentials, instead of on the client's
// own, which attaches the client's current token to every request.
//
// etcd before v3.5 checks the token of every request it proposes to raft,
// Authenticate included (v3.4.12's processInternalRaftRequestOnce; etcd
// #12385, fixed on the server side by PR #12165 for v3.5). A client whose
// simple token etcd has dropped (the user's password changed, or the
// member restarted and lost the tokens it held in memory) then gets
// "invalid auth token" for the Authenticate that would replace it, and
// clientv3 v3.6, which no longer clears its token before refreshing it
// (PR #12549 did, for such servers), tries again until the request's
// context ends: no request of that client succeeds again, and a watch it
// opens (clientv3 authenticates before each stream, with the stream's
// context) never opens. Seen on v3.4.12 (explore seed 1, 2026-12-02): the
// watcher of the member the faults hit, as user rw, got no created
// response for any stream it opened after the member rejoined, and its
// ranges all timed out. From v3.5 etcd ignores the token of an
// Authenticate, so sending none changes nothing there.
func authenticateWithoutToken(plain *grpc.ClientConn) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method != authenticateMethod {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		return plain.Invoke(ctx, method, req, reply, opts...)
	}
}

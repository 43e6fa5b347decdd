// Package client is the etcd client the traffic uses: it translates model
// requests into etcd RPCs, translates the answers back, and records every
// request with its call and return time.
package client

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// DefaultRequestTimeout bounds one request. A request that runs out of time
// is recorded as failed: etcd may still apply it later.
const DefaultRequestTimeout = 2 * time.Second

// Client is a recording etcd client. Like a real client of etcd it sends
// one request at a time; it is not safe for concurrent use.
type Client struct {
	etcd    *clientv3.Client
	rec     *history.Recorder
	timeout time.Duration
}

// New connects a client with the given history id to endpoints. It does not
// wait for a connection: requests to an unreachable cluster fail and are
// recorded as failed.
func New(endpoints []string, id int, clock *history.Clock, timeout time.Duration) (*Client, error) {
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("client %d: connecting to %v: %w", id, endpoints, err)
	}
	return &Client{etcd: c, rec: history.NewRecorder(id, clock), timeout: timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.etcd.Close() }

// History is what this client recorded.
func (c *Client) History() history.Client { return c.rec.Client() }

// Do sends req, records it, and returns the response. Errors are part of the
// response, not a Go error: a failed request is a fact of the history.
func (c *Client) Do(ctx context.Context, req model.Request) model.Response {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := c.rec.Now()
	resp := c.send(ctx, req)
	c.rec.Record(call, req, resp)
	return resp
}

func (c *Client) send(ctx context.Context, req model.Request) model.Response {
	switch req.Type {
	case model.Txn:
		return c.txn(ctx, req.Txn)
	default:
		panic(fmt.Sprintf("client: unknown request type %q", req.Type))
	}
}

func (c *Client) txn(ctx context.Context, t *model.TxnRequest) model.Response {
	// A single unconditional operation goes through its own RPC (Range, Put,
	// DeleteRange), as most real clients send it; anything else is a Txn.
	if len(t.Conditions) == 0 && len(t.Else) == 0 && len(t.Then) == 1 {
		r, err := c.etcd.Do(ctx, toOp(t.Then[0]))
		if err != nil {
			return model.Response{Error: err.Error()}
		}
		return opResponse(r)
	}
	cmps := make([]clientv3.Cmp, len(t.Conditions))
	for i, cond := range t.Conditions {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(cond.Key), "=", cond.ModRevision)
	}
	r, err := c.etcd.Txn(ctx).If(cmps...).Then(toOps(t.Then)...).Else(toOps(t.Else)...).Commit()
	if err != nil {
		return model.Response{Error: err.Error()}
	}
	results := make([]model.OpResult, len(r.Responses))
	for i, op := range r.Responses {
		results[i] = opResult(op.GetResponseRange().GetKvs(), op.GetResponseDeleteRange().GetDeleted())
	}
	return model.Response{Revision: r.Header.Revision, Txn: &model.TxnResponse{Succeeded: r.Succeeded, Results: results}}
}

func toOps(ops []model.Op) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		out[i] = toOp(op)
	}
	return out
}

func toOp(op model.Op) clientv3.Op {
	var opts []clientv3.OpOption
	if op.End != "" {
		opts = append(opts, clientv3.WithRange(op.End))
	}
	switch op.Type {
	case model.OpRange:
		return clientv3.OpGet(op.Key, opts...)
	case model.OpPut:
		return clientv3.OpPut(op.Key, op.Value)
	case model.OpDelete:
		return clientv3.OpDelete(op.Key, opts...)
	default:
		panic(fmt.Sprintf("client: unknown op type %q", op.Type))
	}
}

func opResponse(r clientv3.OpResponse) model.Response {
	var rev int64
	var res model.OpResult
	switch {
	case r.Get() != nil:
		rev, res = r.Get().Header.Revision, opResult(r.Get().Kvs, 0)
	case r.Put() != nil:
		rev = r.Put().Header.Revision
	case r.Del() != nil:
		rev, res = r.Del().Header.Revision, opResult(nil, r.Del().Deleted)
	}
	return model.Response{Revision: rev, Txn: &model.TxnResponse{Succeeded: true, Results: []model.OpResult{res}}}
}

func opResult(kvs []*mvccpb.KeyValue, deleted int64) model.OpResult {
	res := model.OpResult{Deleted: deleted}
	for _, kv := range kvs {
		res.KVs = append(res.KVs, model.KeyValue{Key: string(kv.Key), Value: string(kv.Value), ModRevision: kv.ModRevision})
	}
	return res
}

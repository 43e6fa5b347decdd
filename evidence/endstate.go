package evidence

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// MemberState is where one member's key space ended: its revision, its
// compact revision and the hash of its key space at that revision. Every
// member of a healthy cluster ends in the same state.
type MemberState struct {
	Member          string `json:"member"`
	Revision        int64  `json:"revision"`
	CompactRevision int64  `json:"compact_revision"`
	// Hash is HashKV's hash of the key space up to Revision.
	Hash uint32 `json:"hash"`
	// Error is why the state could not be taken; the other fields are then
	// zero.
	Error string `json:"error,omitempty"`
}

// endStateTimeout bounds the questions to one member.
const endStateTimeout = 10 * time.Second

// TakeEndState asks the member at endpoint (alone) for its revision,
// compact revision and HashKV. It retries until ctx or its own bound runs
// out, and records an error instead of failing.
//
// config, if not nil, completes the client's configuration (the harness
// gives it root's credentials when it enabled auth).
func TakeEndState(ctx context.Context, lg *zap.Logger, member, endpoint string, config func(clientv3.Config) clientv3.Config) MemberState {
	ctx, cancel := context.WithTimeout(ctx, endStateTimeout)
	defer cancel()
	out := MemberState{Member: member}
	cfg := clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop(), Context: ctx}
	if config != nil {
		cfg = config(cfg)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		out.Error = fmt.Sprintf("connecting to %s: %v", endpoint, err)
		return out
	}
	defer cli.Close()
	for {
		// HashKV at revision 0 hashes the whole key space at the member's
		// current revision and reports that revision and the compact one.
		resp, err := cli.HashKV(ctx, endpoint, 0)
		if err == nil {
			out.Revision, out.CompactRevision, out.Hash = resp.Header.Revision, resp.CompactRevision, resp.Hash
			return out
		}
		select {
		case <-ctx.Done():
			out.Error = fmt.Sprintf("HashKV on %s: %v", endpoint, err)
			lg.Warn("member end state", zap.String("member", member), zap.Error(err))
			return out
		case <-time.After(200 * time.Millisecond):
		}
	}
}

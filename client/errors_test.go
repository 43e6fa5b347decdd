package client

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// TestClassify maps the error values etcd's client packages define, as the
// gRPC layer and clientv3 hand them over, to an outcome class.
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
		want history.Outcome
	}{
		{"compacted (gRPC status)", rpctypes.ErrGRPCCompacted, "OutOfRange", history.Failed},
		{"compacted (clientv3's EtcdError)", rpctypes.ErrCompacted, "OutOfRange", history.Failed},
		{"future revision", rpctypes.ErrGRPCFutureRev, "OutOfRange", history.Failed},
		{"lease not found", rpctypes.ErrGRPCLeaseNotFound, "NotFound", history.Failed},
		{"too many operations", rpctypes.ErrGRPCTooManyOps, "InvalidArgument", history.Failed},
		{"duplicate key", rpctypes.ErrGRPCDuplicateKey, "InvalidArgument", history.Failed},
		{"too many requests", rpctypes.ErrGRPCRequestTooManyRequests, "ResourceExhausted", history.Failed},
		{"no space", rpctypes.ErrGRPCNoSpace, "ResourceExhausted", history.Failed},
		{"require-leader without a leader", rpctypes.ErrGRPCNoLeader, "Unavailable", history.Failed},
		{"request timed out", rpctypes.ErrGRPCTimeout, "Unavailable", history.Unknown},
		{"timed out after leader failure", rpctypes.ErrGRPCTimeoutDueToLeaderFail, "Unavailable", history.Unknown},
		{"timed out after connection loss", rpctypes.ErrGRPCTimeoutDueToConnectionLost, "Unavailable", history.Unknown},
		{"leader changed", rpctypes.ErrGRPCLeaderChanged, "Unavailable", history.Unknown},
		{"server stopped", rpctypes.ErrGRPCStopped, "Unavailable", history.Unknown},
		{"connection reset", status.Error(codes.Unavailable, "error reading from server: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), "Unavailable", history.Unknown},
		{"deadline (gRPC status)", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "DeadlineExceeded", history.Unknown},
		{"deadline (context)", fmt.Errorf("put: %w", context.DeadlineExceeded), "DeadlineExceeded", history.Unknown},
		{"canceled", context.Canceled, "Canceled", history.Unknown},
		{"unknown error", errors.New("something else"), "Unknown", history.Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			require.Equal(t, tc.code, got.Code)
			require.Equal(t, tc.want, got.Outcome, got.Message)
			require.NotEmpty(t, got.Message)
		})
	}
	require.Nil(t, Classify(nil))
}

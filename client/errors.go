package client

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// definite are the errors etcd answers only when it applied nothing: it
// checked the request (or its own state) before proposing it, or applied
// the committed entry as a no-op that returns this error. Every other error
// leaves the outcome unknown, because the request may have been proposed
// and may still be committed. When in doubt an error is unknown: calling a
// failure certain when it was not would make the check reject a correct
// history.
var definite = messages(
	// Invalid requests.
	rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCKeyNotFound, rpctypes.ErrGRPCValueProvided,
	rpctypes.ErrGRPCLeaseProvided, rpctypes.ErrGRPCTooManyOps, rpctypes.ErrGRPCDuplicateKey,
	rpctypes.ErrGRPCInvalidSortOption, rpctypes.ErrGRPCRequestTooLarge,
	// Answers about revisions and leases, which the model predicts.
	rpctypes.ErrGRPCCompacted, rpctypes.ErrGRPCFutureRev,
	rpctypes.ErrGRPCLeaseNotFound, rpctypes.ErrGRPCLeaseExist, rpctypes.ErrGRPCLeaseTTLTooLarge,
	// Refusals before proposing: the apply loop lags too far behind, the
	// space quota alarm is on, a require-leader request found no leader,
	// the cluster version cannot serve the request, or auth rejected it.
	rpctypes.ErrGRPCRequestTooManyRequests, rpctypes.ErrGRPCNoSpace, rpctypes.ErrGRPCNoLeader,
	rpctypes.ErrGRPCNotCapable, rpctypes.ErrGRPCPermissionDenied, rpctypes.ErrGRPCInvalidAuthToken,
	rpctypes.ErrGRPCNotSupportedForLearner, rpctypes.ErrGRPCClusterIDMismatch,
	// auth: refusals (etcd's applier refuses a committed request with the
	// first three, with no effect), and the admin requests' errors.
	rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty, rpctypes.ErrGRPCAuthFailed,
	rpctypes.ErrGRPCUserAlreadyExist, rpctypes.ErrGRPCUserNotFound, rpctypes.ErrGRPCRoleAlreadyExist,
	rpctypes.ErrGRPCRoleNotFound, rpctypes.ErrGRPCRoleEmpty, rpctypes.ErrGRPCRoleNotGranted,
	rpctypes.ErrGRPCPermissionNotGranted, rpctypes.ErrGRPCInvalidAuthMgmt, rpctypes.ErrGRPCRootUserNotExist,
	rpctypes.ErrGRPCRootRoleNotExist, rpctypes.ErrGRPCAuthNotEnabled, rpctypes.ErrGRPCPermissionNotGiven,
)

func messages(errs ...error) map[string]bool {
	out := map[string]bool{}
	for _, err := range errs {
		out[status.Convert(err).Message()] = true
	}
	return out
}

// Classify records err as etcd returned it: its gRPC code, its message, and
// whether the request surely did nothing (history.Failed) or may have taken
// effect (history.Unknown). It returns nil for a nil err.
func Classify(err error) *history.Error {
	if err == nil {
		return nil
	}
	// A context error from the caller's side, or one wrapped in a status.
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &history.Error{Code: codes.DeadlineExceeded.String(), Message: err.Error(), Outcome: history.Unknown}
	case errors.Is(err, context.Canceled):
		return &history.Error{Code: codes.Canceled.String(), Message: err.Error(), Outcome: history.Unknown}
	}
	// A RangeStream that failed after some chunks: the read has no answer.
	var mid *MidStreamError
	if errors.As(err, &mid) {
		out := Classify(mid.Err)
		out.Message = fmt.Sprintf("range stream failed after %d chunks: %s", mid.Chunks, out.Message)
		out.Outcome = history.Unknown
		return out
	}
	var code codes.Code
	var msg string
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code, msg = ee.Code(), ee.Error()
	} else {
		s := status.Convert(err)
		code, msg = s.Code(), s.Message()
	}
	out := &history.Error{Code: code.String(), Message: msg, Outcome: history.Unknown}
	if definite[msg] {
		out.Outcome = history.Failed
	}
	return out
}

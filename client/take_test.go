package client

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Take returns the record fitted to its length and lets go of the
// stream's own copy, so the run holds the responses once.
func TestStreamTake(t *testing.T) {
	grown := make([]history.WatchResponse, 3, 16)
	for i := range grown {
		grown[i] = history.WatchResponse{Header: history.Header{Revision: int64(i + 1)}}
	}
	s := &Stream{rec: history.Watch{ID: 7, Responses: grown, ProgressRequests: []time.Duration{time.Second}}}
	got := s.Take()
	require.Equal(t, 7, got.ID)
	require.Equal(t, grown, got.Responses)
	require.Equal(t, len(got.Responses), cap(got.Responses), "not fitted")
	require.Len(t, got.ProgressRequests, 1)
	require.Nil(t, s.rec.Responses, "the stream still holds its copy")
	require.Zero(t, s.Progress())
}

package history

import "time"

// The types in this file record watches: what a watcher asked for and
// every response its stream delivered, as etcd sent it (see etcd's
// WatchCreateRequest and WatchResponse in api/etcdserverpb/rpc.proto).

// WatchRequest is how a watch was opened: etcd's WatchCreateRequest plus
// the client-side option WithRequireLeader.
type WatchRequest struct {
	Key      string `json:"key"`
	RangeEnd string `json:"range_end,omitempty"`
	// StartRevision is the revision the watch starts at; 0 means "the
	// member's current revision + 1".
	StartRevision  int64 `json:"start_revision,omitempty"`
	PrevKV         bool  `json:"prev_kv,omitempty"`
	ProgressNotify bool  `json:"progress_notify,omitempty"`
	// Filters are etcd's filter names: "NOPUT", "NODELETE".
	Filters       []string `json:"filters,omitempty"`
	Fragment      bool     `json:"fragment,omitempty"`
	RequireLeader bool     `json:"require_leader,omitempty"`
}

// WatchEvent is etcd's mvccpb.Event. Type is "PUT" or "DELETE".
type WatchEvent struct {
	Type   string    `json:"type"`
	KV     KeyValue  `json:"kv"`
	PrevKV *KeyValue `json:"prev_kv,omitempty"`
}

// WatchResponse is one message of a watch stream, as received.
type WatchResponse struct {
	// Time is when the client received it.
	Time   time.Duration `json:"time"`
	Header Header        `json:"header"`
	// WatchID is the ID etcd gave the watch; -1 on a progress notification
	// sent for every watch of the stream.
	WatchID int64 `json:"watch_id,omitempty"`
	// Created: the first response of a watch, confirming it.
	Created bool `json:"created,omitempty"`
	// Canceled: the server ended the watch; CancelReason says why and
	// CompactRevision is set when the start revision was compacted.
	Canceled        bool   `json:"canceled,omitempty"`
	CancelReason    string `json:"cancel_reason,omitempty"`
	CompactRevision int64  `json:"compact_revision,omitempty"`
	// Fragment: more of this revision's events follow in the next message.
	Fragment bool         `json:"fragment,omitempty"`
	Events   []WatchEvent `json:"events,omitempty"`
	// Error is a stream error (a gRPC status), when the stream broke
	// instead of delivering a response. It ends the watch.
	Error *Error `json:"error,omitempty"`
}

// IsProgressNotify reports whether the response is a progress
// notification: no events, not a creation or cancellation, as etcd's
// clientv3 defines it.
func (r WatchResponse) IsProgressNotify() bool {
	return len(r.Events) == 0 && !r.Created && !r.Canceled && r.CompactRevision == 0 && r.Header.Revision != 0 && r.Error == nil
}

// ProgressBeforeCreated explains why a progress notification that arrives
// before the watch's created response vouches for nothing on it. etcd
// (seen on v3.6.16) can send a stream-wide progress notification (watch ID
// -1) ahead of a new watch's created response, and ahead of the catch-up
// events it holds back until that response is sent: its send loop buffers
// a watch's own responses until the watch is announced, but not the
// stream-wide ones. clientv3 hands such a notification only to the watches
// already created on the stream, so no client of it reads one as covering
// a watch it has not seen created. The checks read it the same way.
const ProgressBeforeCreated = "a progress notification before the watch's created response covers no event of it"

// Vouches reports whether response i is a progress notification that
// vouches for this watch: one that comes after the watch's created
// response (see ProgressBeforeCreated).
func (w *Watch) Vouches(i int) bool {
	if !w.Responses[i].IsProgressNotify() {
		return false
	}
	for j := range i {
		if w.Responses[j].Created {
			return true
		}
	}
	return false
}

// Watch is one watch stream from open to close.
type Watch struct {
	// ID is unique in the run; ClientID is the watcher that opened it.
	ID       int `json:"id"`
	ClientID int `json:"client"`
	// Endpoints are the client URLs the watcher could reach: one for a
	// watcher pinned to a member, all for one spread over the cluster.
	Endpoints []string     `json:"endpoints"`
	Request   WatchRequest `json:"request"`
	// User is the user the watcher's stream is authenticated as ("" for
	// none).
	User string        `json:"user,omitempty"`
	Call time.Duration `json:"call"`
	// Responses are every message received, in order.
	Responses []WatchResponse `json:"responses,omitempty"`
	// ProgressRequests are the times the watcher sent RequestProgress on
	// this watch's stream.
	ProgressRequests []time.Duration `json:"progress_requests,omitempty"`
	// End is when the watcher stopped reading, and EndReason why: "done"
	// (the run's traffic ended and the watch caught up), "caught-up
	// timeout" (it did not catch up within the bound), "canceled" (the
	// server canceled it), or "error".
	End       time.Duration `json:"end"`
	EndReason string        `json:"end_reason"`
	// ResumedFrom is the ID of the watch this one resumes, -1 if none.
	ResumedFrom int `json:"resumed_from"`
	// ReadDelay, on a slow watch, is how long the watcher waited before
	// reading each message while traffic ran (so Responses' times are when
	// it read them, not when they arrived); zero on every other watch.
	ReadDelay time.Duration `json:"read_delay,omitempty"`
	// Target is the last committed revision, read with a linearizable read
	// once traffic had stopped, that the watch had to catch up to before it
	// was closed; 0 if it was not known (the read failed) or the watch had
	// ended before.
	Target int64 `json:"target,omitempty"`
}

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// Watcher opens watch streams on etcd's raw gRPC Watch service, through
// one clientv3 connection, and records every message etcd sent on them as
// it was sent. clientv3's Watcher is not used on purpose: it resumes broken
// streams, drops duplicate events and filters progress notifications
// itself, which would hide what etcd did.
type Watcher struct {
	etcd      *clientv3.Client
	watch     pb.WatchClient
	clock     *history.Clock
	id        int
	endpoints []string
	user      string
}

// NewWatcher connects a watcher with history client id to endpoints. It
// does not wait for a connection.
func NewWatcher(endpoints []string, id int, clock *history.Clock) (*Watcher, error) {
	return NewWatcherAs(endpoints, id, clock, nil)
}

// NewWatcherAs is NewWatcher authenticated as cr (nil: see DialAs); its
// watches are recorded as made by that user.
func NewWatcherAs(endpoints []string, id int, clock *history.Clock, cr *cluster.Credentials) (*Watcher, error) {
	c, err := newEtcdClient(endpoints, cr)
	if err != nil {
		return nil, fmt.Errorf("watcher %d: connecting to %v: %w", id, endpoints, err)
	}
	return &Watcher{etcd: c, watch: pb.NewWatchClient(c.ActiveConnection()), clock: clock, id: id,
		endpoints: append([]string(nil), endpoints...), user: c.Username}, nil
}

// Close closes the connection; open streams break.
func (w *Watcher) Close() error { return w.etcd.Close() }

// ID is the watcher's history client id.
func (w *Watcher) ID() int { return w.id }

// Endpoints are the client URLs the watcher dials.
func (w *Watcher) Endpoints() []string { return w.endpoints }

// Stream is one watch: a gRPC Watch stream that carries exactly one watch
// (so every message on it, progress notifications for "all watches" too,
// belongs to that watch). A goroutine receives and records every message;
// the methods read what was recorded so far. It is safe for concurrent use.
type Stream struct {
	clock  *history.Clock
	cancel context.CancelFunc
	done   chan struct{}
	// notify gets a value (never blocking) after every recorded message.
	notify chan struct{}

	sendMu sync.Mutex // gRPC allows one sender at a time
	grpc   pb.Watch_WatchClient

	// ctx is the stream's context; readDelay, in nanoseconds, is how long
	// the receiving goroutine waits before reading each message (0: it
	// reads as fast as etcd sends).
	ctx       context.Context
	readDelay atomic.Int64

	mu  sync.Mutex
	rec history.Watch
	// memberRev is the highest header revision of the responses so far.
	memberRev int64
}

// Open opens a watch stream for req and records it as watch id (unique in
// the run), resuming watch resumedFrom (-1 if none). A stream that cannot
// be opened is recorded as a watch whose only response is the error, and
// its Stream is already ended. ctx bounds the stream's whole life.
func (w *Watcher) Open(ctx context.Context, id int, req history.WatchRequest, resumedFrom int) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{
		ctx:    ctx,
		clock:  w.clock,
		cancel: cancel,
		done:   make(chan struct{}),
		notify: make(chan struct{}, 1),
		rec: history.Watch{ID: id, ClientID: w.id, Endpoints: w.endpoints, Request: req, User: w.user,
			Call: w.clock.Now(), ResumedFrom: resumedFrom},
	}
	if j := w.clock.Journal(); j != nil {
		j.WatchOpened(s.rec)
	}
	if req.RequireLeader {
		ctx = withRequireLeader(ctx)
	}
	stream, err := w.watch.Watch(ctx, callOpts...)
	if err == nil {
		s.grpc = stream
		err = s.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: createRequest(req)}})
	}
	if err != nil {
		s.record(history.WatchResponse{Time: w.clock.Now(), Error: Classify(err)})
		s.end("error")
		cancel()
		close(s.done)
		return s
	}
	go s.receive()
	return s
}

// withRequireLeader sets the "hasleader" metadata as clientv3's
// WithRequireLeader does: etcd then ends the stream with "no leader" when
// the member it reaches has lost its leader.
func withRequireLeader(ctx context.Context) context.Context {
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok {
		return metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
	}
	md = md.Copy()
	md.Set(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
	return metadata.NewOutgoingContext(ctx, md)
}

// createRequest is req as etcd's WatchCreateRequest. RequireLeader is not
// part of it: it travels as metadata.
func createRequest(req history.WatchRequest) *pb.WatchCreateRequest {
	cr := &pb.WatchCreateRequest{
		Key:            []byte(req.Key),
		StartRevision:  req.StartRevision,
		ProgressNotify: req.ProgressNotify,
		PrevKv:         req.PrevKV,
		Fragment:       req.Fragment,
	}
	if req.RangeEnd != "" {
		cr.RangeEnd = []byte(req.RangeEnd)
	}
	for _, f := range req.Filters {
		cr.Filters = append(cr.Filters, pb.WatchCreateRequest_FilterType(pb.WatchCreateRequest_FilterType_value[f]))
	}
	return cr
}

func (s *Stream) send(req *pb.WatchRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.grpc.Send(req)
}

// RequestProgress asks etcd for a progress notification on this stream,
// and records when. It returns the send's error; a stream that has ended
// is not sent to.
func (s *Stream) RequestProgress() error {
	if s.Ended() {
		return errors.New("watch stream has ended")
	}
	s.mu.Lock()
	s.rec.ProgressRequests = append(s.rec.ProgressRequests, s.clock.Now())
	s.mu.Unlock()
	return s.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// SetReadDelay makes the stream read slowly: it waits d before reading
// each message etcd sent, so that etcd's send buffer for it fills up and
// etcd moves its watcher aside as a victim. Zero reads at full speed
// again, from the next message on (a wait under way is cut short within
// maxReadPause).
// The first positive delay is recorded (history.Watch.ReadDelay).
func (s *Stream) SetReadDelay(d time.Duration) {
	d = max(0, d)
	s.readDelay.Store(int64(d))
	s.mu.Lock()
	if s.rec.ReadDelay == 0 {
		s.rec.ReadDelay = d
	}
	s.mu.Unlock()
}

// maxReadPause bounds one wait of a slow reader, so that SetReadDelay(0)
// takes effect soon.
const maxReadPause = 50 * time.Millisecond

// pauseBeforeRead waits the read delay, in steps of at most maxReadPause,
// rechecking it after each; it returns early once the stream's context is
// done.
func (s *Stream) pauseBeforeRead() {
	var waited time.Duration
	for {
		d := time.Duration(s.readDelay.Load()) - waited
		if d <= 0 {
			return
		}
		step := min(d, maxReadPause)
		t := time.NewTimer(step)
		select {
		case <-t.C:
			waited += step
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// receive records every message until the stream breaks, etcd cancels the
// watch, or the stream is closed.
func (s *Stream) receive() {
	defer close(s.done)
	for {
		s.pauseBeforeRead()
		r, err := s.grpc.Recv()
		now := s.clock.Now()
		if err != nil {
			if s.Ended() { // closed by us: not a fact about etcd
				return
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("watch stream closed by the server")
			}
			s.record(history.WatchResponse{Time: now, Error: Classify(err)})
			s.end("error")
			s.cancel()
			return
		}
		resp := responseFromPB(r)
		resp.Time = now
		s.record(resp)
		if r.Canceled {
			s.end("canceled")
			s.cancel()
			return
		}
	}
}

// responseFromPB is etcd's message in record form.
func responseFromPB(r *pb.WatchResponse) history.WatchResponse {
	out := history.WatchResponse{
		Header:          history.HeaderFromPB(r.Header),
		WatchID:         r.WatchId,
		Created:         r.Created,
		Canceled:        r.Canceled,
		CancelReason:    r.CancelReason,
		CompactRevision: r.CompactRevision,
		Fragment:        r.Fragment,
	}
	for _, e := range r.Events {
		ev := history.WatchEvent{Type: eventType(e.Type)}
		if e.Kv != nil {
			ev.KV = history.KeyValueFromPB(e.Kv)
		}
		if e.PrevKv != nil {
			kv := history.KeyValueFromPB(e.PrevKv)
			ev.PrevKV = &kv
		}
		out.Events = append(out.Events, ev)
	}
	return out
}

func eventType(t mvccpb.Event_EventType) string {
	switch t {
	case mvccpb.PUT:
		return "PUT"
	case mvccpb.DELETE:
		return "DELETE"
	}
	return t.String()
}

func (s *Stream) record(r history.WatchResponse) {
	s.mu.Lock()
	s.rec.Responses = append(s.rec.Responses, r)
	s.memberRev = max(s.memberRev, r.Header.Revision)
	s.mu.Unlock()
	if j := s.clock.Journal(); j != nil {
		j.WatchResponse(s.rec.ID, r)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// end sets the end reason once; the first reason wins.
func (s *Stream) end(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.EndReason == "" {
		s.rec.EndReason = reason
		s.rec.End = s.clock.Now()
	}
}

// Close stops reading with reason (see history.Watch.EndReason) and
// closes the stream, unless it has ended already; it waits for the
// receiving goroutine to stop.
func (s *Stream) Close(reason string) {
	s.end(reason)
	s.cancel()
	<-s.done
}

// Ended reports whether the stream has ended: broken, canceled or closed.
func (s *Stream) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.EndReason != ""
}

// Done is closed once the stream has ended and nothing more is recorded.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Notify receives a value after new messages were recorded.
func (s *Stream) Notify() <-chan struct{} { return s.notify }

// Record is a copy of what the stream recorded so far.
func (s *Stream) Record() history.Watch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.rec
	out.Responses = append([]history.WatchResponse(nil), s.rec.Responses...)
	out.ProgressRequests = append([]time.Duration(nil), s.rec.ProgressRequests...)
	return out
}

// MemberRevision is the highest header revision of the stream's responses
// so far: the member's store had reached at least this revision.
func (s *Stream) MemberRevision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberRev
}

// Take returns what the stream recorded, as Record does, and lets go of
// the stream's own copy, so that a run holds each response once: call it
// once the stream has ended, and nothing of the stream's after it.
func (s *Stream) Take() history.Watch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.rec
	out.Responses = slices.Clip(s.rec.Responses)
	if cap(s.rec.Responses) > len(s.rec.Responses)+len(s.rec.Responses)/8 {
		out.Responses = append([]history.WatchResponse(nil), s.rec.Responses...) // grown by doubling: fit it
	}
	out.ProgressRequests = append([]time.Duration(nil), s.rec.ProgressRequests...)
	s.rec.Responses, s.rec.ProgressRequests = nil, nil
	return out
}

// Request is the stream's watch request.
func (s *Stream) Request() history.WatchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Request
}

// SetTarget records the revision the watch is to catch up to.
func (s *Stream) SetTarget(rev int64) {
	s.mu.Lock()
	s.rec.Target = rev
	s.mu.Unlock()
}

// Progress is how far the stream has shown that it delivered: the highest
// of its last event's revision and of the revision of a progress
// notification (a message with no event, not a creation or cancellation).
// A watch that reached revision P has delivered every matching event at or
// below P, if etcd keeps its promises.
func (s *Stream) Progress() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Progress(s.rec)
}

// Progress is how far w has shown that it delivered (see Stream.Progress).
func Progress(w history.Watch) int64 {
	var p int64
	for _, r := range w.Responses {
		if r.IsProgressNotify() {
			p = max(p, r.Header.Revision)
		}
		if n := len(r.Events); n > 0 {
			p = max(p, r.Events[n-1].KV.ModRevision)
		}
	}
	return p
}

// Created reports whether etcd confirmed the watch.
func (s *Stream) Created() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rec.Responses {
		if r.Created {
			return true
		}
	}
	return false
}

package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// KV.RangeStream (etcd v3.7 and later) answers a range in chunks: each a
// RangeStreamResponse holding a RangeResponse with a slice of the keys, the
// last one also with the header, more and count. Merged in order they are
// the RangeResponse KV.Range gives. The module's etcd API (v3.6) has no
// stub for it, so the client calls the method by name and reads the one
// field of RangeStreamResponse itself; a v3.6 member answers Unimplemented.
const rangeStreamMethod = "/etcdserverpb.KV/RangeStream"

var rangeStreamDesc = &grpc.StreamDesc{StreamName: "RangeStream", ServerStreams: true}

// MidStreamError is an error etcd returned after it had sent part of a
// RangeStream answer. Each chunk is read at the revision of the first, so
// a compaction between chunks fails the rest; the read then has no answer,
// and Classify gives it an unknown outcome.
type MidStreamError struct {
	Chunks int // chunks received before the error
	Err    error
}

func (e *MidStreamError) Error() string {
	return fmt.Sprintf("range stream failed after %d chunks: %v", e.Chunks, e.Err)
}

func (e *MidStreamError) Unwrap() error { return e.Err }

// rangeStream sends req as a RangeStream and merges the chunks.
func (c *Client) rangeStream(ctx context.Context, req *history.RangeRequest) (*history.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := append([]grpc.CallOption{grpc.ForceCodec(rawCodec{})}, callOpts...)
	s, err := c.etcd.ActiveConnection().NewStream(ctx, rangeStreamDesc, rangeStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(req.PB()); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	merged := &pb.RangeResponse{}
	chunks := 0
	for {
		var raw []byte
		err := s.RecvMsg(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if chunks > 0 {
				return nil, &MidStreamError{Chunks: chunks, Err: err}
			}
			return nil, err
		}
		chunk, err := decodeRangeStreamResponse(raw)
		if err != nil {
			return nil, &MidStreamError{Chunks: chunks, Err: err}
		}
		chunks++
		mergeRangeChunk(merged, chunk)
	}
	if chunks == 0 {
		return nil, errors.New("range stream ended without a response")
	}
	out := history.RangeResponseFromPB(merged)
	out.Chunks = chunks
	return &history.Response{Header: history.HeaderFromPB(merged.Header), Range: out}, nil
}

// mergeRangeChunk merges chunk into m as proto.Merge does: keys appended,
// the header merged field by field, and more and count taken when set.
func mergeRangeChunk(m, chunk *pb.RangeResponse) {
	m.Kvs = append(m.Kvs, chunk.Kvs...)
	if h := chunk.Header; h != nil {
		if m.Header == nil {
			m.Header = &pb.ResponseHeader{}
		}
		if h.ClusterId != 0 {
			m.Header.ClusterId = h.ClusterId
		}
		if h.MemberId != 0 {
			m.Header.MemberId = h.MemberId
		}
		if h.Revision != 0 {
			m.Header.Revision = h.Revision
		}
		if h.RaftTerm != 0 {
			m.Header.RaftTerm = h.RaftTerm
		}
	}
	if chunk.More {
		m.More = true
	}
	if chunk.Count != 0 {
		m.Count = chunk.Count
	}
}

// decodeRangeStreamResponse reads a RangeStreamResponse: field 1 is its
// RangeResponse; fields it does not know are skipped, as protobuf does.
func decodeRangeStreamResponse(b []byte) (*pb.RangeResponse, error) {
	out := &pb.RangeResponse{}
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("range stream response: bad field key")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		switch wire {
		case 0: // varint
			_, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errors.New("range stream response: bad varint")
			}
			b = b[n:]
		case 1: // fixed64
			if len(b) < 8 {
				return nil, errors.New("range stream response: short fixed64")
			}
			b = b[8:]
		case 5: // fixed32
			if len(b) < 4 {
				return nil, errors.New("range stream response: short fixed32")
			}
			b = b[4:]
		case 2: // length-delimited
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, errors.New("range stream response: bad length")
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			if field == 1 {
				// Repeated occurrences of a message field merge.
				var r pb.RangeResponse
				if err := r.Unmarshal(v); err != nil {
					return nil, fmt.Errorf("range stream response: %w", err)
				}
				mergeRangeChunk(out, &r)
			}
		default:
			return nil, fmt.Errorf("range stream response: wire type %d", wire)
		}
	}
	return out, nil
}

// rawCodec sends etcd's request messages as they marshal themselves and
// hands back each received message's bytes. Its name is "proto", so etcd
// decodes the request with its own protobuf codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(interface{ Marshal() ([]byte, error) })
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return m.Marshal()
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Package model describes etcd as a sequential specification: the requests a
// client can send, the responses etcd may give, and the state that decides
// which response is legal. The linearizability checker replays recorded
// histories against it.
//
// The model is written to grow: a new kind of request (leases, compaction,
// defragmentation) adds a RequestType, a field on Request and Response, and a
// case in State.Apply. Nothing else needs to change.
package model

import (
	"fmt"
	"strings"
)

// RequestType names the kind of request. Today every KV request is a
// transaction: a plain Put, Get or Delete is a transaction with no conditions.
type RequestType string

const (
	// Txn covers Range, Put, Delete and compare-and-set transactions.
	Txn RequestType = "txn"
)

// OpType is one operation inside a transaction.
type OpType string

const (
	OpRange  OpType = "range"
	OpPut    OpType = "put"
	OpDelete OpType = "delete"
)

// Op is a single KV operation.
type Op struct {
	Type OpType `json:"type"`
	Key  string `json:"key"`
	// End, when set, makes the operation cover the key range [Key, End), as
	// etcd's range_end does. Empty means the single key Key; FromKey means
	// every key from Key on.
	End   string `json:"end,omitempty"`
	Value string `json:"value,omitempty"`
}

// Compare is a transaction condition: the key's mod revision equals
// ModRevision. ModRevision 0 means "the key does not exist".
type Compare struct {
	Key         string `json:"key"`
	ModRevision int64  `json:"mod_revision"`
}

// TxnRequest is etcd's Txn: if every condition holds, Then runs, else Else.
type TxnRequest struct {
	Conditions []Compare `json:"if,omitempty"`
	Then       []Op      `json:"then,omitempty"`
	Else       []Op      `json:"else,omitempty"`
}

// Request is what a client asked etcd to do.
type Request struct {
	Type RequestType `json:"type"`
	Txn  *TxnRequest `json:"txn,omitempty"`
}

// KeyValue is a key as a range returns it.
type KeyValue struct {
	Key            string `json:"key"`
	Value          string `json:"value"`
	CreateRevision int64  `json:"create_revision,omitempty"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version,omitempty"`
	Lease          int64  `json:"lease,omitempty"`
}

// OpResult is the outcome of one Op of a transaction.
type OpResult struct {
	KVs     []KeyValue `json:"kvs,omitempty"`     // for a range
	Deleted int64      `json:"deleted,omitempty"` // for a delete
}

// TxnResponse is the outcome of a TxnRequest.
type TxnResponse struct {
	Succeeded bool       `json:"succeeded"`
	Results   []OpResult `json:"results,omitempty"`
}

// Status says what is known of a request's effect.
type Status uint8

const (
	// StatusOK: etcd answered; the response must be the model's.
	StatusOK Status = iota
	// StatusUnknown: the request may or may not have taken effect, at any
	// time after it was called.
	StatusUnknown
	// StatusApplied: the request took effect (what the members persisted
	// shows it), but its response is unknown, except for Revision when the
	// evidence gives the revision it was applied at.
	StatusApplied
	// StatusFailed: etcd answered with Error, so nothing took effect.
	StatusFailed
)

// Response is what etcd answered, as the model reads it.
type Response struct {
	Status Status `json:"status,omitempty"`
	// Error is etcd's error message, for StatusFailed.
	Error    string       `json:"error,omitempty"`
	Revision int64        `json:"revision,omitempty"` // the response header's revision
	Txn      *TxnResponse `json:"txn,omitempty"`
	// AppliedTo is, for StatusApplied, the revision of the state the
	// request was applied to, when the evidence gives it (0 otherwise).
	// With Revision it pins the request's place: a request that changed
	// nothing cannot pass for one that wrote.
	AppliedTo int64 `json:"applied_to,omitempty"`
}

// Failed reports whether etcd gave no response to compare: the request
// failed, or its outcome is unknown.
func (r Response) Failed() bool { return r.Status != StatusOK }

// GetRequest reads a single key.
func GetRequest(key string) Request {
	return txnRequest(nil, []Op{{Type: OpRange, Key: key}}, nil)
}

// RangeRequest reads the keys in [key, end).
func RangeRequest(key, end string) Request {
	return txnRequest(nil, []Op{{Type: OpRange, Key: key, End: end}}, nil)
}

// FromKey as a range end means "no upper bound", as in etcd.
const FromKey = "\x00"

// RangeAllRequest reads every key.
func RangeAllRequest() Request { return RangeRequest(FromKey, FromKey) }

// PutRequest writes value to key.
func PutRequest(key, value string) Request {
	return txnRequest(nil, []Op{{Type: OpPut, Key: key, Value: value}}, nil)
}

// DeleteRequest deletes a single key.
func DeleteRequest(key string) Request {
	return txnRequest(nil, []Op{{Type: OpDelete, Key: key}}, nil)
}

// CompareAndSetRequest puts value to key if the key's mod revision is still
// modRevision (0: the key must not exist); otherwise it reads the key.
func CompareAndSetRequest(key string, modRevision int64, value string) Request {
	return txnRequest(
		[]Compare{{Key: key, ModRevision: modRevision}},
		[]Op{{Type: OpPut, Key: key, Value: value}},
		[]Op{{Type: OpRange, Key: key}},
	)
}

func txnRequest(conds []Compare, then, els []Op) Request {
	return Request{Type: Txn, Txn: &TxnRequest{Conditions: conds, Then: then, Else: els}}
}

// IsWrite reports whether the request can change etcd's state. Failed reads
// carry no information and can be dropped from a history; failed writes cannot.
func (r Request) IsWrite() bool {
	switch r.Type {
	case Txn:
		for _, ops := range [][]Op{r.Txn.Then, r.Txn.Else} {
			for _, op := range ops {
				if op.Type != OpRange {
					return true
				}
			}
		}
		return false
	default:
		return true
	}
}

// String renders a request the way a person reads it in a report.
func (r Request) String() string {
	switch r.Type {
	case Txn:
		t := r.Txn
		if len(t.Conditions) == 0 && len(t.Else) == 0 && len(t.Then) == 1 {
			return t.Then[0].String()
		}
		var conds []string
		for _, c := range t.Conditions {
			conds = append(conds, fmt.Sprintf("mod(%s)==%d", c.Key, c.ModRevision))
		}
		return fmt.Sprintf("if(%s).then(%s).else(%s)", strings.Join(conds, " && "), opsString(t.Then), opsString(t.Else))
	default:
		return fmt.Sprintf("<%s>", r.Type)
	}
}

func (o Op) String() string {
	switch o.Type {
	case OpRange:
		switch {
		case o.Key == FromKey && o.End == FromKey:
			return "range(all keys)"
		case o.End == FromKey:
			return fmt.Sprintf("range(%s..)", o.Key)
		case o.End != "":
			return fmt.Sprintf("range(%s..%s)", o.Key, o.End)
		}
		return fmt.Sprintf("get(%s)", o.Key)
	case OpPut:
		return fmt.Sprintf("put(%s, %s)", o.Key, o.Value)
	case OpDelete:
		return fmt.Sprintf("delete(%s)", o.Key)
	default:
		return fmt.Sprintf("<%s %s>", o.Type, o.Key)
	}
}

func opsString(ops []Op) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = op.String()
	}
	return strings.Join(s, ", ")
}

// String renders a response the way a person reads it in a report.
func (r Response) String() string {
	switch r.Status {
	case StatusUnknown:
		return "unknown outcome"
	case StatusApplied:
		if r.Revision != 0 {
			return fmt.Sprintf("applied at rev %d, response unknown", r.Revision)
		}
		return "applied, response unknown"
	case StatusFailed:
		return "error: " + r.Error
	}
	if r.Txn == nil {
		return fmt.Sprintf("rev %d", r.Revision)
	}
	var parts []string
	for _, res := range r.Txn.Results {
		switch {
		case res.Deleted > 0:
			parts = append(parts, fmt.Sprintf("deleted %d", res.Deleted))
		case len(res.KVs) > 0:
			var kvs []string
			for _, kv := range res.KVs {
				kvs = append(kvs, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision))
			}
			parts = append(parts, strings.Join(kvs, " "))
		}
	}
	out := fmt.Sprintf("rev %d", r.Revision)
	if !r.Txn.Succeeded {
		out = "else, " + out // the conditions did not hold
	}
	if len(parts) > 0 {
		out += ", " + strings.Join(parts, "; ")
	}
	return out
}

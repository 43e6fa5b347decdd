// Package model describes etcd as a sequential specification: the requests a
// client can send, the responses etcd may give, and the state that decides
// which response is legal. The linearizability checker replays recorded
// histories against it.
//
// The model covers etcd's KV API (range with its options, put, delete,
// transactions with every compare), compaction, and leases (grant, revoke,
// keepalive, time-to-live, expiry). A new kind of request adds a
// RequestType, a field on Request and Response, and a case in State.Apply.
package model

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// RequestType names the kind of request. Every KV request is a transaction:
// a plain Put, Get or Delete is a transaction with no conditions.
type RequestType string

const (
	// Txn covers Range, Put, Delete and transactions.
	Txn RequestType = "txn"
	// LeaseGrant grants Lease.ID with Lease.TTL seconds.
	LeaseGrant RequestType = "lease_grant"
	// LeaseRevoke revokes Lease.ID and deletes its keys.
	LeaseRevoke RequestType = "lease_revoke"
	// LeaseKeepAlive renews Lease.ID.
	LeaseKeepAlive RequestType = "lease_keep_alive"
	// LeaseTimeToLive reads Lease.ID.
	LeaseTimeToLive RequestType = "lease_time_to_live"
	// Compact compacts the store at Compact.Revision.
	Compact RequestType = "compact"
	// Defragment is member-local: it changes nothing the model holds.
	Defragment RequestType = "defragment"
	// LeaseLeases lists a member's leases. It reads the lessor of the member
	// that answers, which may lag, so it is not linearizable; the model
	// answers it from the state it is applied to, and the checks do not
	// place it (see validate).
	LeaseLeases RequestType = "lease_leases"
	// Auth is an auth admin request (AuthRequest): users, roles,
	// permissions, enabling auth.
	Auth RequestType = "auth"
)

// OpType is one operation inside a transaction.
type OpType string

const (
	OpRange  OpType = "range"
	OpPut    OpType = "put"
	OpDelete OpType = "delete"
	// OpTxn is a nested transaction (Op.Txn): its conditions are read
	// from the store as it was before the outer transaction, its
	// operations run in place, at the outer transaction's revision.
	OpTxn OpType = "txn"
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
	// Range holds a range's options.
	Range RangeOptions `json:"range,omitempty"`
	// Lease attaches a put key to a lease (0: none; a put detaches).
	Lease int64 `json:"lease,omitempty"`
	// PrevKV asks a put or delete to return the keys as they were before.
	PrevKV bool `json:"prev_kv,omitempty"`
	// IgnoreValue and IgnoreLease keep the key's current value or lease;
	// the key must exist.
	IgnoreValue bool `json:"ignore_value,omitempty"`
	IgnoreLease bool `json:"ignore_lease,omitempty"`
	// Txn is a nested transaction's request (OpTxn).
	Txn *TxnRequest `json:"txn,omitempty"`
}

// RangeOptions are the options of a range, with etcd's meanings:
//   - Revision: read the store as it was at that revision (0: current). A
//     revision below the compact revision fails with ErrCompacted, one above
//     the current revision with ErrFutureRev; the compact revision itself
//     can be read.
//   - Limit: return at most Limit keys (0: all). Count is then still every
//     key in the range, and More says whether keys were left out.
//   - KeysOnly: keys without their values. CountOnly: no keys, only Count.
//   - Serializable: the answering member reads its own store, which may
//     lag; the linearizability check does not place such reads (see
//     validate.StaleRead).
//   - Descend: keys in descending order (etcd's sort_order DESCEND on the
//     key; other sort targets are not modeled).
//   - Min/Max Mod/Create revision filters drop keys outside them (0: no
//     bound), after counting and before the limit, as etcd does.
type RangeOptions struct {
	Revision          int64 `json:"revision,omitempty"`
	Limit             int64 `json:"limit,omitempty"`
	KeysOnly          bool  `json:"keys_only,omitempty"`
	CountOnly         bool  `json:"count_only,omitempty"`
	Serializable      bool  `json:"serializable,omitempty"`
	Descend           bool  `json:"descend,omitempty"`
	MinModRevision    int64 `json:"min_mod_revision,omitempty"`
	MaxModRevision    int64 `json:"max_mod_revision,omitempty"`
	MinCreateRevision int64 `json:"min_create_revision,omitempty"`
	MaxCreateRevision int64 `json:"max_create_revision,omitempty"`
}

// CompareTarget is the field of a key a Compare reads.
type CompareTarget string

const (
	TargetValue   CompareTarget = "VALUE"
	TargetVersion CompareTarget = "VERSION"
	TargetCreate  CompareTarget = "CREATE"
	TargetMod     CompareTarget = "MOD"
	TargetLease   CompareTarget = "LEASE"
)

// CompareResult is a Compare's operator.
type CompareResult string

const (
	Equal    CompareResult = "EQUAL"
	NotEqual CompareResult = "NOT_EQUAL"
	Greater  CompareResult = "GREATER"
	Less     CompareResult = "LESS"
)

// Compare is a transaction condition, as etcd evaluates it: the Target
// field of every key in [Key, End) (End empty: the key Key) compared with
// Value (TargetValue) or Operand (the others). A missing key compares as a
// key whose fields are all zero, except on TargetValue, where a missing key
// fails every operator.
type Compare struct {
	Key     string        `json:"key"`
	End     string        `json:"end,omitempty"`
	Target  CompareTarget `json:"target"`
	Result  CompareResult `json:"result"`
	Value   string        `json:"value,omitempty"`
	Operand int64         `json:"operand,omitempty"`
}

// TxnRequest is etcd's Txn: if every condition holds, Then runs, else Else.
type TxnRequest struct {
	Conditions []Compare `json:"if,omitempty"`
	Then       []Op      `json:"then,omitempty"`
	Else       []Op      `json:"else,omitempty"`
}

// LeaseRequest is a lease request's fields. Times are durations since the
// run started, on the record's clock.
type LeaseRequest struct {
	ID int64 `json:"id"`
	// TTL is a grant's TTL in seconds: the one etcd answered when known
	// (TTLExact), else the one asked, which etcd may raise to its minimum.
	TTL      int64 `json:"ttl,omitempty"`
	TTLExact bool  `json:"ttl_exact,omitempty"`
	// Keys asks a time-to-live for the lease's keys.
	Keys bool `json:"keys,omitempty"`
	// At is when a grant or keepalive was called: the lease cannot expire
	// before At plus its TTL.
	At time.Duration `json:"at,omitempty"`
	// Expiry marks a revoke no client sent: the leader revoked an expired
	// lease. Before is the latest time it can have been applied (zero:
	// unknown); it is illegal while Before is earlier than the lease's
	// deadline.
	Expiry bool          `json:"expiry,omitempty"`
	Before time.Duration `json:"before,omitempty"`
}

// CompactRequest compacts the store at Revision.
type CompactRequest struct {
	Revision int64 `json:"revision"`
}

// Request is what a client asked etcd to do.
//
// User is the user the request was made as ("" for none): with auth
// enabled, the model checks its permissions. AuthRevision is the auth
// revision the request carries, known only for a request read from a
// member's WAL (0: unknown, not checked): etcd refuses one older than its
// auth store's.
type Request struct {
	Type         RequestType     `json:"type"`
	Txn          *TxnRequest     `json:"txn,omitempty"`
	Lease        *LeaseRequest   `json:"lease,omitempty"`
	Compact      *CompactRequest `json:"compact,omitempty"`
	Auth         *AuthRequest    `json:"auth,omitempty"`
	User         string          `json:"user,omitempty"`
	AuthRevision uint64          `json:"auth_revision,omitempty"`
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
	// For a range: the keys, every key in the range (Count, regardless of
	// the limit), and whether the limit left keys out (More).
	KVs   []KeyValue `json:"kvs,omitempty"`
	Count int64      `json:"count,omitempty"`
	More  bool       `json:"more,omitempty"`
	// For a delete: how many keys it deleted, and with prev_kv, which.
	Deleted int64      `json:"deleted,omitempty"`
	PrevKVs []KeyValue `json:"prev_kvs,omitempty"`
	// For a put with prev_kv: the key before, nil if it did not exist.
	PrevKV *KeyValue `json:"prev_kv,omitempty"`
	// For a nested transaction: its outcome.
	Txn *TxnResponse `json:"txn,omitempty"`
}

// TxnResponse is the outcome of a TxnRequest.
type TxnResponse struct {
	Succeeded bool       `json:"succeeded"`
	Results   []OpResult `json:"results,omitempty"`
}

// LeaseResponse is the answer to a lease request.
//   - grant: ID and TTL (the granted TTL);
//   - keepalive: ID and TTL, the granted TTL, or 0 if the lease does not
//     exist;
//   - time-to-live: ID, TTL -1 and GrantedTTL 0 if the lease does not exist;
//     else GrantedTTL, Keys when asked (sorted), and TTL 0: the remaining
//     time depends on the clock (and grows past the granted TTL after a
//     leader change), so the model does not predict it and derive drops it;
//   - leases: Leases, sorted.
type LeaseResponse struct {
	ID         int64    `json:"id,omitempty"`
	TTL        int64    `json:"ttl,omitempty"`
	GrantedTTL int64    `json:"granted_ttl,omitempty"`
	Keys       []string `json:"keys,omitempty"`
	Leases     []int64  `json:"leases,omitempty"`
	// MinTTL, in the model's answer, says the lease's TTL is only known to
	// be at least the one given (its grant's answer was not seen): an
	// answer with a TTL and GrantedTTL at least these is equal.
	MinTTL bool `json:"min_ttl,omitempty"`
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
	Error    string         `json:"error,omitempty"`
	Revision int64          `json:"revision,omitempty"` // the response header's revision
	Txn      *TxnResponse   `json:"txn,omitempty"`
	Lease    *LeaseResponse `json:"lease,omitempty"`
	// AppliedTo is, for StatusApplied, the revision of the state the
	// request was applied to, when the evidence gives it (0 otherwise).
	// With Revision it pins the request's place: a request that changed
	// nothing cannot pass for one that wrote.
	AppliedTo int64 `json:"applied_to,omitempty"`
}

// Errors etcd answers with, as a client sees them.
const (
	ErrCompacted     = "etcdserver: mvcc: required revision has been compacted"
	ErrFutureRev     = "etcdserver: mvcc: required revision is a future revision"
	ErrLeaseNotFound = "etcdserver: requested lease not found"
	ErrLeaseExists   = "etcdserver: lease already exists"
	ErrLeaseTooLarge = "etcdserver: too large lease TTL"
	ErrKeyNotFound   = "etcdserver: key not found"
	ErrDuplicateKey  = "etcdserver: duplicate key given in txn request"
	ErrValueProvided = "etcdserver: value is provided"
	ErrLeaseProvided = "etcdserver: lease is provided"
	ErrNoSpace       = "etcdserver: mvcc: database space exceeded"
)

// MaxLeaseTTL is etcd's largest lease TTL, in seconds.
const MaxLeaseTTL = 9000000000

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

// RangeWithOptions reads the keys in [key, end) (end empty: the key key)
// with options: at a revision, a page of Limit keys, keys only, ... It is
// how a check builds the request a client's read stands for, to apply it to
// a replayed state.
func RangeWithOptions(key, end string, o RangeOptions) Request {
	return txnRequest(nil, []Op{{Type: OpRange, Key: key, End: end, Range: o}}, nil)
}

// FromKey as a range end means "no upper bound", as in etcd.
const FromKey = "\x00"

// RangeAllRequest reads every key.
func RangeAllRequest() Request { return RangeRequest(FromKey, FromKey) }

// PutRequest writes value to key.
func PutRequest(key, value string) Request {
	return txnRequest(nil, []Op{{Type: OpPut, Key: key, Value: value}}, nil)
}

// PutWithLeaseRequest writes value to key attached to lease.
func PutWithLeaseRequest(key, value string, lease int64) Request {
	return txnRequest(nil, []Op{{Type: OpPut, Key: key, Value: value, Lease: lease}}, nil)
}

// DeleteRequest deletes a single key.
func DeleteRequest(key string) Request {
	return txnRequest(nil, []Op{{Type: OpDelete, Key: key}}, nil)
}

// CompareAndSetRequest puts value to key if the key's mod revision is still
// modRevision (0: the key must not exist); otherwise it reads the key.
func CompareAndSetRequest(key string, modRevision int64, value string) Request {
	return txnRequest(
		[]Compare{{Key: key, Target: TargetMod, Result: Equal, Operand: modRevision}},
		[]Op{{Type: OpPut, Key: key, Value: value}},
		[]Op{{Type: OpRange, Key: key}},
	)
}

// TxnOf is a transaction.
func TxnOf(conds []Compare, then, els []Op) Request { return txnRequest(conds, then, els) }

// LeaseGrantRequest grants lease id with ttl seconds, called at at.
func LeaseGrantRequest(id, ttl int64, at time.Duration) Request {
	return Request{Type: LeaseGrant, Lease: &LeaseRequest{ID: id, TTL: ttl, TTLExact: true, At: at}}
}

// LeaseRevokeRequest revokes lease id.
func LeaseRevokeRequest(id int64) Request {
	return Request{Type: LeaseRevoke, Lease: &LeaseRequest{ID: id}}
}

// LeaseExpiryRequest is the leader's revoke of an expired lease id,
// applied no later than before (zero: unknown).
func LeaseExpiryRequest(id int64, before time.Duration) Request {
	return Request{Type: LeaseRevoke, Lease: &LeaseRequest{ID: id, Expiry: true, Before: before}}
}

// LeaseKeepAliveRequest renews lease id, called at at.
func LeaseKeepAliveRequest(id int64, at time.Duration) Request {
	return Request{Type: LeaseKeepAlive, Lease: &LeaseRequest{ID: id, At: at}}
}

// LeaseTimeToLiveRequest reads lease id, and its keys if keys.
func LeaseTimeToLiveRequest(id int64, keys bool) Request {
	return Request{Type: LeaseTimeToLive, Lease: &LeaseRequest{ID: id, Keys: keys}}
}

// CompactRequestAt compacts at rev.
func CompactRequestAt(rev int64) Request {
	return Request{Type: Compact, Compact: &CompactRequest{Revision: rev}}
}

func txnRequest(conds []Compare, then, els []Op) Request {
	return Request{Type: Txn, Txn: &TxnRequest{Conditions: conds, Then: then, Else: els}}
}

// IsWrite reports whether the request can change etcd's state. Failed reads
// carry no information and can be dropped from a history; failed writes cannot.
func (r Request) IsWrite() bool {
	switch r.Type {
	case Txn:
		return r.Txn.writes()
	case LeaseTimeToLive, LeaseLeases, Defragment:
		return false
	default:
		return true
	}
}

func (t *TxnRequest) writes() bool {
	for _, ops := range [][]Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Type != OpRange && (op.Type != OpTxn || op.Txn.writes()) {
				return true
			}
		}
	}
	return false
}

// Serializable reports whether etcd serves the request from the answering
// member's own store, without raft: a transaction whose operations, in
// both branches, are all serializable ranges (etcd's IsTxnSerializable).
func (r Request) Serializable() bool {
	if r.Type != Txn {
		return false
	}
	for _, ops := range [][]Op{r.Txn.Then, r.Txn.Else} {
		for _, op := range ops {
			if op.Type != OpRange || !op.Range.Serializable {
				return false
			}
		}
	}
	return true
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
			conds = append(conds, c.String())
		}
		return fmt.Sprintf("if(%s).then(%s).else(%s)", strings.Join(conds, " && "), opsString(t.Then), opsString(t.Else))
	case LeaseGrant:
		return fmt.Sprintf("lease-grant(%d, ttl %d)", r.Lease.ID, r.Lease.TTL)
	case LeaseRevoke:
		if r.Lease.Expiry {
			return fmt.Sprintf("lease-expiry(%d)", r.Lease.ID)
		}
		return fmt.Sprintf("lease-revoke(%d)", r.Lease.ID)
	case LeaseKeepAlive:
		return fmt.Sprintf("lease-keepalive(%d)", r.Lease.ID)
	case LeaseTimeToLive:
		return fmt.Sprintf("lease-ttl(%d)", r.Lease.ID)
	case Compact:
		return fmt.Sprintf("compact(%d)", r.Compact.Revision)
	case Auth:
		return r.Auth.String()
	default:
		return fmt.Sprintf("<%s>", r.Type)
	}
}

func (c Compare) String() string {
	target := map[CompareTarget]string{TargetValue: "value", TargetVersion: "version", TargetCreate: "create", TargetMod: "mod", TargetLease: "lease"}[c.Target]
	op := map[CompareResult]string{Equal: "==", NotEqual: "!=", Greater: ">", Less: "<"}[c.Result]
	key := c.Key
	if c.End != "" {
		key += ".." + c.End
	}
	if c.Target == TargetValue {
		return fmt.Sprintf("%s(%s)%s%q", target, key, op, c.Value)
	}
	return fmt.Sprintf("%s(%s)%s%d", target, key, op, c.Operand)
}

func (o Op) String() string {
	switch o.Type {
	case OpRange:
		var s string
		switch {
		case o.Key == FromKey && o.End == FromKey:
			s = "range(all keys"
		case o.End == FromKey:
			s = fmt.Sprintf("range(%s..", o.Key)
		case o.End != "":
			s = fmt.Sprintf("range(%s..%s", o.Key, o.End)
		default:
			s = fmt.Sprintf("get(%s", o.Key)
		}
		if o.Range != (RangeOptions{}) {
			s += fmt.Sprintf(", %+v", o.Range)
		}
		return s + ")"
	case OpPut:
		if o.Lease != 0 {
			return fmt.Sprintf("put(%s, %s, lease %d)", o.Key, o.Value, o.Lease)
		}
		return fmt.Sprintf("put(%s, %s)", o.Key, o.Value)
	case OpDelete:
		if o.End != "" {
			return fmt.Sprintf("delete(%s..%s)", o.Key, o.End)
		}
		return fmt.Sprintf("delete(%s)", o.Key)
	case OpTxn:
		return TxnOf(o.Txn.Conditions, o.Txn.Then, o.Txn.Else).String()
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
	if r.Lease != nil {
		l := r.Lease
		out := fmt.Sprintf("rev %d, lease %d ttl %d", r.Revision, l.ID, l.TTL)
		if l.GrantedTTL != 0 {
			out += fmt.Sprintf(" granted %d", l.GrantedTTL)
		}
		if len(l.Keys) > 0 {
			out += " keys " + strings.Join(l.Keys, ",")
		}
		if len(l.Leases) > 0 {
			out += fmt.Sprintf(" leases %v", l.Leases)
		}
		return out
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
			s := strings.Join(kvs, " ")
			if res.More || res.Count != int64(len(res.KVs)) {
				s += fmt.Sprintf(" (count %d, more %t)", res.Count, res.More)
			}
			parts = append(parts, s)
		case res.Count > 0:
			parts = append(parts, fmt.Sprintf("count %d", res.Count))
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

// Equal reports whether two responses say the same thing; r is the
// model's. A lease answer of the model's with MinTTL accepts any TTL at
// least its own.
func (r Response) Equal(o Response) bool {
	if r.Status != o.Status || r.Error != o.Error || r.Revision != o.Revision || (r.Txn == nil) != (o.Txn == nil) || (r.Lease == nil) != (o.Lease == nil) {
		return false
	}
	if r.Lease != nil && !r.Lease.equal(o.Lease) {
		return false
	}
	if r.Txn == nil {
		return true
	}
	return r.Txn.equal(o.Txn)
}

func (t *TxnResponse) equal(o *TxnResponse) bool {
	if t.Succeeded != o.Succeeded || len(t.Results) != len(o.Results) {
		return false
	}
	for i, a := range t.Results {
		b := o.Results[i]
		if (a.Txn == nil) != (b.Txn == nil) || (a.Txn != nil && !a.Txn.equal(b.Txn)) {
			return false
		}
		if a.Deleted != b.Deleted || a.Count != b.Count || a.More != b.More || !slices.Equal(a.KVs, b.KVs) ||
			!slices.Equal(a.PrevKVs, b.PrevKVs) || (a.PrevKV == nil) != (b.PrevKV == nil) || (a.PrevKV != nil && *a.PrevKV != *b.PrevKV) {
			return false
		}
	}
	return true
}

func (l *LeaseResponse) equal(o *LeaseResponse) bool {
	if l.ID != o.ID || !slices.Equal(l.Keys, o.Keys) || !slices.Equal(l.Leases, o.Leases) {
		return false
	}
	if l.MinTTL {
		return o.TTL >= l.TTL && o.GrantedTTL >= l.GrantedTTL
	}
	return l.TTL == o.TTL && l.GrantedTTL == o.GrantedTTL
}

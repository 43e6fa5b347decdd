package model

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/benbjohnson/immutable"
)

// Lease is a lease as the model holds it.
type Lease struct {
	ID int64
	// TTL is the granted TTL in seconds; when TTLExact is false it is the
	// TTL the grant asked for, and etcd's may be higher (its minimum).
	TTL      int64
	TTLExact bool
	// Deadline is the earliest time the lease may legitimately expire: the
	// latest, over its grant and every keepalive answered with a TTL, of
	// the request's call time plus the TTL. Leader changes only extend
	// leases, so an expiry before Deadline is a bug.
	Deadline time.Duration
}

// snapshot is the key space at one revision; it points at the one before,
// so a state can answer a read at any revision it still holds.
type snapshot struct {
	rev  int64
	keys *immutable.SortedMap[string, KeyValue]
	hash uint64 // XOR of kvHash over keys
	prev *snapshot
}

// State is etcd's store as the model sees it: the revision, the compact
// revision, the keys at every revision from the compact revision to the
// current one, and the leases. A State is immutable; Apply returns a new
// one, sharing what did not change.
//
// Two states are Equal when their revision, compact revision, leases, auth
// (users, roles, permissions, auth revision, enabled) and the keys at every
// readable revision (compact revision to current) are equal: a read at an
// older revision tells them apart.
type State struct {
	Revision int64
	// CompactRevision is the revision of the last compaction (0: none).
	// Revisions below it can no longer be read; it can.
	CompactRevision int64

	snap   *snapshot
	leases *immutable.SortedMap[int64, Lease]
	// auth is the auth store (model/auth.go); nil is a new cluster's.
	auth *authState
	// pastHash sums snapHash over the readable snapshots; leaseHash XORs
	// leaseHash over the leases.
	pastHash, leaseHash uint64
	// rules are the applier's rules of the release (model/rules.go); they
	// are the same in every state of one history, so Equal and Hash leave
	// them out.
	rules Rules
}

var (
	keyComparer   = immutable.NewComparer("")
	leaseComparer = immutable.NewComparer(int64(0))
)

// InitialState is a fresh etcd cluster: revision 1, no keys, no leases.
func InitialState() State {
	snap := &snapshot{rev: 1, keys: immutable.NewSortedMap[string, KeyValue](keyComparer)}
	return State{Revision: 1, snap: snap, leases: immutable.NewSortedMap[int64, Lease](leaseComparer), pastHash: snapHash(snap)}
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func kvHash(kv KeyValue) uint64 {
	f := fnv.New64a()
	f.Write([]byte(kv.Key))
	f.Write([]byte{0})
	f.Write([]byte(kv.Value))
	h := f.Sum64()
	for _, x := range []int64{kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease} {
		h = mix(h ^ uint64(x))
	}
	return h
}

func snapHash(s *snapshot) uint64 { return mix(s.hash ^ mix(uint64(s.rev))) }

func leaseHash(l Lease) uint64 {
	h := mix(uint64(l.ID))
	h = mix(h ^ uint64(l.TTL))
	h = mix(h ^ uint64(l.Deadline))
	if l.TTLExact {
		h = mix(h ^ 1)
	}
	return h
}

// Hash is consistent with Equal. It is kept up to date by Apply, per
// changed key, lease and readable revision, not recomputed.
func (s State) Hash() uint64 {
	return mix(uint64(s.Revision)) ^ mix(uint64(s.CompactRevision)+0x9E3779B97F4A7C15) ^ s.pastHash ^ s.leaseHash ^ s.authState().hash
}

// Equal reports whether two states are the same: see State. Shared
// structure makes it cheap: equal pointers end the walk, a differing hash
// ends it at once.
func (s State) Equal(o State) bool {
	if s.Revision != o.Revision || s.CompactRevision != o.CompactRevision || s.Hash() != o.Hash() {
		return false
	}
	if s.leases != o.leases && !mapsEqual(s.leases, o.leases) {
		return false
	}
	if !s.authState().equal(o.authState()) {
		return false
	}
	for a, b := s.snap, o.snap; a != b; a, b = a.prev, b.prev {
		if a == nil || b == nil || a.rev != b.rev || a.hash != b.hash {
			return false
		}
		if a.keys != b.keys && !mapsEqual(a.keys, b.keys) {
			return false
		}
		if a.rev <= s.CompactRevision {
			break
		}
	}
	return true
}

func mapsEqual[K, V comparable](a, b *immutable.SortedMap[K, V]) bool {
	if a.Len() != b.Len() {
		return false
	}
	ia, ib := a.Iterator(), b.Iterator()
	for !ia.Done() {
		ka, va, _ := ia.Next()
		kb, vb, _ := ib.Next()
		if ka != kb || va != vb {
			return false
		}
	}
	return true
}

// Keys returns the keys at the current revision, in key order.
func (s State) Keys() []KeyValue { return s.snap.list() }

// Get returns a key at the current revision.
func (s State) Get(key string) (KeyValue, bool) { return s.snap.keys.Get(key) }

// Lease returns a lease.
func (s State) Lease(id int64) (Lease, bool) { return s.leases.Get(id) }

func (sn *snapshot) list() []KeyValue {
	out := make([]KeyValue, 0, sn.keys.Len())
	for it := sn.keys.Iterator(); !it.Done(); {
		_, v, _ := it.Next()
		out = append(out, v)
	}
	return out
}

// at returns the snapshot at rev, which must be readable.
func (s State) at(rev int64) *snapshot {
	sn := s.snap
	for sn.rev > rev {
		sn = sn.prev
	}
	return sn
}

// String lists the revision, compact revision, keys and leases.
func (s State) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d", s.Revision)
	if s.CompactRevision > 0 {
		fmt.Fprintf(&b, " compact=%d", s.CompactRevision)
	}
	for _, kv := range s.snap.list() {
		fmt.Fprintf(&b, " %s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
		if kv.Lease != 0 {
			fmt.Fprintf(&b, "(lease %d)", kv.Lease)
		}
	}
	for it := s.leases.Iterator(); !it.Done(); {
		_, l, _ := it.Next()
		fmt.Fprintf(&b, " lease %d ttl %d", l.ID, l.TTL)
	}
	return b.String()
}

// Apply executes req against s and returns the new state, the response a
// correct etcd gives, and the events the request produced (in the order a
// watch delivers them; none for a read). It never fails: a request the
// model does not know is a programming error and panics.
//
// With auth enabled, a request its user may not make is refused as etcd
// refuses it (State.permission), after a transaction's argument checks
// and before anything else.
func (s State) Apply(req Request) (State, Response, []Event) {
	if req.Type == Auth {
		return s.applyAuth(req.Auth, req.User)
	}
	if req.Type != Txn {
		if msg := s.permission(req); msg != "" {
			return s, failed(msg), nil
		}
	}
	switch req.Type {
	case Txn:
		return s.applyTxn(req)
	case LeaseGrant:
		return s.applyGrant(req.Lease)
	case LeaseRevoke:
		return s.applyRevoke(req.Lease)
	case LeaseKeepAlive:
		return s.applyKeepAlive(req.Lease)
	case LeaseTimeToLive:
		return s, s.timeToLive(req.Lease), nil
	case LeaseLeases:
		resp := Response{Revision: s.Revision, Lease: &LeaseResponse{}}
		for it := s.leases.Iterator(); !it.Done(); {
			id, _, _ := it.Next()
			resp.Lease.Leases = append(resp.Lease.Leases, id)
		}
		return s, resp, nil
	case Compact:
		return s.applyCompact(req.Compact.Revision)
	case Defragment:
		return s, Response{Revision: s.Revision}, nil
	default:
		panic(fmt.Sprintf("model: unknown request type %q", req.Type))
	}
}

func failed(msg string) Response { return Response{Status: StatusFailed, Error: msg} }

// writer collects one revision's changes to the key space.
type writer struct {
	base   State
	keys   *immutable.SortedMap[string, KeyValue]
	hash   uint64
	rev    int64 // the revision the changes are written at
	events []Event
}

func newWriter(s State) *writer {
	return &writer{base: s, keys: s.snap.keys, hash: s.snap.hash, rev: s.Revision + 1}
}

func (w *writer) put(kv KeyValue) {
	prev, ok := w.keys.Get(kv.Key)
	ev := Event{Type: EventPut, Revision: w.rev}
	if ok {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		ev.PrevKV = &prev
		w.hash ^= kvHash(prev)
	} else {
		kv.CreateRevision, kv.Version = w.rev, 1
	}
	kv.ModRevision = w.rev
	ev.KV = kv
	w.keys = w.keys.Set(kv.Key, kv)
	w.hash ^= kvHash(kv)
	w.events = append(w.events, ev)
}

func (w *writer) delete(prev KeyValue) {
	p := prev
	w.events = append(w.events, Event{Type: EventDelete, Revision: w.rev, KV: KeyValue{Key: prev.Key, ModRevision: w.rev}, PrevKV: &p})
	w.keys = w.keys.Delete(prev.Key)
	w.hash ^= kvHash(prev)
}

// state is base with the changes, at a new revision if there were any.
func (w *writer) state() State {
	s := w.base
	if len(w.events) == 0 {
		return s
	}
	s.snap = &snapshot{rev: w.rev, keys: w.keys, hash: w.hash, prev: s.snap}
	s.Revision = w.rev
	s.pastHash ^= snapHash(s.snap)
	return s
}

// current is the key space as the writer's changes left it.
func (w *writer) current() *snapshot {
	if len(w.events) == 0 {
		return w.base.snap
	}
	return &snapshot{rev: w.rev, keys: w.keys, hash: w.hash}
}

func (s State) applyTxn(req Request) (State, Response, []Event) {
	t := req.Txn
	if msg := checkArgs(t); msg != "" {
		return s, failed(msg), nil
	}
	if msg := s.permission(req); msg != "" {
		return s, failed(msg), nil
	}
	// etcd decides every branch, nested transactions' too, on the store
	// as it was before the transaction, and checks the branches it takes
	// before executing any of them: a failing check fails the whole
	// request and changes nothing.
	if msg := s.checkTxn(t); msg != "" {
		return s, failed(msg), nil
	}
	// Every write in one transaction shares the next revision; the revision
	// only moves if something was written.
	w := newWriter(s)
	resp := s.execTxn(w, t)
	next := w.state()
	return next, Response{Revision: next.Revision, Txn: resp}, w.events
}

// succeeds evaluates a transaction's conditions on s.
func (s State) succeeds(t *TxnRequest) bool {
	for _, c := range t.Conditions {
		if !s.compare(c) {
			return false
		}
	}
	return true
}

// branch is the operations a transaction runs, its conditions read on s.
func (s State) branch(t *TxnRequest) ([]Op, bool) {
	if s.succeeds(t) {
		return t.Then, true
	}
	return t.Else, false
}

// checkTxn is etcd's checkTxn: check of the branches taken, nested ones
// included.
func (s State) checkTxn(t *TxnRequest) string {
	ops, _ := s.branch(t)
	if msg := s.check(ops); msg != "" {
		return msg
	}
	for _, op := range ops {
		if op.Type == OpTxn {
			if msg := s.checkTxn(op.Txn); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// execTxn runs the branch of t that s decides through w.
func (s State) execTxn(w *writer, t *TxnRequest) *TxnResponse {
	ops, succeeded := s.branch(t)
	results := make([]OpResult, len(ops))
	for i, op := range ops {
		switch op.Type {
		case OpRange:
			results[i] = s.rangeOp(w.current(), op)
		case OpPut:
			prev, ok := w.keys.Get(op.Key)
			if op.PrevKV && ok {
				p := prev
				results[i].PrevKV = &p
			}
			kv := KeyValue{Key: op.Key, Value: op.Value, Lease: op.Lease}
			if op.IgnoreValue {
				kv.Value = prev.Value
			}
			if op.IgnoreLease {
				kv.Lease = prev.Lease
			}
			w.put(kv)
		case OpDelete:
			for _, kv := range keysIn(w.current(), op.Key, op.End) {
				if op.PrevKV {
					results[i].PrevKVs = append(results[i].PrevKVs, kv)
				}
				w.delete(kv)
				results[i].Deleted++
			}
		case OpTxn:
			results[i].Txn = s.execTxn(w, op.Txn)
		default:
			panic(fmt.Sprintf("model: unknown op type %q", op.Type))
		}
	}
	return &TxnResponse{Succeeded: succeeded, Results: results}
}

// checkArgs is the gRPC layer's check of a transaction, on both branches,
// before anything else: a value or lease given with ignore_value or
// ignore_lease, a key put twice or put and deleted in one branch. It
// returns the error message, or "".
//
// Nested transactions are checked as etcd's checkIntervals does: a key a
// nested transaction may put (in either branch) must not be put, or
// deleted, by its siblings or its parent's level; the two branches of one
// nested transaction may put the same key.
func checkArgs(t *TxnRequest) string {
	if msg := checkIgnore(t); msg != "" {
		return msg
	}
	for _, ops := range [][]Op{t.Then, t.Else} {
		if _, _, dup := txnIntervals(ops); dup {
			return ErrDuplicateKey
		}
	}
	return ""
}

func checkIgnore(t *TxnRequest) string {
	for _, ops := range [][]Op{t.Then, t.Else} {
		for _, op := range ops {
			switch {
			case op.Type == OpPut && op.IgnoreValue && op.Value != "":
				return ErrValueProvided
			case op.Type == OpPut && op.IgnoreLease && op.Lease != 0:
				return ErrLeaseProvided
			case op.Type == OpTxn:
				if msg := checkIgnore(op.Txn); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

// txnIntervals is etcd's checkIntervals over one branch: the keys it may
// put, the deletes it may make, and whether a key is put twice or put and
// deleted.
func txnIntervals(ops []Op) (puts map[string]bool, dels []Op, dup bool) {
	for _, op := range ops {
		if op.Type == OpDelete {
			dels = append(dels, op)
		}
	}
	deleted := func(k string) bool {
		return slices.ContainsFunc(dels, func(d Op) bool { return inRange(k, d.Key, d.End) })
	}
	puts = map[string]bool{}
	for _, op := range ops {
		if op.Type != OpTxn {
			continue
		}
		putsThen, delsThen, dup1 := txnIntervals(op.Txn.Then)
		putsElse, delsElse, dup2 := txnIntervals(op.Txn.Else)
		if dup1 || dup2 {
			return nil, nil, true
		}
		for k := range putsThen {
			if puts[k] || deleted(k) {
				return nil, nil, true
			}
			puts[k] = true
		}
		for k := range putsElse {
			if (puts[k] && !putsThen[k]) || deleted(k) {
				return nil, nil, true
			}
			puts[k] = true
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range ops {
		if op.Type != OpPut {
			continue
		}
		if puts[op.Key] || deleted(op.Key) {
			return nil, nil, true
		}
		puts[op.Key] = true
	}
	return puts, dels, false
}

// check is etcd's check of the branch a transaction takes, before it runs
// any of it: a range's revision, a put's existing key (ignore_value,
// ignore_lease) and lease. It returns the error message, or "".
func (s State) check(ops []Op) string {
	for _, op := range ops {
		switch op.Type {
		case OpRange:
			if msg := s.readable(op.Range.Revision); msg != "" {
				return msg
			}
		case OpPut:
			if _, ok := s.snap.keys.Get(op.Key); !ok && (op.IgnoreValue || op.IgnoreLease) {
				return ErrKeyNotFound
			}
			if _, ok := s.leases.Get(op.Lease); op.Lease != 0 && !ok {
				return ErrLeaseNotFound
			}
		}
	}
	return ""
}

// readable is the error of a read at rev (0: current), or "".
func (s State) readable(rev int64) string {
	switch {
	case rev > s.Revision:
		return ErrFutureRev
	case rev > 0 && rev < s.CompactRevision:
		return ErrCompacted
	}
	return ""
}

func inRange(key, start, end string) bool {
	switch {
	case end == "":
		return key == start
	case end == FromKey:
		return key >= start
	}
	return key >= start && key < end
}

// keysIn lists the keys of sn in [start, end), in key order.
func keysIn(sn *snapshot, start, end string) []KeyValue {
	if end == "" {
		if kv, ok := sn.keys.Get(start); ok {
			return []KeyValue{kv}
		}
		return nil
	}
	var out []KeyValue
	it := sn.keys.Iterator()
	if start != FromKey {
		it.Seek(start)
	}
	for !it.Done() {
		k, v, _ := it.Next()
		if end != FromKey && k >= end {
			break
		}
		out = append(out, v)
	}
	return out
}

// rangeOp answers a range, reading cur (the key space as the transaction
// left it so far) or, at a revision, the state's snapshot there. Count is
// every key in the range; filters drop keys after counting; the limit
// truncates and sets More.
func (s State) rangeOp(cur *snapshot, op Op) OpResult {
	o := op.Range
	sn := cur
	if o.Revision > 0 {
		sn = s.at(o.Revision)
	}
	kvs := keysIn(sn, op.Key, op.End)
	res := OpResult{Count: int64(len(kvs))}
	if o.CountOnly {
		return res
	}
	kvs = slices.DeleteFunc(kvs, func(kv KeyValue) bool {
		return (o.MaxModRevision != 0 && kv.ModRevision > o.MaxModRevision) ||
			(o.MinModRevision != 0 && kv.ModRevision < o.MinModRevision) ||
			(o.MaxCreateRevision != 0 && kv.CreateRevision > o.MaxCreateRevision) ||
			(o.MinCreateRevision != 0 && kv.CreateRevision < o.MinCreateRevision)
	})
	if o.Descend {
		slices.Reverse(kvs)
	}
	if o.Limit > 0 && int64(len(kvs)) > o.Limit {
		kvs, res.More = kvs[:o.Limit], true
	}
	if o.KeysOnly {
		for i := range kvs {
			kvs[i].Value = ""
		}
	}
	if len(kvs) > 0 {
		res.KVs = kvs
	}
	return res
}

// compare evaluates a condition as etcd's applyCompare does.
func (s State) compare(c Compare) bool {
	kvs := keysIn(s.snap, c.Key, c.End)
	if len(kvs) == 0 {
		if c.Target == TargetValue {
			return false // a missing key has no value to compare
		}
		return compareKV(c, KeyValue{})
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c Compare, kv KeyValue) bool {
	var r int
	switch c.Target {
	case TargetValue:
		r = strings.Compare(kv.Value, c.Value)
	case TargetCreate:
		r = cmpInt(kv.CreateRevision, c.Operand)
	case TargetMod:
		r = cmpInt(kv.ModRevision, c.Operand)
	case TargetVersion:
		r = cmpInt(kv.Version, c.Operand)
	case TargetLease:
		r = cmpInt(kv.Lease, c.Operand)
	default:
		panic(fmt.Sprintf("model: unknown compare target %q", c.Target))
	}
	switch c.Result {
	case Equal:
		return r == 0
	case NotEqual:
		return r != 0
	case Greater:
		return r > 0
	case Less:
		return r < 0
	}
	panic(fmt.Sprintf("model: unknown compare result %q", c.Result))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s State) setLease(l Lease) State {
	if old, ok := s.leases.Get(l.ID); ok {
		s.leaseHash ^= leaseHash(old)
	}
	s.leases = s.leases.Set(l.ID, l)
	s.leaseHash ^= leaseHash(l)
	return s
}

// applyGrant grants a lease: a lease granted does not move the revision.
func (s State) applyGrant(r *LeaseRequest) (State, Response, []Event) {
	switch {
	case r.ID == 0:
		return s, failed(ErrLeaseNotFound), nil // etcd's lessor refuses the ID 0
	case r.TTL > MaxLeaseTTL:
		return s, failed(ErrLeaseTooLarge), nil
	}
	if _, ok := s.leases.Get(r.ID); ok {
		return s, failed(ErrLeaseExists), nil
	}
	l := Lease{ID: r.ID, TTL: r.TTL, TTLExact: r.TTLExact, Deadline: r.At + time.Duration(r.TTL)*time.Second}
	return s.setLease(l), Response{Revision: s.Revision, Lease: &LeaseResponse{ID: r.ID, TTL: r.TTL, MinTTL: !r.TTLExact}}, nil
}

// applyRevoke revokes a lease and deletes its keys, in key order, at one
// revision (none if it had no keys). An expiry before the lease's deadline
// is not etcd's behavior: it fails with a message no etcd gives, so no
// answer matches it, and an applied one has no state to go to (Step).
func (s State) applyRevoke(r *LeaseRequest) (State, Response, []Event) {
	l, ok := s.leases.Get(r.ID)
	if !ok {
		return s, failed(ErrLeaseNotFound), nil
	}
	if r.Expiry && r.Before > 0 && r.Before < l.Deadline {
		return s, failed(errEarlyExpiry), nil
	}
	w := newWriter(s)
	for it := s.snap.keys.Iterator(); !it.Done(); {
		_, kv, _ := it.Next()
		if kv.Lease == r.ID {
			w.delete(kv)
		}
	}
	next := w.state()
	next.leases = next.leases.Delete(r.ID)
	next.leaseHash ^= leaseHash(l)
	return next, Response{Revision: next.Revision, Lease: &LeaseResponse{}}, w.events
}

// errEarlyExpiry is the model's refusal of an expiry before the lease's
// deadline; no etcd answer carries it.
const errEarlyExpiry = "model: lease expired before its TTL ran out"

// applyKeepAlive renews a lease: TTL 0 when it does not exist.
func (s State) applyKeepAlive(r *LeaseRequest) (State, Response, []Event) {
	l, ok := s.leases.Get(r.ID)
	if !ok {
		return s, Response{Revision: s.Revision, Lease: &LeaseResponse{ID: r.ID}}, nil
	}
	if d := r.At + time.Duration(l.TTL)*time.Second; d > l.Deadline {
		l.Deadline = d
		s = s.setLease(l)
	}
	return s, Response{Revision: s.Revision, Lease: &LeaseResponse{ID: r.ID, TTL: l.TTL, MinTTL: !l.TTLExact}}, nil
}

// timeToLive reads a lease: TTL -1 when it does not exist.
func (s State) timeToLive(r *LeaseRequest) Response {
	l, ok := s.leases.Get(r.ID)
	if !ok {
		return Response{Revision: s.Revision, Lease: &LeaseResponse{ID: r.ID, TTL: -1}}
	}
	resp := Response{Revision: s.Revision, Lease: &LeaseResponse{ID: r.ID, GrantedTTL: l.TTL, MinTTL: !l.TTLExact}}
	if r.Keys {
		for it := s.snap.keys.Iterator(); !it.Done(); {
			k, kv, _ := it.Next()
			if kv.Lease == r.ID {
				resp.Lease.Keys = append(resp.Lease.Keys, k)
			}
		}
	}
	return resp
}

// applyCompact compacts at rev: revisions below it can no longer be read.
// The revision does not move.
func (s State) applyCompact(rev int64) (State, Response, []Event) {
	switch {
	case rev <= s.CompactRevision:
		return s, failed(ErrCompacted), nil
	case rev > s.Revision:
		return s, failed(ErrFutureRev), nil
	}
	// Drop the snapshots below rev from the hash; the chain stays, unread.
	for sn := s.snap; sn != nil && sn.rev >= s.CompactRevision; sn = sn.prev {
		if sn.rev < rev {
			s.pastHash ^= snapHash(sn)
		}
	}
	s.CompactRevision = rev
	return s, Response{Revision: s.Revision}, nil
}

package model

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
)

// State is etcd's KV store as the model sees it: the global revision and the
// live keys. A State is immutable; Apply returns a new one.
type State struct {
	Revision int64
	KVs      map[string]KeyValue
	hash     uint64
}

// InitialState is a fresh etcd cluster: revision 1, no keys.
func InitialState() State {
	return newState(1, map[string]KeyValue{})
}

func newState(rev int64, kvs map[string]KeyValue) State {
	s := State{Revision: rev, KVs: kvs}
	s.hash = s.computeHash()
	return s
}

// computeHash combines per-key hashes with XOR so that map order does not matter.
func (s State) computeHash() uint64 {
	h := uint64(s.Revision) * 0x9E3779B97F4A7C15
	for k, v := range s.KVs {
		f := fnv.New64a()
		f.Write([]byte(k))
		f.Write([]byte{0})
		f.Write([]byte(v.Value))
		h ^= f.Sum64() + uint64(v.ModRevision)*0xC2B2AE3D27D4EB4F + uint64(v.CreateRevision)*0x165667B19E3779F9 +
			uint64(v.Version)*0x27D4EB2F165667C5 + uint64(v.Lease)*0x85EBCA77C2B2AE63
	}
	return h
}

// Hash is consistent with Equal.
func (s State) Hash() uint64 { return s.hash }

// Equal reports whether two states hold the same revision and keys.
func (s State) Equal(o State) bool {
	if s.Revision != o.Revision || s.hash != o.hash || len(s.KVs) != len(o.KVs) {
		return false
	}
	for k, v := range s.KVs {
		if ov, ok := o.KVs[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// String lists the revision and keys in key order.
func (s State) String() string {
	keys := make([]string, 0, len(s.KVs))
	for k := range s.KVs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d", s.Revision)
	for _, k := range keys {
		v := s.KVs[k]
		fmt.Fprintf(&b, " %s=%s@%d", k, v.Value, v.ModRevision)
	}
	return b.String()
}

// Apply executes req against s and returns the new state, the response a
// correct etcd gives, and the events the request produced (in the order a
// watch delivers them; none for a read). It never fails: a request the
// model does not know is a programming error and panics.
func (s State) Apply(req Request) (State, Response, []Event) {
	switch req.Type {
	case Txn:
		return s.applyTxn(req.Txn)
	default:
		panic(fmt.Sprintf("model: unknown request type %q", req.Type))
	}
}

func (s State) applyTxn(t *TxnRequest) (State, Response, []Event) {
	succeeded := true
	for _, c := range t.Conditions {
		if s.KVs[c.Key].ModRevision != c.ModRevision {
			succeeded = false
			break
		}
	}
	ops := t.Then
	if !succeeded {
		ops = t.Else
	}
	// Every write in one transaction shares the next revision; the revision
	// only moves if something was written.
	next := s.Revision + 1
	var kvs map[string]KeyValue // copied on first write
	write := func() map[string]KeyValue {
		if kvs == nil {
			kvs = make(map[string]KeyValue, len(s.KVs)+1)
			for k, v := range s.KVs {
				kvs[k] = v
			}
		}
		return kvs
	}
	current := func() map[string]KeyValue {
		if kvs != nil {
			return kvs
		}
		return s.KVs
	}
	results := make([]OpResult, len(ops))
	var events []Event
	for i, op := range ops {
		switch op.Type {
		case OpRange:
			results[i] = OpResult{KVs: rangeKVs(current(), op)}
		case OpPut:
			kv := KeyValue{Key: op.Key, Value: op.Value, CreateRevision: next, ModRevision: next, Version: 1}
			ev := Event{Type: EventPut, Revision: next}
			if prev, ok := current()[op.Key]; ok {
				kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
				ev.PrevKV = &prev
			}
			ev.KV = kv
			events = append(events, ev)
			write()[op.Key] = kv
		case OpDelete:
			for _, kv := range rangeKVs(current(), op) {
				prev := kv
				events = append(events, Event{Type: EventDelete, Revision: next, KV: KeyValue{Key: kv.Key, ModRevision: next}, PrevKV: &prev})
				delete(write(), kv.Key)
				results[i].Deleted++
			}
		default:
			panic(fmt.Sprintf("model: unknown op type %q", op.Type))
		}
	}
	resp := Response{Txn: &TxnResponse{Succeeded: succeeded, Results: results}}
	if kvs == nil {
		resp.Revision = s.Revision
		return s, resp, nil
	}
	resp.Revision = next
	return newState(next, kvs), resp, events
}

// rangeKVs returns the keys op covers, sorted as etcd sorts them.
func rangeKVs(kvs map[string]KeyValue, op Op) []KeyValue {
	if op.End == "" {
		v, ok := kvs[op.Key]
		if !ok {
			return nil
		}
		return []KeyValue{v}
	}
	var out []KeyValue
	for k, v := range kvs {
		if k >= op.Key && (op.End == FromKey || k < op.End) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Equal reports whether two responses say the same thing.
func (r Response) Equal(o Response) bool {
	if r.Status != o.Status || r.Error != o.Error || r.Revision != o.Revision || (r.Txn == nil) != (o.Txn == nil) {
		return false
	}
	if r.Txn == nil {
		return true
	}
	if r.Txn.Succeeded != o.Txn.Succeeded || len(r.Txn.Results) != len(o.Txn.Results) {
		return false
	}
	for i, a := range r.Txn.Results {
		b := o.Txn.Results[i]
		if a.Deleted != b.Deleted || len(a.KVs) != len(b.KVs) {
			return false
		}
		for j := range a.KVs {
			if a.KVs[j] != b.KVs[j] {
				return false
			}
		}
	}
	return true
}

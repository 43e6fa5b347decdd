package model

import "fmt"

// EventType is the kind of change an event records, as etcd's watch
// reports it.
type EventType string

const (
	EventPut    EventType = "PUT"
	EventDelete EventType = "DELETE"
)

// Event is one key's change at one revision, as a correct etcd reports it
// on a watch: Apply returns the events of every write it applies, so the
// watch checks replay the same semantics as the linearizability check.
//
// For a put, KV is the key as stored after it (create revision, mod
// revision, version, value, lease). For a delete, KV carries only the key
// and ModRevision, the revision of the delete, as etcd sends it. PrevKV is
// the key before the change, nil if it did not exist.
type Event struct {
	Type     EventType `json:"type"`
	KV       KeyValue  `json:"kv"`
	PrevKV   *KeyValue `json:"prev_kv,omitempty"`
	Revision int64     `json:"revision"`
}

// IsCreate reports whether a put created its key (version 1).
func (e Event) IsCreate() bool { return e.Type == EventPut && e.KV.CreateRevision == e.KV.ModRevision }

// String renders an event for a person.
func (e Event) String() string {
	if e.Type == EventDelete {
		return fmt.Sprintf("delete %s @%d", e.KV.Key, e.Revision)
	}
	return fmt.Sprintf("put %s=%s @%d", e.KV.Key, e.KV.Value, e.Revision)
}

package history

import "unique"

// Intern returns the one copy of s that every other interned string equal
// to it shares, so that a value held by many records is in memory once.
// The copy lives while anything refers to it.
func Intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

func internBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unique.Make(string(b)).Value()
}

// InternKeyValue interns kv's key and value in place.
func InternKeyValue(kv *KeyValue) {
	kv.Key, kv.Value = Intern(kv.Key), Intern(kv.Value)
}

// InternStrings interns the keys and values of every event the watch
// received (as KeyValueFromPB does while a run records them; a record
// loaded from JSON has a copy of each per occurrence).
func (w *Watch) InternStrings() {
	for r := range w.Responses {
		for e := range w.Responses[r].Events {
			ev := &w.Responses[r].Events[e]
			ev.Type = Intern(ev.Type)
			InternKeyValue(&ev.KV)
			if ev.PrevKV != nil {
				InternKeyValue(ev.PrevKV)
			}
		}
	}
}

// InternStrings interns the keys and values of every range the client's
// operations read, in txns too.
func (c *Client) InternStrings() {
	for i := range c.Operations {
		if r := c.Operations[i].Response; r != nil {
			internRange(r.Range)
			internTxn(r.Txn)
		}
	}
}

func internRange(r *RangeResponse) {
	if r == nil {
		return
	}
	for k := range r.KVs {
		InternKeyValue(&r.KVs[k])
	}
}

func internTxn(t *TxnResponse) {
	if t == nil {
		return
	}
	for _, op := range t.Responses {
		internRange(op.Range)
		internTxn(op.Txn)
	}
}

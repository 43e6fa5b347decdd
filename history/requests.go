package history

// Constructors for the requests the traffic sends, in etcd's terms.

// FromKey as a range end means "every key from Key on", as in etcd; with
// Key also FromKey it means every key.
const FromKey = "\x00"

// Get reads one key.
func Get(key string) Request { return Request{Range: &RangeRequest{Key: key}} }

// Range reads the keys in [key, end).
func Range(key, end string) Request {
	return Request{Range: &RangeRequest{Key: key, RangeEnd: end}}
}

// RangeAll reads every key.
func RangeAll() Request { return Range(FromKey, FromKey) }

// Put writes value to key.
func Put(key, value string) Request {
	return Request{Put: &PutRequest{Key: key, Value: value}}
}

// Delete deletes one key.
func Delete(key string) Request { return Request{DeleteRange: &DeleteRangeRequest{Key: key}} }

// CompareAndSet puts value to key if the key's mod revision is still
// modRevision (0: the key must not exist); otherwise it reads the key.
func CompareAndSet(key string, modRevision int64, value string) Request {
	return Request{Txn: &TxnRequest{
		Compare: []Compare{{Result: "EQUAL", Target: "MOD", Key: key, ModRevision: modRevision}},
		Success: []RequestOp{{Put: &PutRequest{Key: key, Value: value}}},
		Failure: []RequestOp{{Range: &RangeRequest{Key: key}}},
	}}
}

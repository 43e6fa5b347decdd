package history

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Keys and values received again are one copy in memory, equal to what etcd sent.
func TestInterning(t *testing.T) {
	a := KeyValueFromPB(&mvccpb.KeyValue{Key: []byte("key/1/2"), Value: []byte("3-17"), ModRevision: 5})
	b := KeyValueFromPB(&mvccpb.KeyValue{Key: []byte("key/1/2"), Value: []byte("3-17"), ModRevision: 6})
	require.Equal(t, KeyValue{Key: "key/1/2", Value: "3-17", ModRevision: 5}, a)
	require.True(t, sameString(a.Key, b.Key) && sameString(a.Value, b.Value), "not shared")
	c := KeyValueFromPB(&mvccpb.KeyValue{Key: []byte("key/1/3")})
	require.Equal(t, "key/1/3", c.Key)
	require.Empty(t, c.Value)

	// A loaded record's copies.
	v1, v2 := string([]byte("3-17")), string([]byte("3-17"))
	require.False(t, sameString(v1, v2))
	w := Watch{Responses: []WatchResponse{{Events: []WatchEvent{{KV: KeyValue{Key: "k", Value: v1}, PrevKV: &KeyValue{Key: "k", Value: v2}}}}}}
	w.InternStrings()
	ev := w.Responses[0].Events[0]
	require.True(t, sameString(ev.KV.Value, ev.PrevKV.Value) && sameString(ev.KV.Value, a.Value))
	cl := Client{Operations: []Operation{{Response: &Response{Txn: &TxnResponse{Responses: []ResponseOp{{Range: &RangeResponse{KVs: []KeyValue{{Key: "key/1/2", Value: string([]byte("3-17"))}}}}}}}}}}
	cl.InternStrings()
	require.True(t, sameString(cl.Operations[0].Response.Txn.Responses[0].Range.KVs[0].Value, a.Value), "a txn's range not interned")
}

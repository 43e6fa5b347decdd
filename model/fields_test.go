package model

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// notCompared lists the response fields the model deliberately does not
// check, by request kind and field path ("*" for every kind), with why.
var notCompared = map[string]string{
	"*.Header.ClusterID":                     "names the cluster, not its state",
	"*.Header.MemberID":                      "names the answering member, not the state",
	"*.Header.RaftTerm":                      "raft's term, not the store's state",
	"lease_keep_alive.Header.Revision":       "filled by the answering member before the leader renews, so it may lag",
	"lease_time_to_live.Header.Revision":     "filled by the answering member, which may lag the leader that answers",
	"lease_time_to_live.LeaseTimeToLive.TTL": "the remaining time of an existing lease depends on the clock and grows past the granted TTL after a leader change",
	"lease_grant.LeaseGrant.TTL":             "taken as the granted TTL (etcd raises a TTL below its minimum); only a TTL below the one asked is wrong, and keepalive and time-to-live answers must then match it",
	"lease_leases.Header.Revision":           "a lease list reads one member's lessor, outside raft; the checks leave it out",
	"lease_leases.LeaseLeases.Leases":        "a lease list reads one member's lessor, outside raft; the checks leave it out",
	"defragment.Header.Revision":             "defragmentation is member-local; the checks leave it out",
	"*.Range.Chunks":                         "how many messages a RangeStream answer came in is etcd's choice, not the state; the merged answer is compared",
	"*.Txn.Responses[].Range.Chunks":         "not set inside a txn (a txn has no streaming range)",
}

// Every field of every kind of response is compared: changing any one of a
// correct answer makes Step reject it, unless the field is listed in
// notCompared. A field added to history.Response later fails this test
// until the model compares it or it is listed with a reason.
func TestEveryResponseFieldIsCompared(t *testing.T) {
	s := apply(t, InitialState(), PutRequest("a", "1"), LeaseGrantRequest(7, 10, 0), PutWithLeaseRequest("b", "2", 7), PutRequest("c", "3"))
	hdr := func(rev int64) history.Header {
		return history.Header{ClusterID: 1, MemberID: 2, RaftTerm: 3, Revision: rev}
	}
	a := ht.KV("a", "1", 2)
	b := history.KeyValue{Key: "b", Value: "2", CreateRevision: 3, ModRevision: 3, Version: 1, Lease: 7}
	cases := []struct {
		req  history.Request
		resp history.Response
	}{
		{history.Request{Range: &history.RangeRequest{Key: "a", RangeEnd: "z", Limit: 2}},
			history.Response{Header: hdr(4), Range: &history.RangeResponse{KVs: []history.KeyValue{a, b}, More: true, Count: 3}}},
		{history.Request{Range: &history.RangeRequest{Key: "a", RangeEnd: "z", Limit: 2, Stream: true}},
			history.Response{Header: hdr(4), Range: &history.RangeResponse{KVs: []history.KeyValue{a, b}, More: true, Count: 3, Chunks: 2}}},
		{history.Request{Put: &history.PutRequest{Key: "b", Value: "9", PrevKV: true}},
			history.Response{Header: hdr(5), Put: &history.PutResponse{PrevKV: &b}}},
		{history.Request{DeleteRange: &history.DeleteRangeRequest{Key: "b", PrevKV: true}},
			history.Response{Header: hdr(5), DeleteRange: &history.DeleteRangeResponse{Deleted: 1, PrevKVs: []history.KeyValue{b}}}},
		{history.Request{Txn: &history.TxnRequest{
			Compare: []history.Compare{{Result: "EQUAL", Target: "VALUE", Key: "a", Value: "1"}},
			Success: []history.RequestOp{{Range: &history.RangeRequest{Key: "b"}}, {Put: &history.PutRequest{Key: "a", Value: "9", PrevKV: true}},
				{DeleteRange: &history.DeleteRangeRequest{Key: "c", PrevKV: true}}}}},
			history.Response{Header: hdr(5), Txn: &history.TxnResponse{Succeeded: true, Responses: []history.ResponseOp{
				{Range: &history.RangeResponse{KVs: []history.KeyValue{b}, Count: 1}},
				{Put: &history.PutResponse{PrevKV: &a}},
				{DeleteRange: &history.DeleteRangeResponse{Deleted: 1, PrevKVs: []history.KeyValue{ht.KV("c", "3", 4)}}}}}}},
		{history.Request{LeaseGrant: &history.LeaseGrantRequest{ID: 8, TTL: 5}},
			history.Response{Header: hdr(4), LeaseGrant: &history.LeaseGrantResponse{ID: 8, TTL: 5}}},
		{history.Request{LeaseRevoke: &history.LeaseRevokeRequest{ID: 7}},
			history.Response{Header: hdr(5), LeaseRevoke: &history.LeaseRevokeResponse{}}},
		{history.Request{LeaseKeepAlive: &history.LeaseKeepAliveRequest{ID: 7}},
			history.Response{Header: hdr(4), LeaseKeepAlive: &history.LeaseKeepAliveResponse{ID: 7, TTL: 10}}},
		{history.Request{LeaseTimeToLive: &history.LeaseTimeToLiveRequest{ID: 7, Keys: true}},
			history.Response{Header: hdr(4), LeaseTimeToLive: &history.LeaseTimeToLiveResponse{ID: 7, TTL: 6, GrantedTTL: 10, Keys: []string{"b"}}}},
		{history.Request{LeaseLeases: &history.LeaseLeasesRequest{}},
			history.Response{Header: hdr(4), LeaseLeases: &history.LeaseLeasesResponse{Leases: []int64{7}}}},
		{history.Request{Compaction: &history.CompactionRequest{Revision: 3}},
			history.Response{Header: hdr(4), Compaction: &history.CompactionResponse{}}},
		{history.Request{Defragment: &history.DefragmentRequest{}},
			history.Response{Header: hdr(4), Defragment: &history.DefragmentResponse{}}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		kind := tc.req.Kind()
		accepted := func(resp history.Response) bool {
			req, mresp, err := FromRecord(ht.Op(0, 1, 2, tc.req, &resp))
			require.NoError(t, err)
			return len(Step(s, req, mresp)) > 0
		}
		require.True(t, accepted(tc.resp), "%s: the correct answer is accepted", kind)
		for _, path := range leaves(reflect.ValueOf(tc.resp), "") {
			covered[normalize(path)] = true
			changed := clone(t, tc.resp)
			mutate(reflect.ValueOf(&changed).Elem(), path)
			_, listed := notCompared[kind+normalize(path)]
			_, listedAll := notCompared["*"+normalize(path)]
			if listed || listedAll {
				continue
			}
			require.False(t, accepted(changed), "%s: changing %s is not rejected and the field is not listed in notCompared", kind, path)
		}
	}
	// Every field of the response types is exercised by some case.
	for _, path := range leaves(reflect.ValueOf(fullResponse()), "") {
		require.True(t, covered[normalize(path)], "no case exercises %s", path)
	}
}

// leaves lists the paths of the settable scalar fields under v, through
// non-nil pointers and the elements of slices (".Field[i]").
func leaves(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return leaves(v.Elem(), path)
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			out = append(out, leaves(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice:
		var out []string
		for i := range v.Len() {
			out = append(out, leaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	return []string{path}
}

// mutate changes the scalar at path.
func mutate(v reflect.Value, path string) {
	for _, part := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		name, idx := part, -1
		if i := strings.Index(part, "["); i >= 0 {
			name = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &idx)
		}
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		v = v.FieldByName(name)
		if idx >= 0 {
			v = v.Index(idx)
		}
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int64, reflect.Int:
		v.SetInt(v.Int() + 1)
	case reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	default:
		panic(fmt.Sprintf("cannot mutate %s (%s)", path, v.Kind()))
	}
}

func clone(t *testing.T, r history.Response) history.Response {
	var out history.Response
	deepCopy(reflect.ValueOf(&out).Elem(), reflect.ValueOf(r))
	return out
}

func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if !src.IsNil() {
			dst.Set(reflect.New(src.Type().Elem()))
			deepCopy(dst.Elem(), src.Elem())
		}
	case reflect.Struct:
		for i := range src.NumField() {
			deepCopy(dst.Field(i), src.Field(i))
		}
	case reflect.Slice:
		if !src.IsNil() {
			dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
			for i := range src.Len() {
				deepCopy(dst.Index(i), src.Index(i))
			}
		}
	default:
		dst.Set(src)
	}
}

// fullResponse has every pointer set and one element in every slice, so
// leaves lists every field the response types have, with index 0.
func fullResponse() history.Response {
	var r history.Response
	fill(reflect.ValueOf(&r).Elem(), map[reflect.Type]bool{})
	return r
}

// fill stops at a type already being filled: a transaction nested in a
// transaction's answer, which the model does not check (ErrUnsupported).
func fill(v reflect.Value, open map[reflect.Type]bool) {
	if open[v.Type()] {
		return
	}
	open[v.Type()] = true
	defer delete(open, v.Type())
	switch v.Kind() {
	case reflect.Pointer:
		if open[v.Type().Elem()] {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), open)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), open)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), open)
	}
}

var index = regexp.MustCompile(`\[\d+\]`)

func normalize(path string) string { return index.ReplaceAllString(path, "[]") }

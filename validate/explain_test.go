package validate

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// pagedAtRevision is issue 18's item 7 in small: four puts, then a range
// of a..z with limit 2 at revision 4, called after the last put returned.
// It gets the right keys, a@2 and b@3, and the right count, 3, but says
// more=false, though c@4 was left out. Every key it returned was written
// again at revision 5 before it was called, which is right for a read at
// revision 4 and no sign of a stale read.
func pagedAtRevision() ([]history.Operation, *evidence.Log) {
	page := history.Range("a", "z")
	page.Range.Limit, page.Range.Revision = 2, 4
	resp := &history.Response{Header: history.Header{Revision: 6},
		Range: &history.RangeResponse{KVs: []history.KeyValue{kv("a", "1", 2), kv("b", "2", 3)}, Count: 3}}
	h := []history.Operation{
		op(0, 0, 1, ht.Put("a", "1"), putOK(2)),
		op(0, 2, 3, ht.Put("b", "2"), putOK(3)),
		op(0, 4, 5, ht.Put("c", "3"), putOK(4)),
		op(0, 6, 7, ht.Put("a", "4"), putOK(5)),
		op(0, 8, 9, ht.Put("b", "5"), putOK(6)),
		op(1, 10, 11, page, resp),
	}
	return h, logOf(ht.Put("a", "1"), ht.Put("b", "2"), ht.Put("c", "3"), ht.Put("a", "4"), ht.Put("b", "5"))
}

func TestExplanationNamesWhatDiffers(t *testing.T) {
	paged, pagedLog := pagedAtRevision()
	tests := []struct {
		name string
		h    []history.Operation
		log  *evidence.Log
		// want are in the explanation, not are not; involved are the
		// operations it names, the stuck one first.
		want, not, involved []string
	}{
		{"a page at a revision that says more=false", paged, pagedLog,
			[]string{"range(a..z", "(client 1 #0)", "At revision 6, the revision its answer names", "Expected against got: more: want true, got false."},
			[]string{"stale", "put(a, 4)", "put(b, 5)", "lost"},
			[]string{"client 1 #0"}},
		{"a stale read", []history.Operation{
			op(0, 10, 20, ht.Put("a", "1"), putOK(2)),
			op(1, 30, 40, ht.Put("a", "2"), putOK(3)),
			op(2, 50, 60, ht.Get("a"), getOK(2, kv("a", "1", 2))),
		}, logOf(ht.Put("a", "1"), ht.Put("a", "2")),
			[]string{"get(a) (client 2 #0)", "the answer is right from the state at revision 2",
				"Before it was called, put(a, 2) (client 1 #0) had already returned revision 3",
				"It read a=1@2, but put(a, 2) (client 1 #0) had written a at revision 3, acknowledged at 40ms, before the read was called: the read is stale."},
			nil, []string{"client 2 #0", "client 1 #0"}},
		{"a read at the current revision that misses a write", []history.Operation{
			op(0, 10, 20, ht.Put("a", "1"), putOK(2)),
			op(1, 30, 40, ht.Put("a", "2"), putOK(3)),
			op(2, 50, 60, ht.Get("a"), getOK(3, kv("a", "1", 2))),
		}, logOf(ht.Put("a", "1"), ht.Put("a", "2")),
			[]string{"At revision 3", `kvs[0].value: want "2", got "1"`, "kvs[0].mod_revision: want 3, got 2",
				"It read a=1@2, but put(a, 2) (client 1 #0) had written a at revision 3", "the read is stale"},
			[]string{"goes back"}, []string{"client 2 #0", "client 1 #0"}},
		{"a count that is off", []history.Operation{
			op(0, 10, 20, ht.Put("a", "1"), putOK(2)),
			op(0, 30, 40, ht.Put("b", "2"), putOK(3)),
			op(1, 50, 60, history.Range("a", "z"), &history.Response{Header: history.Header{Revision: 3},
				Range: &history.RangeResponse{KVs: []history.KeyValue{kv("a", "1", 2), kv("b", "2", 3)}, Count: 3}}),
		}, logOf(ht.Put("a", "1"), ht.Put("b", "2")),
			[]string{"count: want 2, got 3"}, []string{"stale", "lost"}, []string{"client 1 #0"}},
		{"two writes at one revision", []history.Operation{
			op(0, 10, 20, ht.Put("a", "1"), putOK(2)),
			op(1, 500, 520, ht.Put("a", "2"), putOK(2)),
		}, logOf(ht.Put("a", "2")),
			[]string{"put(a, 2) (client 1 #0)", "just before its write at revision 2", "put(a, 1) (client 0 #0) was also acknowledged at revision 2", "one of the two was lost"},
			[]string{"stale"}, []string{"client 1 #0", "client 0 #0"}},
		{"a compare-and-set on a stale revision", []history.Operation{
			op(0, 10, 20, ht.Put("a", "1"), putOK(2)),
			op(1, 30, 40, ht.Put("a", "2"), putOK(3)),
			op(2, 50, 60, ht.CAS("a", 2, "3"), casResp(4, true)),
		}, logOf(ht.Put("a", "1"), ht.Put("a", "2"), ht.CAS("a", 2, "3")),
			[]string{"if(mod(a)==2)", "(client 2 #0)", "succeeded: want false, got true",
				"Its compare mod(a)==2 succeeded, but put(a, 2) (client 1 #0) had changed a at revision 3, acknowledged at 40ms, before the compare-and-set was called: it won on a stale revision."},
			[]string{"the read is stale"}, []string{"client 2 #0", "client 1 #0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := patched(Input{Clients: clients(tc.h...), FinalRead: -1, Persisted: tc.log})
			r := rs[2]
			require.Equal(t, Illegal, r.Verdict, r.Message)
			t.Log(r.Explanation)
			for _, w := range tc.want {
				require.Contains(t, r.Explanation, w)
			}
			for _, n := range tc.not {
				require.NotContains(t, r.Explanation, n)
			}
			require.Equal(t, tc.involved, r.Involved)
		})
	}
}

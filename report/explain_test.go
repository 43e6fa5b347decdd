package report

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// completeLog is a complete committed log holding reqs at raft indices 1..n.
func completeLog(reqs ...history.Request) *evidence.Log {
	l := &evidence.Log{FirstIndex: 1, Complete: true}
	for i, r := range reqs {
		l.Entries = append(l.Entries, evidence.Entry{Index: uint64(i + 1), Term: 2, Request: &r})
	}
	l.CommitIndex = uint64(len(reqs))
	return l
}

func withMember(o history.Operation, id uint64) history.Operation {
	o.Response.Header.MemberID = id
	return o
}

// lostWrite is etcd #14370 in small: put(a, 1) is acknowledged at revision 2
// by a member that then crashes before saving it; after the restart put(a,
// 2) is acknowledged at revision 2 too, and only it is in the WAL.
func lostWrite() validate.Input {
	return validate.Input{
		Clients: ht.Clients(
			withMember(ht.Op(0, 10, 20, ht.Put("a", "1"), ht.PutOK(2)), 0xabc),
			withMember(ht.Op(1, 500, 520, ht.Put("a", "2"), ht.PutOK(2)), 0xabc),
			ht.Op(2, 600, 610, ht.Get("a"), ht.GetOK(2, ht.KV("a", "2", 2))),
		),
		FinalRead: -1,
		Persisted: completeLog(ht.Put("a", "2")),
	}
}

// staleCAS is a patched history in which a compare-and-set wins on a
// revision that a write acknowledged before it had already replaced.
func staleCAS() validate.Input {
	return validate.Input{
		Clients: ht.Clients(
			ht.Op(0, 10, 20, ht.Put("a", "1"), ht.PutOK(2)),
			ht.Op(1, 30, 40, ht.Put("a", "2"), ht.PutOK(3)),
			ht.Op(2, 50, 60, ht.CAS("a", 2, "3"), ht.CASResp(4, true)),
		),
		FinalRead: -1,
		Persisted: completeLog(ht.Put("a", "1"), ht.Put("a", "2"), ht.CAS("a", 2, "3")),
	}
}

func staleRead() validate.Input {
	return validate.Input{
		Clients: ht.Clients(
			ht.Op(0, 10, 20, ht.Put("a", "1"), ht.PutOK(2)),
			ht.Op(1, 30, 40, ht.Put("a", "2"), ht.PutOK(3)),
			ht.Op(2, 50, 60, ht.Get("a"), ht.GetOK(2, ht.KV("a", "1", 2))),
		),
		FinalRead: -1,
		Persisted: completeLog(ht.Put("a", "1"), ht.Put("a", "2")),
	}
}

func TestExplanations(t *testing.T) {
	tests := []struct {
		name  string
		in    validate.Input
		stage string
		// want: every string must be in the stage's explanation.
		want []string
	}{
		{"a lost write, by the linearizability check", lostWrite(), "linearizability",
			[]string{"put(a, 2) (client 1 #0)", "put(a, 1) (client 0 #0) was also acknowledged at revision 2", "one of the two was lost"}},
		{"a lost write, by the patch stage", lostWrite(), "patch",
			[]string{"put(a, 1) (client 0 #0) was acknowledged at revision 2", "by member abc", "Revision 2 is held by raft index 1 instead, put(a, 2)", "lost"}},
		{"a compare-and-set on a stale revision", staleCAS(), "linearizability",
			[]string{"if(mod(a)==2)", "client 2 #0", "put(a, 2) (client 1 #0) had changed a at revision 3", "stale revision",
				"the model answers else, rev 3, a=2@3"}},
		{"a stale read", staleRead(), "linearizability",
			[]string{"get(a) (client 2 #0)", "It read a=1@2", "put(a, 2) (client 1 #0) had written a at revision 3", "the read is stale",
				"Before it was called, put(a, 2) (client 1 #0) had already returned revision 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			results := validate.Run(context.Background(), tc.in, validate.Options{CheckTimeout: 10 * time.Second})
			var got *validate.Result
			for i := range results {
				if results[i].Validator == tc.stage {
					got = &results[i]
				}
			}
			require.NotNil(t, got)
			require.Equal(t, validate.Illegal, got.Verdict, got.Message)
			for _, w := range tc.want {
				require.Contains(t, got.Explanation, w)
			}
			t.Log(got.Explanation)
		})
	}
}

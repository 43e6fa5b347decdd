package validate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/model"
)

func TestConvergence(t *testing.T) {
	st := func(m string, rev, compact int64, hash uint32) evidence.MemberState {
		return evidence.MemberState{Member: m, Revision: rev, CompactRevision: compact, Hash: hash}
	}
	tests := []struct {
		name     string
		states   []evidence.MemberState
		replayed int // revisions the replayed log reaches; 0: no replay
		want     Verdict
		contains []string
	}{
		{"all agree", []evidence.MemberState{st("member-0", 10, 4, 7), st("member-1", 10, 4, 7), st("member-2", 10, 4, 7)}, 10, OK,
			[]string{"all 3 members ended at revision 10, compact revision 4"}},
		{"all agree, no replay", []evidence.MemberState{st("member-0", 10, 0, 7), st("member-1", 10, 0, 7)}, 0, OK, nil},
		{"same revision, different hash", []evidence.MemberState{st("member-0", 10, 4, 7), st("member-1", 10, 4, 8), st("member-2", 10, 4, 7)}, 0, Illegal,
			[]string{"member-0 and member-1 both ended at revision 10", "hash 7 and 8"}},
		{"different hash beside a lagging member", []evidence.MemberState{st("member-0", 9, 4, 1), st("member-1", 10, 4, 8), st("member-2", 10, 4, 7)}, 0, Illegal,
			[]string{"member-1 and member-2"}},
		{"past the committed log", []evidence.MemberState{st("member-0", 12, 0, 7), st("member-1", 10, 0, 8)}, 10, Illegal,
			[]string{"member-0 ended at revision 12, past the committed log, which ends at revision 10"}},
		{"different revisions", []evidence.MemberState{st("member-0", 10, 4, 7), st("member-1", 9, 4, 3)}, 0, Inconclusive,
			[]string{"different revisions", "member-1 at revision 9"}},
		{"different compact revisions", []evidence.MemberState{st("member-0", 10, 4, 7), st("member-1", 10, 2, 3)}, 0, Inconclusive, nil},
		{"a missing end state", []evidence.MemberState{st("member-0", 10, 4, 7), {Member: "member-1", Error: "HashKV: deadline exceeded"}}, 0, Inconclusive,
			[]string{"1 of 2 members", "member-1: HashKV: deadline exceeded"}},
		{"none recorded", nil, 0, Inconclusive, []string{"no member's end state"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Check{Input: Input{EndStates: tt.states}}
			if tt.replayed > 0 {
				c.Replayed = make([]model.State, tt.replayed+1)
			}
			r := Convergence{}.Validate(context.Background(), c)
			require.Equal(t, tt.want, r.Verdict, r.Message)
			for _, s := range tt.contains {
				require.Contains(t, r.Message, s)
			}
			if r.Verdict == Illegal {
				require.NotEmpty(t, r.Explanation)
			}
		})
	}
}

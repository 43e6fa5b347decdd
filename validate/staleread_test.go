package validate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

func TestStaleRead(t *testing.T) {
	// rev 2: a=1, rev 3: a=2.
	s1 := model.InitialState()
	s2, _, _ := s1.Apply(model.PutRequest("a", "1"))
	s3, _, _ := s2.Apply(model.PutRequest("a", "2"))
	replayed := []model.State{{}, s1, s2, s3}
	serial := history.Request{Range: &history.RangeRequest{Key: "a", Serializable: true}}
	tests := []struct {
		name     string
		read     *history.Response
		replayed []model.State
		want     Verdict
	}{
		{"a stale read of a state the cluster had", ht.GetOK(2, ht.KV("a", "1", 2)), replayed, OK},
		{"the current state", ht.GetOK(3, ht.KVAt("a", "2", 2, 3, 2)), replayed, OK},
		{"a state the history never had", ht.GetOK(2, ht.KV("a", "2", 2)), replayed, Illegal},
		{"a revision past the log", ht.GetOK(4, ht.KVAt("a", "2", 2, 3, 2)), replayed, Illegal},
		{"no replayed log", ht.GetOK(2, ht.KV("a", "1", 2)), nil, Inconclusive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Input: Input{Clients: ht.Clients(ht.Op(0, 1, 2, serial, tc.read))}, Replayed: tc.replayed}
			r := StaleRead{}.Validate(context.Background(), c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
		})
	}
	// The patch stage leaves serializable reads out of the linearizability
	// check, and counts them.
	p, ops := derive(ht.Clients(ht.Op(0, 1, 2, serial, ht.GetOK(2, ht.KV("a", "1", 2)))))
	require.Empty(t, ops)
	require.Equal(t, 1, p.SerializableReads)
}

package client

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

func TestCounter(t *testing.T) {
	var c Counter
	ops := []history.Operation{
		{},
		{Error: &history.Error{Outcome: history.Failed}},
		{Error: &history.Error{Outcome: history.Unknown}},
		{Error: &history.Error{Outcome: history.Unknown}},
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for _, op := range ops {
				c.add(op)
			}
		})
	}
	wg.Wait()
	require.Equal(t, Counts{Operations: 40, Failed: 10, Unknown: 20}, c.Counts())
}

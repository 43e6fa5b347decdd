package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/scenarios"
)

func TestWatchFlags(t *testing.T) {
	scenario := &scenarios.Watch{ProgressRequestInterval: 20 * time.Millisecond, SnapshotCount: 100}
	tests := []struct {
		name        string
		in          *scenarios.Watch
		on, setIntv bool
		interval    time.Duration
		want        *scenarios.Watch
	}{
		{"--watch on a scenario without", nil, true, false, 0, &scenarios.Watch{}},
		{"--watch=false turns it off", scenario, false, false, 0, nil},
		{"--watch keeps the scenario's", scenario, true, false, 0, scenario},
		{"--watch-progress-requests", scenario, true, true, time.Second, &scenarios.Watch{ProgressRequestInterval: time.Second, SnapshotCount: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, watchFlags(tt.in, tt.on, tt.setIntv, tt.interval))
		})
	}
	require.Equal(t, 20*time.Millisecond, scenario.ProgressRequestInterval, "the scenario's value is not changed")
}

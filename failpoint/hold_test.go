package failpoint

import (
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A partition that isolates a member holds at least MinIsolation when no
// duration was given (so the RequireLeader check has a long enough
// isolation to judge); a given duration, and the partitions that isolate
// no member from its peers, are left alone.
func TestPartitionHold(t *testing.T) {
	min := 8 * time.Second
	tests := []struct {
		kind     partitionKind
		duration time.Duration
		atLeast  time.Duration
		atMost   time.Duration
	}{
		{blackholeMember, 0, min, min},
		{isolateLeader, 0, min, min},
		{splitMajority, 0, min, min},
		{blackholeMember, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		{clientSide, 0, time.Second, 5 * time.Second},
		{untilSnapshot, 0, time.Second, 5 * time.Second},
	}
	for _, tc := range tests {
		env := Env{Rand: rand.New(rand.NewSource(1)), Duration: tc.duration, MinIsolation: min}
		got := Partition{Kind: tc.kind}.hold(env)
		require.GreaterOrEqual(t, got, tc.atLeast, "%s with duration %s", tc.kind, tc.duration)
		require.LessOrEqual(t, got, tc.atMost, "%s with duration %s", tc.kind, tc.duration)
		// Without a minimum, the random 1–5 s.
		env = Env{Rand: rand.New(rand.NewSource(1)), Duration: tc.duration}
		require.LessOrEqual(t, Partition{Kind: tc.kind}.hold(env), 5*time.Second)
	}
}

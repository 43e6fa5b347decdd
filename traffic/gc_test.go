package traffic

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The heap may grow past what is live by gcHeadroom, within the bounds.
func TestGCPercent(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, 400},
		{64 * mb, 400},
		{128 * mb, 400},
		{256 * mb, 200},
		{512 * mb, 100},
		{1024 * mb, 50},
		{2048 * mb, 25},
		{8192 * mb, 25},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, gcPercent(tc.live), "live %d MB", tc.live/mb)
	}
}

// Nested callers: the target is restored once the last one returns.
func TestTuneGCRestores(t *testing.T) {
	t.Setenv("GOGC", "")
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	outer := TuneGC()
	inner := TuneGC()
	inner()
	require.NotEqual(t, 77, debug.SetGCPercent(debug.SetGCPercent(-1)), "restored while a caller still runs")
	outer()
	require.Equal(t, 77, debug.SetGCPercent(77))
}

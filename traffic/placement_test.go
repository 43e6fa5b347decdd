package traffic

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlace(t *testing.T) {
	count := func(pins []int) (pinned int, perMember map[int]int) {
		perMember = map[int]int{}
		for _, p := range pins {
			if p >= 0 {
				pinned++
				perMember[p]++
			}
		}
		return pinned, perMember
	}
	tests := []struct {
		placement         string
		clients, members  int
		pinned, perMember int // clients pinned, and to each member
	}{
		{Mixed, 6, 3, 3, 1},
		{"", 6, 3, 3, 1},
		{Mixed, 24, 3, 12, 4},
		{Mixed, 7, 3, 3, -1},
		{Pinned, 6, 3, 6, 2},
		{Pinned, 5, 5, 5, 1},
		{Spread, 6, 3, 0, 0},
		{Mixed, 4, 1, 2, 2},
	}
	for _, tc := range tests {
		for seed := int64(0); seed < 20; seed++ {
			pins, err := Place(tc.placement, seed, tc.clients, tc.members)
			require.NoError(t, err)
			require.Len(t, pins, tc.clients)
			pinned, perMember := count(pins)
			require.Equal(t, tc.pinned, pinned, "%s %d clients", tc.placement, tc.clients)
			for m, n := range perMember {
				require.Less(t, m, tc.members)
				if tc.perMember >= 0 {
					require.Equal(t, tc.perMember, n, "pinned clients are spread evenly over the members")
				}
			}
			again, err := Place(tc.placement, seed, tc.clients, tc.members)
			require.NoError(t, err)
			require.Equal(t, pins, again, "deterministic from the seed")
		}
	}
	a, _ := Place(Mixed, 1, 24, 3)
	b, _ := Place(Mixed, 2, 24, 3)
	require.NotEqual(t, a, b, "the seed chooses")

	_, err := Place("random", 1, 4, 3)
	require.ErrorContains(t, err, `unknown client placement "random" (valid: mixed, pinned, spread)`)
	_, err = Place(Mixed, 1, 4, 0)
	require.Error(t, err)
}

func TestClientEndpoints(t *testing.T) {
	eps := []string{"a", "b", "c"}
	require.Equal(t, []string{"b"}, ClientEndpoints(eps, []int{-1, 1}, 1))
	require.Equal(t, eps, ClientEndpoints(eps, []int{-1, 1}, 0))
	require.Equal(t, eps, ClientEndpoints(eps, nil, 0))
}

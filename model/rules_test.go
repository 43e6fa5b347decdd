package model

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRulesOf(t *testing.T) {
	tests := []struct {
		releases []string
		old      bool
	}{
		{[]string{"v3.7.3"}, false},
		{[]string{"v3.6.16"}, false},
		{[]string{"v3.5.35"}, false},
		{[]string{"v3.5.10"}, false},
		{[]string{"v3.5.9"}, true},
		{[]string{"v3.5.6"}, true},
		{[]string{"v3.5.2+applyAfterSetConsistentIndex"}, true},
		{[]string{"v3.4.12"}, true},
		{[]string{"v3.4.27"}, false},
		{[]string{"v3.6.16", "v3.5.5"}, true},
		{[]string{"not-a-version"}, false},
		{nil, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.old, RulesOf(tc.releases).LeaseKeysEvenForAdmin, "%v", tc.releases)
	}
}

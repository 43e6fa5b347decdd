package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLookup(t *testing.T) {
	s, err := Lookup(DefaultName)
	require.NoError(t, err)
	require.Equal(t, 3, s.Members)
	require.Equal(t, "kill", s.Failpoint)
	require.NoError(t, s.Validate())
	_, err = Lookup("nope")
	require.ErrorContains(t, err, `unknown scenario "nope" (valid: default)`)
}

func TestValidate(t *testing.T) {
	good := Scenario{Name: "x", Members: 3, Duration: time.Second, QPS: 1, Clients: 1}
	tests := []struct {
		name   string
		mutate func(*Scenario)
		want   string
	}{
		{"good", func(*Scenario) {}, ""},
		{"one member", func(s *Scenario) { s.Members = 1 }, ""},
		{"five members", func(s *Scenario) { s.Members = 5 }, ""},
		{"two members", func(s *Scenario) { s.Members = 2 }, "members must be 1, 3 or 5, not 2"},
		{"no duration", func(s *Scenario) { s.Duration = 0 }, "duration must be positive"},
		{"no qps", func(s *Scenario) { s.QPS = 0 }, "qps must be positive"},
		{"no clients", func(s *Scenario) { s.Clients = 0 }, "clients must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.mutate(&s)
			err := s.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

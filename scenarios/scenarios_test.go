package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLookup(t *testing.T) {
	s, err := Lookup(BasicName)
	require.NoError(t, err)
	require.Equal(t, 3, s.Members)
	require.Equal(t, "kill", s.Failpoint)
	require.NoError(t, s.Validate())
	_, err = Lookup("nope")
	require.ErrorContains(t, err, `unknown scenario "nope" (valid: auth-14571, basic, etcd, explore, issue-13766, issue-14370, `)
	require.Equal(t, 200.0, s.QPS, "the default keeps etcd-kv's medium rate")
	require.Equal(t, 6, s.Clients)
	for _, name := range Names() {
		s, err := Lookup(name)
		require.NoError(t, err)
		require.NoError(t, s.Validate(), name)
		require.Positive(t, s.QPS, "%s is resolved", name)
	}
	for _, name := range []string{"etcd", "kubernetes"} {
		s, err := Lookup(name)
		require.NoError(t, err)
		require.Equal(t, name, s.Traffic, "scenario %s runs the profile of its name", name)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		sc      Scenario
		qps     float64
		clients int
		wantErr string
	}{
		{"a rate level", Scenario{Traffic: "etcd", Rate: "high"}, 2100, 24, ""},
		{"explicit qps wins", Scenario{Traffic: "etcd", Rate: "low", QPS: 7}, 7, 4, ""},
		{"explicit clients win", Scenario{Traffic: "kubernetes", Rate: "medium", Clients: 3}, 400, 3, ""},
		{"no rate keeps both", Scenario{Traffic: "etcd-kv", QPS: 5, Clients: 2}, 5, 2, ""},
		{"unknown rate", Scenario{Name: "x", Traffic: "etcd", Rate: "fast"}, 0, 0, `scenario x: unknown traffic rate "fast" (valid: low, medium, high)`},
		{"unknown profile", Scenario{Name: "x", Traffic: "nope", Rate: "low"}, 0, 0, `scenario x: unknown traffic profile "nope" (valid: etcd, etcd-kv, kubernetes)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sc.Resolve()
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.qps, got.QPS)
			require.Equal(t, tc.clients, got.Clients)
		})
	}
}

func TestValidate(t *testing.T) {
	good := Scenario{Name: "x", Members: 3, Failpoint: "kill", Duration: time.Second, QPS: 1, Clients: 1}
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
		{"no fault", func(s *Scenario) { s.Failpoint = "" }, "no fault"},
		{"a schedule", func(s *Scenario) { s.Failpoint = ""; s.Faults = []Fault{{Name: "kill"}} }, ""},
		{"pinned clients", func(s *Scenario) { s.Placement = "pinned" }, ""},
		{"unknown placement", func(s *Scenario) { s.Placement = "everywhere" }, `unknown client placement "everywhere" (valid: mixed, pinned, spread)`},
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

func TestSchedule(t *testing.T) {
	tests := []struct {
		name string
		sc   Scenario
		want []Fault
	}{
		{"one fault a quarter in", Scenario{Failpoint: "kill", Duration: 8 * time.Second},
			[]Fault{{Name: "kill", Start: 2 * time.Second}}},
		{"a list spread over the middle half", Scenario{Failpoint: "kill, random", Duration: 8 * time.Second},
			[]Fault{{Name: "kill", Start: 2 * time.Second}, {Name: "random", Start: 4 * time.Second}}},
		{"the failpoint overrides the schedule", Scenario{Failpoint: "kill", Faults: []Fault{{Name: "pause-leader"}}, Duration: 4 * time.Second},
			[]Fault{{Name: "kill", Start: time.Second}}},
		{"a schedule named by its failpoint spec", Scenario{Failpoint: "pause-leader", Faults: []Fault{{Name: "pause-leader", Start: 3 * time.Second}}},
			[]Fault{{Name: "pause-leader", Start: 3 * time.Second}}},
		{"an explicit schedule", Scenario{Faults: []Fault{{Name: "pause-leader", Start: 3 * time.Second, Duration: time.Second}}},
			[]Fault{{Name: "pause-leader", Start: 3 * time.Second, Duration: time.Second}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.sc.Schedule())
		})
	}
	s, err := Lookup("pause-and-partition")
	require.NoError(t, err)
	require.Len(t, s.Schedule(), 3)
}

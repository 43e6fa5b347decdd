package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// fakeNetwork has a link proxy, with no listener, for every pair of
// members: inMajority only asks whether each holds its bytes.
func fakeNetwork(members ...string) *Network {
	n := newNetwork(nil)
	for _, to := range members {
		n.links[to] = map[string]*faultProxy{}
		for _, from := range members {
			if from != to {
				n.links[to][from] = &faultProxy{changed: make(chan struct{})}
			}
		}
	}
	return n
}

func (n *Network) cutForTest(a, b string) {
	for _, p := range []*faultProxy{n.links[b][a], n.links[a][b]} {
		p.set(func(f *faults) { f.hold = true })
	}
}

func TestInMajority(t *testing.T) {
	three := []string{"m0", "m1", "m2"}
	five := []string{"m0", "m1", "m2", "m3", "m4"}
	tests := []struct {
		name    string
		members []string
		cuts    [][2]string
		want    map[string]bool
	}{
		{"no cut", three, nil, map[string]bool{"m0": true, "m1": true, "m2": true}},
		{"one member isolated", three, [][2]string{{"m0", "m1"}, {"m0", "m2"}},
			map[string]bool{"m0": false, "m1": true, "m2": true}},
		{"one link cut keeps a path", three, [][2]string{{"m0", "m1"}},
			map[string]bool{"m0": true, "m1": true, "m2": true}},
		{"2 against 3", five, [][2]string{{"m0", "m2"}, {"m0", "m3"}, {"m0", "m4"}, {"m1", "m2"}, {"m1", "m3"}, {"m1", "m4"}},
			map[string]bool{"m0": false, "m1": false, "m2": true, "m4": true}},
		{"1 member alone cannot form a majority", []string{"m0", "m1"}, [][2]string{{"m0", "m1"}},
			map[string]bool{"m0": false, "m1": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fakeNetwork(tt.members...)
			for _, c := range tt.cuts {
				n.cutForTest(c[0], c[1])
			}
			for m, want := range tt.want {
				require.Equal(t, want, n.inMajority(m, tt.members), m)
			}
		})
	}
}

func TestMemberIDFromNetwork(t *testing.T) {
	n := fakeNetwork("m0")
	n.setMemberID(0xdda43fbd9b5c77a8, "m0")
	require.Equal(t, uint64(0xdda43fbd9b5c77a8), n.memberID("m0"))
	require.Zero(t, n.memberID("m1"))
}

// TestProberSeesFaults runs the prober over a real 3-member cluster while
// one member is paused and another is cut off from its peers, and checks
// what the probes say: the faulted member is never ready (once its fault
// has been in place for a grace period), the others stay ready, and every
// probe carries the harness's view of the member. It logs how long the
// endpoints took to change, the measurements the health stage's bounds
// come from.
func TestProberSeesFaults(t *testing.T) {
	c := startCluster(t, testConfig(t, 3, etcdBinary(t)))
	defer c.Close()
	ms := c.Members()
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := c.StartProber(ctx, now)

	sleep := func(d time.Duration) { time.Sleep(d) }
	sleep(time.Second)
	// The pause counts from when the process is stopped: a probe sent
	// between the SIGSTOP and the stop may still be answered.
	require.NoError(t, ms[1].Pause())
	require.Eventually(t, func() bool { return ms[1].ProcessState() == "T" }, 5*time.Second, time.Millisecond, "stopped")
	pauseAt := now()
	sleep(3 * time.Second)
	resumeAt := now()
	require.NoError(t, ms[1].Resume())
	sleep(2 * time.Second)
	links := c.Network().Links(ms[2].Name())
	cutAt := now()
	require.NoError(t, c.Network().Blackhole(links...))
	// A probe called while the links were being cut sees the state change
	// under it ("changing"); the cut is in place from here on.
	cutDone := now()
	sleep(4 * time.Second)
	healAt := now()
	require.NoError(t, c.Network().Unblackhole(links...))
	sleep(3 * time.Second)
	probes := p.Stop()
	require.NotEmpty(t, probes)

	readiness := func(pr history.Probe) bool {
		return pr.Served() && (pr.Endpoint == PathReadyz || pr.Endpoint == PathHealth)
	}
	const grace = 1500 * time.Millisecond
	counts := map[string]int{}
	for _, pr := range probes {
		counts[pr.Member+pr.Endpoint]++
		require.NotZero(t, pr.MemberID, "%+v", pr)
		switch {
		case pr.Member == ms[1].Name() && pr.Call > pauseAt && pr.Return < resumeAt:
			require.Equal(t, history.FaultPaused, pr.Fault, "%+v", pr)
			require.False(t, pr.OK(), "a paused member answered: %+v", pr)
		case pr.Member == ms[2].Name() && pr.Call > cutAt && pr.Call <= cutDone:
			require.Contains(t, []string{history.FaultChanging, history.FaultMinority}, pr.Fault, "%+v", pr)
		case pr.Member == ms[2].Name() && pr.Call > cutDone && pr.Return < healAt:
			require.Equal(t, history.FaultMinority, pr.Fault, "%+v", pr)
			if readiness(pr) && pr.Call > cutAt+grace {
				require.False(t, pr.OK(), "a member cut off from its peers said it is ready: %+v", pr)
			}
		case pr.Member == ms[0].Name():
			require.Equal(t, history.FaultNone, pr.Fault, "%+v", pr)
		}
	}
	for _, m := range ms {
		require.Greater(t, counts[m.Name()+PathReadyz]+counts[m.Name()+PathHealth], 20, "%s: %v", m.Name(), counts)
	}
	// What the measurements are: for each fault, when readiness first
	// failed after it began and first succeeded after it ended.
	logTransitions(t, probes, ms[1].Name(), "pause", pauseAt, resumeAt)
	logTransitions(t, probes, ms[2].Name(), "cut", cutAt, healAt)
	dumpProbes(t, probes, ms[2].Name(), cutAt-500*time.Millisecond, healAt+time.Second)
	dumpProbes(t, probes, ms[0].Name(), pauseAt-500*time.Millisecond, pauseAt+2*time.Second)
	for _, m := range []*Member{ms[0], ms[2]} {
		logTransitions(t, probes, m.Name(), "pause of "+ms[1].Name(), pauseAt, resumeAt)
	}
	for _, m := range []*Member{ms[0], ms[1]} {
		logTransitions(t, probes, m.Name(), "cut of "+ms[2].Name(), cutAt, healAt)
	}
}

// logTransitions logs, for member's readiness and liveness probes, the
// last OK answer called before the fault's end and the first not-OK one
// after its start, and the first OK one called after its end.
func logTransitions(t *testing.T, probes []history.Probe, member, fault string, from, to time.Duration) {
	for _, ep := range []string{PathReadyz, PathHealth, PathLivez} {
		firstBad, firstGoodAfter := time.Duration(-1), time.Duration(-1)
		var bad, all int
		for _, pr := range probes {
			if pr.Member != member || pr.Endpoint != ep || !pr.Served() {
				continue
			}
			if pr.Call >= from && pr.Call < to {
				all++
				if !pr.OK() {
					bad++
					if firstBad < 0 {
						firstBad = pr.Call - from
					}
				}
			}
			if pr.Call >= to && pr.OK() && firstGoodAfter < 0 {
				firstGoodAfter = pr.Return - to
			}
		}
		if all == 0 {
			continue
		}
		t.Logf("%s %s during %s (%v): %d of %d polls not OK; first not OK called %s after it began; first OK after it ended returned %s after",
			member, ep, fault, (to - from).Round(time.Millisecond), bad, all, fmtDur(firstBad), fmtDur(firstGoodAfter))
	}
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprint(d.Round(time.Millisecond))
}

func dumpProbes(t *testing.T, probes []history.Probe, member string, from, to time.Duration) {
	for _, pr := range probes {
		if pr.Member == member && pr.Endpoint != PathLivez && pr.Call >= from && pr.Call < to {
			t.Logf("%s %s [%v, %v] %d %q %s fault=%q", pr.Member, pr.Endpoint, pr.Call.Round(time.Millisecond), pr.Return.Round(time.Millisecond), pr.Status, pr.Body, pr.Error, pr.Fault)
		}
	}
}

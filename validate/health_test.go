package validate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

const (
	idA = 0xa
	idB = 0xb
)

// pollsOf builds a member's probes of endpoint every 250 ms from from to
// to (ms), each answering after 5 ms, or after its full 1 s timeout when
// it fails with no answer. status gives each poll's answer (200, 503, or
// 0 for none) and fault the harness's view of the member at that time.
func pollsOf(member string, id uint64, endpoint string, from, to int, status func(ms int) int, fault func(ms int) string) []history.Probe {
	var out []history.Probe
	for ms := from; ms < to; {
		p := history.Probe{Member: member, MemberID: id, Endpoint: endpoint, Call: time.Duration(ms) * time.Millisecond,
			Status: status(ms), Fault: fault(ms)}
		took := 5
		switch p.Status {
		case 0:
			p.Error = "no answer within 1s"
			took = 1000
		case 200:
			p.Body = "ok"
		default:
			p.Body = "[-]linearizable_read failed: etcdserver: request timed out"
		}
		p.Return = p.Call + time.Duration(took)*time.Millisecond
		out = append(out, p)
		ms += max(250, took)
	}
	return out
}

func always[T any](v T) func(int) T { return func(int) T { return v } }

// between is a if from <= ms < to, else b.
func between[T any](from, to int, a, b T) func(int) T {
	return func(ms int) T {
		if ms >= from && ms < to {
			return a
		}
		return b
	}
}

// readBy is a successful linearizable read served by member id.
func readBy(client, call, ret int, id uint64, serializable bool) history.Operation {
	req := ht.Get("k")
	req.Range.Serializable = serializable
	resp := ht.GetOK(5)
	resp.Header.MemberID = id
	return ht.Op(client, call, ret, req, resp)
}

func TestHealth(t *testing.T) {
	none := always(history.FaultNone)
	healthy := func(member string, id uint64) []history.Probe {
		return append(pollsOf(member, id, "/readyz", 0, 10000, always(200), none), pollsOf(member, id, "/livez", 0, 10000, always(200), none)...)
	}
	// member-a is cut off from 3 s to 6 s; the harness sees it from 3.01 s.
	cut := between(3010, 6000, history.FaultMinority, history.FaultNone)
	cutOff := func(readyDuringCut func(int) int) []history.Probe {
		return append(pollsOf("member-a", idA, "/readyz", 0, 10000, readyDuringCut, cut),
			pollsOf("member-a", idA, "/livez", 0, 10000, always(200), cut)...)
	}
	inj := []history.Injection{{Name: "blackhole-member", Targets: []string{"member-a"}, Start: 3 * time.Second, Effect: 3010 * time.Millisecond, End: 6500 * time.Millisecond}}
	tests := []struct {
		name     string
		probes   []history.Probe
		ops      []history.Operation
		want     Verdict
		contains []string
	}{
		{"healthy members serving", append(healthy("member-a", idA), healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 100, 110, idA, false), readBy(1, 5000, 5010, idB, false)}, OK,
			[]string{"0 readiness probes sent 1s or more into a fault"}},
		{"a cut-off member says not ready", append(cutOff(between(3010, 6000, 0, 200)), healthy("member-b", idB)...),
			[]history.Operation{readBy(1, 5000, 5010, idB, false)}, OK, nil},
		{"a cut-off member says ready within the grace", append(cutOff(between(3600, 6000, 0, 200)), healthy("member-b", idB)...),
			nil, OK, nil},
		{"a cut-off member says ready past the grace", append(cutOff(between(3010, 4500, 0, 200)), healthy("member-b", idB)...),
			nil, Illegal, []string{"member-a said ready at 5.25s while minority since 3.01s"}},
		{"a paused member answers ready", append(
			pollsOf("member-a", idA, "/readyz", 0, 10000, always(200), between(2000, 5000, history.FaultPaused, history.FaultNone)),
			healthy("member-b", idB)...), nil, Illegal, []string{"while paused since 2s"}},
		{"a member down answers ready (not its process)", append(
			pollsOf("member-a", idA, "/health", 0, 10000, always(200), between(2000, 5000, history.FaultDown, history.FaultNone)),
			healthy("member-b", idB)...), nil, Illegal, []string{"while down since 2s"}},
		{"a fault that changes during a poll is not judged", append(
			pollsOf("member-a", idA, "/readyz", 0, 10000, always(200), always(history.FaultChanging)),
			healthy("member-b", idB)...), nil, OK, nil},
		{"not ready for 5 s while serving linearizable reads", append(
			append(pollsOf("member-a", idA, "/readyz", 0, 10000, between(2000, 7000, 503, 200), none), pollsOf("member-a", idA, "/livez", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5500, 5510, idA, false)}, Illegal,
			[]string{"member-a said not ready from 2s to", "get(k) (client 0 #0)"}},
		{"the same, while a fault aimed at the member was under way: not judged", append(
			append(pollsOf("member-a", idA, "/readyz", 0, 10000, between(2000, 7000, 503, 200), none), pollsOf("member-a", idA, "/livez", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5500, 5510, idA, false)}, OK,
			[]string{"1 requests a member served while it said not ready or not live were sent during a fault aimed at it, and not judged"}},
		{"not ready for 5 s, served only serializable reads", append(
			append(pollsOf("member-a", idA, "/readyz", 0, 10000, between(2000, 7000, 503, 200), none), pollsOf("member-a", idA, "/livez", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5500, 5510, idA, true)}, OK, nil},
		{"not ready, served a read early in the stretch", append(
			append(pollsOf("member-a", idA, "/readyz", 0, 10000, between(2000, 7000, 503, 200), none), pollsOf("member-a", idA, "/livez", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 2500, 2510, idA, false)}, OK, []string{"longest: a request sent 500ms into a stretch"}},
		{"the other member's reads do not count", append(
			append(pollsOf("member-a", idA, "/readyz", 0, 10000, between(2000, 7000, 0, 200), none), pollsOf("member-a", idA, "/livez", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5500, 5510, idB, false)}, OK, nil},
		{"not live while serving serializable reads", append(
			append(pollsOf("member-a", idA, "/livez", 0, 10000, between(2000, 7000, 503, 200), none), pollsOf("member-a", idA, "/readyz", 0, 10000, always(200), none)...),
			healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 6000, 6010, idA, true)}, Illegal, []string{"member-a said not live from 2s"}},
		{"overlapping polls: an answer ready between hung ones ends the stretch", append(overlapping(true), healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5200, 5210, idA, false)}, OK, nil},
		{"overlapping polls, all hung, while serving", append(overlapping(false), healthy("member-b", idB)...),
			[]history.Operation{readBy(0, 5200, 5210, idA, false)}, Illegal, []string{"member-a said not ready from 2s to 5.5s"}},
		{"no probes", nil, nil, Inconclusive, []string{"no health probe"}},
		{"only endpoints not served", []history.Probe{{Member: "member-a", Endpoint: "/readyz", Status: 404}}, nil, Inconclusive, nil},
		{"member ID unknown", append(healthy("member-a", 0), healthy("member-b", idB)...), nil, Inconclusive, []string{"raft ID of member-a is unknown"}},
	}
	// Cases whose faults are aimed elsewhere than the shared inj.
	injFor := map[string][]history.Injection{
		"the same, while a fault aimed at the member was under way: not judged": {{Name: "raftBeforeSave:sleep", Targets: []string{"member-a"}, Start: 3 * time.Second, Effect: 3010 * time.Millisecond, End: 6500 * time.Millisecond}},
		"not live while serving serializable reads":                             {{Name: "kill", Targets: []string{"member-b"}, Start: 3 * time.Second, Effect: 3010 * time.Millisecond, End: 6500 * time.Millisecond}},
		"not ready for 5 s while serving linearizable reads":                    []history.Injection{{Name: "kill", Targets: []string{"member-b"}, Start: 3 * time.Second, Effect: 3010 * time.Millisecond, End: 6500 * time.Millisecond}},
		"overlapping polls, all hung, while serving":                            []history.Injection{{Name: "kill", Targets: []string{"member-b"}, Start: 3 * time.Second, Effect: 3010 * time.Millisecond, End: 6500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			injections := inj
			if o, ok := injFor[tt.name]; ok {
				injections = o
			}
			c := &Check{Input: Input{Probes: tt.probes, Clients: ht.Clients(tt.ops...), Injections: injections}}
			r := Health{}.Validate(context.Background(), c)
			require.Equal(t, tt.want, r.Verdict, r.Message)
			for _, s := range tt.contains {
				require.Contains(t, r.Message, s)
			}
			if r.Verdict == Illegal {
				require.Contains(t, r.Explanation, "member-a")
				t.Log(r.Explanation)
			}
		})
	}
}

// overlapping is member-a's readiness polls every 250 ms from 2 s to 5.5 s,
// each hanging for its whole 1 s timeout, and ready ones before and after;
// with okBetween, one poll called at 4.75 s answers ready at once.
func overlapping(okBetween bool) []history.Probe {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var out []history.Probe
	for t := 0; t < 10000; t += 250 {
		p := history.Probe{Member: "member-a", MemberID: idA, Endpoint: "/readyz", Call: ms(t), Return: ms(t + 5), Status: 200, Body: "ok"}
		if t >= 2000 && t < 5500 && !(okBetween && t == 4750) {
			p.Status, p.Body, p.Error, p.Return = 0, "", "no answer within 1s", ms(t+1000)
		}
		out = append(out, p)
	}
	return out
}

package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

func TestTimelineProbes(t *testing.T) {
	rec := Record{}
	rec.Clients = ht.Clients(ht.Op(0, 0, 5000, ht.Put("k", "v"), ht.PutOK(2)))
	ms := time.Millisecond
	rec.Probes = []history.Probe{
		{Member: "member-0", Endpoint: "/readyz", Call: 100 * ms, Return: 105 * ms, Status: 200},
		{Member: "member-0", Endpoint: "/readyz", Call: 1000 * ms, Return: 2000 * ms, Error: "no answer within 1s"},
		{Member: "member-1", Endpoint: "/readyz", Call: 1000 * ms, Return: 2000 * ms, Error: "no answer within 1s", Fault: history.FaultPaused},
		{Member: "member-1", Endpoint: "/livez", Call: 1000 * ms, Return: 2000 * ms, Error: "no answer within 1s", Fault: history.FaultPaused},
		{Member: "member-2", Endpoint: "/readyz", Call: 100 * ms, Return: 105 * ms, Status: 404},
		{Member: "member-2", Endpoint: "/health", Call: 100 * ms, Return: 105 * ms, Status: 503, Body: `{"health":"false"}`},
	}
	svg := string(Timeline(rec))
	require.Equal(t, 3, strings.Count(svg, `class="notready"`), svg)
	require.Contains(t, svg, "member-0 /readyz at 1s: no answer within 1s")
	require.Contains(t, svg, "(member paused)")
	require.Contains(t, svg, "member-2 /health at 100ms: 503")

	rec.Probes = nil
	require.NotContains(t, string(Timeline(rec)), "Readiness probes")
}

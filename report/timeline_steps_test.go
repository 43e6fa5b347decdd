package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// TestTimelineSteps: a fault's recorded steps are ticks on the timeline,
// each titled with its time and what it did, once per panel.
func TestTimelineSteps(t *testing.T) {
	rec := Record{}
	rec.Clients = ht.Clients(ht.Op(0, 0, 5000, ht.Put("k", "v"), ht.PutOK(2)))
	rec.Injections = []history.Injection{{Name: "downgrade", Targets: []string{"member-0"}, Start: time.Second, Effect: 2 * time.Second, End: 4 * time.Second,
		Steps: []history.FaultStep{{At: 2 * time.Second, What: "downgrade enable 3.6 on member-0: ok"}, {At: 3 * time.Second, What: "member-0 started on v3.6.16"}}}}
	svg := string(Timeline(rec))
	require.Equal(t, 2*3, strings.Count(svg, `class="step"`), "two steps on each of the three panels")
	require.Contains(t, svg, "<title>2s: downgrade enable 3.6 on member-0: ok</title>")
	require.Contains(t, svg, "<title>3s: member-0 started on v3.6.16</title>")
	rec.Injections[0].Steps = nil
	require.NotContains(t, string(Timeline(rec)), `class="step"`)
}

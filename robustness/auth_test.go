package robustness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/model"
	"github.com/etcd-robustness/etcd-robustness/report"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// A short run with auth on a real cluster: root and four users, the
// traffic and watches as those users, an admin changing their permissions,
// and a kill. It passes, the auth checks had something to check, and the
// same record with one refused read turned into a success fails.
func TestRobustnessAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	bins := testetcd.Binaries(t)
	sc, err := scenarios.Lookup("basic")
	require.NoError(t, err)
	sc.Members, sc.Duration, sc.Auth, sc.Watch = 1, 4*time.Second, "simple", &scenarios.Watch{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Scenario: sc, Binaries: []etcdbuild.Binaries{bins}, ResultsDir: t.TempDir(), KeepPassing: true, Seed: 1, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	var table strings.Builder
	res.WriteStages(&table)
	t.Logf("%s\n%s", res.Headline(), table.String())
	require.Equal(t, Pass, res.Outcome, "report: %s", res.Dir)

	rec, err := report.Load(res.Dir)
	require.NoError(t, err)
	var denied, admin int
	for _, cl := range rec.Clients {
		for _, op := range cl.Operations {
			if op.Error != nil && op.Error.Message == model.ErrPermissionDenied {
				denied++
			}
			if op.Request.Auth != nil && op.Error == nil {
				admin++
			}
		}
	}
	require.Positive(t, denied, "no request was refused for want of permission")
	require.Greater(t, admin, 20, "the set-up and the admin's changes")
	for _, r := range res.Results {
		if r.Validator == "patch" {
			require.Contains(t, r.Message, "refused at apply by auth")
		}
		for _, c := range r.Checks {
			if c.Name == "permitted" {
				require.Positive(t, c.Checked)
			}
		}
	}

	// A read refused for want of permission, turned into a success: by
	// "wo", which may read no key at any point of the run.
	bad := rec
	bad.Input.Clients = append([]history.Client(nil), rec.Clients...)
	turned := false
	for i, cl := range bad.Clients {
		ops := append([]history.Operation(nil), cl.Operations...)
		for j, op := range ops {
			if turned || op.Request.User != "wo" || op.Request.Range == nil || op.Request.Range.Serializable || op.Error == nil || op.Error.Message != model.ErrPermissionDenied {
				continue
			}
			// answered at the revision of the client's previous success
			var rev int64 = 1
			for _, p := range ops[:j] {
				if p.Response != nil {
					rev = p.Response.Header.Revision
				}
			}
			ops[j].Error = nil
			ops[j].Response = &history.Response{Header: history.Header{Revision: rev}, Range: &history.RangeResponse{}}
			turned = true
		}
		bad.Clients[i].Operations = ops
	}
	require.True(t, turned)
	got := Check(ctx, zap.NewNop(), bad, validate.Options{CheckTimeout: 30 * time.Second})
	require.Equal(t, Fail, got.Outcome, "%s", got.Headline())
	t.Logf("the tampered record: %s", got.Headline())
}

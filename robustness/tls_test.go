package robustness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// listenURL finds member-0's client listener in its log's start line.
var listenURL = regexp.MustCompile(`--listen-client-urls (\S+)`)

// TestRobustnessTLS: a short run on 3 members over TLS, with a member cut
// off from its peers (the peer proxies cut the TLS links by sender),
// passes every stage. While it runs, member-0 refuses a plaintext client
// and one without a certificate; the certificates stay in the report.
func TestRobustnessTLS(t *testing.T) {
	bins := testetcd.Binaries(t)
	sc, err := scenarios.Lookup(scenarios.BasicName)
	require.NoError(t, err)
	sc.TLS = true
	sc.Duration = 4 * time.Second
	sc.Failpoint = "blackhole-member"
	sc.Faults = []scenarios.Fault{{Name: "blackhole-member", Start: 2 * time.Second, Duration: 2 * time.Second}}
	results := t.TempDir()

	// Refusals, seen while the run's cluster is up.
	refused := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() { refused <- probePlaintext(ctx, results) }()

	res, err := Run(ctx, Config{
		Scenario: sc, Binaries: []etcdbuild.Binaries{bins}, ResultsDir: results, KeepPassing: true,
		Seed: 7, Logger: zaptest.NewLogger(t),
	})
	require.NoError(t, err)
	var table strings.Builder
	res.WriteStages(&table)
	t.Logf("%s\n%s", res.Headline(), table.String())
	require.Equal(t, Pass, res.Outcome, "report: %s", res.Dir)
	for _, r := range res.Results {
		require.Equal(t, validate.OK, r.Verdict, "%s: %s", r.Validator, r.Message)
	}
	require.Len(t, res.Injections, 1)
	require.Empty(t, res.Injections[0].Error)
	require.Greater(t, res.Stats.SuccessfulWrites, 100)
	require.NoError(t, <-refused)
	for _, f := range []string{"ca.crt", "ca.key", cluster.ClientCertName + ".crt", "member-0.crt", "member-0.key"} {
		require.FileExists(t, filepath.Join(res.Dir, cluster.TLSDir, f), "the test credentials are kept in the report")
	}
	log, err := os.ReadFile(filepath.Join(res.Dir, "member-0", "etcd.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "--client-cert-auth --peer-cert-file")
}

// probePlaintext waits for member-0 of the run under results to listen and
// checks that it refuses plaintext HTTP and TLS without a client
// certificate, while it serves the cluster's own client.
func probePlaintext(ctx context.Context, results string) error {
	for {
		logs, _ := filepath.Glob(filepath.Join(results, "*", "member-0", "etcd.log"))
		if len(logs) == 1 {
			b, _ := os.ReadFile(logs[0])
			if m := listenURL.FindSubmatch(b); m != nil {
				return refuses(ctx, string(m[1]))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func refuses(ctx context.Context, url string) error {
	if !regexp.MustCompile(`^https://127\.0\.0\.1:\d+$`).MatchString(url) {
		return fmt.Errorf("member-0 listens on %s, not https on 127.0.0.1", url)
	}
	// Until the member serves the cluster's client, it is still starting.
	for {
		resp, err := cluster.HTTPClient(url).Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	plain := "http" + url[len("https"):]
	clients := map[string]struct {
		c   *http.Client
		url string
	}{
		"plaintext":             {&http.Client{Timeout: 2 * time.Second}, plain},
		"no client certificate": {&http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cluster.ClientTLS(url).RootCAs}}}, url},
	}
	for name, c := range clients {
		resp, err := c.c.Get(c.url + "/health")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return fmt.Errorf("member-0 answered a client with %s", name)
		}
	}
	return nil
}

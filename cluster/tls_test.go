package cluster

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-robustness/etcd-robustness/certs"
)

// TestTLSCluster: a cluster started with TLS serves clients and peers over
// TLS only and asks for a client certificate of its CA; the harness's
// clients (through the proxy, in process, and the HTTP health endpoints)
// get in with the cluster's configuration; the peer proxies still cut and
// delay the encrypted links, and tell each connection's sender; a member
// added later gets its certificate.
func TestTLSCluster(t *testing.T) {
	cfg := testConfig(t, 3, etcdBinary(t))
	cfg.TLS = true
	c := startCluster(t, cfg)
	defer c.Close()
	ms := c.Members()
	require.True(t, c.TLS())
	for _, f := range []string{"ca.crt", "ca.key", ClientCertName + ".crt", "member-0.crt", "member-2.key"} {
		require.FileExists(t, filepath.Join(cfg.Dir, TLSDir, f))
	}
	for _, m := range ms {
		require.True(t, strings.HasPrefix(m.ClientURL(), "https://"), m.ClientURL())
		require.True(t, strings.HasPrefix(m.DirectClientURL(), "https://"), m.DirectClientURL())
		require.True(t, strings.HasPrefix(m.PeerURL(), "https://"), m.PeerURL())
	}
	put(t, ms[0], "k", "v")

	// Refused: plaintext, TLS without a client certificate, a certificate
	// of another CA. Let in: the cluster's HTTP client.
	other, err := certs.NewAuthority(t.TempDir())
	require.NoError(t, err)
	stranger, err := other.Client("client")
	require.NoError(t, err)
	strangerTLS, err := other.ClientTLS(stranger)
	require.NoError(t, err)
	strangerTLS.RootCAs = ClientTLS(ms[0].DirectClientURL()).RootCAs
	noCert := &tls.Config{RootCAs: strangerTLS.RootCAs}
	httpsURL := ms[0].DirectClientURL() + PathHealth
	httpURL := "http://" + strings.TrimPrefix(httpsURL, "https://")
	tests := []struct {
		name   string
		client *http.Client
		url    string
		ok     bool
	}{
		{"plaintext HTTP", &http.Client{Timeout: 3 * time.Second}, httpURL, false},
		{"TLS without a client certificate", &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: noCert}}, httpsURL, false},
		{"a client certificate of another CA", &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: strangerTLS}}, httpsURL, false},
		{"the cluster's HTTP client", HTTPClient(httpsURL), httpsURL, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(tt.url)
			if err == nil {
				resp.Body.Close()
			}
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				return
			}
			// etcd answers plaintext on its TLS port with a 400 at most.
			if err == nil {
				require.NotEqual(t, http.StatusOK, resp.StatusCode)
			}
		})
	}
	// A plaintext gRPC client gets no answer.
	plain, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.Replace(ms[0].DirectClientURL(), "https://", "http://", 1)},
		DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = plain.Get(ctx, "k")
	cancel()
	plain.Close()
	require.Error(t, err, "a plaintext gRPC client is refused")

	// The in-process connection (DialClient) carries the TLS handshake.
	inProc := ClientConfig([]string{ms[1].ClientURL()})
	inProc.DialTimeout = 5 * time.Second
	inProc.DialOptions = []grpc.DialOption{grpc.WithContextDialer(DialClient)}
	cli, err := clientv3.New(inProc)
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	resp, err := cli.Get(ctx, "k")
	cancel()
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)

	// Every raft connection is on its sender's link: each member's links
	// to the others carry connections, the unknown-sender links none.
	n := c.Network()
	require.Eventually(t, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, to := range ms {
			for _, from := range ms {
				if from != to && pipes(n.links[to.name][from.name]) == 0 {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "every member dials every other")
	// A connection its dialer closed at once may pass there, briefly.
	require.Eventually(t, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, to := range ms {
			if pipes(n.links[to.name][UnknownSender]) > 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 50*time.Millisecond, "a connection stays on an unknown-sender link")

	// A cut member cannot serve a linearizable read; healed, it can.
	links := n.Links(ms[2].Name())
	require.NoError(t, n.Blackhole(links...))
	time.Sleep(2 * time.Second) // past the election timeout
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = client(t, ms[2]).Get(ctx, "k")
	cancel()
	require.Error(t, err, "a member cut off from its peers served a linearizable read")
	put(t, ms[0], "k", "v2")
	require.NoError(t, n.Unblackhole(links...))
	putRetry(t, ms[2], "k", "v3")

	// Delayed links slow every write by the round trip to a follower.
	require.NoError(t, n.Delay(300*time.Millisecond, 0, n.LinksBetween(names(ms), names(ms))...))
	begin := time.Now()
	put(t, ms[0], "k", "v4")
	took := time.Since(begin)
	require.NoError(t, n.Undelay(n.LinksBetween(names(ms), names(ms))...))
	require.GreaterOrEqual(t, took, 300*time.Millisecond, "a write through delayed links")

	// A new member gets a certificate, joins over peer TLS and serves.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := c.AddMember(ctx)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(cfg.Dir, TLSDir, m.Name()+".crt"))
	putRetry(t, m, "k", "v5")
	require.NoError(t, c.RemoveMember(ctx, m))

	// The prober's polls are answered over TLS.
	start := time.Now()
	p := c.StartProber(ctx, func() time.Duration { return time.Since(start) })
	time.Sleep(time.Second)
	probes := p.Stop()
	require.NotEmpty(t, probes)
	for _, pr := range probes {
		require.True(t, pr.OK(), "%+v", pr)
	}

	require.NoError(t, c.Close())
	_, err = os.Stat(filepath.Join(cfg.Dir, TLSDir, "ca.crt"))
	require.NoError(t, err, "the certificates stay in the run directory")
	require.Equal(t, http.DefaultClient, HTTPClient(httpsURL), "a closed cluster's addresses are forgotten")
}

func pipes(p *faultProxy) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pipes)
}

func names(ms []*Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name()
	}
	return out
}

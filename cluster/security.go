package cluster

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/certs"
)

// How clients reach the members. A cluster started with Config.TLS serves
// clients and peers over TLS only, with certificates made for the run
// (package certs, in the run directory's tls/), and asks every client for
// a certificate of its CA (--client-cert-auth, --peer-client-cert-auth).
//
// Every client of a member in this process, the recording clients and
// watchers as well as the harness's own health checks, fault triggers,
// membership changes and end states, takes its configuration from
// ClientConfig (clientv3) or HTTPClient (health and version endpoints),
// which know the security of every member's client address, advertised
// and real, of every cluster this process runs. So the callers only name
// endpoints, as they did before TLS.

// TLSDir is the run directory's subdirectory that holds the certificates.
const TLSDir = "tls"

// ClientCertName is the common name of the harness's client certificate.
// Under etcd's auth, a request that carries no token is taken to be by
// the user its certificate names: this is no user of the tests.
const ClientCertName = "etcd-robustness-client"

// security is how one cluster's members are reached.
type security struct {
	ca     *certs.Authority
	client *tls.Config // trusts the CA, presents the client certificate
	http   *http.Client
}

// memberTLS are a member's TLS flags' files.
type memberTLS struct {
	pair certs.Pair
	ca   string
}

// newSecurity makes the run's CA and client certificate in dir/tls.
func newSecurity(dir string) (*security, error) {
	ca, err := certs.NewAuthority(filepath.Join(dir, TLSDir))
	if err != nil {
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	pair, err := ca.Client(ClientCertName)
	if err != nil {
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	cfg, err := ca.ClientTLS(pair)
	if err != nil {
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	return &security{ca: ca, client: cfg, http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone()}}}, nil
}

// member makes the member's certificate; nil without TLS.
func (s *security) member(name string) (*memberTLS, error) {
	if s == nil {
		return nil, nil
	}
	p, err := s.ca.Member(name)
	if err != nil {
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	return &memberTLS{pair: p, ca: s.ca.CAFile()}, nil
}

// scheme is the members' URL scheme.
func (s *security) scheme() string {
	if s == nil {
		return "http"
	}
	return "https"
}

// args are a member's TLS flags (etcd v3.4 to v3.7 know them all).
func (t *memberTLS) args() []string {
	if t == nil {
		return nil
	}
	return []string{
		"--cert-file", t.pair.CertFile, "--key-file", t.pair.KeyFile,
		"--trusted-ca-file", t.ca, "--client-cert-auth",
		"--peer-cert-file", t.pair.CertFile, "--peer-key-file", t.pair.KeyFile,
		"--peer-trusted-ca-file", t.ca, "--peer-client-cert-auth",
	}
}

var (
	securityMu sync.Mutex
	securityOf = map[string]*security{} // a member's client address (host:port) → its cluster's
)

// registerClient makes m's client addresses known to ClientConfig.
func (c *Cluster) registerClient(m *Member) {
	securityMu.Lock()
	defer securityMu.Unlock()
	for _, u := range []string{m.clientAdvertise, m.clientListen} {
		securityOf[hostPort(u)] = c.sec
	}
}

// unregisterClients forgets the addresses of every member c had.
func (c *Cluster) unregisterClients() {
	securityMu.Lock()
	defer securityMu.Unlock()
	for _, m := range c.allMembers() {
		for _, u := range []string{m.clientAdvertise, m.clientListen} {
			if securityOf[hostPort(u)] == c.sec {
				delete(securityOf, hostPort(u))
			}
		}
	}
}

// lookupSecurity is the security of the first endpoint (a URL or
// host:port) that belongs to a member of this process; nil for plaintext
// or an endpoint no cluster of this process has.
func lookupSecurity(endpoints []string) *security {
	securityMu.Lock()
	defer securityMu.Unlock()
	for _, ep := range endpoints {
		if s, ok := securityOf[hostPort(ep)]; ok {
			return s
		}
	}
	return nil
}

// ClientConfig is the clientv3 configuration every client of the members
// starts from: the endpoints, the TLS configuration their cluster asks
// for (none for plaintext), root's credentials when the harness enabled
// the cluster's auth (WithRootCredentials), and no client logging. Callers
// add their own timeouts, context and dial options, and a client that
// runs as another user sets its own credentials.
func ClientConfig(endpoints []string) clientv3.Config {
	cfg := clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()}
	if s := lookupSecurity(endpoints); s != nil {
		cfg.TLS = s.client.Clone()
	}
	return WithRootCredentials(cfg)
}

// ClientTLS is the client TLS configuration for endpoint's cluster, or nil
// for plaintext.
func ClientTLS(endpoint string) *tls.Config {
	if s := lookupSecurity([]string{endpoint}); s != nil {
		return s.client.Clone()
	}
	return nil
}

// HTTPClient is the HTTP client for endpoint's health and version
// endpoints: over TLS with the client certificate when its cluster serves
// TLS, http.DefaultClient otherwise.
func HTTPClient(endpoint string) *http.Client {
	if s := lookupSecurity([]string{endpoint}); s != nil {
		return s.http
	}
	return http.DefaultClient
}

// TLS reports whether the cluster serves clients and peers over TLS.
func (c *Cluster) TLS() bool { return c.sec != nil }

// CertsDir is where the run's certificates are, "" without TLS.
func (c *Cluster) CertsDir() string {
	if c.sec == nil {
		return ""
	}
	return c.sec.ca.Dir()
}

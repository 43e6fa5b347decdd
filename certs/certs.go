// Package certs makes the certificates of a TLS run at run time, with
// crypto/x509 and ECDSA P-256 keys: a certificate authority, one
// certificate per member (valid for 127.0.0.1, for both server and client
// use, so it serves clients and peers and dials peers), and client
// certificates for the harness's clients. Nothing is fetched. Every file
// is written into the run directory, so the report keeps them: they are
// test credentials, made for one run and trusted by nothing else.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Validity is how long the certificates are valid, from an hour before
// they are made (clock skew between the harness and etcd is nil here, but
// a certificate valid from "now" is refused by a check a moment early).
const Validity = 7 * 24 * time.Hour

// Organization names the harness in every certificate's subject.
const Organization = "etcd-robustness (test credentials)"

// Pair is a certificate and its key, as PEM files.
type Pair struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Authority is the run's CA. It signs the member and client certificates
// it is asked for; it is safe for concurrent use.
type Authority struct {
	dir    string
	caFile string

	mu   sync.Mutex
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NewAuthority makes a CA and writes it to dir as ca.crt and ca.key.
func NewAuthority(dir string) (*Authority, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	tmpl, err := template("etcd-robustness CA")
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	a := &Authority{dir: dir, caFile: filepath.Join(dir, "ca.crt"), cert: cert, key: key, pool: x509.NewCertPool()}
	a.pool.AddCert(cert)
	if _, err := write(dir, "ca", der, key); err != nil {
		return nil, err
	}
	return a, nil
}

// CAFile is the CA certificate's PEM file, what members and clients trust.
func (a *Authority) CAFile() string { return a.caFile }

// Dir is where the files are written.
func (a *Authority) Dir() string { return a.dir }

// Pool is a pool that holds the CA alone.
func (a *Authority) Pool() *x509.CertPool { return a.pool }

// Member makes the certificate of the member named name (name.crt and
// name.key): common name name, valid for 127.0.0.1 and localhost, for
// server and client authentication.
func (a *Authority) Member(name string) (Pair, error) {
	tmpl, err := template(name)
	if err != nil {
		return Pair{}, err
	}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	tmpl.DNSNames = []string{"localhost"}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return a.sign(name, tmpl)
}

// Client makes a client certificate (name.crt and name.key) with common
// name name, for client authentication only. Under etcd's auth, a request
// with no token is taken to be by the user its certificate names; the
// harness's clients' name is no user of the tests.
func (a *Authority) Client(name string) (Pair, error) {
	tmpl, err := template(name)
	if err != nil {
		return Pair{}, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return a.sign(name, tmpl)
}

// ClientTLS is the TLS configuration of a client that trusts the CA alone
// and presents p. The server name is left to the dialed address (an IP
// address is checked against the certificate's IP SANs).
func (a *Authority) ClientTLS(p Pair) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: client certificate: %w", err)
	}
	return &tls.Config{RootCAs: a.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (a *Authority) sign(name string, tmpl *x509.Certificate) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: key of %s: %w", name, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	a.mu.Lock()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	a.mu.Unlock()
	if err != nil {
		return Pair{}, fmt.Errorf("certs: certificate of %s: %w", name, err)
	}
	return write(a.dir, name, der, key)
}

// template is a certificate with a random 128-bit serial, the common name,
// and the validity period.
func template(cn string) (*x509.Certificate, error) {
	if cn == "" || filepath.Base(cn) != cn {
		return nil, fmt.Errorf("certs: %q is not a plain name", cn)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{Organization}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Validity),
	}, nil
}

// write writes name.crt (0644) and name.key (0600, PKCS #8) into dir.
func write(dir, name string, der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: key of %s: %w", name, err)
	}
	p := Pair{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	err = errors.Join(
		os.WriteFile(p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644),
		os.WriteFile(p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600),
	)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: writing %s: %w", name, err)
	}
	return p, nil
}

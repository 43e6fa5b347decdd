package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block, "no PEM block in %s", path)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

func TestCertificatesChainAndUsage(t *testing.T) {
	dir := t.TempDir()
	a, err := NewAuthority(dir)
	require.NoError(t, err)
	member, err := a.Member("member-0")
	require.NoError(t, err)
	client, err := a.Client("client")
	require.NoError(t, err)
	other, err := NewAuthority(t.TempDir())
	require.NoError(t, err)

	ca := parse(t, a.CAFile())
	assert.True(t, ca.IsCA)
	tests := []struct {
		name    string
		pair    Pair
		roots   *x509.CertPool
		usage   x509.ExtKeyUsage
		host    string
		wantErr bool
	}{
		{"member serves 127.0.0.1", member, a.Pool(), x509.ExtKeyUsageServerAuth, "127.0.0.1", false},
		{"member dials peers", member, a.Pool(), x509.ExtKeyUsageClientAuth, "", false},
		{"member is not valid for another IP", member, a.Pool(), x509.ExtKeyUsageServerAuth, "127.0.0.2", true},
		{"client authenticates", client, a.Pool(), x509.ExtKeyUsageClientAuth, "", false},
		{"client cannot serve", client, a.Pool(), x509.ExtKeyUsageServerAuth, "", true},
		{"another CA does not trust the member", member, other.Pool(), x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parse(t, tt.pair.CertFile)
			_, err := c.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}

	m := parse(t, member.CertFile)
	assert.Equal(t, "member-0", m.Subject.CommonName)
	assert.WithinDuration(t, time.Now().Add(Validity), m.NotAfter, time.Minute)
	st, err := os.Stat(member.KeyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a key is readable by its owner alone")
	for _, f := range []string{"ca.crt", "ca.key", "member-0.crt", "member-0.key", "client.crt", "client.key"} {
		assert.FileExists(t, filepath.Join(dir, f))
	}
}

func TestNamesMustBePlain(t *testing.T) {
	a, err := NewAuthority(t.TempDir())
	require.NoError(t, err)
	for _, name := range []string{"", "../x", "a/b"} {
		_, err := a.Member(name)
		assert.Error(t, err, "name %q", name)
	}
}

// handshake serves TLS with server (requiring and verifying a client
// certificate signed by a) and dials it with client; it returns the
// client's handshake error (the server's shows there as a TLS alert).
func handshake(t *testing.T, a *Authority, server Pair, client *tls.Config) error {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: a.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
	})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
		_, _ = c.Write([]byte("x"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{Config: client}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	// In TLS 1.3 the server's verdict on the client's certificate comes
	// after the client's handshake: read to see it.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestHandshake(t *testing.T) {
	a, err := NewAuthority(t.TempDir())
	require.NoError(t, err)
	member, err := a.Member("member-0")
	require.NoError(t, err)
	client, err := a.Client("client")
	require.NoError(t, err)
	withCert, err := a.ClientTLS(client)
	require.NoError(t, err)
	asPeer, err := a.ClientTLS(member)
	require.NoError(t, err)
	other, err := NewAuthority(t.TempDir())
	require.NoError(t, err)
	stranger, err := other.Client("client")
	require.NoError(t, err)
	withStranger, err := other.ClientTLS(stranger)
	require.NoError(t, err)
	withStranger.RootCAs = a.Pool()

	tests := []struct {
		name    string
		client  *tls.Config
		wantErr bool
	}{
		{"client certificate", withCert, false},
		{"a member's certificate (peer TLS)", asPeer, false},
		{"no client certificate", &tls.Config{RootCAs: a.Pool()}, true},
		{"a certificate of another CA", withStranger, true},
		{"the server's CA not trusted", &tls.Config{Certificates: withCert.Certificates}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := handshake(t, a, member, tt.client)
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestClientTLSNeedsItsFiles(t *testing.T) {
	a, err := NewAuthority(t.TempDir())
	require.NoError(t, err)
	_, err = a.ClientTLS(Pair{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"})
	assert.Error(t, err)
}

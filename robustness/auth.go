package robustness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	mrand "math/rand"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/client"
	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// authAdminID is the history client id of the auth admin: its set-up and
// its changes during the run. It is below the watchers' ids and far above
// the traffic's and the faults' recording clients'.
const authAdminID = 990

// authEtcdArgs are the members' flags for auth mode mode: the token
// provider (for JWT, an RSA key pair made now and written under dir/auth,
// kept in the report: test credentials), and bcrypt's lowest cost, so
// that the users' authentications cost the 2-core machine little.
func authEtcdArgs(mode, dir string) ([]string, error) {
	args := []string{"--bcrypt-cost=4"}
	switch mode {
	case traffic.AuthSimple:
		return append(args, "--auth-token=simple"), nil
	case traffic.AuthJWT:
		priv, pub, err := writeJWTKeys(filepath.Join(dir, "auth"))
		if err != nil {
			return nil, err
		}
		return append(args, fmt.Sprintf("--auth-token=jwt,pub-key=%s,priv-key=%s,sign-method=RS256,ttl=10m", pub, priv)), nil
	}
	return nil, fmt.Errorf("unknown auth mode %q (valid: %v)", mode, traffic.AuthNames())
}

// writeJWTKeys makes an RSA key pair and writes it as PEM files in dir.
func writeJWTKeys(dir string) (priv, pub string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("jwt key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("jwt public key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("jwt keys: %w", err)
	}
	priv, pub = filepath.Join(dir, "jwt-rs256.key"), filepath.Join(dir, "jwt-rs256.pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", fmt.Errorf("jwt private key: %w", err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", "", fmt.Errorf("jwt public key: %w", err)
	}
	return priv, pub, nil
}

// authAdmin is the client that enabled auth and changes it during traffic.
type authAdmin struct {
	c    *client.Client
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// enableAuth makes the harness's own clients authenticate as root from
// now on, and enables auth on cl (traffic.AuthSetup), recorded by the
// admin client. nil when the scenario runs without auth.
func enableAuth(ctx context.Context, lg *zap.Logger, mode string, cl *cluster.Cluster, clock *history.Clock) (*authAdmin, error) {
	if mode == "" {
		return nil, nil
	}
	cl.SetRootCredentials(traffic.Root)
	c, err := client.New(cl.Endpoints(), authAdminID, clock, 0)
	if err != nil {
		return nil, fmt.Errorf("auth admin: %w", err)
	}
	if err := traffic.AuthSetup(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	lg.Info("auth enabled", zap.String("token", mode), zap.Int("users", len(traffic.AuthUsers)))
	return &authAdmin{c: c}, nil
}

// run changes auth at a low rate until stopped.
func (a *authAdmin) run(ctx context.Context, seed int64) {
	if a == nil {
		return
	}
	ctx, a.stop = context.WithCancel(ctx)
	a.wg.Go(func() { traffic.AuthAdmin(ctx, a.c, mrand.New(mrand.NewSource(seed))) })
}

// finish stops the changes and returns what the admin recorded.
func (a *authAdmin) finish() []history.Client {
	if a == nil {
		return nil
	}
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	a.c.Close()
	return []history.Client{a.c.History()}
}

// authUsers is who each client runs as: users under auth, else nil (no
// one).
func authUsers(mode string, users func(int) *cluster.Credentials) func(int) *cluster.Credentials {
	if mode == "" {
		return nil
	}
	return users
}

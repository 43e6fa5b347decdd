package cluster

import (
	"slices"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Credentials are a user's name and password.
type Credentials struct {
	User, Password string
}

// authed holds, for each cluster whose auth the harness enabled, root's
// credentials (*Cluster -> Credentials).
var authed sync.Map

// SetRootCredentials makes every client the harness builds for this
// cluster's members (WithRootCredentials: its health probes, end states,
// fault triggers and its own recording clients) authenticate as root with
// cr. Close forgets them.
func (c *Cluster) SetRootCredentials(cr Credentials) { authed.Store(c, cr) }

// RootCredentials are the credentials SetRootCredentials gave, if any.
func (c *Cluster) RootCredentials() (Credentials, bool) {
	v, ok := authed.Load(c)
	if !ok {
		return Credentials{}, false
	}
	return v.(Credentials), true
}

// WithRootCredentials is the one place the harness's own clients get
// credentials: cfg with root's filled in when its first endpoint is a
// member (listener or advertised URL) of a cluster whose auth the harness
// enabled, and with those already set left alone.
func WithRootCredentials(cfg clientv3.Config) clientv3.Config {
	if cfg.Username != "" || len(cfg.Endpoints) == 0 {
		return cfg
	}
	ep := cfg.Endpoints[0]
	authed.Range(func(k, v any) bool {
		c := k.(*Cluster)
		if slices.ContainsFunc(c.allMembers(), func(m *Member) bool { return m.ClientURL() == ep || m.DirectClientURL() == ep }) {
			cr := v.(Credentials)
			cfg.Username, cfg.Password = cr.User, cr.Password
			return false
		}
		return true
	})
	return cfg
}

package traffic

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeaseKeepAlive: with Env.LeaseKeepAlive every granted lease is
// renewed until that long after its grant; without it the profile's mix
// holds, where some leases are never renewed (revoked or left alone) and
// none is kept beyond 6 s.
func TestLeaseKeepAlive(t *testing.T) {
	grant := time.Unix(1000, 0)
	tests := []struct {
		name string
		keep time.Duration
		// at is when leaseDue is asked; wantRenewals how many of the
		// leases must get a keepalive then (each asked in turn).
		at           time.Duration
		wantRenewals int
	}{
		{name: "the profile's mix: none kept 10 s on", at: 10 * time.Second, wantRenewals: 0},
		{name: "every lease kept for 30 s: all renewed 10 s on", keep: 30 * time.Second, at: 10 * time.Second, wantRenewals: 20},
		{name: "every lease kept for 30 s: none renewed past it", keep: 30 * time.Second, at: 31 * time.Second, wantRenewals: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &etcdClient{p: Etcd{MinTTL: 2, MaxTTL: 5, MaxLeases: 20}, env: Env{Rand: newRand(1), LeaseKeepAlive: tt.keep}}
			for i := range 20 {
				cl.hold(int64(i+1), 3, grant) // renewed every second while kept
			}
			revokes := 0
			for _, l := range cl.leases {
				if !l.revokeAt.IsZero() {
					revokes++
				}
			}
			if tt.keep > 0 {
				require.Zero(t, revokes, "no lease is planned for revocation")
			} else {
				require.NotZero(t, revokes, "the mix revokes some leases")
			}
			renewed := map[int64]bool{}
			now := grant.Add(tt.at)
			for range len(cl.leases) {
				req, ok := cl.leaseDue(now)
				if !ok {
					break
				}
				if req.LeaseKeepAlive != nil {
					renewed[req.LeaseKeepAlive.ID] = true
				}
			}
			require.Len(t, renewed, tt.wantRenewals)
		})
	}
}

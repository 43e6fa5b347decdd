package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/internal/testetcd"
)

// TestAuthenticateAfterTokenDropped: once etcd drops a client's simple
// token (here: its user's password is changed, to the same one), the
// client authenticates again and goes on, for requests and for the watch
// streams it opens. On v3.4.12, whose Authenticate checks the token it
// carries, a client that sent its stale token with it never got a new
// one (see authenticateWithoutToken).
func TestAuthenticateAfterTokenDropped(t *testing.T) {
	bins := testetcd.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Config{Size: 1, EtcdPaths: []string{bins.Etcd}, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer cl.Close()

	admin, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer admin.Close()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "u", "u-pw"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "u-role"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "u-role", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserGrantRole(ctx, "u", "u-role"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		require.NoError(t, step())
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second, Username: "root", Password: "root-pw"})
	require.NoError(t, err)
	defer root.Close()

	u := &cluster.Credentials{User: "u", Password: "u-pw"}
	clock := history.NewClock()
	c, err := NewAs(cl.Endpoints(), 1, clock, 2*time.Second, u)
	require.NoError(t, err)
	defer c.Close()
	w, err := NewWatcherAs(cl.Endpoints(), 2, clock, u)
	require.NoError(t, err)
	defer w.Close()

	opened := func(id int) bool {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		s := w.Open(sctx, id, history.WatchRequest{Key: "a"}, -1)
		defer s.Close("done")
		for !s.Created() && !s.Ended() && sctx.Err() == nil {
			select {
			case <-s.Notify():
			case <-sctx.Done():
			}
		}
		return s.Created()
	}
	require.Nil(t, c.Do(ctx, history.Put("a", "1")).Error)
	require.True(t, opened(1), "a watch opens")

	for i := range 2 {
		_, err := root.UserChangePassword(ctx, "u", "u-pw") // drops u's tokens
		require.NoError(t, err)
		op := c.Do(ctx, history.Get("a"))
		require.Nil(t, op.Error, "a request after u's token was dropped (%d)", i)
		require.True(t, opened(10+i), "a watch opened after u's token was dropped (%d)", i)
	}
}

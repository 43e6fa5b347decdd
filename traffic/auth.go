package traffic

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/history"
)

// The auth modes a scenario may ask for (scenarios.Scenario.Auth): etcd's
// simple tokens, or JWT tokens signed with a key made for the run.
const (
	AuthSimple = "simple"
	AuthJWT    = "jwt"
)

// AuthNames lists the auth modes.
func AuthNames() []string { return []string{AuthSimple, AuthJWT} }

// AuthUser is a user the traffic runs as under auth: its role, of the same
// name, holds one permission.
type AuthUser struct {
	cluster.Credentials
	Key, RangeEnd, PermType string
}

// Role is the user's role.
func (u AuthUser) Role() string { return u.User + "-role" }

// Root is the root user of an auth run; the harness's own clients, the
// compactor, the defragmenter and the admin run as root.
var Root = cluster.Credentials{User: "root", Password: "root-pw"}

// AuthUsers are the users of an auth run, on the etcd profile's keys
// (key/<g>/<i>): one may read and write every key, one read the group
// key/1/, one write the group key/2/, and one read and write the key
// key/3/0 alone, so none of the others. Every user sends every kind of
// request, on any key: inside its permission and outside it.
var AuthUsers = []AuthUser{
	{cluster.Credentials{User: "rw", Password: "rw-pw"}, "\x00", "\x00", "READWRITE"},
	{cluster.Credentials{User: "ro", Password: "ro-pw"}, "key/1/", prefixEnd("key/1/"), "READ"},
	{cluster.Credentials{User: "wo", Password: "wo-pw"}, "key/2/", prefixEnd("key/2/"), "WRITE"},
	{cluster.Credentials{User: "none", Password: "none-pw"}, "key/3/0", "", "READWRITE"},
}

// AuthClientUser is the user traffic client i runs as under auth: root for
// the clients with a role that needs an admin (0 compacts, 1
// defragments), then each of AuthUsers in turn.
func AuthClientUser(i int) *cluster.Credentials {
	if i < 2 {
		return nil
	}
	return &AuthUsers[(i-2)%len(AuthUsers)].Credentials
}

// ReadsEveryKey reports whether traffic client i's user may read every
// key under auth: root, or AuthUsers' rw (whose permission the admin never
// changes).
func ReadsEveryKey(i int) bool {
	u := AuthClientUser(i)
	return u == nil || u.User == AuthUsers[0].User
}

// AuthWatcherUser is the user watcher i watches as: root, then each of
// AuthUsers in turn.
func AuthWatcherUser(i int) *cluster.Credentials {
	if i%(len(AuthUsers)+1) == 0 {
		return nil
	}
	return &AuthUsers[i%(len(AuthUsers)+1)-1].Credentials
}

func authReq(a history.AuthRequest) history.Request { return history.Request{Auth: &a} }

// AuthSetup makes the users, roles and permissions and enables auth, each
// request recorded by c (which runs as root). It fails if one is refused.
func AuthSetup(ctx context.Context, c Doer) error {
	reqs := []history.AuthRequest{
		{Op: history.AuthUserAdd, User: Root.User, Password: Root.Password},
		{Op: history.AuthUserGrantRole, User: Root.User, Role: "root"},
	}
	for _, u := range AuthUsers {
		reqs = append(reqs,
			history.AuthRequest{Op: history.AuthUserAdd, User: u.User, Password: u.Password},
			history.AuthRequest{Op: history.AuthRoleAdd, Role: u.Role()},
			history.AuthRequest{Op: history.AuthRoleGrantPermission, Role: u.Role(), Key: u.Key, RangeEnd: u.RangeEnd, PermType: u.PermType},
			history.AuthRequest{Op: history.AuthUserGrantRole, User: u.User, Role: u.Role()},
		)
	}
	reqs = append(reqs, history.AuthRequest{Op: history.AuthEnable})
	for _, a := range reqs {
		if err := doRetried(ctx, c, authReq(a)); err != nil {
			return fmt.Errorf("auth set-up: %w", err)
		}
	}
	return nil
}

// doRetried sends req until etcd answers it; an answer that is an error
// fails. Every attempt is recorded.
func doRetried(ctx context.Context, c Doer, req history.Request) error {
	for {
		op := c.Do(ctx, req)
		switch {
		case op.Error == nil:
			return nil
		case op.Error.Outcome == history.Failed:
			return fmt.Errorf("%s: %w", req.Auth.Op, op.Error)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %w)", req.Auth.Op, ctx.Err(), op.Error)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// authChanges is the admin's cycle of changes: each undoes the one before
// it, so the users keep coming back to their permissions. The password
// change sets the same password: it still invalidates the user's tokens
// (etcd's UserChangePassword) and commits an auth revision, and the
// user's clients can authenticate again.
func authChanges() []history.AuthRequest {
	ro, wo, none, rw := AuthUsers[1], AuthUsers[2], AuthUsers[3], AuthUsers[0]
	return []history.AuthRequest{
		{Op: history.AuthRoleRevokePermission, Role: ro.Role(), Key: ro.Key, RangeEnd: ro.RangeEnd},
		{Op: history.AuthRoleGrantPermission, Role: ro.Role(), Key: ro.Key, RangeEnd: ro.RangeEnd, PermType: ro.PermType},
		{Op: history.AuthUserRevokeRole, User: wo.User, Role: wo.Role()},
		{Op: history.AuthUserGrantRole, User: wo.User, Role: wo.Role()},
		{Op: history.AuthUserDelete, User: none.User},
		{Op: history.AuthUserAdd, User: none.User, Password: none.Password},
		{Op: history.AuthUserGrantRole, User: none.User, Role: none.Role()},
		{Op: history.AuthUserChangePassword, User: rw.User, Password: rw.Password},
	}
}

// AuthAdmin changes the auth state at a low rate until ctx is done: one
// change of authChanges, in turn, every 0.5-1.5 s, each recorded by c
// (root). A change of unknown outcome is sent again before the next, so
// the cycle stays in step.
func AuthAdmin(ctx context.Context, c Doer, rnd *rand.Rand) {
	changes := authChanges()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(rnd, 500*time.Millisecond, 1500*time.Millisecond)):
		}
		req := authReq(changes[i%len(changes)])
		for {
			op := c.Do(ctx, req)
			if op.Error == nil || op.Error.Outcome == history.Failed || ctx.Err() != nil {
				break // answered (a refusal too: an earlier attempt may have been applied)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

package validate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// authLog is a replayed log with auth: root and auth enabled, user "ro"
// may read the prefix "key-", user "none" nothing; then
//
//	2 put marker (auth on)   3 put key-a=1   ro's permission revoked   4 put key-a=2
func authLog() *Check {
	admin := func(r model.AuthRequest) model.Request { return model.AuthRequestOf(model.RootUser, r) }
	reqs := []model.Request{
		admin(model.AuthRequest{Op: model.AuthUserAdd, User: model.RootUser}),
		admin(model.AuthRequest{Op: model.AuthUserGrantRole, User: model.RootUser, Role: model.RootRole}),
		admin(model.AuthRequest{Op: model.AuthEnable}),
		admin(model.AuthRequest{Op: model.AuthUserAdd, User: "ro"}),
		admin(model.AuthRequest{Op: model.AuthUserAdd, User: "none"}),
		admin(model.AuthRequest{Op: model.AuthRoleAdd, Role: "r"}),
		admin(model.AuthRequest{Op: model.AuthRoleGrantPermission, Role: "r", Perm: model.Permission{Key: "key-", End: "key.", Type: model.PermRead}}),
		admin(model.AuthRequest{Op: model.AuthUserGrantRole, User: "ro", Role: "r"}),
		asRoot(model.PutRequest("marker", "0")),
		asRoot(model.PutRequest("key-a", "1")),
		admin(model.AuthRequest{Op: model.AuthRoleRevokePermission, Role: "r", Perm: model.Permission{Key: "key-", End: "key."}}),
		asRoot(model.PutRequest("key-a", "2")),
	}
	s := model.InitialState()
	c := &Check{Replayed: []model.State{{}, s}, Auth: []AuthAt{{Revision: 1, State: s}}}
	for _, r := range reqs {
		prev := s
		var evs []model.Event
		var resp model.Response
		s, resp, evs = s.Apply(r)
		if resp.Status != model.StatusOK {
			panic(r.String() + ": " + resp.Error)
		}
		c.Events = append(c.Events, evs...)
		if s.Revision > prev.Revision {
			c.Replayed = append(c.Replayed, s)
		}
		if s.AuthRevision() != prev.AuthRevision() || s.AuthEnabled() != prev.AuthEnabled() {
			c.Auth = append(c.Auth, AuthAt{Revision: s.Revision, State: s})
		}
	}
	return c
}

func asRoot(r model.Request) model.Request { r.User = model.RootUser; return r }

func TestWatchPermitted(t *testing.T) {
	base := authLog()
	key := history.WatchRequest{Key: "key-a"}
	from2 := history.WatchRequest{Key: "key-a", StartRevision: 2}
	// A member's answer that returned before every watch below was called,
	// showing revision 2 (auth enabled by then) or 4 (after the revoke).
	seen := func(rev int64) history.Client {
		return history.Client{ID: 5, Operations: []history.Operation{{ClientID: 5, Call: 0, Return: 1,
			Request: history.Request{Range: &history.RangeRequest{Key: "marker", Serializable: true}}, Response: &history.Response{Header: history.Header{MemberID: 1, Revision: rev}}}}}
	}
	createdOn := func(rev int64) history.WatchResponse {
		r := created(rev)
		r.Header.MemberID = 1
		return r
	}
	refused := createdOn(2)
	refused.Canceled, refused.CancelReason = true, model.ErrPermissionDenied
	tests := []struct {
		name  string
		user  string
		req   history.WatchRequest
		floor int64
		resps []history.WatchResponse
		want  Verdict
		msg   string
	}{
		{"an event on a key the user cannot read", "none", key, 2, []history.WatchResponse{createdOn(2), events(ev(base, "key-a", 3, false))}, Illegal,
			`watch 0 of user "none" on ["key-a"] delivered put key-a=1 @3`},
		{"events on a key the user can read", "ro", key, 2, []history.WatchResponse{createdOn(2), events(ev(base, "key-a", 3, false))}, OK, ""},
		{"an event after the permission was revoked, on a watch created before", "ro", key, 2,
			[]history.WatchResponse{createdOn(2), events(ev(base, "key-a", 3, false)), events(ev(base, "key-a", 4, false))}, OK, ""},
		{"a watch created after the revoke that delivered an event", "ro", from2, 4, []history.WatchResponse{createdOn(4), events(ev(base, "key-a", 3, false))}, Illegal,
			"could not read the range in any auth state"},
		{"created at the revision of the revoke: either state", "ro", from2, 3, []history.WatchResponse{createdOn(3), events(ev(base, "key-a", 3, false))}, OK, ""},
		{"refused though permitted", "ro", key, 2, []history.WatchResponse{refused}, Illegal, "was refused"},
		{"refused, not permitted", "none", key, 2, []history.WatchResponse{refused}, OK, ""},
		{"no member answer before: auth may not have been enabled yet", "none", key, 0, []history.WatchResponse{createdOn(2), events(ev(base, "key-a", 3, false))}, OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := *base
			if tc.floor > 0 {
				c.Clients = []history.Client{seen(tc.floor)}
			}
			resps := append([]history.WatchResponse{}, tc.resps...)
			for i := range resps {
				resps[i].Time = 20 // after the call
			}
			c.Watches = []history.Watch{{ID: 0, User: tc.user, Request: tc.req, Call: 10, Responses: resps, ResumedFrom: -1, EndReason: "done"}}
			r := Watch{}.Validate(context.Background(), &c)
			var perm NamedCheck
			for _, nc := range r.Checks {
				if nc.Name == "permitted" {
					perm = nc
				}
			}
			require.Equal(t, tc.want, perm.Verdict, "%s | %s", r.Message, perm.Message)
			require.Contains(t, perm.Message, tc.msg)
			if tc.floor > 0 {
				require.Positive(t, perm.Checked)
			}
		})
	}
}

// Without auth, the check says it had nothing to check.
func TestWatchPermittedWithoutAuth(t *testing.T) {
	c := testLog()
	c.Watches = []history.Watch{{ID: 0, Request: history.WatchRequest{Key: "key-a"}, Responses: []history.WatchResponse{created(1), events(ev(c, "key-a", 2, false))}, ResumedFrom: -1, EndReason: "done"}}
	r := Watch{}.Validate(context.Background(), c)
	for _, nc := range r.Checks {
		if nc.Name == "permitted" {
			require.Equal(t, 0, nc.Checked)
			require.Equal(t, "nothing to check", nc.Message)
		}
	}
}

// A serializable read is checked against the member's own auth state,
// which may be any the log had at its revision.
func TestStaleReadPermitted(t *testing.T) {
	base := authLog()
	read := func(user string, rev int64) history.Client {
		req := history.Request{Range: &history.RangeRequest{Key: "key-a", Serializable: true}, User: user}
		kv := history.KeyValue{Key: "key-a", Value: "1", CreateRevision: 3, ModRevision: 3, Version: 1}
		return history.Client{ID: 1, Operations: []history.Operation{{ClientID: 1, Call: 0, Return: 1, Request: req,
			Response: &history.Response{Header: history.Header{Revision: rev}, Range: &history.RangeResponse{KVs: []history.KeyValue{kv}, Count: 1}}}}}
	}
	for _, tc := range []struct {
		name string
		user string
		rev  int64
		want Verdict
	}{
		{"a user with read permission", "ro", 3, OK},
		{"a user without it", "none", 3, Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *base
			c.Clients = []history.Client{read(tc.user, tc.rev)}
			r := StaleRead{}.Validate(context.Background(), &c)
			require.Equal(t, tc.want, r.Verdict, r.Message)
		})
	}
}

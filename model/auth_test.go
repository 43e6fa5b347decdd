package model

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// authSetup is what the traffic's admin does before it starts: root with
// the root role, auth enabled, and users with roles:
//   - rw: read-write on every key (from "\x00" on);
//   - ro: read on the prefix "r/";
//   - wo: write on the prefix "w/";
//   - none: read-write on the key "n" alone.
func authSetup(t *testing.T) State { t.Helper(); return authSetupWith(t, Rules{}) }

// authSetupWith is authSetup on a cluster whose applier follows rules.
func authSetupWith(t *testing.T, rules Rules) State {
	t.Helper()
	admin := func(r AuthRequest) Request { return AuthRequestOf(RootUser, r) }
	reqs := []Request{
		admin(AuthRequest{Op: AuthUserAdd, User: RootUser}),
		admin(AuthRequest{Op: AuthUserGrantRole, User: RootUser, Role: RootRole}),
		admin(AuthRequest{Op: AuthEnable}),
	}
	for _, u := range []struct {
		user string
		perm Permission
	}{
		{"rw", Permission{Key: FromKey, End: FromKey, Type: PermReadWrite}},
		{"ro", Permission{Key: "r/", End: "r0", Type: PermRead}},
		{"wo", Permission{Key: "w/", End: "w0", Type: PermWrite}},
		{"none", Permission{Key: "n", Type: PermReadWrite}},
	} {
		reqs = append(reqs,
			admin(AuthRequest{Op: AuthUserAdd, User: u.user}),
			admin(AuthRequest{Op: AuthRoleAdd, Role: u.user + "-role"}),
			admin(AuthRequest{Op: AuthRoleGrantPermission, Role: u.user + "-role", Perm: u.perm}),
			admin(AuthRequest{Op: AuthUserGrantRole, User: u.user, Role: u.user + "-role"}),
		)
	}
	s := InitialStateWith(rules)
	for _, r := range reqs {
		var resp Response
		s, resp, _ = s.Apply(r)
		require.Equal(t, StatusOK, resp.Status, "%s: %s", r, resp.Error)
	}
	require.True(t, s.AuthEnabled())
	return s
}

func as(user string, r Request) Request { r.User = user; return r }

func okAt(rev int64, results ...OpResult) Response {
	return Response{Revision: rev, Txn: &TxnResponse{Succeeded: true, Results: results}}
}

func denied() Response { return failed(ErrPermissionDenied) }

// Each case is one operation stepped from the set-up state: the answer
// etcd gives is accepted, the wrong one rejected.
func TestAuthPermissions(t *testing.T) {
	base := authSetup(t)
	rev := base.Revision
	// a key in every prefix, written by root.
	s := base
	for _, k := range []string{"r/a", "w/a", "n", "x"} {
		s, _, _ = s.Apply(as(RootUser, PutRequest(k, "v-"+k)))
	}
	rev = s.Revision
	nestedPut := func(key string) Request {
		return TxnOf(nil, []Op{{Type: OpTxn, Txn: &TxnRequest{Then: []Op{{Type: OpPut, Key: key, Value: "nested-" + key}}}}}, nil)
	}
	nestedOK := okAt(rev+1, OpResult{Txn: &TxnResponse{Succeeded: true, Results: []OpResult{{}}}})
	tests := []struct {
		name        string
		req         Request
		right       Response
		wrong       Response
		wrongReason string
	}{
		{"a read without read permission that succeeded", as("wo", GetRequest("w/a")), denied(),
			okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "w/a")}}), "wo cannot read w/a"},
		{"a read inside a read-only prefix", as("ro", GetRequest("r/a")), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "r/a")}}),
			denied(), "ro may read r/a"},
		{"a prefix read covered by the permission", as("ro", RangeRequest("r/", "r0")), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "r/a")}}),
			denied(), "[r/, r0) is within ro's permission"},
		{"a prefix read wider than the permission", as("ro", RangeRequest("r/", "s")), denied(),
			okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "r/a")}}), "[r/, s) is wider than [r/, r0)"},
		{"a write refused though permitted", as("wo", PutRequest("w/b", "1")), okAt(rev+1, OpResult{}), denied(), "wo may write w/b"},
		{"a write to a read-only prefix that succeeded", as("ro", PutRequest("r/b", "1")), denied(), okAt(rev+1, OpResult{}), "ro cannot write"},
		{"a delete with prev_kv needs read too", as("wo", TxnOf(nil, []Op{{Type: OpDelete, Key: "w/a", PrevKV: true}}, nil)), denied(),
			okAt(rev+1, OpResult{Deleted: 1, PrevKVs: []KeyValue{stored(s, "w/a")}}), "wo cannot read w/a"},
		{"a nested txn writing a key the user cannot write", as("wo", nestedPut("x")), denied(), nestedOK, "wo cannot write x"},
		{"a nested txn writing within the permission", as("wo", nestedPut("w/c")), nestedOK, denied(), "wo may write w/c"},
		{"a compare on a key the user cannot read", as("wo", TxnOf([]Compare{{Key: "x", Target: TargetVersion, Result: Equal, Operand: 1}},
			[]Op{{Type: OpPut, Key: "w/d", Value: "1"}}, nil)), denied(), okAt(rev+1, OpResult{}), "wo cannot read x"},
		{"the untaken branch is checked too", as("wo", TxnOf(nil, []Op{{Type: OpPut, Key: "w/e", Value: "1"}}, []Op{{Type: OpPut, Key: "x", Value: "1"}})),
			denied(), okAt(rev+1, OpResult{}), "wo cannot write x, in the else branch"},
		{"root may do anything", as(RootUser, GetRequest("x")), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "x")}}), denied(), "root has the root role"},
		{"no user while auth is enabled", GetRequest("x"), failed(ErrUserEmpty), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "x")}}), "no user"},
		{"a user that does not exist", as("ghost", GetRequest("x")), denied(), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "x")}}), "no such user"},
		{"a single-key permission", as("none", PutRequest("n", "2")), okAt(rev+1, OpResult{}), denied(), "none may write n"},
		{"a single-key permission covers no range", as("none", RangeRequest("n", "o")), denied(), okAt(rev, OpResult{Count: 1, KVs: []KeyValue{stored(s, "n")}}),
			"a point permission is [n, n\\x00), narrower than [n, o)"},
		{"an admin request by a user who is not root", as("rw", AuthRequestOf("rw", AuthRequest{Op: AuthUserDelete, User: "ro"})), denied(),
			Response{Revision: rev}, "rw is not root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, Step(s, tc.req, tc.right), 1, "etcd's answer %s must be accepted", tc.right)
			require.Empty(t, Step(s, tc.req, tc.wrong), "%s must be rejected: %s", tc.wrong, tc.wrongReason)
		})
	}
}

func stored(s State, key string) KeyValue {
	k, _ := s.Get(key)
	return k
}

// A permission revoked earlier in the order: a request after it that
// succeeds is rejected; one before it is accepted.
func TestAuthRevokedEarlierInTheOrder(t *testing.T) {
	s := authSetup(t)
	put := as("wo", PutRequest("w/a", "1"))
	revoke := AuthRequestOf(RootUser, AuthRequest{Op: AuthRoleRevokePermission, Role: "wo-role", Perm: Permission{Key: "w/", End: "w0"}})

	before := Step(s, put, okAt(s.Revision+1, OpResult{}))
	require.Len(t, before, 1, "permitted before the revoke")

	after := Step(s, revoke, Response{Revision: s.Revision})
	require.Len(t, after, 1)
	require.Equal(t, s.AuthRevision()+1, after[0].AuthRevision(), "a revoke commits an auth revision")
	require.Empty(t, Step(after[0], put, okAt(s.Revision+1, OpResult{})), "a write that succeeded after its permission was revoked")
	require.Len(t, Step(after[0], put, denied()), 1)

	// Revoking the role from the user does the same; deleting and
	// re-adding the user leaves it without roles.
	for _, change := range [][]Request{
		{AuthRequestOf(RootUser, AuthRequest{Op: AuthUserRevokeRole, User: "wo", Role: "wo-role"})},
		{AuthRequestOf(RootUser, AuthRequest{Op: AuthUserDelete, User: "wo"}), AuthRequestOf(RootUser, AuthRequest{Op: AuthUserAdd, User: "wo"})},
		{AuthRequestOf(RootUser, AuthRequest{Op: AuthRoleDelete, Role: "wo-role"})},
	} {
		st := s
		for _, r := range change {
			var resp Response
			st, resp, _ = st.Apply(r)
			require.Equal(t, StatusOK, resp.Status, "%s", r)
		}
		require.Empty(t, Step(st, put, okAt(s.Revision+1, OpResult{})), "after %v", change)
	}
}

// An unknown-outcome admin change forks the state: a later refusal and a
// later success are both possible.
func TestAuthUnknownChange(t *testing.T) {
	s := authSetup(t)
	revoke := AuthRequestOf(RootUser, AuthRequest{Op: AuthUserRevokeRole, User: "wo", Role: "wo-role"})
	states := Step(s, revoke, Response{Status: StatusUnknown})
	require.Len(t, states, 2)
	put := as("wo", PutRequest("w/a", "1"))
	var accepted int
	for _, st := range states {
		accepted += len(Step(st, put, denied()))
	}
	require.Equal(t, 1, accepted, "exactly the state with the revoke applied refuses")
}

// etcd's admin errors and revision rules.
func TestAuthAdminRequests(t *testing.T) {
	s := authSetup(t)
	admin := func(r AuthRequest) Request { return AuthRequestOf(RootUser, r) }
	tests := []struct {
		req     Request
		wantErr string
		bumps   bool
	}{
		{admin(AuthRequest{Op: AuthUserAdd, User: "ro"}), ErrUserAlreadyExist, false},
		{admin(AuthRequest{Op: AuthUserDelete, User: RootUser}), ErrInvalidAuthMgmt, false},
		{admin(AuthRequest{Op: AuthUserRevokeRole, User: RootUser, Role: RootRole}), ErrInvalidAuthMgmt, false},
		{admin(AuthRequest{Op: AuthUserRevokeRole, User: "ro", Role: "wo-role"}), ErrRoleNotGranted, false},
		{admin(AuthRequest{Op: AuthUserGrantRole, User: "ro", Role: "missing"}), ErrRoleNotFound, false},
		{admin(AuthRequest{Op: AuthUserGrantRole, User: "ro", Role: "ro-role"}), "", false}, // already granted: ignored
		{admin(AuthRequest{Op: AuthRoleRevokePermission, Role: "ro-role", Perm: Permission{Key: "r/"}}), ErrPermissionNotGranted, false},
		{admin(AuthRequest{Op: AuthRoleGrantPermission, Role: "ro-role", Perm: Permission{Key: "", Type: PermRead}}), ErrInvalidAuthMgmt, false},
		{admin(AuthRequest{Op: AuthRoleDelete, Role: RootRole}), ErrInvalidAuthMgmt, false},
		{admin(AuthRequest{Op: AuthEnable}), "", false}, // already enabled
		{admin(AuthRequest{Op: AuthUserChangePassword, User: "ro"}), "", true},
		{admin(AuthRequest{Op: AuthRoleGrantPermission, Role: "ro-role", Perm: Permission{Key: "r/", End: "r0", Type: PermReadWrite}}), "", true},
		{AuthRequestOf("", AuthRequest{Op: AuthRoleAdd, Role: "x"}), ErrUserEmpty, false},
	}
	for _, tc := range tests {
		t.Run(tc.req.String(), func(t *testing.T) {
			next, resp, _ := s.Apply(tc.req)
			require.Equal(t, tc.wantErr, resp.Error)
			if tc.bumps {
				require.Equal(t, s.AuthRevision()+1, next.AuthRevision())
			} else {
				require.Equal(t, s.AuthRevision(), next.AuthRevision())
			}
			// The wrong answer: success for a refusal, a refusal for a success.
			wrong := Response{Revision: s.Revision}
			if tc.wantErr == "" {
				wrong = denied()
			}
			require.Empty(t, Step(s, tc.req, wrong))
		})
	}
	// Auth cannot be enabled before root has the root role.
	st := InitialState()
	st, _, _ = st.Apply(AuthRequestOf("", AuthRequest{Op: AuthUserAdd, User: RootUser}))
	_, resp, _ := st.Apply(AuthRequestOf("", AuthRequest{Op: AuthEnable}))
	require.Equal(t, ErrRootRoleNotExist, resp.Error)
}

// A request read from the WAL carries the auth revision it was proposed
// at: etcd refuses it at apply when an auth change was applied since.
func TestAuthOldRevisionFromTheWAL(t *testing.T) {
	s := authSetup(t)
	put := as("wo", PutRequest("w/a", "1"))
	put.AuthRevision = s.AuthRevision()
	next, resp, _ := s.Apply(put)
	require.Equal(t, StatusOK, resp.Status)
	require.Equal(t, s.Revision+1, next.Revision)

	s2, _, _ := s.Apply(AuthRequestOf(RootUser, AuthRequest{Op: AuthUserChangePassword, User: "ro"}))
	next, resp, _ = s2.Apply(put)
	require.Equal(t, ErrAuthOldRevision, resp.Error)
	require.Equal(t, s2.Revision, next.Revision, "refused at apply: no effect")
}

// A lease with a key the user cannot write: the user may not revoke it,
// nor attach a key to it, nor keep it alive.
func TestAuthLeasePermissions(t *testing.T) {
	s := authSetup(t)
	s, _, _ = s.Apply(as(RootUser, LeaseGrantRequest(7, 10, 0)))
	s, _, _ = s.Apply(as(RootUser, PutWithLeaseRequest("x", "1", 7)))
	require.Empty(t, Step(s, as("wo", LeaseRevokeRequest(7)), Response{Revision: s.Revision + 1, Lease: &LeaseResponse{}}),
		"wo cannot revoke a lease holding x")
	require.Len(t, Step(s, as("wo", LeaseRevokeRequest(7)), denied()), 1)
	require.Empty(t, Step(s, as("wo", PutWithLeaseRequest("w/a", "1", 7)), okAt(s.Revision+1, OpResult{})),
		"wo cannot attach a key to a lease holding x")
	require.Len(t, Step(s, as("rw", LeaseRevokeRequest(7)), Response{Revision: s.Revision + 1, Lease: &LeaseResponse{}}), 1)
	// A keepalive is checked only by a leader: refused or not.
	require.Len(t, Step(s, as("wo", LeaseKeepAliveRequest(7, 0)), denied()), 1)
	require.Len(t, Step(s, as("wo", LeaseKeepAliveRequest(7, 0)), Response{Revision: s.Revision, Lease: &LeaseResponse{ID: 7, TTL: 10}}), 1)
	require.Empty(t, Step(s, as("rw", LeaseKeepAliveRequest(7, 0)), denied()), "rw may write x")
	// A time-to-live checks the keys only when it asks for them.
	require.Len(t, Step(s, as("ro", LeaseTimeToLiveRequest(7, true)), denied()), 1)
	require.Empty(t, Step(s, as("ro", LeaseTimeToLiveRequest(7, false)), denied()))
	// A lease without keys needs no permission.
	s, _, _ = s.Apply(as(RootUser, LeaseGrantRequest(8, 10, 0)))
	require.Len(t, Step(s, as("none", LeaseRevokeRequest(8)), Response{Revision: s.Revision, Lease: &LeaseResponse{}}), 1)
}

// Root's revoke of a lease with keys, read from the WAL with an auth
// revision older than the store's (the leader's revoke of an expired lease
// carries root's token of the moment it was proposed): releases before
// etcd PR #16005 check every key for root too, and refuse it; later ones
// let an admin through. A root put attaching a key to the lease is checked
// the same way. Each rule accepts its release's answer and rejects the
// other's.
func TestAuthLeaseKeysEvenForAdmin(t *testing.T) {
	fromWAL := func(r Request, authRev uint64) Request { r.User, r.AuthRevision = RootUser, authRev; return r }
	tests := []struct {
		name    string
		rules   Rules
		req     func(old uint64) Request
		refused bool
	}{
		{"v3.6 and later: root's revoke with an old auth revision applies", Rules{}, func(old uint64) Request { return fromWAL(LeaseRevokeRequest(7), old) }, false},
		{"v3.5.9 and before: root's revoke with an old auth revision is refused", Rules{LeaseKeysEvenForAdmin: true}, func(old uint64) Request { return fromWAL(LeaseRevokeRequest(7), old) }, true},
		{"v3.5.9 and before: root's put attaching the lease with an old auth revision is refused", Rules{LeaseKeysEvenForAdmin: true}, func(old uint64) Request { return fromWAL(PutWithLeaseRequest("w/b", "2", 7), old) }, true},
		{"v3.5.9 and before: root's revoke with the current auth revision applies", Rules{LeaseKeysEvenForAdmin: true}, func(uint64) Request { return fromWAL(LeaseRevokeRequest(7), 0) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := authSetupWith(t, tc.rules)
			s, _, _ = s.Apply(as(RootUser, LeaseGrantRequest(7, 10, 0)))
			s, _, _ = s.Apply(as("wo", PutWithLeaseRequest("w/a", "1", 7)))
			old := s.AuthRevision()
			s, _, _ = s.Apply(AuthRequestOf(RootUser, AuthRequest{Op: AuthUserChangePassword, User: "ro"}))
			require.Greater(t, s.AuthRevision(), old)
			req := tc.req(old)
			if req.AuthRevision == 0 {
				req.AuthRevision = s.AuthRevision()
			}
			next, resp, _ := s.Apply(req)
			applied := Response{Revision: s.Revision + 1}
			if req.Type == LeaseRevoke {
				applied.Lease = &LeaseResponse{}
			} else {
				applied = okAt(s.Revision+1, OpResult{})
			}
			if tc.refused {
				require.Equal(t, ErrAuthOldRevision, resp.Error)
				require.Equal(t, s.Revision, next.Revision, "refused at apply: no effect")
				_, ok := next.leases.Get(7)
				require.True(t, ok, "the lease is kept")
				require.Empty(t, Step(s, req, applied), "an applied answer is rejected")
				require.Len(t, Step(s, req, failed(ErrAuthOldRevision)), 1)
				return
			}
			require.Equal(t, StatusOK, resp.Status, resp.Error)
			require.Equal(t, s.Revision+1, next.Revision)
			require.Len(t, Step(s, req, applied), 1)
		})
	}
}

// CanRead is the watch check's: etcd's range permission.
func TestCanRead(t *testing.T) {
	s := authSetup(t)
	require.True(t, s.CanRead("ro", "r/", "r0"))
	require.True(t, s.CanRead("ro", "r/x", ""))
	require.False(t, s.CanRead("ro", "r/", FromKey))
	require.False(t, s.CanRead("wo", "w/x", ""))
	require.True(t, s.CanRead("rw", FromKey, FromKey))
	require.True(t, InitialState().CanRead("", "x", ""), "auth disabled")
}

// A nested transaction's conditions read the store before the outer
// transaction; its operations run in place, at one revision.
func TestNestedTxn(t *testing.T) {
	s := InitialState()
	s, _, _ = s.Apply(PutRequest("a", "1"))
	inner := &TxnRequest{
		Conditions: []Compare{{Key: "b", Target: TargetVersion, Result: Equal, Operand: 0}},
		Then:       []Op{{Type: OpRange, Key: "b"}},
	}
	req := TxnOf(nil, []Op{{Type: OpPut, Key: "b", Value: "2"}, {Type: OpTxn, Txn: inner}}, nil)
	next, resp, evs := s.Apply(req)
	require.Equal(t, StatusOK, resp.Status)
	require.Equal(t, s.Revision+1, next.Revision)
	require.Len(t, evs, 1)
	res := resp.Txn.Results[1].Txn
	require.True(t, res.Succeeded, "b did not exist before the outer transaction")
	require.Equal(t, int64(1), res.Results[0].Count, "the nested range sees the outer put")
	// A wrong nested outcome is rejected.
	wrong := resp
	wrong.Txn = &TxnResponse{Succeeded: true, Results: []OpResult{{}, {Txn: &TxnResponse{Succeeded: false}}}}
	require.Empty(t, Step(s, req, wrong))
	// etcd's duplicate-key rule across levels.
	dup := TxnOf(nil, []Op{{Type: OpPut, Key: "b", Value: "3"}, {Type: OpTxn, Txn: &TxnRequest{Else: []Op{{Type: OpPut, Key: "b", Value: "4"}}}}}, nil)
	_, resp, _ = s.Apply(dup)
	require.Equal(t, ErrDuplicateKey, resp.Error)
	both := TxnOf(nil, []Op{{Type: OpTxn, Txn: &TxnRequest{Then: []Op{{Type: OpPut, Key: "c", Value: "5"}}, Else: []Op{{Type: OpPut, Key: "c", Value: "6"}}}}}, nil)
	_, resp, _ = s.Apply(both)
	require.Equal(t, StatusOK, resp.Status, "the two branches of one nested txn may put one key")
}

package model

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strings"
)

// This file is the model's auth: users, roles, their key permissions and
// the auth revision, as etcd's auth store keeps them (server/auth/store.go
// in etcd v3.6), and the permission checks etcd's applier and its
// read-only paths make (server/etcdserver/apply/apply_auth.go,
// etcdserver/v3_server.go). The same State.Apply holds every request to
// them: a request a user may not make is refused there, and a check that
// replays or steps through the model sees the refusal where etcd gives it.

// PermType is a key permission's type, as etcd's authpb.Permission_Type.
type PermType string

const (
	PermRead      PermType = "READ"
	PermWrite     PermType = "WRITE"
	PermReadWrite PermType = "READWRITE"
)

// Permission is a role's permission on the keys [Key, End): End empty is
// the key Key alone, FromKey every key from Key on, as etcd's range_end.
type Permission struct {
	Key  string   `json:"key"`
	End  string   `json:"end,omitempty"`
	Type PermType `json:"type"`
}

// AuthOp names an auth admin request.
type AuthOp string

const (
	AuthEnable               AuthOp = "auth_enable"
	AuthDisable              AuthOp = "auth_disable"
	AuthUserAdd              AuthOp = "user_add"
	AuthUserDelete           AuthOp = "user_delete"
	AuthUserChangePassword   AuthOp = "user_change_password"
	AuthUserGrantRole        AuthOp = "user_grant_role"
	AuthUserRevokeRole       AuthOp = "user_revoke_role"
	AuthRoleAdd              AuthOp = "role_add"
	AuthRoleDelete           AuthOp = "role_delete"
	AuthRoleGrantPermission  AuthOp = "role_grant_permission"
	AuthRoleRevokePermission AuthOp = "role_revoke_permission"
)

// AuthRequest is an auth admin request: User and Role name its subjects,
// Perm is the permission granted (or, for a revoke, its Key and End).
type AuthRequest struct {
	Op   AuthOp     `json:"op"`
	User string     `json:"user,omitempty"`
	Role string     `json:"role,omitempty"`
	Perm Permission `json:"perm,omitzero"`
	// NoPassword is a user added without a password (etcd's
	// UserAddOptions.NoPassword).
	NoPassword bool `json:"no_password,omitempty"`
}

// Errors of etcd's auth, as a client sees them (api/v3rpc/rpctypes).
const (
	ErrPermissionDenied     = "etcdserver: permission denied"
	ErrUserEmpty            = "etcdserver: user name is empty"
	ErrAuthOldRevision      = "etcdserver: revision of auth store is old"
	ErrUserAlreadyExist     = "etcdserver: user name already exists"
	ErrUserNotFound         = "etcdserver: user name not found"
	ErrRoleAlreadyExist     = "etcdserver: role name already exists"
	ErrRoleNotFound         = "etcdserver: role name not found"
	ErrRoleEmpty            = "etcdserver: role name is empty"
	ErrRoleNotGranted       = "etcdserver: role is not granted to the user"
	ErrPermissionNotGranted = "etcdserver: permission is not granted to the role"
	ErrInvalidAuthMgmt      = "etcdserver: invalid auth management"
	ErrRootUserNotExist     = "etcdserver: root user does not exist"
	ErrRootRoleNotExist     = "etcdserver: root user does not have root role"
)

// RootUser and RootRole are etcd's: a user with the root role may do
// anything, and auth cannot be enabled before the root user has it.
const (
	RootUser = "root"
	RootRole = "root"
)

// authState is the auth store. It is immutable: a change copies it.
type authState struct {
	enabled  bool
	revision uint64
	users    map[string][]string     // user -> its roles, sorted
	roles    map[string][]Permission // role -> its permissions, by key
	hash     uint64
}

// initialAuth is a new cluster's: disabled, revision 1 (etcd commits the
// first revision when it creates the store), no user and no role.
var initialAuth = newAuth(false, 1, map[string][]string{}, map[string][]Permission{})

func newAuth(enabled bool, rev uint64, users map[string][]string, roles map[string][]Permission) *authState {
	a := &authState{enabled: enabled, revision: rev, users: users, roles: roles}
	f := fnv.New64a()
	fmt.Fprintf(f, "%t %d", enabled, rev)
	for _, u := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(f, "|u %q %q", u, users[u])
	}
	for _, r := range slices.Sorted(maps.Keys(roles)) {
		fmt.Fprintf(f, "|r %q %v", r, roles[r])
	}
	a.hash = f.Sum64()
	return a
}

func (a *authState) equal(o *authState) bool {
	if a == o {
		return true
	}
	if a.hash != o.hash || a.enabled != o.enabled || a.revision != o.revision || len(a.users) != len(o.users) || len(a.roles) != len(o.roles) {
		return false
	}
	for u, r := range a.users {
		if or, ok := o.users[u]; !ok || !slices.Equal(r, or) {
			return false
		}
	}
	for r, p := range a.roles {
		if op, ok := o.roles[r]; !ok || !slices.Equal(p, op) {
			return false
		}
	}
	return true
}

// AuthEnabled reports whether auth is enabled in s.
func (s State) AuthEnabled() bool { return s.authState().enabled }

// AuthRevision is s's auth revision.
func (s State) AuthRevision() uint64 { return s.authState().revision }

func (s State) authState() *authState {
	if s.auth == nil {
		return initialAuth
	}
	return s.auth
}

// CanRead reports whether user may read [key, end) in s (always, while
// auth is disabled), as etcd's IsRangePermitted decides it; the auth
// revision is not checked.
func (s State) CanRead(user, key, end string) bool {
	return s.authState().permitted(user, key, end, PermRead) == ""
}

// permitted is etcd's isOpPermitted, without the revision check (which
// needs the request's auth revision: see checker): "" when user may do typ
// on [key, end), else etcd's error.
func (a *authState) permitted(user, key, end string, typ PermType) string {
	if !a.enabled {
		return ""
	}
	if user == "" {
		return ErrUserEmpty
	}
	roles, ok := a.users[user]
	if !ok {
		return ErrPermissionDenied // "cannot find a user for permission check"
	}
	if slices.Contains(roles, RootRole) {
		return ""
	}
	var ivs []interval
	for _, r := range roles {
		for _, p := range a.roles[r] {
			if p.Type == typ || p.Type == PermReadWrite {
				ivs = append(ivs, permInterval(p))
			}
		}
	}
	if end == "" {
		pt := pointInterval(key)
		for _, iv := range ivs {
			if iv.intersects(pt) {
				return ""
			}
		}
		return ErrPermissionDenied
	}
	if end == FromKey {
		end = "" // +infinity
	}
	if covers(ivs, interval{key, end}) {
		return ""
	}
	return ErrPermissionDenied
}

// isAdmin is etcd's IsAdminPermitted: "" when user may make admin
// requests (anyone while auth is disabled).
func (a *authState) isAdmin(user string) string {
	switch roles, ok := a.users[user]; {
	case !a.enabled:
		return ""
	case user == "":
		return ErrUserEmpty
	case !ok:
		return ErrUserNotFound
	case !slices.Contains(roles, RootRole):
		return ErrPermissionDenied
	}
	return ""
}

// interval is etcd's adt interval over BytesAffineComparable: [begin, end),
// where an empty string is +infinity (as an end, and as a begin too).
type interval struct{ begin, end string }

func affineCmp(a, b string) int {
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	return strings.Compare(a, b)
}

func pointInterval(key string) interval { return interval{key, key + "\x00"} }

// permInterval is how etcd's getMergedPerms reads a permission.
func permInterval(p Permission) interval {
	switch p.End {
	case "":
		return pointInterval(p.Key)
	case FromKey:
		return interval{p.Key, ""}
	}
	return interval{p.Key, p.End}
}

func (iv interval) intersects(o interval) bool {
	return affineCmp(iv.begin, o.end) < 0 && affineCmp(o.begin, iv.end) < 0
}

// covers is etcd's intervalTree.Contains: the intervals meeting q, in
// order of their start, are contiguous and span q.
func covers(ivs []interval, q interval) bool {
	var hit []interval
	for _, iv := range ivs {
		if iv.intersects(q) {
			hit = append(hit, iv)
		}
	}
	if len(hit) == 0 {
		return false
	}
	sort.SliceStable(hit, func(i, j int) bool { return affineCmp(hit[i].begin, hit[j].begin) < 0 })
	minBegin, maxEnd := hit[0].begin, hit[0].end
	for _, iv := range hit[1:] {
		if affineCmp(maxEnd, iv.begin) < 0 {
			return false
		}
		if affineCmp(iv.end, maxEnd) > 0 {
			maxEnd = iv.end
		}
	}
	return affineCmp(maxEnd, q.end) >= 0 && affineCmp(minBegin, q.begin) <= 0
}

// checker makes a request's permission checks against one auth state, as
// etcd's authApplierV3 does at apply (and its read paths before they
// read): the first check that fails gives the request's error.
type checker struct {
	a    *authState
	req  *Request
	err  string
	done bool
}

// op is one isOpPermitted call: with a known auth revision (a request read
// from the WAL, whose header carries it) an older one than the store's
// fails first.
func (c *checker) op(key, end string, typ PermType) {
	if c.done || !c.a.enabled {
		return
	}
	if c.req.User == "" {
		c.err, c.done = ErrUserEmpty, true
		return
	}
	if c.req.AuthRevision != 0 && c.req.AuthRevision < c.a.revision {
		c.err, c.done = ErrAuthOldRevision, true
		return
	}
	if msg := c.a.permitted(c.req.User, key, end, typ); msg != "" {
		c.err, c.done = msg, true
	}
}

// leaseKeys is etcd's checkLeasePuts: a user who is not an admin must be
// able to write every key attached to the lease. An admin passes at once,
// except under Rules.LeaseKeysEvenForAdmin (releases before etcd PR
// #16005), where each key is checked for root too, and with it the auth
// revision.
func (c *checker) leaseKeys(s State, id int64) {
	if c.done || !c.a.enabled || id == 0 {
		return
	}
	if _, ok := s.leases.Get(id); !ok || (!s.rules.LeaseKeysEvenForAdmin && c.a.isAdmin(c.req.User) == "") {
		return
	}
	for it := s.snap.keys.Iterator(); !it.Done(); {
		k, kv, _ := it.Next()
		if kv.Lease == id {
			c.op(k, "", PermWrite)
		}
	}
}

// txn is etcd's checkTxnPermission: every compare's range is read, and
// every operation of both branches, nested transactions included, is
// checked whichever branch runs.
func (c *checker) txn(s State, t *TxnRequest) {
	for _, cmp := range t.Conditions {
		c.op(cmp.Key, cmp.End, PermRead)
	}
	for _, ops := range [][]Op{t.Then, t.Else} {
		for _, op := range ops {
			switch op.Type {
			case OpRange:
				c.op(op.Key, op.End, PermRead)
			case OpPut:
				c.op(op.Key, "", PermWrite)
				c.leaseKeys(s, op.Lease)
				if op.PrevKV {
					c.op(op.Key, "", PermRead)
				}
			case OpDelete:
				if op.PrevKV {
					c.op(op.Key, op.End, PermRead)
				}
				c.op(op.Key, op.End, PermWrite)
			case OpTxn:
				c.txn(s, op.Txn)
			}
		}
	}
}

// PermissionError is the error etcd refuses req with for want of permission in
// s (its user's, at the auth state of s), or "".
func PermissionError(s State, req Request) string { return s.permission(req) }

// permission is the error etcd refuses req with for want of permission in
// s, or "". Lease grants need none; a revoke, a keepalive or a
// time-to-live of a lease with keys needs, for a user who is not an admin,
// write (revoke, keepalive) or read (time-to-live) permission on each.
func (s State) permission(req Request) string {
	a := s.authState()
	if !a.enabled {
		return ""
	}
	c := &checker{a: a, req: &req}
	switch req.Type {
	case Txn:
		c.txn(s, req.Txn)
	case LeaseRevoke:
		if req.Lease.Expiry {
			// An expiry the patch derived from the log: the leader's
			// revoke, with root's token. It is derived only where the
			// replay of the log applied the entry, which checked it with
			// the user and auth revision its header carries.
			return ""
		}
		c.leaseKeys(s, req.Lease.ID)
	case LeaseTimeToLive:
		// etcd's LeaseTimeToLive: a user is required; the keys' read
		// permission only when the keys are asked for.
		if req.User == "" {
			return ErrUserEmpty
		}
		if req.Lease.Keys {
			return s.leaseKeysPermission(req, PermRead)
		}
	case LeaseKeepAlive:
		// Only a leader checks a keepalive's permission (LeaseRenew's
		// checkLeaseRenew); a follower forwards it to the leader's lessor,
		// which does not. So etcd may refuse it or not: Step accepts a
		// refusal when leaseKeysPermission would give one.
	case Compact, LeaseLeases, Defragment:
		// Compaction and defragmentation need an admin (etcd's
		// maintenance and KV servers check it before they propose).
		if req.Type != LeaseLeases {
			return a.isAdmin(req.User)
		}
	}
	return c.err
}

// leaseKeysPermission is etcd's check of a lease's keys for a user who is
// not an admin: permission typ on each key attached to the lease.
func (s State) leaseKeysPermission(req Request, typ PermType) string {
	a := s.authState()
	if !a.enabled {
		return ""
	}
	if req.User == "" {
		return ErrUserEmpty
	}
	if _, ok := s.leases.Get(req.Lease.ID); !ok || a.isAdmin(req.User) == "" {
		return ""
	}
	for it := s.snap.keys.Iterator(); !it.Done(); {
		k, kv, _ := it.Next()
		if kv.Lease != req.Lease.ID {
			continue
		}
		if msg := a.permitted(req.User, k, "", typ); msg != "" {
			return msg
		}
	}
	return ""
}

// applyAuth applies an auth admin request as etcd's auth store does. Only
// an admin may make one (etcd's needAdminPermission at apply). Every change
// commits a new auth revision; a request that changes nothing, or fails,
// does not.
func (s State) applyAuth(r *AuthRequest, user string) (State, Response, []Event) {
	a := s.authState()
	ok := Response{Revision: s.Revision}
	if msg := a.isAdmin(user); msg != "" {
		return s, failed(msg), nil
	}
	users, roles := a.users, a.roles
	cloneUsers := func() { users = maps.Clone(a.users) }
	cloneRoles := func() { roles = maps.Clone(a.roles) }
	enabled, rev := a.enabled, a.revision+1
	switch r.Op {
	case AuthEnable:
		if a.enabled {
			return s, ok, nil
		}
		roles, found := a.users[RootUser]
		switch {
		case !found:
			return s, failed(ErrRootUserNotExist), nil
		case !slices.Contains(roles, RootRole):
			return s, failed(ErrRootRoleNotExist), nil
		}
		enabled, rev = true, a.revision
	case AuthDisable:
		if !a.enabled {
			return s, ok, nil
		}
		enabled = false
	case AuthUserAdd:
		if r.User == "" {
			return s, failed(ErrUserEmpty), nil
		}
		if _, found := a.users[r.User]; found {
			return s, failed(ErrUserAlreadyExist), nil
		}
		cloneUsers()
		users[r.User] = nil
	case AuthUserDelete:
		if a.enabled && r.User == RootUser {
			return s, failed(ErrInvalidAuthMgmt), nil
		}
		if _, found := a.users[r.User]; !found {
			return s, failed(ErrUserNotFound), nil
		}
		cloneUsers()
		delete(users, r.User)
	case AuthUserChangePassword:
		if _, found := a.users[r.User]; !found {
			return s, failed(ErrUserNotFound), nil
		}
	case AuthUserGrantRole:
		have, found := a.users[r.User]
		if !found {
			return s, failed(ErrUserNotFound), nil
		}
		if _, rok := a.roles[r.Role]; r.Role != RootRole && !rok {
			return s, failed(ErrRoleNotFound), nil
		}
		if slices.Contains(have, r.Role) {
			return s, ok, nil // already granted: ignored, no new revision
		}
		cloneUsers()
		users[r.User] = slices.Sorted(slices.Values(append(slices.Clone(have), r.Role)))
	case AuthUserRevokeRole:
		if a.enabled && r.User == RootUser && r.Role == RootRole {
			return s, failed(ErrInvalidAuthMgmt), nil
		}
		have, found := a.users[r.User]
		if !found {
			return s, failed(ErrUserNotFound), nil
		}
		if !slices.Contains(have, r.Role) {
			return s, failed(ErrRoleNotGranted), nil
		}
		cloneUsers()
		users[r.User] = slices.DeleteFunc(slices.Clone(have), func(x string) bool { return x == r.Role })
	case AuthRoleAdd:
		if r.Role == "" {
			return s, failed(ErrRoleEmpty), nil
		}
		if _, found := a.roles[r.Role]; found {
			return s, failed(ErrRoleAlreadyExist), nil
		}
		cloneRoles()
		roles[r.Role] = nil
	case AuthRoleDelete:
		if a.enabled && r.Role == RootRole {
			return s, failed(ErrInvalidAuthMgmt), nil
		}
		if _, found := a.roles[r.Role]; !found {
			return s, failed(ErrRoleNotFound), nil
		}
		cloneRoles()
		delete(roles, r.Role)
		// etcd takes the role from every user that has it.
		cloneUsers()
		for u, have := range users {
			if slices.Contains(have, r.Role) {
				users[u] = slices.DeleteFunc(slices.Clone(have), func(x string) bool { return x == r.Role })
			}
		}
	case AuthRoleGrantPermission:
		if !validPermRange(r.Perm.Key, r.Perm.End) {
			return s, failed(ErrInvalidAuthMgmt), nil
		}
		have, found := a.roles[r.Role]
		if !found {
			return s, failed(ErrRoleNotFound), nil
		}
		perms := slices.Clone(have)
		// etcd looks only at the first permission whose key is not below
		// the new one's: one equal in key and end is updated, else the new
		// one is added and the list sorted by key.
		i := sort.Search(len(perms), func(i int) bool { return perms[i].Key >= r.Perm.Key })
		if i < len(perms) && perms[i].Key == r.Perm.Key && perms[i].End == r.Perm.End {
			perms[i].Type = r.Perm.Type
		} else {
			perms = append(perms, r.Perm)
			sort.SliceStable(perms, func(i, j int) bool { return perms[i].Key < perms[j].Key })
		}
		cloneRoles()
		roles[r.Role] = perms
	case AuthRoleRevokePermission:
		have, found := a.roles[r.Role]
		if !found {
			return s, failed(ErrRoleNotFound), nil
		}
		perms := slices.DeleteFunc(slices.Clone(have), func(p Permission) bool { return p.Key == r.Perm.Key && p.End == r.Perm.End })
		if len(perms) == len(have) {
			return s, failed(ErrPermissionNotGranted), nil
		}
		cloneRoles()
		roles[r.Role] = perms
	default:
		panic(fmt.Sprintf("model: unknown auth request %q", r.Op))
	}
	s.auth = newAuth(enabled, rev, users, roles)
	return s, ok, nil
}

// validPermRange is etcd's isValidPermissionRange.
func validPermRange(key, end string) bool {
	switch {
	case key == "":
		return false
	case end == "", end == FromKey:
		return true
	}
	return affineCmp(key, end) < 0
}

// AuthRequestOf is an auth admin request made by user.
func AuthRequestOf(user string, r AuthRequest) Request {
	return Request{Type: Auth, Auth: &r, User: user}
}

func (r *AuthRequest) String() string {
	var args []string
	for _, s := range []string{r.User, r.Role} {
		if s != "" {
			args = append(args, s)
		}
	}
	if r.Perm.Key != "" {
		p := r.Perm.Key
		if r.Perm.End != "" {
			p += ".." + r.Perm.End
		}
		if r.Perm.Type != "" {
			p += " " + string(r.Perm.Type)
		}
		args = append(args, p)
	}
	return fmt.Sprintf("%s(%s)", r.Op, strings.Join(args, ", "))
}

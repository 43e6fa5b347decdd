package history

// The types in this file mirror etcd's gRPC messages field for field (see
// etcd's api/etcdserverpb/rpc.proto), with keys and values as strings so a
// record reads as text. They are what a client sent and what etcd answered,
// before any interpretation: the model derives its own requests and
// responses from them when a check runs, so the model can grow without
// re-recording, and an old record can be checked by a newer model.
//
// The same types describe what a member persisted in its WAL (package
// evidence), so a client's request and a committed entry compare directly.

// Request is one request a client sent: exactly one field is set.
type Request struct {
	Range           *RangeRequest           `json:"range,omitempty"`
	Put             *PutRequest             `json:"put,omitempty"`
	DeleteRange     *DeleteRangeRequest     `json:"delete_range,omitempty"`
	Txn             *TxnRequest             `json:"txn,omitempty"`
	LeaseGrant      *LeaseGrantRequest      `json:"lease_grant,omitempty"`
	LeaseRevoke     *LeaseRevokeRequest     `json:"lease_revoke,omitempty"`
	LeaseKeepAlive  *LeaseKeepAliveRequest  `json:"lease_keep_alive,omitempty"`
	LeaseTimeToLive *LeaseTimeToLiveRequest `json:"lease_time_to_live,omitempty"`
	LeaseLeases     *LeaseLeasesRequest     `json:"lease_leases,omitempty"`
	Compaction      *CompactionRequest      `json:"compaction,omitempty"`
	Defragment      *DefragmentRequest      `json:"defragment,omitempty"`
	Auth            *AuthRequest            `json:"auth,omitempty"`
	// User is the user the request was made as: the client's, as it sent
	// it, or the one a committed entry's header names ("" for none).
	User string `json:"user,omitempty"`
	// AuthRevision is the auth revision a committed entry's header
	// carries (the member stamps it when it proposes); a client does not
	// know it and leaves it 0.
	AuthRevision uint64 `json:"auth_revision,omitempty"`
}

// Auth admin requests, as AuthRequest.Op names them. Each is etcd's
// Auth...Request of that name (AuthUserAddRequest, ...).
const (
	AuthEnable               = "auth_enable"
	AuthDisable              = "auth_disable"
	AuthUserAdd              = "user_add"
	AuthUserDelete           = "user_delete"
	AuthUserChangePassword   = "user_change_password"
	AuthUserGrantRole        = "user_grant_role"
	AuthUserRevokeRole       = "user_revoke_role"
	AuthRoleAdd              = "role_add"
	AuthRoleDelete           = "role_delete"
	AuthRoleGrantPermission  = "role_grant_permission"
	AuthRoleRevokePermission = "role_revoke_permission"
)

// AuthRequest is one of etcd's auth admin requests, named by Op, with the
// fields it has: User (a user's name), Role, and a permission's Key,
// RangeEnd and PermType ("READ", "WRITE", "READWRITE"). Passwords are not
// recorded.
type AuthRequest struct {
	Op         string `json:"op"`
	User       string `json:"user,omitempty"`
	Role       string `json:"role,omitempty"`
	Key        string `json:"key,omitempty"`
	RangeEnd   string `json:"range_end,omitempty"`
	PermType   string `json:"perm_type,omitempty"`
	NoPassword bool   `json:"no_password,omitempty"`
	// Password is what a user add or password change sends; it is not
	// recorded.
	Password string `json:"-"`
}

// AuthResponse is the answer to an AuthRequest: only its header says
// anything.
type AuthResponse struct{}

// Response is etcd's answer to a Request: the header and the field that
// matches the request.
type Response struct {
	Header          Header                   `json:"header"`
	Range           *RangeResponse           `json:"range,omitempty"`
	Put             *PutResponse             `json:"put,omitempty"`
	DeleteRange     *DeleteRangeResponse     `json:"delete_range,omitempty"`
	Txn             *TxnResponse             `json:"txn,omitempty"`
	LeaseGrant      *LeaseGrantResponse      `json:"lease_grant,omitempty"`
	LeaseRevoke     *LeaseRevokeResponse     `json:"lease_revoke,omitempty"`
	LeaseKeepAlive  *LeaseKeepAliveResponse  `json:"lease_keep_alive,omitempty"`
	LeaseTimeToLive *LeaseTimeToLiveResponse `json:"lease_time_to_live,omitempty"`
	LeaseLeases     *LeaseLeasesResponse     `json:"lease_leases,omitempty"`
	Compaction      *CompactionResponse      `json:"compaction,omitempty"`
	Defragment      *DefragmentResponse      `json:"defragment,omitempty"`
	Auth            *AuthResponse            `json:"auth,omitempty"`
}

// Header is etcd's ResponseHeader.
type Header struct {
	ClusterID uint64 `json:"cluster_id,omitempty"`
	MemberID  uint64 `json:"member_id,omitempty"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term,omitempty"`
}

// KeyValue is etcd's mvccpb.KeyValue.
type KeyValue struct {
	Key            string `json:"key"`
	Value          string `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Lease          int64  `json:"lease,omitempty"`
}

// RangeRequest is etcd's RangeRequest. SortOrder and SortTarget use the
// enum names ("NONE", "ASCEND", "KEY", "MOD", ...); empty is etcd's default.
type RangeRequest struct {
	Key               string `json:"key"`
	RangeEnd          string `json:"range_end,omitempty"`
	Limit             int64  `json:"limit,omitempty"`
	Revision          int64  `json:"revision,omitempty"`
	SortOrder         string `json:"sort_order,omitempty"`
	SortTarget        string `json:"sort_target,omitempty"`
	Serializable      bool   `json:"serializable,omitempty"`
	KeysOnly          bool   `json:"keys_only,omitempty"`
	CountOnly         bool   `json:"count_only,omitempty"`
	MinModRevision    int64  `json:"min_mod_revision,omitempty"`
	MaxModRevision    int64  `json:"max_mod_revision,omitempty"`
	MinCreateRevision int64  `json:"min_create_revision,omitempty"`
	MaxCreateRevision int64  `json:"max_create_revision,omitempty"`
	// Stream: the request was sent as KV.RangeStream (etcd v3.7 and
	// later), which answers in chunks, instead of KV.Range. It is not a
	// field of etcd's message but which call carried it.
	Stream bool `json:"stream,omitempty"`
}

// RangeResponse is etcd's RangeResponse. A RangeStream's answer is its
// chunks merged, as proto.Merge merges them.
type RangeResponse struct {
	KVs   []KeyValue `json:"kvs,omitempty"`
	More  bool       `json:"more,omitempty"`
	Count int64      `json:"count"`
	// Chunks is how many messages a RangeStream answer came in (zero for
	// KV.Range); not a field of etcd's message.
	Chunks int `json:"chunks,omitempty"`
}

// PutRequest is etcd's PutRequest.
type PutRequest struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	Lease       int64  `json:"lease,omitempty"`
	PrevKV      bool   `json:"prev_kv,omitempty"`
	IgnoreValue bool   `json:"ignore_value,omitempty"`
	IgnoreLease bool   `json:"ignore_lease,omitempty"`
}

// PutResponse is etcd's PutResponse.
type PutResponse struct {
	PrevKV *KeyValue `json:"prev_kv,omitempty"`
}

// DeleteRangeRequest is etcd's DeleteRangeRequest.
type DeleteRangeRequest struct {
	Key      string `json:"key"`
	RangeEnd string `json:"range_end,omitempty"`
	PrevKV   bool   `json:"prev_kv,omitempty"`
}

// DeleteRangeResponse is etcd's DeleteRangeResponse.
type DeleteRangeResponse struct {
	Deleted int64      `json:"deleted"`
	PrevKVs []KeyValue `json:"prev_kvs,omitempty"`
}

// Compare is etcd's Compare. Target is "VERSION", "CREATE", "MOD", "VALUE"
// or "LEASE"; Result is "EQUAL", "GREATER", "LESS" or "NOT_EQUAL". The field
// that matches Target holds the operand.
type Compare struct {
	Result         string `json:"result"`
	Target         string `json:"target"`
	Key            string `json:"key"`
	RangeEnd       string `json:"range_end,omitempty"`
	Version        int64  `json:"version,omitempty"`
	CreateRevision int64  `json:"create_revision,omitempty"`
	ModRevision    int64  `json:"mod_revision,omitempty"`
	Value          string `json:"value,omitempty"`
	Lease          int64  `json:"lease,omitempty"`
}

// RequestOp is one operation of a transaction: exactly one field is set.
type RequestOp struct {
	Range       *RangeRequest       `json:"range,omitempty"`
	Put         *PutRequest         `json:"put,omitempty"`
	DeleteRange *DeleteRangeRequest `json:"delete_range,omitempty"`
	Txn         *TxnRequest         `json:"txn,omitempty"`
}

// ResponseOp is the answer to one RequestOp.
type ResponseOp struct {
	Range       *RangeResponse       `json:"range,omitempty"`
	Put         *PutResponse         `json:"put,omitempty"`
	DeleteRange *DeleteRangeResponse `json:"delete_range,omitempty"`
	Txn         *TxnResponse         `json:"txn,omitempty"`
}

// TxnRequest is etcd's TxnRequest.
type TxnRequest struct {
	Compare []Compare   `json:"compare,omitempty"`
	Success []RequestOp `json:"success,omitempty"`
	Failure []RequestOp `json:"failure,omitempty"`
}

// TxnResponse is etcd's TxnResponse.
type TxnResponse struct {
	Succeeded bool         `json:"succeeded"`
	Responses []ResponseOp `json:"responses,omitempty"`
}

// LeaseGrantRequest is etcd's LeaseGrantRequest.
type LeaseGrantRequest struct {
	TTL int64 `json:"ttl"`
	ID  int64 `json:"id,omitempty"`
}

// LeaseGrantResponse is etcd's LeaseGrantResponse.
type LeaseGrantResponse struct {
	ID    int64  `json:"id"`
	TTL   int64  `json:"ttl"`
	Error string `json:"error,omitempty"`
}

// LeaseRevokeRequest is etcd's LeaseRevokeRequest.
type LeaseRevokeRequest struct {
	ID int64 `json:"id"`
}

// LeaseRevokeResponse is etcd's LeaseRevokeResponse.
type LeaseRevokeResponse struct{}

// LeaseKeepAliveRequest is etcd's LeaseKeepAliveRequest.
type LeaseKeepAliveRequest struct {
	ID int64 `json:"id"`
}

// LeaseKeepAliveResponse is etcd's LeaseKeepAliveResponse.
type LeaseKeepAliveResponse struct {
	ID  int64 `json:"id"`
	TTL int64 `json:"ttl"`
}

// LeaseTimeToLiveRequest is etcd's LeaseTimeToLiveRequest.
type LeaseTimeToLiveRequest struct {
	ID   int64 `json:"id"`
	Keys bool  `json:"keys,omitempty"`
}

// LeaseTimeToLiveResponse is etcd's LeaseTimeToLiveResponse.
type LeaseTimeToLiveResponse struct {
	ID         int64    `json:"id"`
	TTL        int64    `json:"ttl"`
	GrantedTTL int64    `json:"granted_ttl"`
	Keys       []string `json:"keys,omitempty"`
}

// LeaseLeasesRequest is etcd's LeaseLeasesRequest.
type LeaseLeasesRequest struct{}

// LeaseLeasesResponse is etcd's LeaseLeasesResponse: the lease IDs.
type LeaseLeasesResponse struct {
	Leases []int64 `json:"leases,omitempty"`
}

// CompactionRequest is etcd's CompactionRequest.
type CompactionRequest struct {
	Revision int64 `json:"revision"`
	Physical bool  `json:"physical,omitempty"`
}

// CompactionResponse is etcd's CompactionResponse.
type CompactionResponse struct{}

// DefragmentRequest is etcd's DefragmentRequest, sent to one member.
type DefragmentRequest struct{}

// DefragmentResponse is etcd's DefragmentResponse.
type DefragmentResponse struct{}

// Kind names the request's type: "range", "put", "delete_range", "txn",
// "lease_grant", ... (the JSON field name), or "" if none is set.
func (r Request) Kind() string {
	switch {
	case r.Range != nil && r.Range.Stream:
		return "range_stream"
	case r.Range != nil:
		return "range"
	case r.Put != nil:
		return "put"
	case r.DeleteRange != nil:
		return "delete_range"
	case r.Txn != nil:
		return "txn"
	case r.LeaseGrant != nil:
		return "lease_grant"
	case r.LeaseRevoke != nil:
		return "lease_revoke"
	case r.LeaseKeepAlive != nil:
		return "lease_keep_alive"
	case r.LeaseTimeToLive != nil:
		return "lease_time_to_live"
	case r.LeaseLeases != nil:
		return "lease_leases"
	case r.Compaction != nil:
		return "compaction"
	case r.Defragment != nil:
		return "defragment"
	case r.Auth != nil:
		return "auth"
	}
	return ""
}

// ReadOnly reports whether the request cannot change etcd's state. A
// read-only request whose outcome is unknown tells nothing and may be
// dropped from a history; a write's may not.
func (r Request) ReadOnly() bool {
	switch {
	case r.Range != nil, r.LeaseTimeToLive != nil, r.LeaseLeases != nil, r.Defragment != nil:
		return true
	case r.Txn != nil:
		return r.Txn.readOnly()
	}
	return false
}

func (t *TxnRequest) readOnly() bool {
	for _, ops := range [][]RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if op.Put != nil || op.DeleteRange != nil || (op.Txn != nil && !op.Txn.readOnly()) {
				return false
			}
		}
	}
	return true
}

// PutValues lists the values a request can write, in request order. Every
// value the traffic writes is unique, so a value identifies its request:
// in a read, in a watch event, or in a member's WAL.
func (r Request) PutValues() []string {
	switch {
	case r.Put != nil:
		return []string{r.Put.Value}
	case r.Txn != nil:
		return r.Txn.putValues(nil)
	}
	return nil
}

func (t *TxnRequest) putValues(out []string) []string {
	for _, ops := range [][]RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			switch {
			case op.Put != nil:
				out = append(out, op.Put.Value)
			case op.Txn != nil:
				out = op.Txn.putValues(out)
			}
		}
	}
	return out
}

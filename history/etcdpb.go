package history

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// This file converts between the record types and etcd's protobuf messages:
// the client sends PB() and records FromPB...(), and the WAL reader records
// the committed requests with RequestFromInternal.

// RequestFromInternal is the client request inside a committed raft entry,
// or ok=false for entries that carry no client request of the kinds this
// package records (membership, auth, alarms, cluster version, v2).
func RequestFromInternal(r *pb.InternalRaftRequest) (req Request, ok bool) {
	switch {
	case r.Range != nil:
		req.Range = RangeFromPB(r.Range)
	case r.Put != nil:
		req.Put = PutFromPB(r.Put)
	case r.DeleteRange != nil:
		req.DeleteRange = DeleteRangeFromPB(r.DeleteRange)
	case r.Txn != nil:
		req.Txn = TxnFromPB(r.Txn)
	case r.Compaction != nil:
		req.Compaction = &CompactionRequest{Revision: r.Compaction.Revision, Physical: r.Compaction.Physical}
	case r.LeaseGrant != nil:
		req.LeaseGrant = &LeaseGrantRequest{TTL: r.LeaseGrant.TTL, ID: r.LeaseGrant.ID}
	case r.LeaseRevoke != nil:
		req.LeaseRevoke = &LeaseRevokeRequest{ID: r.LeaseRevoke.ID}
	default:
		a := authFromInternal(r)
		if a == nil {
			return req, false
		}
		req.Auth = a
	}
	if r.Header != nil {
		req.User, req.AuthRevision = r.Header.Username, r.Header.AuthRevision
	}
	return req, true
}

// authFromInternal is the auth admin request a committed entry holds, or
// nil (also for an authentication, which clientv3 sends on its own and
// the record does not hold).
func authFromInternal(r *pb.InternalRaftRequest) *AuthRequest {
	switch {
	case r.AuthEnable != nil:
		return &AuthRequest{Op: AuthEnable}
	case r.AuthDisable != nil:
		return &AuthRequest{Op: AuthDisable}
	case r.AuthUserAdd != nil:
		return &AuthRequest{Op: AuthUserAdd, User: r.AuthUserAdd.Name, NoPassword: r.AuthUserAdd.Options != nil && r.AuthUserAdd.Options.NoPassword}
	case r.AuthUserDelete != nil:
		return &AuthRequest{Op: AuthUserDelete, User: r.AuthUserDelete.Name}
	case r.AuthUserChangePassword != nil:
		return &AuthRequest{Op: AuthUserChangePassword, User: r.AuthUserChangePassword.Name}
	case r.AuthUserGrantRole != nil:
		return &AuthRequest{Op: AuthUserGrantRole, User: r.AuthUserGrantRole.User, Role: r.AuthUserGrantRole.Role}
	case r.AuthUserRevokeRole != nil:
		return &AuthRequest{Op: AuthUserRevokeRole, User: r.AuthUserRevokeRole.Name, Role: r.AuthUserRevokeRole.Role}
	case r.AuthRoleAdd != nil:
		return &AuthRequest{Op: AuthRoleAdd, Role: r.AuthRoleAdd.Name}
	case r.AuthRoleDelete != nil:
		return &AuthRequest{Op: AuthRoleDelete, Role: r.AuthRoleDelete.Role}
	case r.AuthRoleGrantPermission != nil:
		a := &AuthRequest{Op: AuthRoleGrantPermission, Role: r.AuthRoleGrantPermission.Name}
		if p := r.AuthRoleGrantPermission.Perm; p != nil {
			a.Key, a.RangeEnd, a.PermType = string(p.Key), string(p.RangeEnd), p.PermType.String()
		}
		return a
	case r.AuthRoleRevokePermission != nil:
		return &AuthRequest{Op: AuthRoleRevokePermission, Role: r.AuthRoleRevokePermission.Role,
			Key: string(r.AuthRoleRevokePermission.Key), RangeEnd: string(r.AuthRoleRevokePermission.RangeEnd)}
	}
	return nil
}

// RangeFromPB records a RangeRequest.
func RangeFromPB(r *pb.RangeRequest) *RangeRequest {
	out := &RangeRequest{
		Key: string(r.Key), RangeEnd: string(r.RangeEnd), Limit: r.Limit, Revision: r.Revision,
		Serializable: r.Serializable, KeysOnly: r.KeysOnly, CountOnly: r.CountOnly,
		MinModRevision: r.MinModRevision, MaxModRevision: r.MaxModRevision,
		MinCreateRevision: r.MinCreateRevision, MaxCreateRevision: r.MaxCreateRevision,
	}
	if r.SortOrder != pb.RangeRequest_NONE {
		out.SortOrder = r.SortOrder.String()
	}
	if r.SortTarget != pb.RangeRequest_KEY {
		out.SortTarget = r.SortTarget.String()
	}
	return out
}

// PutFromPB records a PutRequest.
func PutFromPB(r *pb.PutRequest) *PutRequest {
	return &PutRequest{Key: string(r.Key), Value: string(r.Value), Lease: r.Lease, PrevKV: r.PrevKv,
		IgnoreValue: r.IgnoreValue, IgnoreLease: r.IgnoreLease}
}

// DeleteRangeFromPB records a DeleteRangeRequest.
func DeleteRangeFromPB(r *pb.DeleteRangeRequest) *DeleteRangeRequest {
	return &DeleteRangeRequest{Key: string(r.Key), RangeEnd: string(r.RangeEnd), PrevKV: r.PrevKv}
}

// TxnFromPB records a TxnRequest.
func TxnFromPB(r *pb.TxnRequest) *TxnRequest {
	out := &TxnRequest{}
	for _, c := range r.Compare {
		rc := Compare{Result: c.Result.String(), Target: c.Target.String(), Key: string(c.Key), RangeEnd: string(c.RangeEnd)}
		switch u := c.TargetUnion.(type) {
		case *pb.Compare_Version:
			rc.Version = u.Version
		case *pb.Compare_CreateRevision:
			rc.CreateRevision = u.CreateRevision
		case *pb.Compare_ModRevision:
			rc.ModRevision = u.ModRevision
		case *pb.Compare_Value:
			rc.Value = string(u.Value)
		case *pb.Compare_Lease:
			rc.Lease = u.Lease
		}
		out.Compare = append(out.Compare, rc)
	}
	out.Success = requestOpsFromPB(r.Success)
	out.Failure = requestOpsFromPB(r.Failure)
	return out
}

func requestOpsFromPB(ops []*pb.RequestOp) []RequestOp {
	var out []RequestOp
	for _, op := range ops {
		var o RequestOp
		switch {
		case op.GetRequestRange() != nil:
			o.Range = RangeFromPB(op.GetRequestRange())
		case op.GetRequestPut() != nil:
			o.Put = PutFromPB(op.GetRequestPut())
		case op.GetRequestDeleteRange() != nil:
			o.DeleteRange = DeleteRangeFromPB(op.GetRequestDeleteRange())
		case op.GetRequestTxn() != nil:
			o.Txn = TxnFromPB(op.GetRequestTxn())
		}
		out = append(out, o)
	}
	return out
}

// HeaderFromPB records a ResponseHeader.
func HeaderFromPB(h *pb.ResponseHeader) Header {
	if h == nil {
		return Header{}
	}
	return Header{ClusterID: h.ClusterId, MemberID: h.MemberId, Revision: h.Revision, RaftTerm: h.RaftTerm}
}

// KeyValueFromPB records a KeyValue. Its key and value are interned
// (Intern): a run receives each many times over, in every watch stream and
// in every read that returns it.
func KeyValueFromPB(kv *mvccpb.KeyValue) KeyValue {
	return KeyValue{Key: internBytes(kv.Key), Value: internBytes(kv.Value), CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
}

func keyValuesFromPB(kvs []*mvccpb.KeyValue) []KeyValue {
	var out []KeyValue
	for _, kv := range kvs {
		out = append(out, KeyValueFromPB(kv))
	}
	return out
}

// RangeResponseFromPB records a RangeResponse.
func RangeResponseFromPB(r *pb.RangeResponse) *RangeResponse {
	return &RangeResponse{KVs: keyValuesFromPB(r.Kvs), More: r.More, Count: r.Count}
}

// PutResponseFromPB records a PutResponse.
func PutResponseFromPB(r *pb.PutResponse) *PutResponse {
	out := &PutResponse{}
	if r.PrevKv != nil {
		kv := KeyValueFromPB(r.PrevKv)
		out.PrevKV = &kv
	}
	return out
}

// DeleteRangeResponseFromPB records a DeleteRangeResponse.
func DeleteRangeResponseFromPB(r *pb.DeleteRangeResponse) *DeleteRangeResponse {
	return &DeleteRangeResponse{Deleted: r.Deleted, PrevKVs: keyValuesFromPB(r.PrevKvs)}
}

// TxnResponseFromPB records a TxnResponse.
func TxnResponseFromPB(r *pb.TxnResponse) *TxnResponse {
	out := &TxnResponse{Succeeded: r.Succeeded}
	for _, op := range r.Responses {
		var o ResponseOp
		switch {
		case op.GetResponseRange() != nil:
			o.Range = RangeResponseFromPB(op.GetResponseRange())
		case op.GetResponsePut() != nil:
			o.Put = PutResponseFromPB(op.GetResponsePut())
		case op.GetResponseDeleteRange() != nil:
			o.DeleteRange = DeleteRangeResponseFromPB(op.GetResponseDeleteRange())
		case op.GetResponseTxn() != nil:
			o.Txn = TxnResponseFromPB(op.GetResponseTxn())
		}
		out.Responses = append(out.Responses, o)
	}
	return out
}

// PB is the request as etcd's protobuf message: a *pb.RangeRequest,
// *pb.PutRequest, ... matching Kind.
func (r Request) PB() any {
	switch {
	case r.Range != nil:
		return r.Range.PB()
	case r.Put != nil:
		return r.Put.PB()
	case r.DeleteRange != nil:
		return r.DeleteRange.PB()
	case r.Txn != nil:
		return r.Txn.PB()
	case r.LeaseGrant != nil:
		return &pb.LeaseGrantRequest{TTL: r.LeaseGrant.TTL, ID: r.LeaseGrant.ID}
	case r.LeaseRevoke != nil:
		return &pb.LeaseRevokeRequest{ID: r.LeaseRevoke.ID}
	case r.LeaseKeepAlive != nil:
		return &pb.LeaseKeepAliveRequest{ID: r.LeaseKeepAlive.ID}
	case r.LeaseTimeToLive != nil:
		return &pb.LeaseTimeToLiveRequest{ID: r.LeaseTimeToLive.ID, Keys: r.LeaseTimeToLive.Keys}
	case r.LeaseLeases != nil:
		return &pb.LeaseLeasesRequest{}
	case r.Compaction != nil:
		return &pb.CompactionRequest{Revision: r.Compaction.Revision, Physical: r.Compaction.Physical}
	case r.Defragment != nil:
		return &pb.DefragmentRequest{}
	}
	panic("history: empty request")
}

// PB is the request as etcd's protobuf message.
func (r *RangeRequest) PB() *pb.RangeRequest {
	return &pb.RangeRequest{
		Key: []byte(r.Key), RangeEnd: []byte(r.RangeEnd), Limit: r.Limit, Revision: r.Revision,
		SortOrder:    pb.RangeRequest_SortOrder(pb.RangeRequest_SortOrder_value[r.SortOrder]),
		SortTarget:   pb.RangeRequest_SortTarget(pb.RangeRequest_SortTarget_value[r.SortTarget]),
		Serializable: r.Serializable, KeysOnly: r.KeysOnly, CountOnly: r.CountOnly,
		MinModRevision: r.MinModRevision, MaxModRevision: r.MaxModRevision,
		MinCreateRevision: r.MinCreateRevision, MaxCreateRevision: r.MaxCreateRevision,
	}
}

// PB is the request as etcd's protobuf message.
func (r *PutRequest) PB() *pb.PutRequest {
	return &pb.PutRequest{Key: []byte(r.Key), Value: []byte(r.Value), Lease: r.Lease, PrevKv: r.PrevKV,
		IgnoreValue: r.IgnoreValue, IgnoreLease: r.IgnoreLease}
}

// PB is the request as etcd's protobuf message.
func (r *DeleteRangeRequest) PB() *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: []byte(r.Key), RangeEnd: []byte(r.RangeEnd), PrevKv: r.PrevKV}
}

// PB is the request as etcd's protobuf message.
func (r *TxnRequest) PB() *pb.TxnRequest {
	out := &pb.TxnRequest{Success: requestOpsPB(r.Success), Failure: requestOpsPB(r.Failure)}
	for _, c := range r.Compare {
		pc := &pb.Compare{
			Result:   pb.Compare_CompareResult(pb.Compare_CompareResult_value[c.Result]),
			Target:   pb.Compare_CompareTarget(pb.Compare_CompareTarget_value[c.Target]),
			Key:      []byte(c.Key),
			RangeEnd: []byte(c.RangeEnd),
		}
		switch pc.Target {
		case pb.Compare_VERSION:
			pc.TargetUnion = &pb.Compare_Version{Version: c.Version}
		case pb.Compare_CREATE:
			pc.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: c.CreateRevision}
		case pb.Compare_MOD:
			pc.TargetUnion = &pb.Compare_ModRevision{ModRevision: c.ModRevision}
		case pb.Compare_VALUE:
			pc.TargetUnion = &pb.Compare_Value{Value: []byte(c.Value)}
		case pb.Compare_LEASE:
			pc.TargetUnion = &pb.Compare_Lease{Lease: c.Lease}
		}
		out.Compare = append(out.Compare, pc)
	}
	return out
}

func requestOpsPB(ops []RequestOp) []*pb.RequestOp {
	var out []*pb.RequestOp
	for _, op := range ops {
		var p *pb.RequestOp
		switch {
		case op.Range != nil:
			p = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: op.Range.PB()}}
		case op.Put != nil:
			p = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: op.Put.PB()}}
		case op.DeleteRange != nil:
			p = &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: op.DeleteRange.PB()}}
		case op.Txn != nil:
			p = &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: op.Txn.PB()}}
		default:
			panic(fmt.Sprintf("history: empty txn operation %+v", op))
		}
		out = append(out, p)
	}
	return out
}

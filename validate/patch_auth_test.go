package validate

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
	"github.com/etcd-robustness/etcd-robustness/model"
)

// authAdmin is an auth admin request by root.
func authAdmin(a history.AuthRequest) history.Request {
	return history.Request{Auth: &a, User: model.RootUser}
}

// authSetupOps is an admin client's set-up, answered: root with the root
// role, auth enabled, user "wo" with write on "w/".."w0".
func authSetupOps(client int) ([]history.Operation, []history.Request) {
	reqs := []history.Request{
		authAdmin(history.AuthRequest{Op: history.AuthUserAdd, User: model.RootUser}),
		authAdmin(history.AuthRequest{Op: history.AuthUserGrantRole, User: model.RootUser, Role: model.RootRole}),
		authAdmin(history.AuthRequest{Op: history.AuthEnable}),
		authAdmin(history.AuthRequest{Op: history.AuthUserAdd, User: "wo"}),
		authAdmin(history.AuthRequest{Op: history.AuthRoleAdd, Role: "w"}),
		authAdmin(history.AuthRequest{Op: history.AuthRoleGrantPermission, Role: "w", Key: "w/", RangeEnd: "w0", PermType: "WRITE"}),
		authAdmin(history.AuthRequest{Op: history.AuthUserGrantRole, User: "wo", Role: "w"}),
	}
	var ops []history.Operation
	for i, r := range reqs {
		ops = append(ops, ht.Op(client, i*2, i*2+1, r, &history.Response{Header: history.Header{Revision: 1}, Auth: &history.AuthResponse{}}))
	}
	// A write root makes, so the history has one that took effect.
	seed := by(model.RootUser, ht.Put("s", "0"))
	ops = append(ops, ht.Op(client, 50, 60, seed, ht.PutOK(2)))
	return ops, append(reqs, seed)
}

// walCopy is a request as a member's WAL holds it: its header names the
// user and the auth revision the member stamped.
func walCopy(r history.Request, user string, authRev uint64) history.Request {
	r.User, r.AuthRevision = user, authRev
	return r
}

func by(user string, r history.Request) history.Request { r.User = user; return r }

func TestPatchUnderAuth(t *testing.T) {
	put, get := ht.Put, ht.Get
	setup, setupLog := authSetupOps(9)
	// The auth revision after the set-up: 1, then six changes (enable does
	// not commit one).
	const rev uint64 = 7
	changePassword := authAdmin(history.AuthRequest{Op: history.AuthUserChangePassword, User: "wo"})
	tests := []struct {
		name    string
		history []history.Operation
		log     []history.Request
		// want: the evidence, patch and linearizability verdicts.
		want []Verdict
		msg  []string
		// not: what the patch's message must not say.
		not []string
	}{
		{
			// The first copy was proposed before the password change and
			// applied after it: refused for its old auth revision; clientv3
			// sent it again with a new token.
			name: "a put resent after its first copy was refused for an old auth revision",
			history: []history.Operation{
				op(9, 100, 110, changePassword, &history.Response{Header: history.Header{Revision: 2}, Auth: &history.AuthResponse{}}),
				op(0, 100, 200, by("wo", put("w/a", "1")), putOK(3)),
				op(1, 300, 310, by(model.RootUser, get("w/a")), getOK(3, ht.KVAt("w/a", "1", 3, 3, 1))),
			},
			log:  []history.Request{changePassword, walCopy(by("wo", put("w/a", "1")), "wo", rev), walCopy(by("wo", put("w/a", "1")), "wo", rev+1)},
			want: []Verdict{OK, OK, OK},
			msg:  []string{"1 committed entries refused at apply"},
		},
		{
			name: "the same put committed twice, both copies applicable",
			history: []history.Operation{
				op(0, 100, 200, by("wo", put("w/a", "1")), putOK(3)),
				op(1, 300, 310, by(model.RootUser, get("w/a")), getOK(4, ht.KVAt("w/a", "1", 3, 4, 2))),
			},
			log:  []history.Request{walCopy(by("wo", put("w/a", "1")), "wo", rev), walCopy(by("wo", put("w/a", "1")), "wo", rev)},
			want: []Verdict{OK, Illegal, Illegal},
			msg:  []string{"committed twice"},
		},
		{
			// Committed and refused at apply: the user may not write x.
			name: "a put without permission, refused at apply, of unknown outcome",
			history: []history.Operation{
				ht.Unknown(0, 100, 200, by("wo", put("x", "1"))),
				op(1, 300, 310, by(model.RootUser, get("x")), getOK(2)),
			},
			log:  []history.Request{walCopy(by("wo", put("x", "1")), "wo", rev)},
			want: []Verdict{OK, OK, OK},
		},
		{
			name: "a put without permission that a read then saw",
			history: []history.Operation{
				ht.Unknown(0, 100, 200, by("wo", put("x", "1"))),
				op(1, 300, 310, by(model.RootUser, get("x")), getOK(3, ht.KVAt("x", "1", 3, 3, 1))),
			},
			log:  []history.Request{walCopy(by("wo", put("x", "1")), "wo", rev)},
			want: []Verdict{OK, OK, Illegal},
		},
		{
			name: "a permitted put answered permission denied",
			history: []history.Operation{
				failed(0, 100, 200, by("wo", put("w/a", "1")), "PermissionDenied", model.ErrPermissionDenied),
			},
			log:  []history.Request{walCopy(by("wo", put("w/a", "1")), "wo", rev)},
			want: []Verdict{OK, OK, Illegal},
		},
		{
			// etcd answered success, the replay refuses its one copy: not
			// a lost write, since the log holds it.
			name: "an acknowledged put whose only committed copy the replay refuses at apply",
			history: []history.Operation{
				op(0, 100, 200, by("wo", put("x", "1")), putOK(3)),
			},
			log:  []history.Request{walCopy(by("wo", put("x", "1")), "wo", rev)},
			want: []Verdict{OK, Illegal, Illegal},
			msg:  []string{"was acknowledged at revision 3", "the replay refuses its only committed copy at apply", "etcdserver: permission denied", `user "wo"`},
			not:  []string{"lost"},
		},
		{
			name: "an auth admin request committed that no client sent",
			history: []history.Operation{
				op(1, 300, 310, by(model.RootUser, get("x")), getOK(2)),
			},
			log:  []history.Request{authAdmin(history.AuthRequest{Op: history.AuthUserDelete, User: "wo"})},
			want: []Verdict{OK, Illegal, OK},
			msg:  []string{"no client sent it"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := append(append([]history.Operation{}, setup...), tc.history...)
			l := logOf(append(append([]history.Request{}, setupLog...), tc.log...)...)
			rs, _ := patched(Input{Clients: clients(hist...), FinalRead: -1, Persisted: l})
			require.Equal(t, tc.want, verdicts(rs), "%+v", rs)
			for _, m := range tc.msg {
				require.Contains(t, rs[1].Message, m)
			}
			for _, m := range tc.not {
				require.NotContains(t, rs[1].Message, m)
			}
		})
	}
}

// Under a NOSPACE alarm etcd's capped applier refuses a committed put
// without effect; without the alarm its quota applier applies it even when
// it answers "database space exceeded".
func TestPatchNoSpace(t *testing.T) {
	put, get := ht.Put, ht.Get
	alarm := func(action string) evidence.Entry {
		return evidence.Entry{Kind: evidence.KindAlarm, Alarm: action + " NOSPACE", AlarmMember: 1}
	}
	for _, tc := range []struct {
		name  string
		alarm bool
		read  *history.Response
		want  Verdict
	}{
		{"capped, the put not seen", true, getOK(2), OK},
		{"capped, yet the put seen", true, getOK(3, ht.KVAt("a", "1", 3, 3, 1)), Illegal},
		{"no alarm: applied and answered with the error, seen", false, getOK(3, ht.KVAt("a", "1", 3, 3, 1)), OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := []history.Operation{
				op(2, 0, 50, put("b", "2"), putOK(2)),
				failed(0, 100, 200, put("a", "1"), "ResourceExhausted", model.ErrNoSpace),
				op(1, 300, 310, get("a"), tc.read),
			}
			l := &evidence.Log{FirstIndex: 1, Complete: true}
			b := put("b", "2")
			entries := []evidence.Entry{{Request: &b}}
			if tc.alarm {
				entries = append(entries, alarm("ACTIVATE"))
			}
			p := put("a", "1")
			entries = append(entries, evidence.Entry{Request: &p})
			for i := range entries {
				entries[i].Index, entries[i].Term = uint64(i+1), 2
			}
			l.Entries, l.CommitIndex = entries, uint64(len(entries))
			rs, _ := patched(Input{Clients: clients(hist...), FinalRead: -1, Persisted: l})
			require.Equal(t, tc.want, rs[2].Verdict, "%+v", rs)
		})
	}
}

// An acknowledged put under a NOSPACE alarm, whose one committed copy the
// capped applier refuses: the patch says so, not that it was lost.
func TestPatchAcknowledgedUnderNoSpace(t *testing.T) {
	b, a := ht.Put("b", "2"), ht.Put("a", "1")
	l := &evidence.Log{FirstIndex: 1, Complete: true, Entries: []evidence.Entry{
		{Request: &b}, {Kind: evidence.KindAlarm, Alarm: "ACTIVATE NOSPACE", AlarmMember: 1}, {Request: &a}}}
	for i := range l.Entries {
		l.Entries[i].Index, l.Entries[i].Term = uint64(i+1), 2
	}
	l.CommitIndex = uint64(len(l.Entries))
	hist := []history.Operation{op(2, 0, 50, b, putOK(2)), op(0, 100, 200, a, putOK(3))}
	rs, _ := patched(Input{Clients: clients(hist...), FinalRead: -1, Persisted: l})
	require.Equal(t, Illegal, rs[1].Verdict, "%+v", rs)
	require.Contains(t, rs[1].Message, "the replay refuses its only committed copy at apply")
	require.Contains(t, rs[1].Message, model.ErrNoSpace)
	require.NotContains(t, rs[1].Message, "lost")
}

// Where the replay parts from etcd, the patch says first: the first
// acknowledged put replayed at another revision than its answer's, with
// the entries since the last put that agreed; or members that ended past
// the replay.
func TestPatchReplayShift(t *testing.T) {
	put := ht.Put
	setup, setupLog := authSetupOps(9) // root's put of "s" at revision 2
	const rev uint64 = 7
	tests := []struct {
		name    string
		history []history.Operation
		log     []history.Request
		ends    []evidence.MemberState
		want    Verdict
		msg     []string
	}{
		{
			// etcd applied wo's put of x (the model refuses it): root's put
			// after it was answered one revision higher than replayed.
			name: "behind: etcd applied a put the model refuses",
			history: []history.Operation{
				ht.Unknown(0, 100, 200, by("wo", put("x", "1"))),
				op(1, 300, 400, by(model.RootUser, put("y", "2")), putOK(4)),
			},
			log:  []history.Request{walCopy(by("wo", put("x", "1")), "wo", rev), walCopy(by(model.RootUser, put("y", "2")), model.RootUser, rev)},
			ends: []evidence.MemberState{{Member: "member-0", Revision: 4}, {Member: "member-1", Revision: 3}},
			want: Illegal,
			msg: []string{"the replay of the committed log is 1 revision behind etcd from raft index 10 on", "put(y, 2)",
				"was answered at revision 4", "the replay applies it at revision 3", "between raft index 8", "refused at apply 1 entries: raft index 9, put(x, 1)",
				"etcdserver: permission denied", "member-0 ended at revision 4, past the replay's last revision 3"},
		},
		{
			// etcd refused wo's put of w/a (the model applies it).
			name: "ahead: the model applied a put etcd refused",
			history: []history.Operation{
				ht.Unknown(0, 100, 200, by("wo", put("w/a", "1"))),
				op(1, 300, 400, by(model.RootUser, put("y", "2")), putOK(3)),
				op(1, 500, 600, by(model.RootUser, put("z", "3")), putOK(4)),
			},
			log: []history.Request{walCopy(by("wo", put("w/a", "1")), "wo", rev), walCopy(by(model.RootUser, put("y", "2")), model.RootUser, rev),
				walCopy(by(model.RootUser, put("z", "3")), model.RootUser, rev)},
			want: Illegal,
			msg:  []string{"the replay of the committed log is 1 revision ahead of etcd from raft index 10 on", "applied 1 entries: raft index 9, put(w/a, 1)"},
		},
		{
			// One answer off, the next one agrees: left to linearizability.
			name: "one put answered off, the next agrees",
			history: []history.Operation{
				op(1, 300, 400, by(model.RootUser, put("y", "2")), putOK(2)),
				op(1, 500, 600, by(model.RootUser, put("z", "3")), putOK(4)),
			},
			log:  []history.Request{walCopy(by(model.RootUser, put("y", "2")), model.RootUser, rev), walCopy(by(model.RootUser, put("z", "3")), model.RootUser, rev)},
			want: OK,
		},
		{
			name: "the members ended past the replay, no put tells where",
			history: []history.Operation{
				op(1, 300, 400, by(model.RootUser, put("y", "2")), putOK(3)),
			},
			log:  []history.Request{walCopy(by(model.RootUser, put("y", "2")), model.RootUser, rev)},
			ends: []evidence.MemberState{{Member: "member-0", Revision: 5}},
			want: Illegal,
			msg:  []string{"the replay of the committed log ends behind the members: member-0 ended at revision 5, past the replay's last revision 3"},
		},
		{
			name: "agreed, a member behind (still applying)",
			history: []history.Operation{
				op(1, 300, 400, by(model.RootUser, put("y", "2")), putOK(3)),
			},
			log:  []history.Request{walCopy(by(model.RootUser, put("y", "2")), model.RootUser, rev)},
			ends: []evidence.MemberState{{Member: "member-0", Revision: 3}, {Member: "member-1", Revision: 2}},
			want: OK,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := append(append([]history.Operation{}, setup...), tc.history...)
			l := logOf(append(append([]history.Request{}, setupLog...), tc.log...)...)
			rs, _ := patched(Input{Clients: clients(hist...), FinalRead: -1, Persisted: l, EndStates: tc.ends})
			require.Equal(t, tc.want, rs[1].Verdict, "%+v", rs[1])
			for _, m := range tc.msg {
				require.Contains(t, rs[1].Message, m)
			}
			if tc.want == Illegal {
				require.True(t, strings.HasPrefix(rs[1].Message, "the replay of the committed log"), "the shift comes first: %s", rs[1].Message)
			}
		})
	}
}

// The leader's revoke of an expired lease carries root's token of the
// moment it was proposed; an auth change applied before it leaves its auth
// revision old. Releases before etcd PR #16005 (v3.5.9 and earlier) refuse
// it at apply (their checkLeasePuts checks every key of the lease for root
// too), so the lease and its keys stay; later ones apply it. The replay
// follows the run's releases (Input.Releases): answers that show the other
// outcome are a violation.
func TestPatchLeaderRevokeWithAnOldAuthRevision(t *testing.T) {
	setup, setupLog := authSetupOps(9)
	const rev uint64 = 7 // the auth revision after the set-up
	changePassword := authAdmin(history.AuthRequest{Op: history.AuthUserChangePassword, User: "wo"})
	putLeased := by("wo", history.Request{Put: &history.PutRequest{Key: "w/a", Value: "1", Lease: 7}})
	revoke := walCopy(history.Request{LeaseRevoke: &history.LeaseRevokeRequest{ID: 7}}, model.RootUser, rev)
	after := by(model.RootUser, ht.Put("s", "1")) // committed after the revoke
	base := []history.Operation{
		op(9, 100, 110, by(model.RootUser, grant(7, 1)), &history.Response{Header: history.Header{Revision: 2}, LeaseGrant: &history.LeaseGrantResponse{ID: 7, TTL: 1}}),
		op(0, 120, 130, putLeased, putOK(3)),
		op(9, 140, 150, changePassword, &history.Response{Header: history.Header{Revision: 3}, Auth: &history.AuthResponse{}}),
	}
	// kept: the revoke refused, so the put after it is at revision 4 and
	// the key is still there; gone: the revoke deleted the key at 4.
	keptKV := ht.KVAt("w/a", "1", 3, 3, 1)
	keptKV.Lease = 7
	kept := []history.Operation{op(2, 2000, 2010, after, putOK(4)), op(1, 3000, 3010, by(model.RootUser, ht.Get("w/a")), getOK(4, keptKV))}
	gone := []history.Operation{op(2, 2000, 2010, after, putOK(5)), op(1, 3000, 3010, by(model.RootUser, ht.Get("w/a")), getOK(5))}
	tests := []struct {
		name     string
		releases []string
		answers  []history.Operation
		want     []Verdict
		// msg: what the patch's message says.
		msg string
	}{
		{"v3.5.6 refuses it: the key is kept", []string{"v3.5.6"}, kept, []Verdict{OK, OK, OK}, "1 committed entries refused at apply"},
		{"v3.5.6 refuses it: answers that show it applied", []string{"v3.5.6"}, gone, []Verdict{OK, OK, Illegal}, "1 committed entries refused at apply"},
		{"v3.6.16 applies it: the key is deleted", []string{"v3.6.16"}, gone, []Verdict{OK, OK, OK}, "1 lease expiries by the leader"},
		{"v3.6.16 applies it: answers that show it refused", []string{"v3.6.16"}, kept, []Verdict{OK, OK, Illegal}, "1 lease expiries by the leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := append(append(append([]history.Operation{}, setup...), base...), tc.answers...)
			l := logOf(append(append([]history.Request{}, setupLog...), walCopy(grant(7, 1), model.RootUser, rev), walCopy(putLeased, "wo", rev), changePassword, revoke, after)...)
			rs, _ := patched(Input{Clients: clients(hist...), FinalRead: -1, Persisted: l, Releases: tc.releases})
			require.Equal(t, tc.want, verdicts(rs), "%+v", rs)
			require.Contains(t, rs[1].Message, tc.msg)
		})
	}
}

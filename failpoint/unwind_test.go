package failpoint

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// defragNilTxLog is how v3.5.6 ended in a defragBeforeCopy panic fault
// (issue-14685 seed 7): the apply goroutine's write through the nil batch
// transaction, printed before the failpoint's own panic (shortened).
var defragNilTxLog = []string{
	"panic: runtime error: invalid memory address or nil pointer dereference",
	"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xadfbfa]",
	"goroutine 115 [running]:",
	"go.etcd.io/bbolt.(*Tx).Bucket(...)",
	"\t/root/go/pkg/mod/go.etcd.io/bbolt@v1.3.6/tx.go:101",
	"go.etcd.io/etcd/server/v3/mvcc/backend.(*batchTx).unsafePut(0xb162c753d10, {0x11b76c0, 0x1b3fee0}, {0xb162c7ecdb0, 0x11, 0x12}, {0xb162c7ecdc8, 0x15, 0x15}, 0x1)",
	"go.etcd.io/etcd/server/v3/mvcc.(*storeTxnWrite).put(0xb162cc251a0, {0xb162caf56c8, 0x5, 0x8}, {0xb162caf56f0, 0x4, 0x8}, 0x0)",
	"go.etcd.io/etcd/server/v3/etcdserver.(*EtcdServer).applyEntryNormal(0xb162cb06308, 0xb162cd43838)",
}

// defragReadLog is how v3.4.12 ended in a defragBeforeRename panic fault
// (release-3.4 seed 7): a read through the transaction on the database
// defrag had closed (shortened).
var defragReadLog = []string{
	"panic: runtime error: invalid memory address or nil pointer dereference",
	"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x89187d]",
	"goroutine 257 [running]:",
	"go.etcd.io/bbolt.(*Tx).Bucket(...)",
	"\t/root/go/pkg/mod/go.etcd.io/bbolt@v1.3.3/tx.go:101",
	"go.etcd.io/etcd/mvcc/backend.(*concurrentReadTx).UnsafeRange(0x3fe348955d40, {0x18154fa, 0x3, 0x3}, {0x3fe34721f170, 0x11, 0x12}, {0x0, 0x0, 0x0}, ...)",
	"go.etcd.io/etcd/mvcc.(*storeTxnRead).rangeKeys(0x3fe348955d70, {0x3fe34917a2a0?, 0x3fe346b82e10?, 0x48a625?}, {0x0?, 0xecaca0?, 0x3fe346b82e60?}, 0x960, {0x0, 0x0, ...})",
}

// watchNilLog is a nil dereference somewhere else: no defrag explains it.
var watchNilLog = []string{
	"panic: runtime error: invalid memory address or nil pointer dereference",
	"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xadfbfa]",
	"goroutine 88 [running]:",
	"go.etcd.io/etcd/server/v3/mvcc.(*watchableStore).notify(0xc000123400, 0x2a, {0xc0003b2000, 0x1, 0x1})",
}

// TestPanicExplains holds a panic fault's declarations to the crashes they
// may account for: the failpoint's panic, and the crash its unwinding
// causes where the code has one, on the armed process only.
func TestPanicExplains(t *testing.T) {
	const member, pid = "member-0", 4242
	start, end := 2500*time.Millisecond, 4500*time.Millisecond
	tests := []struct {
		name  string
		point string
		exit  history.MemberExit
		want  validate.Verdict
	}{
		{"defrag: the apply's nil batch transaction", "defragBeforeCopy",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragNilTxLog}, validate.OK},
		{"defrag before rename: the same crash", "defragBeforeRename",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragNilTxLog}, validate.OK},
		{"defrag before rename: a read through the closed database", "defragBeforeRename",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragReadLog}, validate.OK},
		{"defrag: a nil dereference elsewhere is etcd's", "defragBeforeCopy",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: watchNilLog}, validate.Illegal},
		{"defrag: another process of the member", "defragBeforeCopy",
			history.MemberExit{Member: member, PID: pid + 1, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragNilTxLog}, validate.Illegal},
		{"defrag: before the fault", "defragBeforeCopy",
			history.MemberExit{Member: member, PID: pid, Time: 1 * time.Second, Status: "exit status 2", Log: defragNilTxLog}, validate.Illegal},
		{"raft snapshot point: the apply's AddPeer on the stopped transport", "raftAfterApplySnap",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2",
				Log: []string{`panic: transport stopped`, "goroutine 301 [running]:",
					"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp.(*Transport).AddPeer(0xc0001b2000, 0x1, {0xc000a1e000, 0x1, 0x1})",
					"go.etcd.io/etcd/server/v3/etcdserver.(*EtcdServer).applySnapshot(0xc000204608, 0xc0003be000)"}}, validate.OK},
		{"raft snapshot point: a nil batch transaction is not its", "raftAfterApplySnap",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragNilTxLog}, validate.Illegal},
		{"a backend point has no such crash", "beforeCommit",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2", Log: defragNilTxLog}, validate.Illegal},
		{"a backend point: its own panic", "beforeCommit",
			history.MemberExit{Member: member, PID: pid, Time: 2600 * time.Millisecond, Status: "exit status 2",
				Log: []string{"panic: failpoint panic: {}", "goroutine 212 [running]:"}}, validate.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := GofailPanicFor(tt.point, 0)
			require.NoError(t, err)
			p := f.point
			inj := history.Injection{Name: tt.point + ":panic", Targets: []string{member}, Start: start, Effect: start, End: end,
				Explains: p.panicExplains(member, pid, start)}
			in := validate.Input{Injections: []history.Injection{inj}, Exits: []history.MemberExit{tt.exit}}
			r := validate.Crash{}.Validate(context.Background(), &validate.Check{Input: in})
			require.Equal(t, tt.want, r.Verdict, r.Message)
		})
	}
}

package validate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
)

func sec(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// gofailPanicLog is what Go prints when a gofail panic point fires.
var gofailPanicLog = []string{
	"panic: failpoint panic: {}",
	"goroutine 212 [running]:",
	"go.etcd.io/gofail/runtime.actPanic(0xc0001a2b40)",
	"\t/go/pkg/mod/go.etcd.io/gofail@v0.2.0/runtime/terms.go:326 +0x85",
}

// abortLog is what Go prints when the process gets a SIGABRT.
var abortLog = []string{
	"SIGABRT: abort",
	"PC=0x497221 m=0 sigcode=0",
	"goroutine 0 gp=0x1bd1600 m=0 mp=0x1bd29c0 [idle]:",
	"runtime.futex(0x1bd2b18, 0x80, 0x0, 0x0, 0x0, 0x0)",
}

var nilPanicLog = []string{
	"panic: runtime error: invalid memory address or nil pointer dereference",
	"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xd3a2c5]",
	"goroutine 318 [running]:",
	"go.etcd.io/etcd/server/v3/etcdserver.(*EtcdServer).apply(...)",
}

const fatalLine = `{"level":"fatal","ts":"2026-12-01T20:21:47.764587Z","caller":"etcdserver/server.go:900","msg":"failed to apply request","error":"boom"}`

func gofailFault(member string, pid int, start, end time.Duration) history.Injection {
	return history.Injection{Name: "raftBeforeSave:panic", Targets: []string{member}, Start: start, Effect: start + sec(0.5), End: end,
		Explains: []history.ExitExplained{{Member: member, PID: pid, Kinds: []history.ExitKind{history.ExitPanic, history.ExitFatal},
			LogContains: []string{"failpoint panic"}, From: start, Until: end, Why: "gofail panic at raftBeforeSave"}}}
}

func TestCrash(t *testing.T) {
	closeExits := func(at time.Duration) []history.MemberExit {
		var out []history.MemberExit
		for i, m := range []string{"member-0", "member-1", "member-2"} {
			out = append(out, history.MemberExit{Member: m, PID: 200 + i, Time: at, Status: "signal: terminated", Cause: "harness: SIGTERM (close)"})
		}
		return out
	}
	pause := history.Injection{Name: "pause-follower", Targets: []string{"member-2"}, Start: sec(3.5), Effect: sec(3.6), End: sec(9.5)}
	tests := []struct {
		name       string
		exits      []history.MemberExit
		injections []history.Injection
		want       Verdict
		// wantText are substrings of the message and explanation.
		wantText []string
		// wantCheck is the named check that fails.
		wantCheck string
	}{
		{
			name:     "no exit at all",
			want:     OK,
			wantText: []string{"no member exited or logged a panic outside what the harness did"},
		},
		{
			name:     "only the harness's stops at the end",
			exits:    closeExits(sec(20)),
			want:     OK,
			wantText: []string{"3 member processes watched; 3 exits (3 by the harness, 0 declared by a fault)"},
		},
		{
			name: "a member exited on its own with a panic while no fault was active",
			exits: append([]history.MemberExit{{Member: "member-2", PID: 102, Started: sec(-2), Time: sec(9.1), Status: "exit status 2", Log: nilPanicLog}},
				closeExits(sec(20))...),
			want: Illegal,
			wantText: []string{"member-2 exited on its own at 9.1s (exit status 2) while no fault was active",
				"panic: runtime error: invalid memory address", "goroutine 318 [running]:", "pid 102", "It shows a panic."},
			wantCheck: "exits",
		},
		{
			name:       "a member aborted by a signal during a fault that declares nothing",
			exits:      []history.MemberExit{{Member: "member-2", PID: 102, Time: sec(9.1), Status: "exit status 2", Log: abortLog}},
			injections: []history.Injection{pause},
			want:       Illegal,
			wantText: []string{"member-2 exited on its own at 9.1s (exit status 2) during fault pause-follower (3.5s to 9.5s), which does not account for it",
				"SIGABRT: abort", "It shows a signal."},
			wantCheck: "exits",
		},
		{
			name:       "the panic of a gofail panic fault on that member",
			exits:      append([]history.MemberExit{{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog}}, closeExits(sec(20))...),
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       OK,
			wantText:   []string{"4 member processes watched; 4 exits (3 by the harness, 1 declared by a fault)"},
		},
		{
			// A panic in the watch sender ends the process only once its
			// stream closes: the declaration names the process, so it
			// accounts for its end whenever it comes.
			name:       "a gofail panic that ends the process after the fault",
			exits:      []history.MemberExit{{Member: "member-1", PID: 101, Time: sec(30), Status: "exit status 2", Log: gofailPanicLog}},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       OK,
		},
		{
			name:       "a gofail panic fault explains no panic of another member",
			exits:      []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog}},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       Illegal,
			wantText: []string{"member-0 exited on its own at 4.2s (exit status 2) during fault raftBeforeSave:panic (3.5s to 6.0s), which does not account for it",
				"panic: failpoint panic: {}"},
			wantCheck: "exits",
		},
		{
			name:       "a gofail panic fault explains no other panic of its member",
			exits:      []history.MemberExit{{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: nilPanicLog}},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       Illegal,
			wantText:   []string{"Faults on this member: raftBeforeSave:panic declares panic/fatal ends of member-1 from 3.5s (gofail panic at raftBeforeSave); none covers this record."},
			wantCheck:  "exits",
		},
		{
			// etcd v3.5.6 at defragBeforeCopy:panic (seed 1 of #14685's
			// fixed runs): the gofail panic unwinds, an apply meets a nil
			// bbolt transaction and panics too before the process ends;
			// the exit takes the last panic printed.
			name: "a runtime panic printed while a gofail panic ends the process",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: nilPanicLog},
				{Member: "member-1", PID: 101, Time: sec(4.2001), Log: gofailPanicLog},
			},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       OK,
			wantText:   []string{"1 exits (0 by the harness, 2 declared by a fault) and 1 panic or fatal lines logged"},
		},
		{
			name: "the same, with the other panic logged and the gofail one the exit's",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(4.1999), Log: nilPanicLog},
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog},
			},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       OK,
		},
		{
			name: "a runtime panic logged long before the gofail panic ended the process",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(2.5), Log: nilPanicLog},
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog},
			},
			injections: []history.Injection{gofailFault("member-1", 101, sec(1), sec(6))},
			want:       Illegal,
			wantText:   []string{"member-1 logged a panic line at 2.5s and kept running"},
			wantCheck:  "logged",
		},
		{
			name: "etcd's own fatal line beside a gofail panic is still judged",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(4.2), Log: []string{fatalLine}},
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog},
			},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       Illegal,
			wantCheck:  "logged",
		},
		{
			name: "a runtime panic beside a gofail panic of another process",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog},
				{Member: "member-1", PID: 111, Started: sec(4.3), Time: sec(4.9), Status: "exit status 2", Log: nilPanicLog},
			},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       Illegal,
			wantCheck:  "exits",
		},
		{
			name:       "a harness kill",
			exits:      []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(5), Status: "signal: killed", Cause: "harness: SIGKILL (kill)"}},
			injections: []history.Injection{{Name: "kill", Targets: []string{"member-0"}, Start: sec(4.9), Effect: sec(5), End: sec(7)}},
			want:       OK,
		},
		{
			name:      "a kill not sent by the harness",
			exits:     []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(5), Status: "signal: killed"}},
			want:      Illegal,
			wantText:  []string{"member-0 exited on its own at 5.0s (signal: killed) while no fault was active", "It shows a signal."},
			wantCheck: "exits",
		},
		{
			name:  "an exit after a removal by a membership fault",
			exits: []history.MemberExit{{Member: "member-3", PID: 103, Time: sec(8), Status: "exit status 0"}},
			injections: []history.Injection{{Name: "grow-shrink", Targets: []string{"member-3"}, Start: sec(3), Effect: sec(5), End: sec(8.5),
				Explains: []history.ExitExplained{{Member: "member-3", PID: 103, Kinds: []history.ExitKind{history.ExitPlain, history.ExitFatal},
					From: sec(7.5), Until: sec(8.5), Why: "it was removed from the cluster"}}}},
			want: OK,
		},
		{
			name:  "an exit before the removal",
			exits: []history.MemberExit{{Member: "member-3", PID: 103, Time: sec(6), Status: "exit status 0"}},
			injections: []history.Injection{{Name: "grow-shrink", Targets: []string{"member-3"}, Start: sec(3), Effect: sec(5), End: sec(8.5),
				Explains: []history.ExitExplained{{Member: "member-3", PID: 103, Kinds: []history.ExitKind{history.ExitPlain, history.ExitFatal},
					From: sec(7.5), Until: sec(8.5), Why: "it was removed from the cluster"}}}},
			want:      Illegal,
			wantText:  []string{"member-3 exited on its own at 6.0s (exit status 0)", "It logged no panic or fatal line."},
			wantCheck: "exits",
		},
		{
			name:      "a fatal line logged without exit",
			exits:     []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(6.5), Log: []string{fatalLine}}},
			want:      Illegal,
			wantText:  []string{"member-0 logged a fatal line at 6.5s and kept running while no fault was active", `"msg":"failed to apply request"`},
			wantCheck: "logged",
		},
		{
			name:      "a dpanic line logged without exit",
			exits:     []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(6.5), Log: []string{`{"level":"dpanic","ts":"2026-12-01T20:21:47Z","msg":"odd"}`}}},
			want:      Illegal,
			wantText:  []string{"member-0 logged a panic line at 6.5s and kept running"},
			wantCheck: "logged",
		},
		{
			name:       "a panic logged and recovered during a gofail panic fault",
			exits:      []history.MemberExit{{Member: "member-1", PID: 101, Time: sec(4.2), Log: []string{`{"level":"panic","ts":"2026-12-01T20:21:47Z","msg":"unexpected panic","panic":"failpoint panic: {}"}`}}},
			injections: []history.Injection{gofailFault("member-1", 101, sec(3.5), sec(6))},
			want:       OK,
		},
		{
			name: "a member that could not start again after a fault healed",
			exits: []history.MemberExit{
				{Member: "member-1", PID: 101, Time: sec(4.2), Status: "exit status 2", Log: gofailPanicLog},
				{Member: "member-1", PID: 111, Started: sec(4.3), Time: sec(4.6), Status: "exit status 1", Startup: true,
					Log: []string{`{"level":"fatal","ts":"2026-12-01T20:21:47Z","caller":"etcdmain/etcd.go:204","msg":"discovery failed","error":"wal: crc mismatch"}`}},
			},
			injections: []history.Injection{gofailFault("member-1", 0, sec(3.5), sec(6))},
			want:       Illegal,
			wantText: []string{"member-1 could not start: its process, started at 4.3s, exited on its own at 4.6s (exit status 1) before it ever served",
				"wal: crc mismatch"},
			wantCheck: "starts",
		},
		{
			name: "a refused start a lying disk declares",
			exits: []history.MemberExit{{Member: "member-1", PID: 111, Started: sec(4.3), Time: sec(4.6), Status: "exit status 2", Startup: true,
				Log: []string{`{"level":"panic","msg":"tocommit(120) is out of range [lastIndex(80)]. Was the raft log corrupted, truncated, or lost?"}`}}},
			injections: []history.Injection{lyingDisk(true)},
			want:       OK,
		},
		{
			name: "a refused start a declaration without Startup does not cover",
			exits: []history.MemberExit{{Member: "member-1", PID: 111, Started: sec(4.3), Time: sec(4.6), Status: "exit status 2", Startup: true,
				Log: []string{`{"level":"panic","msg":"tocommit(120) is out of range [lastIndex(80)]. Was the raft log corrupted, truncated, or lost?"}`}}},
			injections: []history.Injection{lyingDisk(false)},
			want:       Illegal,
			wantText:   []string{"member-1 could not start"},
			wantCheck:  "starts",
		},
		{
			name: "a member whose port was taken at its restart",
			exits: []history.MemberExit{{Member: "member-1", PID: 111, Started: sec(4.3), Time: sec(4.6), Status: "exit status 1", Startup: true,
				Log: []string{`{"level":"fatal","ts":"2026-12-01T20:21:47Z","msg":"discovery failed","error":"listen tcp 127.0.0.1:2380: bind: address already in use"}`}}},
			want:     Inconclusive,
			wantText: []string{"its port was taken by another process"},
		},
		{
			name:  "a stopped disk's fatal fsync before the kill",
			exits: []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(5.1), Status: "exit status 1", Log: []string{fatalLine}}},
			injections: []history.Injection{{Name: "lose-unsynced-writes", Targets: []string{"member-0"}, Start: sec(4), Effect: sec(5.3), End: sec(9),
				Explains: []history.ExitExplained{{Member: "member-0", PID: 100, Kinds: []history.ExitKind{history.ExitPanic, history.ExitFatal, history.ExitSignal, history.ExitPlain},
					From: sec(5), Until: sec(5.2), Why: "its disk was stopped"}}}},
			want: OK,
		},
		{
			name:  "an exit of any process after a window without a process",
			exits: []history.MemberExit{{Member: "member-0", PID: 100, Time: sec(12), Status: "exit status 1", Log: []string{fatalLine}}},
			injections: []history.Injection{{Name: "some-fault", Start: sec(4), Effect: sec(5.3), End: sec(9),
				Explains: []history.ExitExplained{{Member: "member-0", Kinds: []history.ExitKind{history.ExitFatal}, From: sec(5), Why: "it"}}}},
			want:      Illegal,
			wantCheck: "exits",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{FinalRead: -1, Exits: tc.exits, Injections: tc.injections}
			r := Crash{}.Validate(context.Background(), &Check{Input: in})
			require.Equal(t, tc.want, r.Verdict, r.Message)
			text := r.Message + "\n" + r.Explanation
			for _, w := range tc.wantText {
				require.Contains(t, text, w)
			}
			require.NotContains(t, r.Message, "\n")
			require.Equal(t, "member processes", r.CheckedWhat)
			require.Len(t, r.Checks, 3)
			for _, nc := range r.Checks {
				if nc.Name == tc.wantCheck {
					require.Equal(t, Illegal, nc.Verdict, nc.Message)
				} else if tc.want != Inconclusive {
					require.Equal(t, OK, nc.Verdict, "%s: %s", nc.Name, nc.Message)
				}
			}
			if tc.want == Illegal {
				require.NotEmpty(t, Unexplained(tc.exits, tc.injections))
			}
		})
	}
}

// The stage counts the member processes it watched, members without a
// record included.
func TestCrashCountsProcesses(t *testing.T) {
	in := Input{FinalRead: -1,
		EndStates: []evidence.MemberState{{Member: "member-0"}, {Member: "member-1"}},
		Persisted: &evidence.Log{Members: []evidence.MemberWAL{{Member: "member-0"}, {Member: "member-1"}, {Member: "member-2"}}},
		Exits: []history.MemberExit{
			{Member: "member-0", PID: 1, Time: sec(5), Status: "signal: killed", Cause: "harness: SIGKILL (kill)"},
			{Member: "member-0", PID: 2, Time: sec(9), Status: "signal: terminated", Cause: "harness: SIGTERM (close)"},
		}}
	r := Crash{}.Validate(context.Background(), &Check{Input: in})
	require.Equal(t, OK, r.Verdict, r.Message)
	require.Equal(t, 4, r.Checked, "two processes of member-0, and member-1 and member-2")
	require.Contains(t, r.Message, "4 member processes watched; 2 exits (2 by the harness, 0 declared by a fault) and 0 panic or fatal lines logged while running")
}

func TestCrashLine(t *testing.T) {
	tests := []struct {
		line string
		kind history.ExitKind
	}{
		{"panic: failpoint panic: raftBeforeSave", history.ExitPanic},
		{"panic: runtime error: index out of range [3] with length 3 [recovered]", history.ExitPanic},
		{"fatal error: concurrent map writes", history.ExitFatal},
		{"SIGABRT: abort", history.ExitSignal},
		{"SIGSEGV: segmentation violation", history.ExitSignal},
		{`{"level":"panic","ts":"2026-12-01T20:21:47Z","msg":"x"}`, history.ExitPanic},
		{`{"level":"dpanic","ts":"2026-12-01T20:21:47Z","msg":"x"}`, history.ExitPanic},
		{`{"level":"fatal","ts":"2026-12-01T20:21:47Z","msg":"x"}`, history.ExitFatal},
		{`{"level":"error","ts":"2026-12-01T20:21:47Z","msg":"panic: not at the start"}`, ""},
		{`{"level":"warn","ts":"2026-12-01T20:21:47Z","msg":"x","level":"fatal"}`, ""},
		{"2026/12/01 20:21:47 http: panic serving 127.0.0.1:5000: failpoint panic: snapDBDirSyncError", ""},
		{"\tpanic: nested, part of a trace", ""},
		{"goroutine 1 [running]:", ""},
	}
	for _, tc := range tests {
		k, ok := history.CrashLine(tc.line)
		require.Equal(t, tc.kind != "", ok, tc.line)
		require.Equal(t, tc.kind, k, tc.line)
	}
	// A record's kind is its first crash line's, else its status's.
	require.Equal(t, history.ExitSignal, history.MemberExit{Status: "exit status 2", Log: abortLog}.Kind())
	require.Equal(t, history.ExitSignal, history.MemberExit{Status: "signal: killed"}.Kind())
	require.Equal(t, history.ExitPlain, history.MemberExit{Status: "exit status 1", Log: []string{"Error: bad flag"}}.Kind())
	require.True(t, strings.HasPrefix(history.MemberExit{Log: nilPanicLog}.FirstCrashLine(), "panic: runtime error"))
}

// lyingDisk is a lying-fsync injection on member-1 that declares its
// restart's exits, and its refused start if startup is set.
func lyingDisk(startup bool) history.Injection {
	return history.Injection{Name: "lying-fsync-wal", Targets: []string{"member-1"}, Start: sec(2), Effect: sec(4.2), End: sec(9),
		Explains: []history.ExitExplained{{Member: "member-1", Kinds: []history.ExitKind{history.ExitPanic, history.ExitFatal, history.ExitSignal, history.ExitPlain},
			From: sec(4.25), Until: sec(8), Why: "restarted on data its disk lost", Startup: startup}}}
}

package validate

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	ht "github.com/etcd-robustness/etcd-robustness/history/historytest"
)

// TestRecordDir checks the run record in $ETCD_ROBUSTNESS_RECORD (a report
// directory, or a glob of them) with every stage and logs each stage's
// time against the traffic's: a measurement on a record too large to
// commit. It decodes the record itself (record.json, record.json.zst or
// record.json.gz), as report.Load would, since report imports this
// package.
func TestRecordDir(t *testing.T) {
	pattern := os.Getenv("ETCD_ROBUSTNESS_RECORD")
	if pattern == "" {
		t.Skip("set ETCD_ROBUSTNESS_RECORD to a report directory")
	}
	dirs, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		b, err := readRecordJSON(dir)
		require.NoError(t, err)
		var rec struct {
			Scenario struct {
				Duration time.Duration `json:"duration"`
			} `json:"scenario"`
			Input
		}
		require.NoError(t, json.Unmarshal(b, &rec))
		c := &Check{Input: rec.Input}
		PatchStage{}.Validate(context.Background(), c)
		t.Logf("witness: plan %q, check %q", c.Patched.noWitness, witnessed(c.Patched.Ops))
		start := time.Now()
		rs := Run(context.Background(), rec.Input, Options{})
		took := time.Since(start)
		for _, r := range rs {
			t.Logf("%-16s %-12s %8s %s", r.Validator, r.Verdict, r.Took.Round(time.Millisecond), r.Message)
		}
		t.Logf("%s: all stages in %s, traffic %s (%.1f%%)", dir, took.Round(time.Millisecond), rec.Scenario.Duration,
			100*took.Seconds()/rec.Scenario.Duration.Seconds())
		for _, r := range rs {
			require.Equal(t, OK, r.Verdict, "%s: %s", r.Validator, r.Message)
		}
	}
}

func leaseResp(rev int64, f func(r *history.Response)) *history.Response {
	r := &history.Response{Header: history.Header{Revision: rev}}
	f(r)
	return r
}

func grantOK(rev, id, ttl int64) *history.Response {
	return leaseResp(rev, func(r *history.Response) { r.LeaseGrant = &history.LeaseGrantResponse{ID: id, TTL: ttl} })
}

func keepAlive(id int64) history.Request {
	return history.Request{LeaseKeepAlive: &history.LeaseKeepAliveRequest{ID: id}}
}

func keepAliveOK(rev, id, ttl int64) *history.Response {
	return leaseResp(rev, func(r *history.Response) { r.LeaseKeepAlive = &history.LeaseKeepAliveResponse{ID: id, TTL: ttl} })
}

func timeToLive(id int64) history.Request {
	return history.Request{LeaseTimeToLive: &history.LeaseTimeToLiveRequest{ID: id, Keys: true}}
}

func timeToLiveOK(rev, id, ttl, granted int64, keys ...string) *history.Response {
	return leaseResp(rev, func(r *history.Response) {
		r.LeaseTimeToLive = &history.LeaseTimeToLiveResponse{ID: id, TTL: ttl, GrantedTTL: granted, Keys: keys}
	})
}

func revoke(id int64) history.Request {
	return history.Request{LeaseRevoke: &history.LeaseRevokeRequest{ID: id}}
}

func revokeOK(rev int64) *history.Response {
	return leaseResp(rev, func(r *history.Response) { r.LeaseRevoke = &history.LeaseRevokeResponse{} })
}

func compact(rev int64) history.Request {
	return history.Request{Compaction: &history.CompactionRequest{Revision: rev}}
}

func compactOK(rev int64) *history.Response {
	return leaseResp(rev, func(r *history.Response) { r.Compaction = &history.CompactionResponse{} })
}

func putLease(k, v string, lease int64) history.Request {
	return history.Request{Put: &history.PutRequest{Key: k, Value: v, Lease: lease}}
}

func kvLease(k, v string, rev, lease int64) history.KeyValue {
	kv := kv(k, v, rev)
	kv.Lease = lease
	return kv
}

// leaseHistory is lease traffic: a lease granted, a key put on it, the
// lease kept alive and read, a compaction answered at a later revision
// than it was applied at, the lease revoked by a client, a put refused on
// the revoked lease (committed all the same), and a second lease the
// leader revoked once it expired, seen by a read.
func leaseHistory() ([]history.Operation, *evidence.Log) {
	h := []history.Operation{
		op(0, 0, 10, grant(7, 5), grantOK(1, 7, 5)),
		op(0, 20, 30, putLease("a", "1", 7), putOK(2)),
		op(1, 25, 50, keepAlive(7), keepAliveOK(1, 7, 5)), // a member's header, behind
		op(1, 60, 70, timeToLive(7), timeToLiveOK(2, 7, 4, 5, "a")),
		op(2, 75, 105, compact(2), compactOK(3)), // applied at 2, answered at 3
		op(0, 80, 90, ht.Put("b", "2"), putOK(3)),
		op(0, 120, 130, revoke(7), revokeOK(4)),
		op(1, 125, 150, ht.Get("a"), getOK(4)),
		op(1, 160, 170, keepAlive(7), keepAliveOK(4, 7, 0)),
		ht.Failed(2, 165, 175, putLease("c", "3", 7), "NotFound", "etcdserver: requested lease not found"),
		op(0, 200, 210, grant(8, 1), grantOK(4, 8, 1)),
		op(0, 220, 230, putLease("d", "4", 8), putOK(5)),
		op(1, 2300, 2310, ht.Get("d"), getOK(6)),
	}
	log := logOf(grant(7, 5), putLease("a", "1", 7), compact(2), ht.Put("b", "2"), revoke(7), putLease("c", "3", 7),
		grant(8, 1), putLease("d", "4", 8), revoke(8))
	return h, log
}

func TestWitness(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log)
		// witness: byRevision certifies the history; verdict: the
		// linearizability stage's.
		witness bool
		verdict Verdict
	}{
		{"lease traffic", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) { return h, log }, true, OK},
		{"a keepalive of unknown outcome", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			return append(h, unknown(2, 40, 2400, keepAlive(8))), log
		}, true, OK},
		{"the leader revoked a lease before its deadline", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[len(h)-1] = op(1, 300, 310, ht.Get("d"), getOK(6)) // the expiry was seen 90 ms after the grant
			return h, log
		}, false, Illegal},
		{"a keepalive renews a lease its client's revoke had removed", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[8] = op(1, 160, 170, keepAlive(7), keepAliveOK(4, 7, 5))
			return h, log
		}, false, Illegal},
		{"a time-to-live that misses the lease's key", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[3] = op(1, 60, 70, timeToLive(7), timeToLiveOK(2, 7, 4, 5))
			return h, log
		}, false, Illegal},
		// The revoke's first attempt was applied (raft index 5) and its
		// answer lost; clientv3 resent it, committed too (raft index 7),
		// which found no lease: the client's revoke, applied at index 5.
		{"a revoke answered 'not found' that clientv3 had resent", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[6] = ht.Failed(0, 120, 130, revoke(7), "NotFound", "etcdserver: requested lease not found")
			return h, logOf(grant(7, 5), putLease("a", "1", 7), compact(2), ht.Put("b", "2"), revoke(7), putLease("c", "3", 7), revoke(7),
				grant(8, 1), putLease("d", "4", 8), revoke(8))
		}, true, OK},
		{"a grant answered 'no leader' that clientv3 had resent", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[0] = ht.Failed(0, 0, 10, grant(7, 5), "Unavailable", "etcdserver: no leader")
			return h, log
		}, true, OK},
		{"a stale read after the revoke returned", func(h []history.Operation, log *evidence.Log) ([]history.Operation, *evidence.Log) {
			h[7] = op(1, 135, 150, ht.Get("a"), getOK(3, kvLease("a", "1", 2, 7)))
			return h, log
		}, false, Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, log := tc.mutate(leaseHistory())
			rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: log})
			require.Equal(t, OK, rs[1].Verdict, rs[1].Message)
			require.Equal(t, tc.witness, byRevision(c.Patched.Ops), "plan: %s; check: %s", c.Patched.noWitness, witnessed(c.Patched.Ops))
			require.Equal(t, tc.verdict, rs[2].Verdict, rs[2].Message)
			// Porcupine alone agrees (SearchOnly skips the witness).
			porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, tc.verdict, porc.Verdict, porc.Message)
		})
	}
}

// An entry that changed the store must be some operation's: here etcd
// refused a put that the log shows applied.
func TestWitnessNeedsEveryEffect(t *testing.T) {
	h := []history.Operation{
		ht.Failed(0, 0, 10, ht.Put("a", "1"), "NotFound", "etcdserver: requested lease not found"),
		op(1, 20, 30, ht.Get("a"), getOK(2, kv("a", "1", 2))),
	}
	rs, c := patched(Input{Clients: clients(h...), FinalRead: -1, Persisted: logOf(ht.Put("a", "1"))})
	require.False(t, byRevision(c.Patched.Ops))
	require.Contains(t, c.Patched.noWitness, "no operation claims log entry 0")
	require.Equal(t, Illegal, rs[2].Verdict, rs[2].Message)
}

// readRecordJSON reads a report directory's record: record.json, or
// record.json.zst or record.json.gz decompressed.
func readRecordJSON(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	if f, err := os.Open(filepath.Join(dir, "record.json.zst")); err == nil {
		defer f.Close()
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	f, err := os.Open(filepath.Join(dir, "record.json.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// Writes of unknown outcome the patch cannot settle stay open, and the
// witness places each one: at a free log entry of an identical request
// that changed the store, or in none (no effect, after everything).
func TestWitnessPlacesOpenWrites(t *testing.T) {
	put, get, del := ht.Put, ht.Get, ht.Del
	pastCommit := func(l *evidence.Log, r history.Request) *evidence.Log {
		l.Uncommitted = append(l.Uncommitted, evidence.Entry{Index: uint64(len(l.Entries) + 1), Term: 2, Request: &r})
		return l
	}
	// Identical deletes from two clients, one committed: the log holds
	// one copy more than were acknowledged (none) and one fewer than were
	// sent, so counting does not say which copy it is; the patch gives the
	// entry to the one called first and settles the other as never
	// applied (pinIdentical), which is a linearization whenever any is.
	twoDeletes := []history.Operation{
		op(0, 0, 10, put("a", "1"), putOK(2)),
		unknown(1, 20, 1000, del("a")),
		unknown(2, 30, 1000, del("a")),
		op(0, 100, 110, get("a"), getOK(3)),
	}
	tests := []struct {
		name    string
		history []history.Operation
		log     *evidence.Log
		open    int
		// at: the operations of unknown outcome the witness places at a
		// log entry, in order; none: the open ones it places in none;
		// dropped: those the patch settled as never applied (pinIdentical:
		// the log holds fewer copies than were sent). Sources.
		at, none, dropped []string
		witness           bool
		verdict           Verdict
	}{
		{
			name: "identical deletes from two clients, one committed", history: twoDeletes,
			log: logOf(put("a", "1"), del("a")), open: 0,
			at: []string{"client 1 #0"}, dropped: []string{"client 2 #0"}, witness: true, verdict: OK,
		},
		{
			// The copy called first takes the entry, though it was called
			// before the read that still saw the key: it is open, so it may
			// take effect at any time after its call.
			name: "identical deletes, the entry after a read that saw the key",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 20, 1000, del("a")),
				op(0, 30, 40, get("a"), getOK(2, kv("a", "1", 2))),
				unknown(2, 50, 1000, del("a")),
				op(0, 100, 110, get("a"), getOK(3)),
			},
			log: logOf(put("a", "1"), del("a")), open: 0,
			at: []string{"client 1 #0"}, dropped: []string{"client 2 #0"}, witness: true, verdict: OK,
		},
		{
			// The acknowledged copy found nothing, at revision 3: it takes
			// the entry that changed nothing, and the first unknown copy
			// the one that deleted.
			name: "an acknowledged delete and two unknown ones, two committed",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 20, 1000, del("a")),
				unknown(2, 30, 1000, del("a")),
				op(3, 50, 60, del("a"), delOK(3, 0)),
				op(0, 100, 110, get("a"), getOK(3)),
			},
			log: logOf(put("a", "1"), del("a"), del("a")), open: 0,
			at: []string{"client 1 #0"}, dropped: []string{"client 2 #0"}, witness: true, verdict: OK,
		},
		{
			// Its value is past the commit index only: it may be committed
			// after the history ends, so it stays open, and took no effect
			// within it.
			name: "an unknown put with no committed entry",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 20, 1000, put("a", "x")),
				op(0, 100, 110, get("a"), getOK(2, kv("a", "1", 2))),
			},
			log: pastCommit(logOf(put("a", "1")), put("a", "x")), open: 1,
			none: []string{"client 1 #0"}, witness: true, verdict: OK,
		},
		{
			name: "an unknown delete with no committed entry",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				unknown(1, 20, 1000, del("a")),
				op(0, 100, 110, get("a"), getOK(2, kv("a", "1", 2))),
			},
			log: pastCommit(logOf(put("a", "1")), del("a")), open: 1,
			none: []string{"client 1 #0"}, witness: true, verdict: OK,
		},
		{
			// The deletes placed as above, and a read after the one that
			// saw the key deleted sees it again: a stale read. The witness
			// does not certify, and porcupine finds the violation.
			name: "open deletes and a stale read",
			history: append(append([]history.Operation(nil), twoDeletes...),
				op(3, 120, 130, get("a"), getOK(2, kv("a", "1", 2)))),
			log: logOf(put("a", "1"), del("a")), open: 0,
			witness: false, verdict: Illegal,
		},
		{
			// No copy may take the committed delete: both were called
			// after a read saw it. Nothing explains the entry, and the
			// history is not linearizable.
			name: "a committed delete before either copy was called",
			history: []history.Operation{
				op(0, 0, 10, put("a", "1"), putOK(2)),
				op(0, 20, 30, get("a"), getOK(3)),
				unknown(1, 40, 1000, del("a")),
				unknown(2, 50, 1000, del("a")),
			},
			log: logOf(put("a", "1"), del("a")), open: 0,
			witness: false, verdict: Illegal,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, c := patched(Input{Clients: clients(tc.history...), FinalRead: -1, Persisted: tc.log})
			require.Equal(t, OK, rs[1].Verdict, rs[1].Message)
			require.Equal(t, tc.open, c.Patched.Open, "left open by the patch: %s", rs[1].Message)
			require.Equal(t, tc.witness, byRevision(c.Patched.Ops), "plan: %s; check: %s", c.Patched.noWitness, witnessed(c.Patched.Ops))
			require.Equal(t, tc.verdict, rs[2].Verdict, rs[2].Message)
			if tc.witness {
				require.Contains(t, rs[2].Message, "in the committed log's order")
			}
			porc := Linearizability{Timeout: 10 * time.Second, SearchOnly: true}.Validate(context.Background(), c)
			require.Equal(t, tc.verdict, porc.Verdict, porc.Message)
			if !tc.witness {
				return
			}
			bySource := map[string]*Op{}
			last := 0
			for i := range c.Patched.Ops {
				o := &c.Patched.Ops[i]
				bySource[o.Source] = o
				last = max(last, o.place)
			}
			for _, src := range tc.at {
				o := bySource[src]
				require.NotNil(t, o, src)
				require.True(t, o.applied, "%s is placed at its entry", src)
				require.Less(t, o.place, last-len(tc.none)+1, "%s is not among the last", src)
			}
			for _, src := range tc.dropped {
				require.Nil(t, bySource[src], "%s is settled as never applied", src)
			}
			for k, src := range tc.none {
				o := bySource[src]
				require.True(t, o.Open, src)
				require.False(t, o.applied, "%s took no effect", src)
				require.Equal(t, last-len(tc.none)+1+k, o.place, "%s goes after everything", src)
			}
		})
	}
}

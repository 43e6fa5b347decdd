package report

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/evidence"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

// watchRecord is a run with watch traffic as etcd answers it: ops puts
// by 12 clients over 10 keys at 2000 requests/s, each acknowledged at its
// own revision by one of 3 members; the committed log that holds them;
// and streams watch streams that each receive every one of those put
// events, at their own times and batched their own way, half of them with
// prev_kv, with a progress notification now and then. So every event is
// in the record streams+2 times: the repetition a long window finds.
func watchRecord(streams, ops int, seed uint64) Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	const cluster = 12907697834032067931
	members := []uint64{14003303892468668600, 3621120955411715709, 13495897493776491747}
	urls := []string{"http://127.0.0.1:20001", "http://127.0.0.1:20011", "http://127.0.0.1:20021"}
	header := func(member int, rev int64) history.Header {
		return history.Header{ClusterID: cluster, MemberID: members[member], Revision: rev, RaftTerm: 2}
	}

	type event struct {
		at   time.Duration // when it was acknowledged
		ev   history.WatchEvent
		prev *history.KeyValue
	}
	var events []event
	latest := map[string]history.KeyValue{}
	seq := make([]int, 12)
	var operations []history.Operation
	entries := []evidence.Entry{{Index: 1, Term: 2, Kind: "empty"}}
	for i := 0; i < ops; i++ {
		c := i % 12
		key := fmt.Sprintf("key-%d", rng.IntN(10))
		req := history.Put(key, fmt.Sprintf("%d-%d", c, seq[c]))
		seq[c]++
		rev := int64(i + 2)
		call := time.Duration(i)*500*time.Microsecond + time.Duration(rng.IntN(400_000))
		ret := call + 2*time.Millisecond + time.Duration(rng.IntN(30_000_000))
		operations = append(operations, history.Operation{ClientID: c, Call: call, Return: ret, Request: req,
			Response: &history.Response{Header: header(rng.IntN(3), rev), Put: &history.PutResponse{}}})
		entries = append(entries, evidence.Entry{Index: uint64(i + 2), Term: 2, Request: &operations[len(operations)-1].Request})

		kv := history.KeyValue{Key: key, Value: req.Put.Value, CreateRevision: rev, ModRevision: rev, Version: 1}
		var prev *history.KeyValue
		if p, ok := latest[key]; ok {
			kv.CreateRevision, kv.Version = p.CreateRevision, p.Version+1
			prev = &p
		}
		latest[key] = kv
		events = append(events, event{at: ret - time.Millisecond, ev: history.WatchEvent{Type: "PUT", KV: kv}, prev: prev})
	}
	last := int64(ops + 1)

	var watches []history.Watch
	for s := 0; s < streams; s++ {
		member := s % 3
		prevKV := s%2 == 0
		w := history.Watch{ID: s, ClientID: 1000 + s%5, Endpoints: []string{urls[member]}, ResumedFrom: -1,
			Request: history.WatchRequest{Key: "key-", RangeEnd: "key.", StartRevision: 1, PrevKV: prevKV, ProgressNotify: true},
			Call:    time.Duration(rng.IntN(5_000_000)),
			End:     time.Duration(ops)*500*time.Microsecond + time.Second, EndReason: "done", Target: last}
		w.Responses = append(w.Responses, history.WatchResponse{Time: w.Call + time.Millisecond, Header: header(member, 1), Created: true})
		for i := 0; i < len(events); {
			n := 1 + rng.IntN(3)
			n = min(n, len(events)-i)
			r := history.WatchResponse{Header: header(member, events[i+n-1].ev.KV.ModRevision)}
			for _, e := range events[i : i+n] {
				ev := e.ev
				if prevKV {
					ev.PrevKV = e.prev
				}
				r.Events = append(r.Events, ev)
			}
			r.Time = events[i+n-1].at + time.Duration(rng.IntN(3_000_000))
			w.Responses = append(w.Responses, r)
			i += n
			if rng.IntN(500) == 0 {
				w.Responses = append(w.Responses, history.WatchResponse{Time: r.Time + time.Millisecond, Header: header(member, r.Header.Revision), WatchID: -1})
			}
		}
		watches = append(watches, w)
	}

	var walMembers []evidence.MemberWAL
	for m := range members {
		walMembers = append(walMembers, evidence.MemberWAL{Member: fmt.Sprintf("member-%d", m), Term: 2, Vote: members[0], Commit: uint64(ops + 1)})
	}
	rec := Record{
		Scenario:     scenarios.Scenario{Name: "watch", Members: 3, Duration: time.Duration(ops) * 500 * time.Microsecond},
		EtcdVersions: []string{"v3.6.16"}, Seed: int64(seed), Start: time.Date(2026, 11, 21, 7, 26, 3, 123456789, time.UTC),
		Input: validate.Input{
			Clients: groupByClient(operations), FinalRead: -1, Watches: watches,
			Injections: []history.Injection{},
			Persisted:  &evidence.Log{Entries: entries, FirstIndex: 1, CommitIndex: uint64(ops + 1), Complete: true, Members: walMembers},
		},
	}
	rec.Format, rec.Version = Format, Version
	return rec
}

func groupByClient(ops []history.Operation) []history.Client {
	var out []history.Client
	for _, o := range ops {
		for len(out) <= o.ClientID {
			out = append(out, history.Client{ID: len(out)})
		}
		out[o.ClientID].Operations = append(out[o.ClientID].Operations, o)
	}
	return out
}

// watchRecordWithEverything is a small watchRecord whose first stream
// also received each other kind of message etcd sends: a delete with its
// previous value, a fragment, a compaction cancel, a stream error; and
// which has probes and an end state.
func watchRecordWithEverything() Record {
	rec := watchRecord(4, 300, 1)
	w := &rec.Watches[0]
	kv := history.KeyValue{Key: "key-3", Value: "weird \u00e9\u2028<&>\x01 value", CreateRevision: 5, ModRevision: 9, Version: 2, Lease: 7587}
	w.Responses = append(w.Responses,
		history.WatchResponse{Time: w.End - 4, Header: history.Header{Revision: 302}, Fragment: true,
			Events: []history.WatchEvent{{Type: "PUT", KV: kv}}},
		history.WatchResponse{Time: w.End - 3, Header: history.Header{Revision: 303},
			Events: []history.WatchEvent{{Type: "DELETE", KV: history.KeyValue{Key: "key-3", ModRevision: 303}, PrevKV: &kv}}},
		history.WatchResponse{Time: w.End - 2, Header: history.Header{Revision: 303}, Canceled: true, CancelReason: "mvcc: required revision has been compacted", CompactRevision: 100},
		history.WatchResponse{Time: w.End - 1, Error: &history.Error{Code: "Unavailable", Message: "etcdserver: no leader", Outcome: history.Failed}},
	)
	w.Request.Filters = []string{"NODELETE"}
	w.ProgressRequests = []time.Duration{time.Second, 2 * time.Second}
	rec.Probes = []history.Probe{{Member: "member-0", Endpoint: "/readyz", Call: time.Second, Return: time.Second + 3, Status: 200, Body: "ok", MemberID: 1}}
	rec.EndStates = []evidence.MemberState{{Member: "member-0", Revision: 301, Hash: 42}}
	return rec
}

func zstdBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, err := recordEncoder(&buf, len(b))
	require.NoError(t, err)
	_, err = zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// rewriteRecord replaces the JSON inside dir's record.json.zst with
// f(JSON), leaving the checksum as it was.
func rewriteRecord(t testing.TB, dir string, f func([]byte) []byte) {
	b, name, err := readRecord(dir)
	require.NoError(t, err)
	require.Equal(t, RecordZstdFile, name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, RecordZstdFile), zstdBytes(t, f(b)), 0o644))
}

// What etcd sent stays in the record exactly: Write keeps the record as
// record.json.zst (nothing else), the JSON in it is json.Marshal's
// byte for byte, the checksum is the JSON's, and Load gives back an equal
// record.
func TestRecordRoundTrip(t *testing.T) {
	rec := watchRecordWithEverything()
	dir := t.TempDir()
	require.NoError(t, Write(dir, rec, Summary{Outcome: "PASS"}))

	for _, f := range []string{RecordFile, RecordGzipFile, RecordZstdFile + ".tmp"} {
		require.NoFileExists(t, filepath.Join(dir, f))
	}
	want, err := json.Marshal(rec)
	require.NoError(t, err)
	want = append(want, '\n')
	f, err := os.Open(filepath.Join(dir, RecordZstdFile))
	require.NoError(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	require.NoError(t, err)
	defer zr.Close()
	var got bytes.Buffer
	_, err = got.ReadFrom(zr)
	require.NoError(t, err)
	require.Equal(t, string(want), got.String(), "record.json.zst holds the record's JSON")
	sum, err := os.ReadFile(filepath.Join(dir, ChecksumFile))
	require.NoError(t, err)
	require.Equal(t, sha256Hex(want)+"  "+RecordFile+"\n", string(sum))

	loaded, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, rec, loaded)
	require.Equal(t, "DELETE", loaded.Watches[0].Responses[len(loaded.Watches[0].Responses)-3].Events[0].Type)
}

// Load reads each form a report has kept its record in: record.json
// (before any compression), record.json.gz (a large record, before zstd)
// and record.json.zst (every record now).
func TestLoadRecordForms(t *testing.T) {
	rec := watchRecordWithEverything()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	b = append(b, '\n')
	for _, form := range []struct {
		name string
		data []byte
	}{{RecordFile, b}, {RecordGzipFile, gzipBytes(t, b)}, {RecordZstdFile, zstdBytes(t, b)}} {
		t.Run(form.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, form.name), form.data, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, ChecksumFile), []byte(sha256Hex(b)+"  "+RecordFile+"\n"), 0o644))
			got, err := Load(dir)
			require.NoError(t, err)
			require.Equal(t, rec, got)

			// The checksum is the JSON's in every form.
			require.NoError(t, os.WriteFile(filepath.Join(dir, ChecksumFile), []byte(sha256Hex(b[1:])+"  "+RecordFile+"\n"), 0o644))
			_, err = Load(dir)
			require.ErrorContains(t, err, form.name+" does not match its checksum")
		})
	}
}

// A record.json next to record.json.zst (one decompressed by hand) is the
// one Load reads; Write removes other forms, so a record written again is
// never shadowed by a stale one.
func TestRecordFormsTogether(t *testing.T) {
	dir := t.TempDir()
	rec, sum := sample()
	require.NoError(t, Write(dir, rec, sum))
	require.NoError(t, os.WriteFile(filepath.Join(dir, RecordFile), []byte(`{"format":`), 0o644))
	_, err := Load(dir)
	require.ErrorContains(t, err, "is corrupt: record.json: unexpected end of JSON input")

	require.NoError(t, os.WriteFile(filepath.Join(dir, RecordGzipFile), []byte("stale"), 0o644))
	rec.Seed = 8
	require.NoError(t, Write(dir, rec, sum))
	require.NoFileExists(t, filepath.Join(dir, RecordFile))
	require.NoFileExists(t, filepath.Join(dir, RecordGzipFile))
	got, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, int64(8), got.Seed)
}

// A damaged record.json.zst, or record.json.gz, gets one line that names
// the file, and no part of the record.
func TestLoadCorruptCompressed(t *testing.T) {
	// A frame header asking for a 1 GiB window (over MaxRecordWindow),
	// then one empty last block.
	hugeWindow := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x01, 0x00, 0x00}
	tests := []struct {
		name   string
		file   string
		damage func([]byte) []byte
		want   string
	}{
		{"cut in half", RecordZstdFile, func(b []byte) []byte { return b[:len(b)/2] }, "unexpected EOF (the file is cut short)"},
		{"last byte missing", RecordZstdFile, func(b []byte) []byte { return b[:len(b)-1] }, "unexpected EOF (the file is cut short)"},
		{"cut inside the magic number", RecordZstdFile, func(b []byte) []byte { return b[:3] }, "record.json.zst: "},
		{"empty", RecordZstdFile, func(b []byte) []byte { return nil }, "record.json.zst: unexpected end of JSON input"},
		{"a byte garbled", RecordZstdFile, func(b []byte) []byte { b[len(b)/2] ^= 0x55; return b }, "record.json.zst: "},
		{"its CRC garbled", RecordZstdFile, func(b []byte) []byte { b[len(b)-1] ^= 0x55; return b }, "record.json.zst: CRC check failed"},
		{"garbage after the frame", RecordZstdFile, func(b []byte) []byte { return append(b, "garbage"...) }, "record.json.zst: invalid input: magic number mismatch"},
		{"not zstd", RecordZstdFile, func(b []byte) []byte { return []byte(`{"format":"etcd-robustness run record"}`) }, "record.json.zst: invalid input: magic number mismatch"},
		{"a window too large", RecordZstdFile, func(b []byte) []byte { return hugeWindow }, "record.json.zst: window size exceeded: the frame asks for a window over the 256 MiB Load allows"},
		{"gzip cut in half", RecordGzipFile, func(b []byte) []byte { return b[:len(b)/2] }, "record.json.gz: unexpected EOF (the file is cut short)"},
		{"not gzip", RecordGzipFile, func(b []byte) []byte { return []byte(`{"format":"etcd-robustness run record"}`) }, "record.json.gz: gzip: invalid header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rec, sum := sample()
			require.NoError(t, Write(dir, rec, sum))
			if tc.file == RecordGzipFile {
				b, _, err := readRecord(dir)
				require.NoError(t, err)
				require.NoError(t, os.Remove(filepath.Join(dir, RecordZstdFile)))
				require.NoError(t, os.WriteFile(filepath.Join(dir, RecordGzipFile), gzipBytes(t, b), 0o644))
			}
			p := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, tc.damage(b), 0o644))
			got, err := Load(dir)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "report "+dir+" is corrupt: "+tc.file+": "), err.Error())
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n", "errors are one line")
			require.Equal(t, Record{}, got, "no part of the record")
		})
	}
}

// Every record is kept compressed, the smallest too: zstd's frame costs a
// few bytes, which a record's repeated field names pay back many times.
func TestSmallRecordsAreSmallerCompressed(t *testing.T) {
	smallest := Record{Format: Format, Version: Version, Input: validate.Input{FinalRead: -1,
		Clients: []history.Client{{ID: 0, Operations: []history.Operation{{Request: history.Put("a", "1"), Response: &history.Response{Put: &history.PutResponse{}}}}}}}}
	small, _ := sample()
	small.Format, small.Version = Format, Version
	for _, rec := range []Record{smallest, small} {
		js, err := json.Marshal(rec)
		require.NoError(t, err)
		js = append(js, '\n')
		dir := t.TempDir()
		require.NoError(t, writeRecord(dir, rec))
		fi, err := os.Stat(filepath.Join(dir, RecordZstdFile))
		require.NoError(t, err)
		t.Logf("JSON %d B, record.json.zst %d B", len(js), fi.Size())
		require.Less(t, fi.Size(), int64(len(js)))
		got, err := Load(dir)
		require.NoError(t, err)
		require.Equal(t, rec, got)
	}
}

// Write's window holds the whole record, up to RecordWindow: the JSON
// reaches the encoder in one piece, so the window is sized by all of it.
func TestRecordWindow(t *testing.T) {
	require.Equal(t, 1<<20, recordWindow(0))
	require.Equal(t, 1<<20, recordWindow(1<<20))
	require.Equal(t, 2<<20, recordWindow(1<<20+1))
	require.Equal(t, RecordWindow, recordWindow(RecordWindow))
	require.Equal(t, RecordWindow, recordWindow(1<<30))

	for _, rec := range []Record{watchRecordWithEverything(), watchRecord(20, 3000, 2)} {
		js, err := json.Marshal(rec)
		require.NoError(t, err)
		dir := t.TempDir()
		require.NoError(t, writeRecord(dir, rec))
		b, err := os.ReadFile(filepath.Join(dir, RecordZstdFile))
		require.NoError(t, err)
		var h zstd.Header
		require.NoError(t, h.Decode(b))
		require.Equal(t, uint64(recordWindow(len(js)+1)), h.WindowSize, "JSON of %d bytes", len(js)+1)
	}
}

package evidence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// The values of Entry.Kind.
const (
	// KindEmpty is the empty entry a new leader appends at the start of its term.
	KindEmpty = "empty"
	// KindConfChange is a membership change (raftpb.ConfChange or ConfChangeV2).
	KindConfChange = "conf-change"
	// KindMemberAttr publishes a member's name and client URLs.
	KindMemberAttr = "member-attr"
	// KindClusterVersion sets the cluster version.
	KindClusterVersion = "cluster-version"
	// KindAlarm raises or clears an alarm.
	KindAlarm = "alarm"
	// KindAuth is any authentication or authorization change.
	KindAuth = "auth"
	// KindLeaseCheckpoint records the remaining TTL of leases.
	KindLeaseCheckpoint = "lease-checkpoint"
	// KindDowngrade sets or cancels the cluster's downgrade
	// (membershippb.DowngradeInfoSetRequest).
	KindDowngrade = "downgrade"
	// KindV2 is a request to etcd's v2 store (other than member-attr and cluster-version).
	KindV2 = "v2"
	// KindOther is anything else, including data that does not decode (for
	// instance a request type newer than this package).
	KindOther = "other"
)

// Entry is one raft log entry as a member persisted it.
type Entry struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Request is the client request the entry carries, or nil.
	Request *history.Request `json:"request,omitempty"`
	// Kind describes an entry without a Request: "empty" (a new leader's entry), "conf-change",
	// "member-attr", "cluster-version", "alarm", "auth", "lease-checkpoint", "downgrade", "v2",
	// "other".
	Kind string `json:"kind,omitempty"`
	// Alarm is, for an alarm entry, its action and alarm type as etcd
	// names them ("ACTIVATE NOSPACE"), and the member it is for.
	Alarm       string `json:"alarm,omitempty"`
	AlarmMember uint64 `json:"alarm_member,omitempty"`

	// raw is the entry's data as persisted, kept by ReadWAL so that Merge
	// can tell two entries apart byte for byte. Merge drops it from the
	// entries it returns. (A string keeps Entry comparable.)
	raw string
}

// MemberWAL is what one member's WAL holds.
type MemberWAL struct {
	Member string `json:"member"`
	// HardState as last persisted.
	Term   uint64 `json:"term"`
	Vote   uint64 `json:"vote"`
	Commit uint64 `json:"commit"`
	// SnapshotIndex is the index of the snapshot the WAL was read from (0 if none); entries start after it.
	SnapshotIndex uint64  `json:"snapshot_index"`
	Entries       []Entry `json:"-"`
	// Replaced are parts of the member's log that a snapshot from the
	// leader later replaced (see ReadWAL), oldest first: entries below
	// SnapshotIndex that the member still holds and knew to be committed.
	Replaced []Replaced `json:"replaced,omitempty"`
	// Error is why the WAL could not be read; empty when it was read.
	Error string `json:"error,omitempty"`
}

// Replaced is a part of a member's log that a snapshot the member received
// from the leader replaced: the entries it held up to the commit index it
// had persisted last before the snapshot's marker. Raft commits an entry
// for good, and a member persists a commit index only over entries it
// holds, so each of them is committed.
type Replaced struct {
	// From and To are the indexes of the first and last entry.
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Term and Commit are of the hard state the member persisted last
	// before the marker.
	Term   uint64 `json:"term"`
	Commit uint64 `json:"commit"`
	// Snapshot is the index of the snapshot that replaced this log.
	Snapshot uint64  `json:"snapshot"`
	Entries  []Entry `json:"-"`
}

// ReadWAL reads the WAL of the member whose etcd --data-dir is dataDir.
// It never panics on a corrupt or missing WAL; it sets Error instead.
//
// The WAL is opened read-only and nothing in dataDir is changed. It is read
// from the oldest starting point that gives a trustworthy log (see the
// package documentation), so Entries are contiguous from SnapshotIndex+1.
func ReadWAL(lg *zap.Logger, member, dataDir string) (out MemberWAL) {
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.With(zap.String("member", member))
	walDir := filepath.Join(dataDir, "member", "wal")
	out.Member = member
	defer func() {
		// The wal package panics on some malformed records (MustUnmarshal);
		// readers below recover already, this is the last line.
		if r := recover(); r != nil {
			out = MemberWAL{Member: member, Error: fmt.Sprintf("read WAL in %s: panic: %v", walDir, r)}
			lg.Warn("cannot read WAL", zap.String("dir", walDir), zap.String("error", out.Error))
		}
	}()

	r, err := readWAL(lg, walDir)
	if err != nil {
		out.Error = err.Error()
		lg.Warn("cannot read WAL", zap.String("dir", walDir), zap.Error(err))
		return out
	}
	out.Term, out.Vote, out.Commit = r.state.Term, r.state.Vote, r.state.Commit
	out.SnapshotIndex = r.start.Index
	out.Entries = make([]Entry, len(r.ents))
	for i := range r.ents {
		out.Entries[i] = decodeEntry(&r.ents[i])
	}
	if out.SnapshotIndex > 0 {
		out.Replaced = readReplaced(lg, walDir, out.SnapshotIndex)
	}
	var last uint64
	if n := len(out.Entries); n > 0 {
		last = out.Entries[n-1].Index
	}
	lg.Info("read WAL", zap.String("dir", walDir), zap.Uint64("snapshot-index", out.SnapshotIndex),
		zap.Int("entries", len(out.Entries)), zap.Uint64("last-index", last),
		zap.Uint64("commit", out.Commit), zap.Uint64("term", out.Term))
	return out
}

// walRead is the result of one read of a WAL from a starting snapshot.
type walRead struct {
	start walpb.Snapshot
	state raftpb.HardState
	ents  []raftpb.Entry
}

// errLogMismatch means that the entries read from an older starting point
// are not the log a later snapshot marker was taken from.
var errLogMismatch = errors.New("entries before a snapshot marker do not match it")

// readWAL reads walDir from the oldest starting point (index 0, then each
// valid snapshot marker in index order) that can be read and whose entries
// agree with every later marker.
func readWAL(lg *zap.Logger, walDir string) (walRead, error) {
	if !wal.Exist(walDir) {
		if _, err := os.Stat(walDir); err != nil {
			return walRead{}, fmt.Errorf("no WAL: %w", err)
		}
		return walRead{}, fmt.Errorf("no WAL: no .wal file in %s", walDir)
	}
	snaps, err := validSnapshots(lg, walDir)
	if err != nil {
		return walRead{}, fmt.Errorf("read snapshot markers of WAL in %s: %w", walDir, err)
	}
	starts := []walpb.Snapshot{{}}
	for _, s := range snaps {
		if s.Index > starts[len(starts)-1].Index {
			starts = append(starts, walpb.Snapshot{Index: s.Index, Term: s.Term})
		}
	}

	var errs error
	for i, start := range starts {
		r, err := readFrom(lg, walDir, start)
		if err == nil {
			err = matchMarkers(r, starts[i+1:])
		}
		if err == nil {
			return r, nil
		}
		err = fmt.Errorf("from snapshot index %d term %d: %w", start.Index, start.Term, err)
		lg.Info("cannot read WAL from this starting point; trying the next snapshot marker",
			zap.String("dir", walDir), zap.Error(err))
		if errs == nil {
			errs = err
		} else {
			errs = fmt.Errorf("%w; %w", errs, err)
		}
	}
	return walRead{}, fmt.Errorf("read WAL in %s: %w", walDir, errs)
}

// validSnapshots lists the snapshot markers at or below the last persisted
// commit index, in index order.
func validSnapshots(lg *zap.Logger, walDir string) (snaps []walpb.Snapshot, err error) {
	defer recoverTo(&err)
	snaps, err = wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(snaps, func(a, b walpb.Snapshot) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	return snaps, nil
}

// readFrom reads the WAL's entries after start and its last hard state.
// wal.ReadAll replays overwrites: a later entry at an index already read
// replaces it and drops everything after it. In read-only mode it stops
// without an error at a torn last record (io.ErrUnexpectedEOF), keeping the
// records before it.
func readFrom(lg *zap.Logger, walDir string, start walpb.Snapshot) (r walRead, err error) {
	defer recoverTo(&err)
	w, err := wal.OpenForRead(lg, walDir, start)
	if err != nil {
		return walRead{}, err
	}
	// A read-only WAL needs no Close: it holds no lock nor directory handle,
	// and ReadAll closes the files when it succeeds. When ReadAll fails the
	// wal package keeps them open; the garbage collector closes them.
	_, state, ents, err := w.ReadAll()
	if err != nil {
		return walRead{}, err
	}
	return walRead{start: start, state: state, ents: ents}, nil
}

// matchMarkers checks that r, read from an older starting point, holds an
// entry of the marker's term at each later marker's index. Otherwise the
// member replaced its log by a snapshot there (it had diverged or fallen
// behind) and the entries before the marker cannot be trusted.
func matchMarkers(r walRead, later []walpb.Snapshot) error {
	for _, s := range later {
		k := s.Index - r.start.Index - 1 // s.Index > r.start.Index
		if k >= uint64(len(r.ents)) {
			return fmt.Errorf("%w: no entry at marker index %d (term %d); the log ends at %d",
				errLogMismatch, s.Index, s.Term, r.start.Index+uint64(len(r.ents)))
		}
		if t := r.ents[k].Term; t != s.Term {
			return fmt.Errorf("%w: entry at marker index %d has term %d, the marker term %d",
				errLogMismatch, s.Index, t, s.Term)
		}
	}
	return nil
}

// readReplaced reads, for a WAL whose trusted entries start after the
// marker at start, the parts of the log that received snapshots replaced
// (Replaced), up to start. It replays every record of every file from the
// WAL's first, with etcd's wal decoder, as wal.ReadAll does (a later entry
// at an index replaces it and drops what follows), and at each snapshot
// marker that the log does not hold (no entry there, or one of another
// term: the member had fallen behind or diverged) it keeps the entries up
// to the commit index of the last hard state before the marker, and goes
// on from the marker with an empty log. It gives nothing when the WAL does
// not go back to index 0 (files released) or a record cannot be read
// (only a torn last one is let through, as ReadAll does), and stops at an
// entry past the log's end that no marker explains: what it kept before
// is still committed.
func readReplaced(lg *zap.Logger, walDir string, start uint64) (out []Replaced) {
	defer func() {
		if r := recover(); r != nil { // the wal package's MustUnmarshal
			lg.Warn("cannot read the log a snapshot replaced", zap.String("dir", walDir), zap.Any("panic", r))
			out = nil
		}
	}()
	paths, err := walFilesFromStart(walDir)
	if err != nil {
		lg.Info("not reading the log a snapshot replaced", zap.String("dir", walDir), zap.Error(err))
		return nil
	}
	var readers []fileutil.FileReader
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			lg.Warn("cannot read the log a snapshot replaced", zap.String("dir", walDir), zap.Error(err))
			return nil
		}
		defer f.Close()
		readers = append(readers, fileutil.NewFileReader(f))
	}
	dec := wal.NewDecoder(readers...)
	var (
		base  uint64 // the index before ents[0]
		ents  []raftpb.Entry
		state raftpb.HardState
		rec   walpb.Record
	)
	for err = dec.Decode(&rec); err == nil; err = dec.Decode(&rec) {
		switch rec.Type {
		case wal.EntryType:
			e := wal.MustUnmarshalEntry(rec.Data)
			if e.Index <= base {
				continue
			}
			off := e.Index - base - 1
			if off > uint64(len(ents)) {
				lg.Info("the log jumps without a snapshot marker; keeping what was read before",
					zap.String("dir", walDir), zap.Uint64("index", e.Index), zap.Uint64("log-end", base+uint64(len(ents))))
				return out
			}
			ents = append(ents[:off], e)
		case wal.StateType:
			state = wal.MustUnmarshalState(rec.Data)
		case wal.CrcType:
			if crc := dec.LastCRC(); crc != 0 && rec.Validate(crc) != nil {
				lg.Warn("cannot read the log a snapshot replaced", zap.String("dir", walDir), zap.Error(walpb.ErrCRCMismatch))
				return nil
			}
			dec.UpdateCRC(rec.Crc)
		case wal.SnapshotType:
			var snap walpb.Snapshot
			if err := snap.Unmarshal(rec.Data); err != nil {
				lg.Warn("cannot read the log a snapshot replaced", zap.String("dir", walDir), zap.Error(err))
				return nil
			}
			if snap.Index > start {
				return out
			}
			if snap.Index <= base {
				continue
			}
			if k := snap.Index - base - 1; k < uint64(len(ents)) && ents[k].Term == snap.Term {
				continue // the member's own log holds it
			}
			if c := min(state.Commit, base+uint64(len(ents))); c > base {
				r := Replaced{From: base + 1, To: c, Term: state.Term, Commit: state.Commit, Snapshot: snap.Index}
				for i := range ents[:c-base] {
					r.Entries = append(r.Entries, decodeEntry(&ents[i]))
				}
				out = append(out, r)
			}
			base, ents = snap.Index, nil
		}
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		lg.Warn("cannot read the log a snapshot replaced", zap.String("dir", walDir), zap.Error(err))
		return nil
	}
	return out
}

// walFilesFromStart are the paths of walDir's .wal files in sequence
// order, when they go back to the WAL's first (sequence 0, index 0) with
// no sequence missing.
func walFilesFromStart(walDir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for i, p := range names {
		var seq, index uint64
		if _, err := fmt.Sscanf(filepath.Base(p), "%016x-%016x.wal", &seq, &index); err != nil {
			return nil, fmt.Errorf("WAL file name %s: %w", p, err)
		}
		if seq != uint64(i) || (i == 0 && index != 0) {
			return nil, fmt.Errorf("the WAL files do not go back to its first (%s is number %d)", filepath.Base(p), i)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no .wal file")
	}
	return names, nil
}

// recoverTo turns a panic of the wal package into *err.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panic: %v", r)
	}
}

// decodeEntry decodes a raft entry as etcd's server would apply it.
func decodeEntry(e *raftpb.Entry) Entry {
	out := Entry{Index: e.Index, Term: e.Term, raw: string(e.Data)}
	switch e.Type {
	case raftpb.EntryNormal:
		if len(e.Data) == 0 {
			out.Kind = KindEmpty
			return out
		}
		out.Request, out.Kind = decodeNormal(e.Data)
		if out.Kind == KindAlarm {
			var r pb.InternalRaftRequest
			if r.Unmarshal(e.Data) == nil && r.Alarm != nil {
				out.Alarm, out.AlarmMember = r.Alarm.Action.String()+" "+r.Alarm.Alarm.String(), r.Alarm.MemberID
			}
		}
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		out.Kind = KindConfChange
		if cc.Unmarshal(e.Data) != nil {
			out.Kind = KindOther
		} else {
			out.raw = canonical(&cc, out.raw)
		}
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		out.Kind = KindConfChange
		if cc.Unmarshal(e.Data) != nil {
			out.Kind = KindOther
		} else {
			out.raw = canonical(&cc, out.raw)
		}
	default:
		out.Kind = KindOther
	}
	return out
}

// canonical is a conf change as the harness's raftpb encodes it, so that
// Merge compares conf changes by what they say, not by how a release
// encoded them. Releases encode the same change differently: the
// bootstrap entries every member writes for itself at raft indexes 1 to
// n (one ConfChangeAddNode per initial member) are `08 00 10 00 ...` from
// v3.6.16, which writes the zero ID, and `10 00 ...` from v3.7.3, which
// leaves it out, so a new cluster of both releases would otherwise
// "disagree" on its first entries. The fields are every field the change
// has (type, node, context, ID; V2: transition, changes, context); one a
// later release might add would not be compared. If the change does not
// encode, its bytes as persisted are kept.
func canonical(m interface{ Marshal() ([]byte, error) }, raw string) string {
	b, err := m.Marshal()
	if err != nil {
		return raw
	}
	return string(b)
}

// decodeNormal decodes the data of a non-empty normal entry: an
// InternalRaftRequest or, as etcd v3.4 wrote some entries and as etcd's
// server still falls back to, a bare v2 Request when that does not parse.
func decodeNormal(data []byte) (*history.Request, string) {
	var r pb.InternalRaftRequest
	if err := r.Unmarshal(data); err != nil {
		var v2 pb.Request
		if err := v2.Unmarshal(data); err != nil {
			return nil, KindOther
		}
		return nil, v2Kind(&v2)
	}
	if req, ok := history.RequestFromInternal(&r); ok {
		return &req, ""
	}
	switch {
	case r.V2 != nil:
		return nil, v2Kind(r.V2)
	case r.ClusterMemberAttrSet != nil:
		return nil, KindMemberAttr
	case r.ClusterVersionSet != nil:
		return nil, KindClusterVersion
	case r.Alarm != nil:
		return nil, KindAlarm
	case r.LeaseCheckpoint != nil:
		return nil, KindLeaseCheckpoint
	case r.DowngradeInfoSet != nil:
		return nil, KindDowngrade
	case isAuth(&r):
		return nil, KindAuth
	}
	return nil, KindOther
}

// v2MemberAttr is the v2 store path under which etcd (v3.4, and v3.5 for
// compatibility) publishes a member's attributes.
var v2MemberAttr = regexp.MustCompile(`^/0/members/[[:xdigit:]]{1,16}/attributes$`)

// v2ClusterVersion is the v2 store path of the cluster version.
const v2ClusterVersion = "/0/version"

func v2Kind(r *pb.Request) string {
	if r.Method == "PUT" {
		switch {
		case v2MemberAttr.MatchString(r.Path):
			return KindMemberAttr
		case r.Path == v2ClusterVersion:
			return KindClusterVersion
		}
	}
	return KindV2
}

func isAuth(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil || r.Authenticate != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserGet != nil ||
		r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil ||
		r.AuthUserList != nil || r.AuthRoleList != nil || r.AuthRoleAdd != nil || r.AuthRoleDelete != nil ||
		r.AuthRoleGet != nil || r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil
}

// Package evidence reads what each etcd member persisted in its write-ahead
// log (WAL) after a run and rebuilds from it the raft log the cluster
// committed, in raft order. The committed requests settle client requests
// whose outcome the client never learned (timeouts) and feed later checks.
//
// The files are read with etcd's own wal package (go.etcd.io/etcd/server/v3
// storage/wal), opened read-only: the data dir stays exactly as etcd left it.
// The layout <data-dir>/member/wal/*.wal and the record format are the same
// for etcd v3.4 through v3.7.
//
// # One member's WAL
//
// A WAL is a sequence of records: entries, hard states (term, vote, commit),
// snapshot markers and bookkeeping. A member writes entries as raft appends
// them, so the same index can be written more than once: when a deposed
// leader's uncommitted tail is overwritten by the new leader, the later
// write of index i replaces the earlier one and drops every entry after i.
// wal.ReadAll replays exactly that rule, so ReadWAL relies on it rather than
// repeating it.
//
// Only entries at or below the commit index of the last persisted hard state
// are known to be committed on that member; entries above it are a tail that
// may still have been committed elsewhere, or may have been overwritten.
//
// A WAL may not go back to index 1. etcd writes a snapshot marker (index,
// term) into the WAL when it snapshots its state or receives a snapshot from
// the leader, and may later delete the WAL files that only hold entries
// below it. ReadWAL lists the markers at or below the commit index
// (wal.ValidSnapshotEntries) and reads from the oldest starting point whose
// files are still there: index 0, then each marker in turn. Reading from an
// older starting point than the newest marker is only accepted when the log
// it yields holds, at every later marker's index, an entry of the marker's
// term. By raft's log matching property the entries up to that index are then
// the committed ones. Otherwise, for instance when the member received a
// snapshot because its own log had diverged, the older entries are not
// trusted and the next marker is tried; entries then start after it and
// MemberWAL.SnapshotIndex says where. etcd itself restarts from the newest
// snapshot file it has (see the snap package); the log does not need the
// snapshot's contents, only its marker, so the snap directory is not read.
//
// A received snapshot does not make the older entries worthless. The
// member wrote them, and hard states, before the snapshot's marker; every
// entry up to the commit index of the last hard state before the marker
// is committed (raft commits an entry for good, and a member persists a
// commit index only over entries it holds; the hard state written with
// the snapshot, whose commit is the snapshot's index, is after the
// marker and does not count: etcd's raft loop saves the snapshot and its
// marker before the Ready's hard state, in v3.4.12, v3.5.35, v3.6.16 and
// v3.7.3, and a Ready that carries a received snapshot has no committed
// entries, so v3.5's early save for them does not come first). When the WAL still goes back to its first
// file, ReadWAL replays every record once more and keeps those entries as
// MemberWAL.Replaced, one part per snapshot that replaced the log. Merge
// takes them as logs of members whose commit index covers each of their
// entries: they take part in the check of every committed index they
// hold (a replaced entry that differs from another committed one is a
// conflict), and move the start of the committed range down as far as
// they leave no index out (Log.Replaced counts those). Without them, a run
// in which every member caught up from a snapshot would start its log
// at the lowest snapshot.
//
// A member killed in the middle of a write can leave a torn last record.
// etcd repairs that on restart by truncating the last file (wal.Repair)
// after a read in write mode fails with io.ErrUnexpectedEOF. A read-only
// ReadAll already stops at such a record without an error and returns what
// precedes it, which is what a repair would keep, so ReadWAL does not need to
// repair, nor to copy the files. Any other damage (a CRC mismatch, a
// missing file) makes MemberWAL.Error say why the WAL could not be read.
//
// # The cluster's log
//
// Merge combines the members' WALs. The cluster's commit index is the
// highest commit index any member persisted. For each index up to it, the
// entry is taken from a member whose own commit index covers it; if such
// members disagree on the entry's term or data, that is a conflict (raft
// forbids two different committed entries at one index) and Merge reports
// it. If no member whose commit covers the index holds it (their WALs start
// after a snapshot), the entry with the highest term any member holds at that
// index is taken. A committed index that no WAL holds at all is a gap, and
// Merge fails. Entries past the commit index are listed as uncommitted: they
// may or may not have been committed, since a leader can commit and answer
// a client before any member persists the new commit index. The exception
// is a member whose entry at the commit index has another term than the
// committed one (a deposed leader, say): by log matching, nothing after it
// in its log can have been committed, so its tail is left out.
//
// A member that holds, past its own commit index, an entry at a committed
// index with a higher term than every committing member's persisted term is
// a conflict too: the index was committed by a term no later than that, so
// a leader of the higher term lacked a committed entry (raft's leader
// completeness). A higher term below that bound is not flagged, as raft
// allows it: an old leader's entry at an index a later term committed.
//
// Each entry is decoded as etcd's server decodes it: an empty normal entry
// is a new leader's no-op; otherwise an etcdserverpb.InternalRaftRequest,
// or, for WALs written by v3.4, a bare v2 etcdserverpb.Request when that
// does not parse; conf-change entries are raftpb.ConfChange or ConfChangeV2.
// history.RequestFromInternal turns client requests into history.Request.
package evidence

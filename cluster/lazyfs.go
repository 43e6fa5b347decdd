package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// LazyFS is a FUSE file system that passes every operation through to a
// backing directory, but remembers what each file held at its last fsync.
// LoseUnsynced puts every file back as it was then: what was written but
// not fsynced is lost, as when a machine loses power. (etcd's own suite
// does this with LazyFS; this one is written here with go-fuse.)
//
// Writes go through to the backing file at once, so reads and mmap see
// them; before a block of a file is first overwritten after an fsync, its
// old content is saved (an undo log), and so is the file's size. Fsync
// drops the file's undo log. Only file contents are rolled back; creating,
// renaming and removing files are not.
type LazyFS struct {
	backing string
	mount   string
	server  *fuse.Server

	mu        sync.Mutex
	files     map[string]*undoLog   // backing path → what to restore
	syncDelay time.Duration         // how long each fsync is held before it syncs
	crashed   chan struct{}         // closed by Crash: nothing more reaches the disk
	lie       func(rel string) bool // LieSyncs: files whose fsyncs succeed without syncing
	lies      map[string]Lie        // relative path → the fsyncs it lied to
}

// Lie is what a lying disk did to one file: how many of its fsyncs
// succeeded without syncing, and how many of its bytes the last of them
// acknowledged that are not on disk (what a crash now loses of it).
type Lie struct {
	Fsyncs int
	Bytes  int64
}

// undoLog is what a file held at its last fsync.
type undoLog struct {
	size   int64
	blocks map[int64][]byte // block index → old content (short at the end of the file)
}

const undoBlock = 4096

// ErrNoFUSE means FUSE cannot be mounted here.
var ErrNoFUSE = errors.New("FUSE is not available")

// MountLazyFS mounts a LazyFS of backing at mountpoint. It needs /dev/fuse,
// and root (for mount(2)) or fusermount3.
func MountLazyFS(backing, mountpoint string) (*LazyFS, error) {
	l := &LazyFS{backing: backing, mount: mountpoint, files: map[string]*undoLog{}, crashed: make(chan struct{}), lies: map[string]Lie{}}
	root := &fs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs backing dir: %w", err)
	}
	root.Dev = st.Dev
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &lazyNode{LoopbackNode: fs.LoopbackNode{RootData: r}, l: l}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	sec := time.Duration(0)
	server, err := fs.Mount(mountpoint, root.RootNode, &fs.Options{
		// No attribute or entry caching: etcd sees every change at once.
		AttrTimeout: &sec, EntryTimeout: &sec, NegativeTimeout: &sec,
		MountOptions: fuse.MountOptions{
			DirectMount: true, FsName: "lazyfs", Name: "lazyfs",
			// Every write must reach Write, never the kernel's
			// passthrough or writeback cache.
			DisableXAttrs: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mounting %s: %w", ErrNoFUSE, mountpoint, err)
	}
	l.server = server
	return l, nil
}

// Unmount unmounts the file system, retrying while it is busy.
func (l *LazyFS) Unmount() error {
	var err error
	for range 50 {
		if err = l.server.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("unmounting lazyfs %s: %w", l.mount, err)
}

// Unsynced returns how many bytes each file would lose, by backing path
// relative to the backing dir (a file that only grew loses its new tail).
func (l *LazyFS) Unsynced() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for p, u := range l.files {
		rel, _ := filepath.Rel(l.backing, p)
		out[rel] = u.unsynced(p)
	}
	return out
}

// unsynced is how many bytes the file at p would lose: the saved blocks,
// and what it grew by since its last fsync.
func (u *undoLog) unsynced(p string) int64 {
	var n int64
	for _, b := range u.blocks {
		n += int64(len(b))
	}
	if st, err := os.Stat(p); err == nil && st.Size() > u.size {
		n += st.Size() - u.size
	}
	return n
}

// LieSyncs makes the disk lie: from now on an fsync (or fdatasync) of a
// file whose path, relative to the backing dir, match accepts returns
// success without syncing anything, so what the file held at its last
// honest fsync is what a crash leaves of it (a disk or kernel that
// acknowledges a flush it never did: ext4's fast commit bug, bbolt #562).
// LieSyncs(nil) makes it honest again, as LoseUnsynced does.
func (l *LazyFS) LieSyncs(match func(rel string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lie = match
}

// Lied returns, by relative path, the fsyncs the disk lied to since
// LoseUnsynced last ran.
func (l *LazyFS) Lied() map[string]Lie {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.lies)
}

// lied reports whether an fsync of the file at p is to be a lie, and if
// so counts it.
func (l *LazyFS) lied(p string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	rel, err := filepath.Rel(l.backing, p)
	if l.lie == nil || err != nil || !l.lie(rel) {
		return false
	}
	lie := l.lies[rel]
	lie.Fsyncs++
	lie.Bytes = 0
	if u := l.files[p]; u != nil {
		lie.Bytes = u.unsynced(p)
	}
	l.lies[rel] = lie
	return true
}

// HoldSyncs makes every fsync wait d before it syncs, so that written but
// unsynced bytes stay unsynced for a while: a slow disk.
func (l *LazyFS) HoldSyncs(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.syncDelay = d
}

// Crash makes the disk stop: writes and fsyncs from now on, and the fsyncs
// being held, fail with EIO and change nothing. LoseUnsynced ends it.
func (l *LazyFS) Crash() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.crashed:
	default:
		close(l.crashed)
	}
}

func (l *LazyFS) state() (time.Duration, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.syncDelay, l.crashed
}

// LoseUnsynced puts every file back as it was at its last fsync (its last
// honest one, if the disk lied), and ends HoldSyncs, Crash and LieSyncs.
// Call it only while nothing has the file system open
// for writing (the member is dead). It returns the files it rolled back.
func (l *LazyFS) LoseUnsynced() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.syncDelay = 0
	l.lie = nil
	clear(l.lies)
	select {
	case <-l.crashed:
		l.crashed = make(chan struct{})
	default:
	}
	var changed []string
	var errs []error
	for p, u := range l.files {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for idx, b := range u.blocks {
			if _, err := f.WriteAt(b, idx*undoBlock); err != nil {
				errs = append(errs, err)
			}
		}
		if err := f.Truncate(u.size); err != nil {
			errs = append(errs, err)
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		f.Close()
		rel, _ := filepath.Rel(l.backing, p)
		changed = append(changed, rel)
	}
	clear(l.files)
	sort.Strings(changed)
	return changed, errors.Join(errs...)
}

// beforeWrite saves what [off, off+n) of the file at p held, if it was not
// saved since the last fsync.
func (l *LazyFS) beforeWrite(p string, off, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.files[p]
	if u == nil {
		st, err := os.Stat(p)
		if err != nil {
			return
		}
		u = &undoLog{size: st.Size(), blocks: map[int64][]byte{}}
		l.files[p] = u
	}
	end := min(off+n, u.size) // only what existed at the last fsync is saved
	if end <= off {
		return
	}
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	for idx := off / undoBlock; idx*undoBlock < end; idx++ {
		if _, ok := u.blocks[idx]; ok {
			continue
		}
		b := make([]byte, min(undoBlock, u.size-idx*undoBlock))
		m, _ := f.ReadAt(b, idx*undoBlock)
		u.blocks[idx] = b[:m]
	}
}

// synced drops the undo log of the file at p.
func (l *LazyFS) synced(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, p)
}

func (l *LazyFS) renamed(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, to)
	if u, ok := l.files[from]; ok {
		delete(l.files, from)
		l.files[to] = u
	}
}

func (l *LazyFS) removed(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, p)
}

// lazyNode is a loopback node whose files keep an undo log.
type lazyNode struct {
	fs.LoopbackNode
	l *LazyFS
}

func (n *lazyNode) backingPath(name ...string) string {
	return filepath.Join(append([]string{n.RootData.Path, n.Path(nil)}, name...)...)
}

func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		n.l.beforeWrite(n.backingPath(), 0, 0)
	}
	return &lazyFile{LoopbackFile: fh.(*fs.LoopbackFile), l: n.l, node: n}, fl, 0
}

func (n *lazyNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ino, fh, fl, errno
	}
	child, ok := ino.Operations().(*lazyNode)
	if !ok {
		return ino, fh, fl, 0
	}
	return ino, &lazyFile{LoopbackFile: fh.(*fs.LoopbackFile), l: n.l, node: child}, fl, 0
}

func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		n.l.beforeWrite(n.backingPath(), int64(sz), 1<<62)
	}
	if lf, ok := f.(*lazyFile); ok {
		f = lf.LoopbackFile
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

func (n *lazyNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 {
		if p, ok := newParent.(*lazyNode); ok {
			n.l.renamed(n.backingPath(name), p.backingPath(newName))
		}
	}
	return errno
}

func (n *lazyNode) Unlink(ctx context.Context, name string) syscall.Errno {
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 {
		n.l.removed(n.backingPath(name))
	}
	return errno
}

// lazyFile is a loopback file whose writes are logged for undo, under
// the file's current path (etcd renames WAL files while they are open).
type lazyFile struct {
	*fs.LoopbackFile
	l    *LazyFS
	node *lazyNode
}

func (f *lazyFile) path() string { return f.node.backingPath() }

// PassthroughFd: no kernel passthrough, every write comes to Write.
func (f *lazyFile) PassthroughFd() (int, bool) { return -1, false }

// down reports whether the disk crashed.
func (l *LazyFS) down() bool {
	_, crashed := l.state()
	select {
	case <-crashed:
		return true
	default:
		return false
	}
}

func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if f.l.down() {
		return 0, syscall.EIO
	}
	f.l.beforeWrite(f.path(), off, int64(len(data)))
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *lazyFile) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var n int64
	for _, d := range data {
		n += int64(len(d))
	}
	if f.l.down() {
		return 0, syscall.EIO
	}
	f.l.beforeWrite(f.path(), off, n)
	return f.LoopbackFile.Writev(ctx, data, off)
}

func (f *lazyFile) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	f.l.beforeWrite(f.path(), int64(off), int64(size))
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}

func (f *lazyFile) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		f.l.beforeWrite(f.path(), int64(sz), 1<<62)
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	delay, crashed := f.l.state()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-crashed:
		case <-ctx.Done():
			return syscall.EINTR
		}
	}
	if f.l.down() {
		return syscall.EIO
	}
	if f.l.lied(f.path()) {
		return 0
	}
	errno := f.LoopbackFile.Fsync(ctx, flags)
	if errno == 0 {
		f.l.synced(f.path())
	}
	return errno
}

// UseLazyFS puts the member's data dir on a LazyFS: the data moves to
// DataDir()+".disk" and a LazyFS of it is mounted at DataDir(). The member
// must not be running. The cluster's Close unmounts it and moves the data
// back, so the data dir is at rest where it was.
func (m *Member) UseLazyFS() (*LazyFS, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return nil, fmt.Errorf("lazyfs for %s: %w", m.name, ErrRunning)
	}
	if m.lazy != nil {
		return m.lazy, nil
	}
	backing := m.dataDir + ".disk"
	if err := os.Rename(m.dataDir, backing); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lazyfs for %s: %w", m.name, err)
	}
	if err := os.MkdirAll(backing, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
		return nil, err
	}
	l, err := MountLazyFS(backing, m.dataDir)
	if err != nil {
		_ = os.Remove(m.dataDir)
		_ = os.Rename(backing, m.dataDir)
		return nil, err
	}
	m.lazy = l
	return l, nil
}

// LazyFS is the member's LazyFS, or nil.
func (m *Member) LazyFS() *LazyFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lazy
}

// unmountLazyFS undoes UseLazyFS; the process must have exited.
func (m *Member) unmountLazyFS() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lazy == nil {
		return nil
	}
	if err := m.lazy.Unmount(); err != nil {
		return err
	}
	backing := m.lazy.backing
	m.lazy = nil
	if err := os.Remove(m.dataDir); err != nil {
		return fmt.Errorf("removing the lazyfs mountpoint of %s: %w", m.name, err)
	}
	return os.Rename(backing, m.dataDir)
}

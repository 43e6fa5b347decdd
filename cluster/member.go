package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// Timeouts used by Member.
const (
	// StopGracePeriod is how long Stop waits after SIGTERM before sending SIGKILL.
	StopGracePeriod = 5 * time.Second
	// killTimeout bounds the wait for a process to be reaped after SIGKILL.
	killTimeout = 30 * time.Second

	healthPollInterval   = 100 * time.Millisecond
	healthDialTimeout    = time.Second
	healthRequestTimeout = 2 * time.Second

	// logTailLines is how many log lines are quoted in errors about exited members.
	logTailLines = 10
)

var (
	// ErrClosed is returned by Member.Start after the member's Cluster was closed.
	ErrClosed = errors.New("cluster closed")
	// ErrRunning is returned by Member.Start when the member's process is already running.
	ErrRunning = errors.New("already running")
	// ErrExited is wrapped by WaitHealthy errors caused by the member's
	// process not running (it exited, or was never started).
	ErrExited = errors.New("etcd process not running")
	// ErrNoLeader is wrapped by Cluster.Leader errors when no member reports
	// itself as leader.
	ErrNoLeader = errors.New("no leader")
)

// Member is one etcd cluster member: at most one etcd process at a time,
// plus its data directory, log file and network addresses.
// All methods are safe for concurrent use.
type Member struct {
	name    string
	index   int
	dir     string // Dir/member-i
	dataDir string
	logPath string

	// Listen vs advertise addresses (URLs). etcd binds the listen ports;
	// peers and clients dial the advertise ports, where the fault proxy
	// (Network) listens and forwards to the listen ports.
	clientListen    string // --listen-client-urls
	clientAdvertise string // --advertise-client-urls; what ClientURL returns
	peerListen      string // --listen-peer-urls
	peerAdvertise   string // --initial-advertise-peer-urls and in --initial-cluster

	gofailAddr     string // host:port passed as GOFAIL_HTTP
	initialCluster string
	token          string
	extraArgs      []string
	tls            *memberTLS // its certificate's files; nil: plaintext
	lg             *zap.Logger
	clock          *runClock // the cluster's: times exits on the run's clock

	mu          sync.Mutex
	etcdPath    string
	etcdctlPath string
	etcdutlPath string
	paused      bool    // SIGSTOPped and not yet SIGCONTed
	lazy        *LazyFS // the data dir's LazyFS mount, if any
	closed      bool    // the cluster was closed: no more starts
	startedOnce bool    // a process was started at least once: use --initial-cluster-state=existing
	running     bool
	proc        *os.Process
	pid         int
	exited      chan struct{} // closed when the current process exits
	exitErr     error
	// What the harness knows of the current process, for its exit record.
	startedAt time.Time // when it started
	served    bool      // WaitHealthy saw it serve
	cause     string    // the harness's signal in flight ("harness: SIGKILL (kill)"), or ""
	records   []exitRecord

	// scanMu serializes reading the log for crash lines; scanOff is how
	// far the log has been read (the current process's lines start after).
	scanMu   sync.Mutex
	scanOff  int64
	sawReady bool // the current process logged that it serves clients
}

// exitRecord is a history.MemberExit with its times still on the wall
// clock; Exits puts them on the run's.
type exitRecord struct {
	history.MemberExit
	at, started time.Time
}

// closedChan returns an already closed channel, the Exited value of a
// member that has no process.
func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Name returns the member name, e.g. "member-0".
func (m *Member) Name() string { return m.name }

// ClientURL returns the advertised client URL, the one clients should dial.
// It goes through the member's client proxy, which client-side partitions cut.
func (m *Member) ClientURL() string { return m.clientAdvertise }

// DirectClientURL is the member's real client listener, which no fault
// cuts: for the harness's own checks and fault triggers.
func (m *Member) DirectClientURL() string { return m.clientListen }

// Index is the member's number: member-3 has index 3.
func (m *Member) Index() int { return m.index }

// DirectPeerURL is the member's own peer listener (http://host:port),
// past the fault proxy: for the harness's own requests to etcd's peer
// handlers (/downgrade/enabled, /version).
func (m *Member) DirectPeerURL() string { return m.peerListen }

// PeerURL returns the advertised peer URL.
func (m *Member) PeerURL() string { return m.peerAdvertise }

// GofailURL returns the base URL of the member's gofail HTTP endpoint
// (GOFAIL_HTTP), e.g. "http://127.0.0.1:23790". It only answers if the
// etcd binary was built with gofail failpoints enabled.
func (m *Member) GofailURL() string { return "http://" + m.gofailAddr }

// DataDir returns the member's etcd data directory.
func (m *Member) DataDir() string { return m.dataDir }

// LogPath returns the file receiving stdout and stderr of every process the
// member runs (appended across restarts).
func (m *Member) LogPath() string { return m.logPath }

// EtcdPath returns the etcd executable used by the next (or current) start.
func (m *Member) EtcdPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcdPath
}

// SetEtcdPath sets the etcd executable used by the next Start; a running
// process is not affected. Used for upgrades and downgrades.
func (m *Member) SetEtcdPath(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.etcdPath = p
}

// EtcdctlPath and EtcdutlPath are the member's own etcdctl and etcdutl
// ("" if the cluster was not given them).
func (m *Member) EtcdctlPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcdctlPath
}

// EtcdutlPath: see EtcdctlPath.
func (m *Member) EtcdutlPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcdutlPath
}

// SetBinaries sets the member's etcd, etcdctl and etcdutl for the next
// Start (empty strings keep the current ones).
func (m *Member) SetBinaries(etcd, etcdctl, etcdutl string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range []struct {
		dst *string
		v   string
	}{{&m.etcdPath, etcd}, {&m.etcdctlPath, etcdctl}, {&m.etcdutlPath, etcdutl}} {
		if p.v != "" {
			*p.dst = p.v
		}
	}
}

// ExtraArgs are the member's own extra etcd flags.
func (m *Member) ExtraArgs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.extraArgs...)
}

// SetExtraArgs replaces the member's extra etcd flags for the next Start.
func (m *Member) SetExtraArgs(args []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.extraArgs = append([]string(nil), args...)
}

// Paused reports whether the member's process is SIGSTOPped.
func (m *Member) Paused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

// Pause SIGSTOPs the running process. Resume, Stop, Kill and the
// cluster's Close all SIGCONT it again.
func (m *Member) Pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running {
		return fmt.Errorf("pause %s: %w", m.name, ErrExited)
	}
	if err := m.proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s (pid %d): %w", m.name, m.pid, err)
	}
	m.paused = true
	m.lg.Info("paused etcd (SIGSTOP)", zap.Int("pid", m.pid))
	return nil
}

// Resume SIGCONTs a paused process; it is a no-op otherwise.
func (m *Member) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resumeLocked()
}

func (m *Member) resumeLocked() error {
	if !m.paused {
		return nil
	}
	m.paused = false
	if !m.running {
		return nil
	}
	if err := m.proc.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("resume %s (pid %d): %w", m.name, m.pid, err)
	}
	m.lg.Info("resumed etcd (SIGCONT)", zap.Int("pid", m.pid))
	return nil
}

// ProcessState returns the state letter of the running process in
// /proc/PID/stat ("T" when stopped), or "" if there is none.
func (m *Member) ProcessState() string {
	_, pid, _, ok := m.current()
	if !ok {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) S ...: comm may hold spaces, so cut at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Running reports whether the member's process is running (started and not
// yet exited).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// PID returns the pid of the current process, or of the last one if none
// is running; 0 if the member was never started.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pid
}

// Exited returns a channel that is closed when the current process exits.
// Each Start creates a fresh channel, so call Exited after Start. If no
// process is running the returned channel is already closed.
func (m *Member) Exited() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exited
}

// ExitErr returns the exit status of the last process as reported by
// exec.Cmd.Wait (e.g. "signal: killed"), or nil if a process is running, the
// member was never started, or the last process exited with status 0.
func (m *Member) ExitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

func (m *Member) markClosed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
}

// args returns the etcd command line (without argv[0]). It only uses flags
// that exist in etcd v3.4 through v3.7.
func (m *Member) args(state string) []string {
	args := []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientListen,
		"--advertise-client-urls", m.clientAdvertise,
		"--listen-peer-urls", m.peerListen,
		"--initial-advertise-peer-urls", m.peerAdvertise,
		"--initial-cluster", m.initialCluster,
		"--initial-cluster-state", state,
		"--initial-cluster-token", m.token,
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	args = append(args, m.tls.args()...)
	return append(args, m.extraArgs...)
}

// childEnv returns the environment of an etcd process: the harness's
// environment without ETCD_* variables (etcd treats them as flags, and
// rejects ones that conflict with command-line flags) and without GOFAIL_*
// variables, plus GOFAIL_HTTP for this member. ETCD_UNSUPPORTED_ARCH is kept
// since etcd refuses to start on some architectures without it.
func (m *Member) childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "ETCD_UNSUPPORTED_ARCH" && (strings.HasPrefix(k, "ETCD_") || strings.HasPrefix(k, "GOFAIL_")) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOFAIL_HTTP="+m.gofailAddr)
}

// Start (re)starts the member's etcd process on its data dir. The first
// start uses --initial-cluster-state=new, later ones "existing". Start does
// not wait for the member to become healthy; see WaitHealthy. It fails if a
// process is already running or the cluster was closed.
func (m *Member) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("start %s: %w", m.name, ErrClosed)
	}
	if m.running {
		return fmt.Errorf("start %s (pid %d): %w", m.name, m.pid, ErrRunning)
	}
	state := "new"
	if m.startedOnce {
		state = "existing"
	}
	args := m.args(state)

	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	logFile, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: open log: %w", m.name, err)
	}
	// The child gets its own copy of the descriptor; ours is closed on return.
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== start %s: %s %s ===\n",
		time.Now().Format(time.RFC3339Nano), m.etcdPath, strings.Join(args, " "))
	// The earlier processes' lines were read when they exited (wait reads
	// them before it marks the member not running): this one's start here.
	var logStart int64
	if st, err := logFile.Stat(); err == nil {
		logStart = st.Size()
	}

	cmd := exec.Command(m.etcdPath, args...)
	cmd.Dir = m.dir
	cmd.Env = m.childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logFile, "=== start failed: %v ===\n", err)
		return fmt.Errorf("start %s (%s): %w", m.name, m.etcdPath, err)
	}

	pid := cmd.Process.Pid
	exited := make(chan struct{})
	m.startedOnce = true
	m.running = true
	m.proc = cmd.Process
	m.pid = pid
	m.exited = exited
	m.exitErr = nil
	m.paused = false
	m.startedAt = time.Now()
	m.served = false
	m.cause = ""
	m.scanMu.Lock()
	m.scanOff = logStart
	m.sawReady = false
	m.scanMu.Unlock()
	m.lg.Info("started etcd", zap.Int("pid", pid), zap.String("etcd", m.etcdPath),
		zap.String("initial-cluster-state", state), zap.String("log", m.logPath))

	go m.wait(cmd, pid, exited)
	return nil
}

// wait reaps the process, records its exit status and closes exited.
func (m *Member) wait(cmd *exec.Cmd, pid int, exited chan struct{}) {
	err := cmd.Wait()
	at := time.Now()
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	m.recordExit(pid, at, status)
	// Written before the state changes so that it precedes the header of
	// any later start in the log file.
	m.appendLog(fmt.Sprintf("=== exited %s: pid %d: %s ===", at.Format(time.RFC3339Nano), pid, status))
	m.lg.Info("etcd exited", zap.Int("pid", pid), zap.String("status", status))

	m.mu.Lock()
	m.running = false
	m.paused = false
	m.proc = nil
	m.exitErr = err
	m.mu.Unlock()
	close(exited)
}

// Bounds on what an exit record quotes.
const (
	// exitTailLines are the last lines quoted for a process that ended on
	// its own without a panic or fatal line.
	exitTailLines = 10
	// maxLineLen bounds one quoted line.
	maxLineLen = 2048
	// maxLoggedRecords bounds the records of lines logged by one process
	// that kept running.
	maxLoggedRecords = 20
	// crashToExit is how soon after a crash line a process that ends on
	// its own is taken to have ended of it.
	crashToExit = 5 * time.Second
)

// recordExit reads the rest of the exited process's log and records its
// end: when, its status, what the harness had in flight, whether it ever
// served, and the lines that explain it. Crash lines before the last one
// are recorded as lines it logged while it ran.
func (m *Member) recordExit(pid int, at time.Time, status string) {
	m.mu.Lock()
	cause, served, started := m.cause, m.served, m.startedAt
	m.mu.Unlock()

	m.scanMu.Lock()
	found, tail := m.scanLocked(false)
	served = served || m.sawReady
	m.scanMu.Unlock()

	rec := exitRecord{at: at, started: started, MemberExit: history.MemberExit{
		Member: m.name, PID: pid, Status: status, Cause: cause, Startup: !served,
	}}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case len(found) > 0 && cause != "":
		// Lines logged once the harness's signal was on its way (scanned
		// before it was sent) belong to the end the harness caused.
		rec.Log = found[0].lines
	case len(found) > 0:
		for _, f := range found[:len(found)-1] {
			m.addLoggedLocked(pid, started, f)
		}
		rec.Log = found[len(found)-1].lines
	case cause == "":
		rec.Log = tail
		// A crash line read while the process still ran, just before it
		// ended on its own (a scan between a panic and the exit), is the
		// exit's.
		if k := m.lastLoggedLocked(pid); k >= 0 && at.Sub(m.records[k].at) < crashToExit {
			rec.Log = append(m.records[k].Log, tail...)
			if len(rec.Log) > history.MaxTraceLines+1 {
				rec.Log = rec.Log[:history.MaxTraceLines+1]
			}
			m.records = append(m.records[:k], m.records[k+1:]...)
		}
	}
	m.records = append(m.records, rec)
	if cause == "" {
		m.lg.Warn("etcd exited on its own", zap.Int("pid", pid), zap.String("status", status),
			zap.Bool("during-startup", !served), zap.String("line", rec.FirstCrashLine()))
	}
}

// addLoggedLocked records a crash line a running process logged.
func (m *Member) addLoggedLocked(pid int, started time.Time, f crashLines) {
	n := 0
	for _, r := range m.records {
		if r.PID == pid && !r.Exited() {
			n++
		}
	}
	if n >= maxLoggedRecords {
		return
	}
	m.records = append(m.records, exitRecord{at: f.at, started: started, MemberExit: history.MemberExit{
		Member: m.name, PID: pid, Log: f.lines,
	}})
	m.lg.Warn("etcd logged a crash line", zap.Int("pid", pid), zap.String("line", f.lines[0]))
}

// lastLoggedLocked is the index of the last logged-line record of pid, or -1.
func (m *Member) lastLoggedLocked(pid int) int {
	for k := len(m.records) - 1; k >= 0; k-- {
		if r := m.records[k]; r.PID == pid && !r.Exited() {
			return k
		}
	}
	return -1
}

// ScanLog reads what the running process logged since the last read and
// records every panic or fatal line in it (see history.CrashLine) as a
// line logged by a member that kept running. Kill and Stop do it before
// they signal, and a member's exit reads the rest, so every line is read
// once.
func (m *Member) ScanLog() {
	m.mu.Lock()
	pid, running, started := m.pid, m.running, m.startedAt
	m.mu.Unlock()
	if !running {
		return
	}
	m.scanMu.Lock()
	found, _ := m.scanLocked(true)
	m.scanMu.Unlock()
	if len(found) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pid != pid {
		return // it exited and another started meanwhile: wait recorded them
	}
	for _, f := range found {
		m.addLoggedLocked(pid, started, f)
	}
}

// crashLines is one crash line and the trace after it.
type crashLines struct {
	lines []string
	at    time.Time // the zap line's timestamp, else when it was read
}

// scanLocked reads the log from scanOff and returns the crash lines in it,
// each with up to history.MaxTraceLines non-blank lines after it, and the
// last exitTailLines lines read. With complete, it stops before a last
// line that is not yet terminated (the process may still be writing it).
// It moves scanOff past what it read. The caller holds scanMu.
func (m *Member) scanLocked(complete bool) (found []crashLines, tail []string) {
	f, err := os.Open(m.logPath)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	if _, err := f.Seek(m.scanOff, io.SeekStart); err != nil {
		return nil, nil
	}
	now := time.Now()
	r := bufio.NewReaderSize(f, 64<<10)
	var cur *crashLines // the crash line whose trace is being read
	for {
		line, err := r.ReadString('\n')
		if err != nil && (complete || line == "") {
			break // io.EOF, or a partial line left for the next read
		}
		m.scanOff += int64(len(line))
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "=== ") {
			cur = nil // the harness's own marker: the trace is over
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) > maxLineLen {
			line = line[:maxLineLen] + "..."
		}
		tail = append(tail, line)
		if len(tail) > exitTailLines {
			tail = tail[1:]
		}
		if cur != nil && len(cur.lines) <= history.MaxTraceLines {
			cur.lines = append(cur.lines, line)
			continue
		}
		cur = nil
		if !m.sawReady && strings.Contains(line, readyLine) {
			m.sawReady = true
		}
		if _, ok := history.CrashLine(line); ok {
			found = append(found, crashLines{lines: []string{line}, at: zapTime(line, now)})
			cur = &found[len(found)-1]
		}
		if err != nil {
			break
		}
	}
	return found, tail
}

// readyLine is what etcd (v3.4 to v3.7) logs once it serves clients.
const readyLine = `"msg":"ready to serve client requests"`

// zapTime is the timestamp of a zap JSON line ("ts":"2006-01-02T15:04:05.999999Z"),
// or def.
func zapTime(line string, def time.Time) time.Time {
	const key = `"ts":"`
	i := strings.Index(line, key)
	if i < 0 {
		return def
	}
	rest := line[i+len(key):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return def
	}
	t, err := time.Parse(time.RFC3339Nano, rest[:j])
	if err != nil || t.After(def) {
		return def
	}
	// On the monotonic clock, as the run's times are.
	return def.Add(-def.Sub(t))
}

// markServed notes that the process pid served a request.
func (m *Member) markServed(pid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running && m.pid == pid {
		m.served = true
	}
}

// setCause records what the harness is about to do to the process pid.
func (m *Member) setCause(pid int, cause string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running && m.pid == pid {
		m.cause = cause
	}
}

// Exits are every end of the member's processes so far, and the panic or
// fatal lines they logged while they ran (as far as read: see ScanLog), in
// the order they were recorded, timed on the cluster's clock.
func (m *Member) Exits() []history.MemberExit {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]history.MemberExit, len(m.records))
	for i, r := range m.records {
		out[i] = r.MemberExit
		out[i].Time = m.clock.at(r.at)
		out[i].Started = m.clock.at(r.started)
	}
	return out
}

func (m *Member) appendLog(line string) {
	f, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		m.lg.Warn("cannot append to member log", zap.Error(err))
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// current returns the running process and its exit channel, or ok=false if
// none is running.
func (m *Member) current() (proc *os.Process, pid int, exited <-chan struct{}, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running {
		return nil, m.pid, m.exited, false
	}
	return m.proc, m.pid, m.exited, true
}

// Kill sends SIGKILL to the running process and waits for it to exit.
// It is a no-op if no process is running.
func (m *Member) Kill() error {
	proc, pid, exited, ok := m.current()
	if !ok {
		return nil
	}
	m.lg.Info("killing etcd (SIGKILL)", zap.Int("pid", pid))
	m.ScanLog()
	m.setCause(pid, "harness: SIGKILL (kill)")
	return m.kill(proc, pid, exited)
}

func (m *Member) kill(proc *os.Process, pid int, exited <-chan struct{}) error {
	if err := proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", m.name, pid, err)
	}
	_ = m.Resume()
	select {
	case <-exited:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("kill %s (pid %d): process not reaped %v after SIGKILL", m.name, pid, killTimeout)
	}
}

// Stop sends SIGTERM to the running process and waits for it to exit. If it
// has not exited after StopGracePeriod, or when ctx is done, it sends SIGKILL
// (logged as a warning) and waits for that. It returns nil once the process
// is gone, whichever signal ended it; it is a no-op if no process is running.
func (m *Member) Stop(ctx context.Context) error { return m.stop(ctx, "stop") }

// stop is Stop, with why the harness stops the process for its exit
// record ("stop", "close", "removed from the cluster").
func (m *Member) stop(ctx context.Context, why string) error {
	proc, pid, exited, ok := m.current()
	if !ok {
		return nil
	}
	m.lg.Info("stopping etcd (SIGTERM)", zap.Int("pid", pid))
	m.ScanLog()
	cause := "harness: SIGTERM (" + why + ")"
	m.setCause(pid, cause)
	if err := proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", m.name, pid, err)
	}
	// A stopped process handles SIGTERM only once it runs again.
	if err := m.Resume(); err != nil {
		m.lg.Warn("resuming a paused member to stop it", zap.Error(err))
	}
	grace := time.NewTimer(StopGracePeriod)
	defer grace.Stop()
	select {
	case <-exited:
		return nil
	case <-grace.C:
		m.lg.Warn("etcd did not exit after SIGTERM; sending SIGKILL", zap.Int("pid", pid), zap.Duration("grace", StopGracePeriod))
	case <-ctx.Done():
		m.lg.Warn("stop canceled; sending SIGKILL", zap.Int("pid", pid), zap.Error(ctx.Err()))
	}
	m.setCause(pid, cause+", then SIGKILL")
	if err := m.kill(proc, pid, exited); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// SwitchRelease sets the etcd, etcdctl and etcdutl the next Start runs
// (empty strings keep the current ones), as an upgrade or downgrade does,
// and records the change: in the harness's log, and as a marker line in
// the member's own log, so the log shows which release ran each process.
// A running process is not affected.
func (m *Member) SwitchRelease(from, to, etcd, etcdctl, etcdutl string) {
	m.SetBinaries(etcd, etcdctl, etcdutl)
	m.lg.Info("member changes release", zap.String("from", from), zap.String("to", to), zap.String("etcd", etcd))
	m.appendLog(fmt.Sprintf("=== release %s: %s -> %s (%s) ===", time.Now().Format(time.RFC3339Nano), from, to, etcd))
}

// TryStart runs etcdPath once on the member's data dir, with the member's
// flags, while the member is stopped, and waits up to wait for it to exit
// on its own: for faults that check that a release refuses the data (a
// refused start). The process is not the member's: it is not recorded
// among the member's exits, and Start, Stop and Kill do not see it. If it
// is still running after wait (it accepted the data), TryStart kills it
// and reports stillRunning. Its output goes to the member's log between
// markers and is returned.
func (m *Member) TryStart(ctx context.Context, etcdPath string, wait time.Duration) (output string, exitErr error, stillRunning bool, err error) {
	m.mu.Lock()
	if m.running || m.closed {
		m.mu.Unlock()
		return "", nil, false, fmt.Errorf("try start %s: the member is running or closed", m.name)
	}
	args := m.args("existing")
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdPath, args...)
	cmd.Dir = m.dir
	cmd.Env = m.childEnv()
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = killTimeout
	m.appendLog(fmt.Sprintf("=== try start %s: %s %s ===", time.Now().Format(time.RFC3339Nano), etcdPath, strings.Join(args, " ")))
	m.lg.Info("trying etcd on the member's data", zap.String("etcd", etcdPath))
	out, runErr := cmd.CombinedOutput()
	m.appendLog(strings.TrimRight(string(out), "\n"))
	stillRunning = ctx.Err() != nil
	m.appendLog(fmt.Sprintf("=== try start ended %s: %v (killed after %v: %v) ===", time.Now().Format(time.RFC3339Nano), runErr, wait, stillRunning))
	// The marker lines and output were read here, not by a process of the
	// member: skip them in the crash scan.
	m.scanMu.Lock()
	if st, serr := os.Stat(m.logPath); serr == nil {
		m.scanOff = st.Size()
	}
	m.scanMu.Unlock()
	return string(out), runErr, stillRunning, nil
}

// MoveLeaderTo asks m, which must be the leader, to hand leadership to
// to, and waits (within ctx) until etcd reports the transfer done.
func (m *Member) MoveLeaderTo(ctx context.Context, to *Member) error {
	id, err := to.ID(ctx)
	if err != nil {
		return err
	}
	cli, err := m.dial(ctx)
	if err != nil {
		return fmt.Errorf("move leader from %s to %s: %w", m.name, to.name, err)
	}
	defer cli.Close()
	if _, err := cli.MoveLeader(ctx, id); err != nil {
		return fmt.Errorf("move leader from %s to %s: %w", m.name, to.name, err)
	}
	return nil
}

package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// JournalFile is what a run has recorded so far, written as the run goes
// (Journal): one JSON line per operation, watch opened and watch response,
// zstd-compressed, flushed every JournalFlush. The run removes it once the
// record is written, which holds all of it and more; it remains only when
// the harness died first (killed, out of memory). Load then refuses the
// directory in one line that says what the journal holds, and ReadJournal
// reads it.
const JournalFile = "journal.jsonl.zst"

// JournalFlush is how often the journal is flushed to its file: a harness
// that dies loses at most this much of it.
const JournalFlush = time.Second

// journalLine is one line of the journal: exactly one field is set.
type journalLine struct {
	Op    *history.Operation     `json:"op,omitempty"`
	Watch *history.Watch         `json:"watch,omitempty"`
	Resp  *history.WatchResponse `json:"resp,omitempty"`
	// Of is the ID of the watch a response is of.
	Of int `json:"of,omitempty"`
}

// Journal writes what a run records to JournalFile as it is recorded
// (history.Journal). It is safe for concurrent use.
type Journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
	zw   *zstd.Encoder
	bw   *bufio.Writer
	err  error // the first write error; the journal stops there
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// OpenJournal creates dir's journal and starts flushing it every
// JournalFlush until Close.
func OpenJournal(dir string) (*Journal, error) {
	path := filepath.Join(dir, JournalFile)
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("report: journal: %w", err)
	}
	// The fastest level: the journal is written while traffic runs, and
	// kept only when the record could not be.
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("report: journal: %w", err)
	}
	j := &Journal{path: path, f: f, zw: zw, bw: bufio.NewWriterSize(zw, 256<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go j.flusher()
	return j, nil
}

func (j *Journal) flusher() {
	defer close(j.done)
	t := time.NewTicker(JournalFlush)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.mu.Lock()
			j.flush()
			j.mu.Unlock()
		}
	}
}

// flush ends the current zstd block, so that a reader of the file gets
// every line written so far. j.mu is held.
func (j *Journal) flush() {
	if j.err != nil || j.bw == nil {
		return
	}
	if err := j.bw.Flush(); err != nil {
		j.err = err
		return
	}
	if err := j.zw.Flush(); err != nil {
		j.err = err
	}
}

func (j *Journal) write(l journalLine) {
	b, err := json.Marshal(l)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil || j.bw == nil {
		return
	}
	if err != nil {
		j.err = err
		return
	}
	b = append(b, '\n')
	if _, err := j.bw.Write(b); err != nil {
		j.err = err
	}
}

// Operation implements history.Journal.
func (j *Journal) Operation(op history.Operation) { j.write(journalLine{Op: &op}) }

// WatchOpened implements history.Journal.
func (j *Journal) WatchOpened(w history.Watch) { j.write(journalLine{Watch: &w}) }

// WatchResponse implements history.Journal.
func (j *Journal) WatchResponse(watch int, r history.WatchResponse) {
	j.write(journalLine{Resp: &r, Of: watch})
}

// Close flushes and closes the journal; what is recorded after is not
// journaled. It returns the first error the journal met; closing it again
// does nothing more.
func (j *Journal) Close() error {
	j.once.Do(func() {
		close(j.stop)
		<-j.done
	})
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.bw == nil {
		return j.err
	}
	j.flush()
	if err := j.zw.Close(); err != nil && j.err == nil {
		j.err = err
	}
	if err := j.f.Close(); err != nil && j.err == nil {
		j.err = err
	}
	j.bw = nil
	if j.err != nil {
		return fmt.Errorf("report: journal: %w", j.err)
	}
	return nil
}

// Remove closes the journal and deletes its file: the record written in
// its place holds all it held.
func (j *Journal) Remove() error {
	err := j.Close()
	if rmErr := os.Remove(j.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		return fmt.Errorf("report: journal: %w", rmErr)
	}
	return err
}

// Journaled is what a journal held: each client's operations and each
// watch stream with its responses, in the order they were recorded.
type Journaled struct {
	Clients []history.Client
	Watches []history.Watch
	// Lines counts the journal's lines read; Complete is false when the
	// file ended inside a line or a block, as it does when the harness
	// died while writing it (what came before is kept).
	Lines    int
	Complete bool
}

// ReadJournal reads dir's journal, up to where it was cut short.
func ReadJournal(dir string) (Journaled, error) {
	var out Journaled
	f, err := os.Open(filepath.Join(dir, JournalFile))
	if err != nil {
		return out, fmt.Errorf("report: journal: %w", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxRecordWindow))
	if err != nil {
		return out, fmt.Errorf("report: journal: %w", err)
	}
	defer zr.Close()
	clients := map[int]*history.Client{}
	watches := map[int]*history.Watch{}
	var order []int
	br := bufio.NewReaderSize(zr, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var l journalLine
			if jerr := json.Unmarshal(line, &l); jerr != nil {
				return out, fmt.Errorf("report: journal line %d: %w", out.Lines+1, jerr)
			}
			out.Lines++
			switch {
			case l.Op != nil:
				c := clients[l.Op.ClientID]
				if c == nil {
					c = &history.Client{ID: l.Op.ClientID}
					clients[l.Op.ClientID] = c
				}
				c.Operations = append(c.Operations, *l.Op)
			case l.Watch != nil:
				if watches[l.Watch.ID] == nil {
					order = append(order, l.Watch.ID)
				}
				w := *l.Watch
				watches[w.ID] = &w
			case l.Resp != nil:
				w := watches[l.Of]
				if w == nil {
					return out, fmt.Errorf("report: journal line %d: a response of watch %d, which no line opened", out.Lines, l.Of)
				}
				w.Responses = append(w.Responses, *l.Resp)
			}
		}
		if errors.Is(err, io.EOF) {
			out.Complete = len(line) == 0
			break
		}
		if err != nil {
			// A block cut short: what was read before it stands.
			break
		}
	}
	for _, c := range clients {
		out.Clients = append(out.Clients, *c)
	}
	sort.Slice(out.Clients, func(i, k int) bool { return out.Clients[i].ID < out.Clients[k].ID })
	for _, id := range order {
		out.Watches = append(out.Watches, *watches[id])
	}
	return out, nil
}

// Counts says in a few words what the journal holds.
func (j Journaled) Counts() string {
	ops, resps := 0, 0
	for _, c := range j.Clients {
		ops += len(c.Operations)
	}
	for _, w := range j.Watches {
		resps += len(w.Responses)
	}
	s := fmt.Sprintf("%d operations of %d clients, %d watch streams with %d responses", ops, len(j.Clients), len(j.Watches), resps)
	if !j.Complete {
		s += ", cut short where the harness stopped writing it"
	}
	return s
}

package report

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
)

// journalRun opens a journal in a new directory and journals ops
// operations of 4 clients and 2 watch streams with a response each
// operation, from goroutines at once, as a run does.
func journalRun(t *testing.T, ops int) (string, *Journal) {
	t.Helper()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	require.NoError(t, err)
	for w := range 2 {
		j.WatchOpened(history.Watch{ID: w, ClientID: 100 + w, Request: history.WatchRequest{Key: "k"}, ResumedFrom: -1})
	}
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				at := time.Duration(i) * time.Millisecond
				j.Operation(history.Operation{ClientID: c, Call: at, Return: at + 1, Request: history.Put("k", "v"),
					Response: &history.Response{Header: history.Header{Revision: int64(i + 2)}, Put: &history.PutResponse{}}})
				j.WatchResponse(c%2, history.WatchResponse{Time: at + 2, Header: history.Header{Revision: int64(i + 2)}})
			}
		}()
	}
	wg.Wait()
	return dir, j
}

func TestJournalRoundTrip(t *testing.T) {
	dir, j := journalRun(t, 500)
	require.NoError(t, j.Close())
	require.NoError(t, j.Close(), "closing twice does nothing more")
	j.Operation(history.Operation{ClientID: 9}) // after Close: not journaled

	got, err := ReadJournal(dir)
	require.NoError(t, err)
	require.True(t, got.Complete)
	require.Equal(t, 2+4*500*2, got.Lines)
	require.Len(t, got.Clients, 4)
	for i, c := range got.Clients {
		require.Equal(t, i, c.ID)
		require.Len(t, c.Operations, 500)
		for k, o := range c.Operations {
			require.Equal(t, time.Duration(k)*time.Millisecond, o.Call, "a client's operations keep their order")
		}
	}
	require.Len(t, got.Watches, 2)
	require.Equal(t, 100, got.Watches[0].ClientID)
	require.Len(t, got.Watches[0].Responses, 1000)
	require.Len(t, got.Watches[1].Responses, 1000)
}

// A harness that dies leaves the journal as flushed so far, with no end:
// what was flushed reads back, the journal says it was cut short, and Load
// names it instead of calling the report corrupt.
func TestJournalCutShort(t *testing.T) {
	dir, j := journalRun(t, 300)
	j.mu.Lock()
	j.flush() // what the flusher does every JournalFlush
	j.mu.Unlock()
	// The process dies here: copy the file as it is, unclosed, and cut
	// into its last block as well.
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	for _, cut := range []int{len(b), len(b) - 7} {
		crashed := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(crashed, JournalFile), b[:cut], 0o644))
		got, err := ReadJournal(crashed)
		require.NoError(t, err)
		require.False(t, got.Complete)
		ops := 0
		for _, c := range got.Clients {
			ops += len(c.Operations)
		}
		if cut == len(b) {
			require.Equal(t, 4*300, ops, "everything flushed is read back")
		}
		_, err = Load(crashed)
		require.ErrorContains(t, err, "only the journal of a run that did not finish")
		require.ErrorContains(t, err, "cut short")
	}
}

// The run removes the journal once the record is written.
func TestJournalRemove(t *testing.T) {
	dir, j := journalRun(t, 10)
	require.NoError(t, j.Remove())
	_, err := os.Stat(filepath.Join(dir, JournalFile))
	require.ErrorIs(t, err, os.ErrNotExist)
}

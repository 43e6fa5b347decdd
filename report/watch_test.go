package report

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/validate"
)

func watchEvent(key, value string, rev int64) history.WatchEvent {
	return history.WatchEvent{Type: "PUT", KV: history.KeyValue{Key: key, Value: value, CreateRevision: rev, ModRevision: rev, Version: 1}}
}

// A watch whose revision goes back: the section names the check, the
// watch and its request, and shows the responses around it with the
// violating one marked.
func TestWatchSection(t *testing.T) {
	w := history.Watch{ID: 3, ClientID: 1000, Endpoints: []string{"http://127.0.0.1:1"}, ResumedFrom: -1, EndReason: "done",
		Request: history.WatchRequest{Key: "key-", RangeEnd: "key.", StartRevision: 1, PrevKV: true},
		Responses: []history.WatchResponse{
			{Created: true, Header: history.Header{MemberID: 0xabc, Revision: 1}},
			{Header: history.Header{MemberID: 0xabc, Revision: 4}, Events: []history.WatchEvent{watchEvent("key-a", "1", 4)}},
			{Header: history.Header{MemberID: 0xabc, Revision: 5}},
			{Header: history.Header{MemberID: 0xabc, Revision: 5}, Events: []history.WatchEvent{watchEvent("key-b", "2", 3)}},
		}}
	rec := Record{Input: validate.Input{Watches: []history.Watch{w}, FinalRead: -1}}
	res := validate.Watch{}.Validate(context.Background(), &validate.Check{Input: rec.Input})
	res.Validator = validate.Watch{}.Name()
	require.Equal(t, validate.Illegal, res.Verdict, res.Message)

	html := string(WatchSection(rec, Summary{Results: []validate.Result{res}}))
	require.Contains(t, html, "Watch violation")
	require.Contains(t, html, "<b>ordered</b>")
	require.Contains(t, html, `&#34;start_revision&#34;:1`)
	require.Contains(t, html, MemberName(0xabc))
	require.Contains(t, html, "progress notification at 5")
	require.Equal(t, 1, strings.Count(html, `class="illegal"`), "the violating response is marked")
	require.Contains(t, html, "PUT key-b = 2 @3")
	require.Contains(t, html, "could not be replayed", "no committed log in this record")

	// A run whose watch stage passed has no section.
	res.Verdict = validate.OK
	require.Empty(t, WatchSection(rec, Summary{Results: []validate.Result{res}}))
}

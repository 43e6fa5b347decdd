package model

import (
	"fmt"
	"slices"
	"strings"
)

// Diff lists, field by field, how got differs from want, the model's
// answer: one "field: want X, got Y" per differing field, e.g. "more: want
// true, got false", "kvs[1].mod_revision: want 41, got 37", "count: want
// 12, got 5", "header.revision: want 8, got 7", "succeeded: want false,
// got true". It compares exactly what want.Equal(got) compares, so it is
// empty exactly when Equal says the two are the same: AppliedTo is not
// compared, and a lease answer of the model's with MinTTL accepts any TTL
// at least its own. The fields of a transaction's results are named
// without a prefix when there is one result, and "results[i]." otherwise.
func Diff(want, got Response) []string {
	var out []string
	add := func(field string, w, g any) { out = append(out, fmt.Sprintf("%s: want %v, got %v", field, w, g)) }
	if want.Status != got.Status {
		add("status", statusName(want.Status), statusName(got.Status))
	}
	if want.Error != got.Error {
		add("error", quoted(want.Error), quoted(got.Error))
	}
	if want.Status != got.Status {
		return out // the rest compares answers of different kinds
	}
	if want.Revision != got.Revision {
		add("header.revision", want.Revision, got.Revision)
	}
	if (want.Lease == nil) != (got.Lease == nil) {
		add("lease", presence(want.Lease != nil, "a lease answer"), presence(got.Lease != nil, "a lease answer"))
	} else if want.Lease != nil {
		out = append(out, diffLease(want.Lease, got.Lease)...)
	}
	if (want.Txn == nil) != (got.Txn == nil) {
		add("txn", presence(want.Txn != nil, "a transaction's answer"), presence(got.Txn != nil, "a transaction's answer"))
	} else if want.Txn != nil {
		out = append(out, diffTxn(want.Txn, got.Txn)...)
	}
	if len(out) == 0 && !want.Equal(got) {
		// A field Equal compares that Diff does not know yet.
		add("response", want, got)
	}
	return out
}

// diffLease compares lease answers as LeaseResponse.equal does.
func diffLease(want, got *LeaseResponse) []string {
	var out []string
	add := func(field string, w, g any) { out = append(out, fmt.Sprintf("lease.%s: want %v, got %v", field, w, g)) }
	if want.ID != got.ID {
		add("id", want.ID, got.ID)
	}
	if !slices.Equal(want.Keys, got.Keys) {
		add("keys", want.Keys, got.Keys)
	}
	if !slices.Equal(want.Leases, got.Leases) {
		add("leases", want.Leases, got.Leases)
	}
	switch {
	case want.MinTTL:
		if got.TTL < want.TTL {
			add("ttl", fmt.Sprintf("at least %d", want.TTL), got.TTL)
		}
		if got.GrantedTTL < want.GrantedTTL {
			add("granted_ttl", fmt.Sprintf("at least %d", want.GrantedTTL), got.GrantedTTL)
		}
	default:
		if want.TTL != got.TTL {
			add("ttl", want.TTL, got.TTL)
		}
		if want.GrantedTTL != got.GrantedTTL {
			add("granted_ttl", want.GrantedTTL, got.GrantedTTL)
		}
	}
	return out
}

// diffTxn compares transaction answers as Response.Equal does.
func diffTxn(want, got *TxnResponse) []string {
	var out []string
	if want.Succeeded != got.Succeeded {
		out = append(out, fmt.Sprintf("succeeded: want %t, got %t", want.Succeeded, got.Succeeded))
	}
	if len(want.Results) != len(got.Results) {
		return append(out, fmt.Sprintf("results: want %d, got %d", len(want.Results), len(got.Results)))
	}
	for i := range want.Results {
		prefix := ""
		if len(want.Results) > 1 {
			prefix = fmt.Sprintf("results[%d].", i)
		}
		out = append(out, diffResult(prefix, want.Results[i], got.Results[i])...)
	}
	return out
}

// diffResult compares one operation's result, each field named after
// prefix.
func diffResult(prefix string, want, got OpResult) []string {
	var out []string
	add := func(field string, w, g any) {
		out = append(out, fmt.Sprintf("%s%s: want %v, got %v", prefix, field, w, g))
	}
	if want.Count != got.Count {
		add("count", want.Count, got.Count)
	}
	if want.More != got.More {
		add("more", want.More, got.More)
	}
	if want.Deleted != got.Deleted {
		add("deleted", want.Deleted, got.Deleted)
	}
	out = append(out, diffKVs(prefix+"kvs", want.KVs, got.KVs)...)
	out = append(out, diffKVs(prefix+"prev_kvs", want.PrevKVs, got.PrevKVs)...)
	switch {
	case (want.PrevKV == nil) != (got.PrevKV == nil):
		add("prev_kv", kvOrNone(want.PrevKV), kvOrNone(got.PrevKV))
	case want.PrevKV != nil:
		out = append(out, diffKV(prefix+"prev_kv", *want.PrevKV, *got.PrevKV)...)
	}
	return out
}

// diffKVs compares two lists of keys. Lists of the same keys in the same
// order are compared key by key, by index; otherwise the line names the
// keys missing and unexpected, and the keys both hold are compared by key.
func diffKVs(field string, want, got []KeyValue) []string {
	if slices.Equal(want, got) {
		return nil
	}
	sameKeys := len(want) == len(got)
	for i := 0; sameKeys && i < len(want); i++ {
		sameKeys = want[i].Key == got[i].Key
	}
	if sameKeys {
		var out []string
		for i := range want {
			out = append(out, diffKV(fmt.Sprintf("%s[%d]", field, i), want[i], got[i])...)
		}
		return out
	}
	gotByKey := map[string]KeyValue{}
	for _, kv := range got {
		gotByKey[kv.Key] = kv
	}
	wantByKey := map[string]bool{}
	var missing, extra []string
	for _, kv := range want {
		wantByKey[kv.Key] = true
		if _, ok := gotByKey[kv.Key]; !ok {
			missing = append(missing, kv.Key)
		}
	}
	for _, kv := range got {
		if !wantByKey[kv.Key] {
			extra = append(extra, kv.Key)
		}
	}
	line := fmt.Sprintf("%s: want %s %s, got %d %s", field, keys(len(want)), keyList(want), len(got), keyList(got))
	var notes []string
	if len(missing) > 0 {
		notes = append(notes, "missing "+shortList(missing))
	}
	if len(extra) > 0 {
		notes = append(notes, "unexpected "+shortList(extra))
	}
	if len(notes) == 0 {
		notes = append(notes, "in another order")
	}
	out := []string{line + " (" + strings.Join(notes, "; ") + ")"}
	for _, w := range want {
		if g, ok := gotByKey[w.Key]; ok {
			out = append(out, diffKV(fmt.Sprintf("%s[%q]", field, w.Key), w, g)...)
		}
	}
	return out
}

// diffKV compares two keys field by field.
func diffKV(field string, want, got KeyValue) []string {
	var out []string
	add := func(name string, w, g any) {
		out = append(out, fmt.Sprintf("%s.%s: want %v, got %v", field, name, w, g))
	}
	if want.Key != got.Key {
		add("key", quoted(want.Key), quoted(got.Key))
	}
	if want.Value != got.Value {
		add("value", quoted(want.Value), quoted(got.Value))
	}
	if want.CreateRevision != got.CreateRevision {
		add("create_revision", want.CreateRevision, got.CreateRevision)
	}
	if want.ModRevision != got.ModRevision {
		add("mod_revision", want.ModRevision, got.ModRevision)
	}
	if want.Version != got.Version {
		add("version", want.Version, got.Version)
	}
	if want.Lease != got.Lease {
		add("lease", want.Lease, got.Lease)
	}
	if len(out) == 0 && want != got {
		// A field of KeyValue that diffKV does not know yet.
		out = append(out, fmt.Sprintf("%s: want %+v, got %+v", field, want, got))
	}
	return out
}

func keys(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}

// maxListed bounds the keys a diff line lists.
const maxListed = 8

func keyList(kvs []KeyValue) string {
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision)
	}
	return "[" + shortList(keys) + "]"
}

func shortList(items []string) string {
	if len(items) > maxListed {
		return strings.Join(items[:maxListed], " ") + fmt.Sprintf(" and %d more", len(items)-maxListed)
	}
	return strings.Join(items, " ")
}

func kvOrNone(kv *KeyValue) string {
	if kv == nil {
		return "none"
	}
	return fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
}

func presence(present bool, what string) string {
	if present {
		return what
	}
	return "none"
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }

// statusName names a status as a diff shows it.
func statusName(s Status) string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnknown:
		return "unknown"
	case StatusApplied:
		return "applied"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("status %d", s)
}

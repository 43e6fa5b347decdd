package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Load streams the record field by field, yet reads what json.Unmarshal
// reads and refuses what it refused: the header is checked first even
// when it is not first, and a field the record does not have is named.
func TestLoadStreamed(t *testing.T) {
	rec, sum := sample()
	rec.Watches = watchRecord(3, 200, 1).Watches
	// rewrite replaces the record's JSON with the one edit returns (as a
	// generic object), with a matching checksum.
	rewrite := func(t *testing.T, dir string, edit func(map[string]any)) {
		b, _, err := readRecord(dir)
		require.NoError(t, err)
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // IDs are uint64s
		require.NoError(t, dec.Decode(&m))
		edit(m)
		out, err := json.Marshal(m) // keys in sorted order: the header is not first
		require.NoError(t, err)
		require.NoError(t, os.Remove(filepath.Join(dir, RecordZstdFile)))
		require.NoError(t, os.WriteFile(filepath.Join(dir, RecordFile), out, 0o644))
		h := sha256.Sum256(out)
		require.NoError(t, os.WriteFile(filepath.Join(dir, ChecksumFile), []byte(hex.EncodeToString(h[:])+"  "+RecordFile+"\n"), 0o644))
	}
	tests := []struct {
		name string
		edit func(map[string]any)
		want string // "" for a record read whole
	}{
		{"fields in another order", func(map[string]any) {}, ""},
		{"an unknown field", func(m map[string]any) { m["clientz"] = 1 }, `record.json: json: unknown field "clientz"`},
		{"an unknown field of a watch", func(m map[string]any) { m["watches"].([]any)[1].(map[string]any)["x"] = 1 }, `record.json: json: unknown field "x"`},
		{"another version after other fields", func(m map[string]any) { m["version"] = 3; m["clientz"] = 1 }, "record.json is version 3; this etcd-robustness reads version 2 only"},
		{"watches not a list", func(m map[string]any) { m["watches"] = map[string]any{} }, "is corrupt: record.json: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, Write(dir, rec, sum))
			rewrite(t, dir, tc.edit)
			got, err := Load(dir)
			if tc.want == "" {
				require.NoError(t, err)
				want := rec
				want.Format, want.Version = Format, Version
				require.Equal(t, want, got)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, Record{}, got)
		})
	}
}

// The record is written field by field and element by element, yet its
// JSON is json.Marshal's, byte for byte.
func TestEncodeFieldsIsMarshal(t *testing.T) {
	small, _ := sample()
	noWatches := small
	noWatches.Clients = nil
	for name, rec := range map[string]Record{"sample": small, "everything": watchRecordWithEverything(), "empty": {}, "nil clients": noWatches} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(rec)
			require.NoError(t, err)
			var got bytes.Buffer
			require.NoError(t, encodeFields(&got, &rec))
			require.Equal(t, string(want)+"\n", got.String())
		})
	}
}

package etcdbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const patchTestSource = `package demo

func send() error {
	for {
		var serr error
		if serr != nil {
			return serr
		}
		commit()
	}
}
`

func writeSource(t *testing.T, root, file, content string) string {
	t.Helper()
	path := filepath.Join(root, filepath.FromSlash(file))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestPatchApply(t *testing.T) {
	tests := []struct {
		name    string
		source  string
		patch   Patch
		want    string // the file after a successful apply
		wantErr string // a part of the error
		anchor  bool   // the error wraps errAnchor
	}{
		{
			name:   "after the anchor, with its indentation",
			source: patchTestSource,
			patch:  Patch{Failpoint: "beforeSend", File: "a/b.go", Anchor: "var serr error", After: true},
			want:   strings.Replace(patchTestSource, "\t\tvar serr error\n", "\t\tvar serr error\n\t\t// gofail: var beforeSend struct{}\n", 1),
		},
		{
			name:   "before the anchor",
			source: patchTestSource,
			patch:  Patch{Failpoint: "beforeCommit2", File: "a/b.go", Anchor: "commit()"},
			want:   strings.Replace(patchTestSource, "\t\tcommit()\n", "\t\t// gofail: var beforeCommit2 struct{}\n\t\tcommit()\n", 1),
		},
		{
			name:    "anchor not found",
			source:  patchTestSource,
			patch:   Patch{Failpoint: "x", File: "a/b.go", Anchor: "serr = stream.Send(wr)"},
			wantErr: `anchor "serr = stream.Send(wr)" occurs 0 times in a/b.go, want exactly once`,
			anchor:  true,
		},
		{
			name:    "anchor is only part of a line",
			source:  patchTestSource,
			patch:   Patch{Failpoint: "x", File: "a/b.go", Anchor: "var serr"},
			wantErr: "occurs 0 times",
			anchor:  true,
		},
		{
			name:    "anchor found twice",
			source:  patchTestSource + "\nfunc other() {\n\tcommit()\n}\n",
			patch:   Patch{Failpoint: "x", File: "a/b.go", Anchor: "commit()"},
			wantErr: "occurs 2 times in a/b.go (lines 9, 14), want exactly once",
			anchor:  true,
		},
		{
			name:    "file missing",
			source:  patchTestSource,
			patch:   Patch{Failpoint: "x", File: "a/missing.go", Anchor: "commit()"},
			wantErr: "patch x: stat",
		},
		{
			name:    "the release already has the point",
			source:  strings.Replace(patchTestSource, "\t\tcommit()\n", "\t\t// gofail: var x struct{}\n\t\tcommit()\n", 1),
			patch:   Patch{Failpoint: "x", File: "a/b.go", Anchor: "var serr error"},
			wantErr: "a already declares the failpoint; this release needs no patch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := writeSource(t, root, "a/b.go", tt.source)
			err := tt.patch.apply(root)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, tt.anchor, isAnchorErr(err))
				got, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				require.Equal(t, tt.source, string(got), "a failed patch leaves the file as it was")
				return
			}
			require.NoError(t, err)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			names, err := failpointsInFile(path)
			require.NoError(t, err)
			require.Equal(t, []string{tt.patch.Failpoint}, names, "gofail's reading of the file finds the added point")
		})
	}
}

func isAnchorErr(err error) bool {
	return err != nil && strings.Contains(err.Error(), errAnchor.Error())
}

func TestPatchesFor(t *testing.T) {
	tests := []struct {
		version string
		names   []string
		want    []string
		key     string
		wantErr string
	}{
		{version: "v3.5.12", names: []string{"beforeSendWatchResponse"}, want: []string{"beforeSendWatchResponse"}, key: "v3.5.12+beforeSendWatchResponse"},
		{version: "v3.5.13", names: []string{"compactBeforeSetFinishedCompact", "beforeSendWatchResponse"},
			want: []string{"beforeSendWatchResponse", "compactBeforeSetFinishedCompact"}, key: "v3.5.13+beforeSendWatchResponse+compactBeforeSetFinishedCompact"},
		// v3.5.14 has compactBeforeSetFinishedCompact of its own.
		{version: "v3.5.14", names: []string{"compactBeforeSetFinishedCompact"}, want: nil, key: "v3.5.14"},
		{version: "v3.5.19", names: []string{"beforeSendWatchResponse"}, want: []string{"beforeSendWatchResponse"}, key: "v3.5.19+beforeSendWatchResponse"},
		{version: "v3.5.20", names: []string{"beforeSendWatchResponse"}, want: nil, key: "v3.5.20"},
		{version: "v3.6.1", names: []string{"beforeSendWatchResponse", "compactBeforeSetFinishedCompact"}, want: nil, key: "v3.6.1"},
		{version: "v3.5.12", names: []string{"beforeSendWatchResponse", "beforeSendWatchResponse"}, want: []string{"beforeSendWatchResponse"}, key: "v3.5.12+beforeSendWatchResponse"},
		{version: "v3.5.12", names: nil, want: nil, key: "v3.5.12"},
		// A point no release has: every release gets it, the fixed one too.
		{version: "v3.5.2", names: []string{"applyAfterSetConsistentIndex"}, want: []string{"applyAfterSetConsistentIndex"}, key: "v3.5.2+applyAfterSetConsistentIndex"},
		{version: "v3.5.3", names: []string{"applyAfterSetConsistentIndex"}, want: []string{"applyAfterSetConsistentIndex"}, key: "v3.5.3+applyAfterSetConsistentIndex"},
		{version: "v3.5.12", names: []string{"noSuchPoint"}, wantErr: `unknown source patch "noSuchPoint" (valid: applyAfterSetConsistentIndex, beforeSendWatchResponse, compactBeforeSetFinishedCompact)`},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+strings.Join(tt.names, ","), func(t *testing.T) {
			ps, err := PatchesFor(tt.version, tt.names)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, p := range ps {
				got = append(got, p.Failpoint)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.key, cacheKey(tt.version, ps))
		})
	}
}

func TestTempPatternKeepsKeysApart(t *testing.T) {
	dir := t.TempDir()
	patched, err := os.MkdirTemp(dir, tempPattern("v3.5.12+beforeSendWatchResponse"))
	require.NoError(t, err)
	plain, err := os.MkdirTemp(dir, tempPattern("v3.5.12"))
	require.NoError(t, err)
	got, err := filepath.Glob(filepath.Join(dir, tempPattern("v3.5.12")))
	require.NoError(t, err)
	require.Equal(t, []string{plain}, got, "the unpatched build's stale dirs are not the patched build's")
	got, err = filepath.Glob(filepath.Join(dir, tempPattern("v3.5.12+beforeSendWatchResponse")))
	require.NoError(t, err)
	require.Equal(t, []string{patched}, got)
}

// TestPatchesMatchReleaseSources applies every patch to the source of the
// last release before the point became native, and of the release the
// patch exists for, where the module cache holds them (no network: a
// release not in the cache is skipped). Each anchor must occur exactly once.
func TestPatchesMatchReleaseSources(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	modcache := strings.TrimSpace(string(out))
	releases := map[string][]string{
		"beforeSendWatchResponse":         {"v3.5.12", "v3.5.13", "v3.5.15", "v3.5.19"},
		"compactBeforeSetFinishedCompact": {"v3.5.13"},
		"applyAfterSetConsistentIndex":    {"v3.5.2", "v3.5.3"},
	}
	for _, p := range patches {
		for _, v := range releases[p.Failpoint] {
			t.Run(p.Failpoint+"@"+v, func(t *testing.T) {
				require.True(t, p.Applies(v))
				src := filepath.Join(modcache, "go.etcd.io", "etcd", "server", "v3@"+v)
				if _, err := os.Stat(src); err != nil {
					t.Skipf("go.etcd.io/etcd/server/v3@%s is not in the module cache", v)
				}
				root := t.TempDir()
				require.NoError(t, copyTree(context.Background(), filepath.Join(src, filepath.Dir(p.File)), filepath.Join(root, filepath.Dir(p.File))))
				require.NoError(t, p.apply(root))
				has, err := dirDeclares(filepath.Join(root, filepath.Dir(p.File)), p.Failpoint)
				require.NoError(t, err)
				require.True(t, has)
			})
		}
	}
}

package etcdbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "3.7.3", want: "v3.7.3"},
		{in: "v3.7.3", want: "v3.7.3"},
		{in: "v3.5.4", want: "v3.5.4"},
		{in: "3.4.12", want: "v3.4.12"},
		{in: "v3.5.35", want: "v3.5.35"},
		{in: "v3.8.0-alpha.0", want: "v3.8.0-alpha.0"},
		{in: "3.8.0-alpha.0", want: "v3.8.0-alpha.0"},
		{in: "", wantErr: true},
		{in: "latest", wantErr: true},
		{in: "v9", wantErr: true},
		{in: "v3", wantErr: true},
		{in: "v3.7", wantErr: true},
		{in: "3.7", wantErr: true},
		{in: "vv3.7.3", wantErr: true},
		{in: "V3.7.3", wantErr: true},
		{in: " v3.7.3", wantErr: true},
		{in: "v3.7.3 ", wantErr: true},
		{in: "v3.07.3", wantErr: true},
		{in: "v3.7.3.1", wantErr: true},
		{in: "v3.7.3-", wantErr: true},
		{in: "v3.7.3+incompatible", wantErr: true},
		{in: "v9.0.0", wantErr: true},
		{in: "v2.3.8", wantErr: true},
		{in: "main", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeVersion(tt.in)
			if !tt.wantErr {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			msg := err.Error()
			require.NotContains(t, msg, "\n", "error should be one line")
			require.Contains(t, msg, DefaultVersion, "error should show the expected form")
			require.Contains(t, msg, servedSummary, "error should show the served versions")
		})
	}
}

// TestProvisionKnownNotServed covers versions rejected without asking the
// proxy, and garbage versions.
func TestProvisionKnownNotServed(t *testing.T) {
	tests := []struct {
		version       string
		wantNotServed bool
	}{
		{version: "v3.4.20", wantNotServed: true},
		{version: "3.3.25", wantNotServed: true},
		{version: "v3.0.0", wantNotServed: true},
		{version: "latest"},
		{version: "v9"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			cache := t.TempDir()
			_, err := Provision(context.Background(), tt.version, Options{CacheDir: cache})
			require.Error(t, err)
			require.Equal(t, tt.wantNotServed, errors.Is(err, ErrVersionNotServed), "err: %v", err)
			require.NotContains(t, err.Error(), "\n")
			require.Contains(t, err.Error(), servedSummary)
			entries, err := filepath.Glob(filepath.Join(cache, "etcd", ".tmp-*"))
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}
}

func TestReleaseFor(t *testing.T) {
	rel, err := releaseFor("v3.4.12")
	require.NoError(t, err)
	require.Equal(t, "go.etcd.io/etcd", rel.srcModule)
	require.Equal(t, "v0.5.0-alpha.5.0.20200819165624-17cef6e3e9d5", rel.moduleVersion)
	require.Len(t, rel.binaries, 2, "v3.4 has no etcdutl")

	rel, err = releaseFor("v3.6.16")
	require.NoError(t, err)
	require.Equal(t, "go.etcd.io/etcd/server/v3", rel.srcModule)
	require.Equal(t, "v3.6.16", rel.moduleVersion)
	require.Len(t, rel.binaries, 3)
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
}

func TestFromDir(t *testing.T) {
	ctx := context.Background()

	t.Run("etcd only", func(t *testing.T) {
		dir := t.TempDir()
		writeScript(t, filepath.Join(dir, "etcd"), `echo "etcd Version: 3.6.16"; echo "Git SHA: abc"`)
		bins, err := FromDir(ctx, dir)
		require.NoError(t, err)
		require.Equal(t, Binaries{Version: "v3.6.16", Etcd: filepath.Join(dir, "etcd")}, bins)
	})

	t.Run("all binaries, relative dir", func(t *testing.T) {
		dir := t.TempDir()
		writeScript(t, filepath.Join(dir, "etcd"), `echo "etcd Version: 3.4.12"`)
		writeScript(t, filepath.Join(dir, "etcdctl"), `exit 0`)
		writeScript(t, filepath.Join(dir, "etcdutl"), `exit 0`)
		wd, err := os.Getwd()
		require.NoError(t, err)
		rel, err := filepath.Rel(wd, dir)
		require.NoError(t, err)
		bins, err := FromDir(ctx, rel)
		require.NoError(t, err)
		require.Equal(t, Binaries{
			Version: "v3.4.12",
			Etcd:    filepath.Join(dir, "etcd"),
			Etcdctl: filepath.Join(dir, "etcdctl"),
			Etcdutl: filepath.Join(dir, "etcdutl"),
		}, bins)
	})

	t.Run("non-executable etcdctl is ignored", func(t *testing.T) {
		dir := t.TempDir()
		writeScript(t, filepath.Join(dir, "etcd"), `echo "etcd Version: 3.5.4"`)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "etcdctl"), nil, 0o644))
		bins, err := FromDir(ctx, dir)
		require.NoError(t, err)
		require.Equal(t, "v3.5.4", bins.Version)
		require.Empty(t, bins.Etcdctl)
	})

	errTests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantMsg string
	}{
		{
			name:    "no etcd",
			setup:   func(t *testing.T, dir string) {},
			wantMsg: "has no usable etcd",
		},
		{
			name: "etcd not executable",
			setup: func(t *testing.T, dir string) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd"), []byte("x"), 0o644))
			},
			wantMsg: "not executable",
		},
		{
			name: "etcd is a directory",
			setup: func(t *testing.T, dir string) {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "etcd"), 0o755))
			},
			wantMsg: "not a regular file",
		},
		{
			name: "etcd fails",
			setup: func(t *testing.T, dir string) {
				writeScript(t, filepath.Join(dir, "etcd"), `echo boom >&2; exit 3`)
			},
			wantMsg: "boom",
		},
		{
			name: "unparsable version",
			setup: func(t *testing.T, dir string) {
				writeScript(t, filepath.Join(dir, "etcd"), `echo "hello"`)
			},
			wantMsg: `no "etcd Version:" line`,
		},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := FromDir(ctx, dir)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantMsg)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestFindFailpoints(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"a/a.go":          "package a\nfunc f() {\n\t// gofail: var alpha struct{}\n\t// return\n}\n",
		"a/b/b.go":        "package b\n// gofail: var beta int\n",
		"a/b/b_test.go":   "package b\n// gofail: var testOnly int\n",
		"c/c.go":          "package c\n// not a failpoint: gofail: var x int\n",
		"testdata/d.go":   "package d\n// gofail: var ignored int\n",
		"e/e.go":          "package e\nfunc g() {\n  // gofail: var gamma struct{}\n  // gofail: var alpha struct{}\n}\n",
		"e/not_go.txt":    "// gofail: var notGo int\n",
		"f/malformed.go":  "package f\n// gofail: something else\n",
		"a/b/extra.go":    "package b\n",
		"a/b/c/deeper.go": "package c\n// gofail: var delta string\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	dirs, names, err := findFailpoints(root)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "a/b", "a/b/c", "e"}, dirs)
	require.Equal(t, []string{"alpha", "beta", "delta", "gamma"}, names)
}

func TestTail(t *testing.T) {
	var b strings.Builder
	for i := range 30 {
		b.WriteString("line ")
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString("\n\n")
	}
	got := tail(b.String(), 3)
	require.Equal(t, "... | line b | line c | line d", got)
	require.Equal(t, "(none)", tail("\n \n", 3))
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv(cacheDirEnv, "/some/where")
	dir, err := DefaultCacheDir()
	require.NoError(t, err)
	require.Equal(t, "/some/where", dir)

	if runtime.GOOS != "linux" {
		return
	}
	t.Setenv(cacheDirEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	dir, err = DefaultCacheDir()
	require.NoError(t, err)
	require.Equal(t, filepath.Join("/xdg", "etcd-robustness"), dir)
}

func TestEtcdctlCandidates(t *testing.T) {
	tests := []struct {
		version string
		max     int
		want    []string
	}{
		{"v3.5.3", 3, []string{"v3.5.2", "v3.5.4", "v3.5.1", "v3.5.5", "v3.5.0", "v3.5.6"}},
		{"v3.5.0", 2, []string{"v3.5.1", "v3.5.2"}},
		{"v3.6.1", 1, []string{"v3.6.0", "v3.6.2"}},
		// A pre-release has no neighbours to stand in for it.
		{"v3.8.0-alpha.0", 3, nil},
		{"not a version", 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			require.Equal(t, tc.want, etcdctlCandidates(tc.version, tc.max))
		})
	}
}

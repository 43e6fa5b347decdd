// Package testetcd gives end-to-end tests real etcd binaries: the directory
// in $ETCD_ROBUSTNESS_BIN if set, else the release $ETCD_ROBUSTNESS_VERSION
// (default etcdbuild.DefaultVersion) built with failpoints into the shared
// cache, so that every test package reuses one build.
package testetcd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
)

// Binaries returns the etcd release the tests run against. It skips the test
// under -short: these tests start real clusters.
func Binaries(t testing.TB) etcdbuild.Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real etcd cluster; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if dir := os.Getenv("ETCD_ROBUSTNESS_BIN"); dir != "" {
		b, err := etcdbuild.FromDir(ctx, dir)
		if err != nil {
			t.Fatalf("ETCD_ROBUSTNESS_BIN: %v", err)
		}
		return b
	}
	return provision(ctx, t, firstRelease(os.Getenv("ETCD_ROBUSTNESS_VERSION")))
}

// Releases returns every release $ETCD_ROBUSTNESS_VERSION lists (comma
// separated; default etcdbuild.DefaultVersion), each built with
// failpoints, or the one build in $ETCD_ROBUSTNESS_BIN. It skips the test
// under -short.
func Releases(t testing.TB) []etcdbuild.Binaries {
	t.Helper()
	if testing.Short() || os.Getenv("ETCD_ROBUSTNESS_BIN") != "" {
		return []etcdbuild.Binaries{Binaries(t)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var out []etcdbuild.Binaries
	for _, v := range strings.Split(os.Getenv("ETCD_ROBUSTNESS_VERSION"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			v = etcdbuild.DefaultVersion
		}
		out = append(out, provision(ctx, t, v))
	}
	return out
}

func firstRelease(list string) string {
	v, _, _ := strings.Cut(list, ",")
	if v = strings.TrimSpace(v); v == "" {
		return etcdbuild.DefaultVersion
	}
	return v
}

func provision(ctx context.Context, t testing.TB, version string) etcdbuild.Binaries {
	t.Helper()
	b, err := etcdbuild.Provision(ctx, version, etcdbuild.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("building etcd %s: %v", version, err)
	}
	return b
}

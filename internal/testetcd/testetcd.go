// Package testetcd gives end-to-end tests real etcd binaries: the directory
// in $ETCD_ROBUSTNESS_BIN if set, else the release $ETCD_ROBUSTNESS_VERSION
// (default etcdbuild.DefaultVersion) built with failpoints into the shared
// cache, so that every test package reuses one build.
package testetcd

import (
	"context"
	"os"
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
	version := os.Getenv("ETCD_ROBUSTNESS_VERSION")
	if version == "" {
		version = etcdbuild.DefaultVersion
	}
	b, err := etcdbuild.Provision(ctx, version, etcdbuild.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("building etcd %s: %v", version, err)
	}
	return b
}

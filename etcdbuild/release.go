package etcdbuild

import (
	"context"
	"path/filepath"

	"go.uber.org/zap"
)

// ReleaseFunc returns a function that provisions any release into the
// cache that holds the binary etcdPath (<cache>/etcd/<version>/bin/etcd),
// or into the default cache when etcdPath is not in one (a --etcd-bin
// build). Faults that move a member to another release use it.
func ReleaseFunc(etcdPath string, lg *zap.Logger) func(ctx context.Context, version string) (Binaries, error) {
	opts := Options{Logger: lg}
	// bin/etcd -> <version> -> etcd -> <cache>
	entry := filepath.Dir(filepath.Dir(etcdPath))
	if etcdDir := filepath.Dir(entry); filepath.Base(etcdDir) == "etcd" && isFile(filepath.Join(entry, buildInfoFile)) {
		opts.CacheDir = filepath.Dir(etcdDir)
	}
	return func(ctx context.Context, version string) (Binaries, error) {
		return Provision(ctx, version, opts)
	}
}

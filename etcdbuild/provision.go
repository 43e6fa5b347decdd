// Package etcdbuild provisions etcd release binaries (etcd, etcdctl,
// etcdutl) with every gofail failpoint enabled.
//
// The binaries are built from the release's module source, fetched through
// the Go module proxy by the go command, and cached on disk:
//
//	<CacheDir>/etcd/<version>/bin/{etcd,etcdctl,etcdutl}
//	<CacheDir>/etcd/<version>/build-info.json
//
// A build with source patches (Options.Patches, patch.go) is cached apart,
// under <version>+<patch>[+<patch>...], never in the release's own entry.
//
// A build runs in a temporary directory <CacheDir>/etcd/.tmp-<version>_* that
// is renamed into place only once complete, so an entry is either whole or
// absent. Processes that provision the same version at once serialize on an
// flock of <CacheDir>/etcd/<version>.lock.
package etcdbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Binaries are the paths of one etcd release's executables.
type Binaries struct {
	// Version is the etcd release, e.g. "v3.7.3".
	Version string
	// Etcd is the absolute path of the etcd server.
	Etcd string
	// Etcdctl is the absolute path of etcdctl; it may be "" (FromDir only).
	Etcdctl string
	// Etcdutl is the absolute path of etcdutl; it is "" for v3.4, which has
	// none, and may be "" for FromDir.
	Etcdutl string
	// Patches are the source patches the build has (Patch.Failpoint),
	// sorted; empty for a release as published.
	Patches []string
	// EtcdctlVersion is the release Etcdctl was built from when it is not
	// Version: the Go module proxy does not serve Version's etcdctl module
	// (v3.5.3), so the build took the nearest served patch release's. ""
	// means Version's own.
	EtcdctlVersion string
}

// Options configure Provision.
type Options struct {
	// CacheDir is where binaries are cached; "" means DefaultCacheDir().
	CacheDir string
	// Logger receives progress; nil means no logging.
	Logger *zap.Logger
	// Patches name source patches (PatchNames) to build the release with.
	// Those the release does not need (Patch.Applies) are left out, so the
	// same list serves a bug's release and the release that fixed it.
	Patches []string
}

// cacheDirEnv overrides the default cache directory.
const cacheDirEnv = "ETCD_ROBUSTNESS_CACHE"

// DefaultCacheDir is $ETCD_ROBUSTNESS_CACHE if set, else
// os.UserCacheDir()/etcd-robustness.
func DefaultCacheDir() (string, error) {
	if dir := os.Getenv(cacheDirEnv); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache dir (set %s to choose one): %w", cacheDirEnv, err)
	}
	return filepath.Join(base, "etcd-robustness"), nil
}

const (
	buildInfoFile = "build-info.json"
	binDir        = "bin"
	lockPoll      = 200 * time.Millisecond
)

// Provision returns the cached binaries of the etcd release version,
// building them first when they are not cached yet. version is normalized
// with NormalizeVersion. When the Go module proxy does not serve the version
// the error wraps ErrVersionNotServed. Cancelling ctx stops a build (and
// waiting for another process's build) and leaves no partial cache entry.
func Provision(ctx context.Context, version string, opts Options) (Binaries, error) {
	v, err := NormalizeVersion(version)
	if err != nil {
		return Binaries{}, err
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return Binaries{}, err
		}
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return Binaries{}, fmt.Errorf("etcd cache dir: %w", err)
	}
	ps, err := PatchesFor(v, opts.Patches)
	if err != nil {
		return Binaries{}, err
	}
	key := cacheKey(v, ps)
	etcdDir := filepath.Join(cacheDir, "etcd")
	entry := filepath.Join(etcdDir, key)

	// Fast path: entries only ever appear whole (by rename), so a complete
	// one can be used without taking the lock.
	if bins, ok := cached(v, ps, entry); ok {
		log.Info("using cached etcd", zap.String("version", key), zap.String("dir", entry))
		return bins, nil
	}

	rel, err := releaseFor(v)
	if err != nil {
		return Binaries{}, err
	}

	if err := os.MkdirAll(etcdDir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("creating etcd cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(etcdDir, key+".lock"), log)
	if err != nil {
		return Binaries{}, fmt.Errorf("locking etcd %s cache entry: %w", key, err)
	}
	defer unlock()

	// Another process may have built it while we waited for the lock.
	if bins, ok := cached(v, ps, entry); ok {
		log.Info("using cached etcd", zap.String("version", key), zap.String("dir", entry))
		return bins, nil
	}
	removeStaleTemps(etcdDir, key, log)

	log.Info("building etcd", zap.String("version", key), zap.String("dir", entry))
	start := time.Now()
	if err := build(ctx, rel, ps, etcdDir, entry, log); err != nil {
		return Binaries{}, err
	}
	log.Info("built etcd", zap.String("version", key), zap.Duration("duration", time.Since(start)))

	bins, ok := cached(v, ps, entry)
	if !ok {
		return Binaries{}, fmt.Errorf("etcd %s cache entry %s incomplete right after building it", v, entry)
	}
	return bins, nil
}

// cached reports the binaries of a complete cache entry: one whose
// build-info.json and bin/etcd both exist.
func cached(version string, ps []Patch, entry string) (Binaries, bool) {
	if !isFile(filepath.Join(entry, buildInfoFile)) {
		return Binaries{}, false
	}
	bins := Binaries{Version: version, Etcd: filepath.Join(entry, binDir, "etcd")}
	for _, p := range ps {
		bins.Patches = append(bins.Patches, p.Failpoint)
	}
	if !isFile(bins.Etcd) {
		return Binaries{}, false
	}
	if p := filepath.Join(entry, binDir, "etcdctl"); isFile(p) {
		bins.Etcdctl = p
	}
	var info struct {
		EtcdctlVersion string `json:"etcdctl_version"`
	}
	if data, err := os.ReadFile(filepath.Join(entry, buildInfoFile)); err == nil && json.Unmarshal(data, &info) == nil {
		bins.EtcdctlVersion = info.EtcdctlVersion
	}
	if p := filepath.Join(entry, binDir, "etcdutl"); isFile(p) {
		bins.Etcdutl = p
	}
	return bins, true
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// lockFile takes an exclusive flock on path, polling so that ctx can
// interrupt the wait. The returned func releases it.
func lockFile(ctx context.Context, path string, log *zap.Logger) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	ticker := time.NewTicker(lockPoll)
	defer ticker.Stop()
	waiting := false
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		if !waiting {
			waiting = true
			log.Info("waiting for another process building the same etcd version", zap.String("lock", path))
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
	return func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// tempPattern is the os.MkdirTemp pattern of the build dirs of a cache key
// (a version, or a version and its patches). "_" can not occur in a key,
// so the pattern of v3.8.0 does not match the dirs of v3.8.0-alpha.0, nor
// those of v3.8.0+somePatch.
func tempPattern(key string) string { return ".tmp-" + key + "_*" }

// removeStaleTemps deletes build dirs of a cache key left by a process that
// was killed mid-build. The caller holds the key's lock, so none is in use.
func removeStaleTemps(etcdDir, version string, log *zap.Logger) {
	stale, _ := filepath.Glob(filepath.Join(etcdDir, tempPattern(version)))
	for _, dir := range stale {
		log.Info("removing stale etcd build dir", zap.String("dir", dir))
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("removing stale etcd build dir", zap.String("dir", dir), zap.Error(err))
		}
	}
}

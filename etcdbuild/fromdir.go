package etcdbuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// versionTimeout bounds `etcd --version`.
const versionTimeout = 30 * time.Second

// FromDir uses prebuilt binaries from dir (the --etcd-bin flag). dir must
// contain an executable etcd; etcdctl and etcdutl are picked up when present.
// It runs `etcd --version` to fill Version.
func FromDir(ctx context.Context, dir string) (Binaries, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Binaries{}, fmt.Errorf("etcd binaries dir %q: %w", dir, err)
	}
	etcd := filepath.Join(abs, "etcd")
	if err := checkExecutable(etcd); err != nil {
		return Binaries{}, fmt.Errorf("etcd binaries dir %s has no usable etcd: %w", abs, err)
	}
	version, err := etcdVersion(ctx, etcd)
	if err != nil {
		return Binaries{}, err
	}
	bins := Binaries{Version: version, Etcd: etcd}
	if p := filepath.Join(abs, "etcdctl"); checkExecutable(p) == nil {
		bins.Etcdctl = p
	}
	if p := filepath.Join(abs, "etcdutl"); checkExecutable(p) == nil {
		bins.Etcdutl = p
	}
	return bins, nil
}

// checkExecutable reports why path is not an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist", path)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

var etcdVersionRE = regexp.MustCompile(`(?m)^etcd Version:\s*(\S+)`)

// etcdVersion runs `etcd --version` and returns the normalized version it
// reports, e.g. "v3.7.3".
func etcdVersion(ctx context.Context, etcd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcd, "--version")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w; output: %s", etcd, err, tail(string(out), outputTailLines))
	}
	m := etcdVersionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version: no \"etcd Version:\" line in output: %s", etcd, tail(string(out), outputTailLines))
	}
	v, err := NormalizeVersion(string(m[1]))
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", etcd, err)
	}
	return v, nil
}

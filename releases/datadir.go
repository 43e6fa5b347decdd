package releases

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// HashDir returns the SHA-256 of every regular file under dir, keyed by
// its path relative to dir. Directories count only through their files;
// times and modes are left out, so only what a file holds counts.
func HashDir(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		sum, err := hashFile(path)
		if err != nil {
			return err
		}
		out[rel] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hashing %s: %w", dir, err)
	}
	return out, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Changed lists, sorted, the files of two HashDir results that were added
// ("+name"), removed ("-name") or whose content changed ("name").
func Changed(before, after map[string]string) []string {
	var out []string
	for name, sum := range before {
		switch a, ok := after[name]; {
		case !ok:
			out = append(out, "-"+name)
		case a != sum:
			out = append(out, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			out = append(out, "+"+name)
		}
	}
	slices.Sort(out)
	return out
}

// Newest is the newest patch release of each line that the Go module
// proxy serves and the harness builds (v3.4 only as v3.4.12, see
// etcdbuild).
var Newest = map[string]string{
	"3.4": "v3.4.12",
	"3.5": "v3.5.35",
	"3.6": "v3.6.16",
	"3.7": "v3.7.3",
}

// Line is a release's line, "3.7" for "v3.7.3" (or "3.7.0", as etcd's
// /version gives the cluster version).
func Line(version string) (string, error) {
	var major, minor, patch int
	v := version
	if len(v) > 0 && v[0] == 'v' {
		v = v[1:]
	}
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		if _, err2 := fmt.Sscanf(v, "%d.%d", &major, &minor); err2 != nil {
			return "", fmt.Errorf("not an etcd version: %q", version)
		}
	}
	return fmt.Sprintf("%d.%d", major, minor), nil
}

// Previous is the line before line ("3.6" before "3.7"), if the harness
// builds one.
func Previous(line string) (string, error) {
	var major, minor int
	if _, err := fmt.Sscanf(line, "%d.%d", &major, &minor); err != nil || minor == 0 {
		return "", fmt.Errorf("no line before %q", line)
	}
	prev := fmt.Sprintf("%d.%d", major, minor-1)
	if _, ok := Newest[prev]; !ok {
		return "", errors.New("the harness builds no release of line " + prev)
	}
	return prev, nil
}

// AtLeast reports whether line a is line b or later ("3.7" >= "3.6").
func AtLeast(a, b string) bool {
	var am, an, bm, bn int
	_, err1 := fmt.Sscanf(a, "%d.%d", &am, &an)
	_, err2 := fmt.Sscanf(b, "%d.%d", &bm, &bn)
	if err1 != nil || err2 != nil {
		return false
	}
	return am > bm || (am == bm && an >= bn)
}

// PageSize is the page size of etcd's bolt backend on the machines the
// harness runs on (bolt uses the OS page size).
const PageSize = 4096

// ChangedPages compares two copies of a file page by page and returns the
// numbers of the pages that differ (a page past the shorter one's end
// counts as differing). In a bolt file pages 0 and 1 are the two meta
// pages: a transaction that changes nothing still writes one of them.
func ChangedPages(a, b string, pageSize int) ([]int, error) {
	ab, err := os.ReadFile(a)
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		return nil, err
	}
	var out []int
	for p := 0; p*pageSize < max(len(ab), len(bb)); p++ {
		if !bytes.Equal(page(ab, p, pageSize), page(bb, p, pageSize)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func page(b []byte, p, size int) []byte {
	lo, hi := p*size, (p+1)*size
	if lo >= len(b) {
		return nil
	}
	return b[lo:min(hi, len(b))]
}

// CopyFile copies src to dst, for a copy to compare with later.
func CopyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// BackendPath is the backend (bolt) file of an etcd data dir.
func BackendPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }

// PageKind is what bolt's page header (flags at byte 8 of each page) says
// page p of the file is: "meta", "freelist", "branch", "leaf", or "free"
// (no flag: a page in no use, or one bolt never wrote).
func PageKind(path string, p, pageSize int) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	off := p*pageSize + 8
	if off+2 > len(b) {
		return "", fmt.Errorf("%s has no page %d", path, p)
	}
	switch flags := uint16(b[off]) | uint16(b[off+1])<<8; {
	case flags&0x04 != 0:
		return "meta", nil
	case flags&0x10 != 0:
		return "freelist", nil
	case flags&0x01 != 0:
		return "branch", nil
	case flags&0x02 != 0:
		return "leaf", nil
	}
	return "free", nil
}

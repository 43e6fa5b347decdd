package etcdbuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Patch adds one `// gofail:` comment to the source of a release that lacks
// the failpoint, so that a reproduction of a past bug can reach the code
// path the bug lives on. A patch changes nothing else: the comment is a
// no-op until `gofail enable` turns it into a failpoint.
//
// The comment goes next to its anchor, a line that must occur exactly once
// in the file, so that a patch never lands somewhere it was not written for.
type Patch struct {
	// Failpoint is the name of the gofail point the patch adds, as later
	// releases name the same point; it also names the patch.
	Failpoint string
	// File is the Go file, relative to the root of the source module
	// (go.etcd.io/etcd/server/v3; the repository root for v3.4).
	File string
	// Anchor is the line the comment goes next to, compared with its
	// leading and trailing white space trimmed.
	Anchor string
	// After puts the comment on the line after the anchor; else before it.
	After bool
	// NativeFrom is the first release whose own source has the point. The
	// patch applies to releases before it; later ones need none. Empty:
	// no release has the point (it is this harness's own), so every
	// release whose source has the anchor gets the patch.
	NativeFrom string
	// Why says what the point is for.
	Why string
}

// patches are the source patches known here, by failpoint.
var patches = []Patch{
	{
		Failpoint:  "beforeSendWatchResponse",
		File:       "etcdserver/api/v3rpc/watch.go",
		Anchor:     "var serr error",
		After:      true,
		NativeFrom: "v3.5.20",
		Why:        "the watch stream's send loop, just before a response goes to the gRPC stream: a sleep there starves a stream (etcd #17529, #18089)",
	},
	{
		Failpoint:  "compactBeforeSetFinishedCompact",
		File:       "mvcc/kvstore_compaction.go",
		Anchor:     "tx.UnsafePut(buckets.Meta, finishedCompactKeyName, rbytes)",
		NativeFrom: "v3.5.14",
		Why:        "the last batch of a scheduled compaction, after the earlier batches were committed and before the finished compact revision is written: a panic there is a crash in the middle of a batched compaction (etcd #17780)",
	},
	{
		Failpoint: "applyAfterSetConsistentIndex",
		File:      "etcdserver/server.go",
		Anchor:    `s.lg.Debug("apply entry normal",`,
		Why: "applyEntryNormal, after the entry's consistent index was set and before its apply takes the backend's lock: " +
			"a sleep there lets the backend's periodic commit save an index whose data it lacks, as before v3.5.3 (etcd #13766); " +
			"v3.5.3 sets an applying index there instead, saved only with the data (v3.6 moved the code; no release has the point)",
	},
}

// PatchNames lists the known patches, sorted.
func PatchNames() []string {
	var names []string
	for _, p := range patches {
		names = append(names, p.Failpoint)
	}
	slices.Sort(names)
	return names
}

// LookupPatch returns the patch that adds failpoint name, or an error naming
// the known ones.
func LookupPatch(name string) (Patch, error) {
	for _, p := range patches {
		if p.Failpoint == name {
			return p, nil
		}
	}
	return Patch{}, fmt.Errorf("unknown source patch %q (valid: %s)", name, strings.Join(PatchNames(), ", "))
}

// Applies reports whether release version (normalized) needs the patch: it
// is older than the first release that has the point in its own source.
func (p Patch) Applies(version string) bool {
	return p.NativeFrom == "" || compareVersions(version, p.NativeFrom) < 0
}

// PatchesFor returns the patches among names that version needs, sorted by
// failpoint. An unknown name is an error; a patch the release does not need
// is left out.
func PatchesFor(version string, names []string) ([]Patch, error) {
	var out []Patch
	for _, n := range names {
		p, err := LookupPatch(n)
		if err != nil {
			return nil, err
		}
		if p.Applies(version) && !slices.ContainsFunc(out, func(q Patch) bool { return q.Failpoint == n }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Patch) int { return strings.Compare(a.Failpoint, b.Failpoint) })
	return out, nil
}

// cacheKey names a build's cache entry: the version alone when unpatched,
// else the version and each patch, "v3.5.12+beforeSendWatchResponse", so
// that a patched build is never taken for the release as published.
func cacheKey(version string, ps []Patch) string {
	key := version
	for _, p := range ps {
		key += "+" + p.Failpoint
	}
	return key
}

// errAnchor is wrapped by the error of a patch whose anchor does not occur
// exactly once.
var errAnchor = errors.New("patch anchor not found exactly once")

// apply adds the patch's comment to the source tree at root. It fails if
// the file is missing, if the anchor does not occur exactly once, or if
// the file's directory already declares the failpoint (the release does not
// need the patch, and NativeFrom is wrong).
func (p Patch) apply(root string) error {
	path := filepath.Join(root, filepath.FromSlash(p.File))
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("patch %s: %w", p.Failpoint, err)
	}
	if has, err := dirDeclares(filepath.Dir(path), p.Failpoint); err != nil {
		return fmt.Errorf("patch %s: %w", p.Failpoint, err)
	} else if has {
		return fmt.Errorf("patch %s: %s already declares the failpoint; this release needs no patch", p.Failpoint, filepath.Dir(p.File))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("patch %s: %w", p.Failpoint, err)
	}
	lines := strings.Split(string(data), "\n")
	var at []int
	for i, l := range lines {
		if strings.TrimSpace(l) == p.Anchor {
			at = append(at, i)
		}
	}
	if len(at) != 1 {
		where := ""
		if len(at) > 1 {
			where = fmt.Sprintf(" (lines %s)", joinLineNumbers(at))
		}
		return fmt.Errorf("patch %s: anchor %q occurs %d times in %s%s, want exactly once: %w", p.Failpoint, p.Anchor, len(at), p.File, where, errAnchor)
	}
	i := at[0]
	anchor := lines[i]
	indent := anchor[:len(anchor)-len(strings.TrimLeft(anchor, " \t"))]
	comment := indent + "// gofail: var " + p.Failpoint + " struct{}"
	if p.After {
		i++
	}
	lines = slices.Insert(lines, i, comment)
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), fi.Mode().Perm())
}

func joinLineNumbers(idx []int) string {
	s := make([]string, len(idx))
	for i, n := range idx {
		s[i] = strconv.Itoa(n + 1)
	}
	return strings.Join(s, ", ")
}

// dirDeclares reports whether a non-test Go file of dir declares failpoint
// name.
func dirDeclares(dir, name string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		names, err := failpointsInFile(f)
		if err != nil {
			return false, err
		}
		if slices.Contains(names, name) {
			return true, nil
		}
	}
	return false, nil
}

// applyPatches is the build step between copying the source and enabling
// the failpoints.
func (b *builder) applyPatches(ctx context.Context) error {
	for _, p := range b.patches {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.apply(b.src); err != nil {
			return err
		}
		b.info.Patches = append(b.info.Patches, p.Failpoint)
	}
	return nil
}

// checkPatched reports a patch whose failpoint is not among the enabled
// ones (gofail did not see the comment).
func (b *builder) checkPatched() error {
	for _, p := range b.patches {
		if !slices.Contains(b.info.Failpoints, p.Failpoint) {
			return fmt.Errorf("patch %s applied, but gofail enabled no such failpoint", p.Failpoint)
		}
	}
	return nil
}

// compareVersions orders two normalized release versions by major, minor
// and patch (a pre-release counts as its release).
func compareVersions(a, b string) int {
	pa, pb := versionNumbers(a), versionNumbers(b)
	for i := range pa {
		if c := pa[i] - pb[i]; c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
	}
	return 0
}

func versionNumbers(v string) [3]int {
	var out [3]int
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return out
	}
	for i := range out {
		out[i], _ = strconv.Atoi(m[i+1])
	}
	return out
}

package etcdbuild

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// buildInfo is written to <entry>/build-info.json as the last file of a
// cache entry.
type buildInfo struct {
	// Version is the etcd release, e.g. "v3.7.3".
	Version string `json:"version"`
	// ModuleVersion is the version the modules were fetched at; it differs
	// from Version only for v3.4 (a pseudo-version of go.etcd.io/etcd).
	ModuleVersion string `json:"module_version"`
	// Modules are the resolved versions of the etcd modules, gofail, bbolt,
	// raft and grpc in the build.
	Modules map[string]string `json:"modules"`
	// SourceModule is the module whose copied source has the failpoints.
	SourceModule string `json:"source_module"`
	GoVersion    string `json:"go_version"`
	// GofailVersion is the gofail that enabled the failpoints.
	GofailVersion string `json:"gofail_version"`
	// FailpointDirs are the gofail-enabled directories, relative to the
	// source module's root.
	FailpointDirs []string `json:"failpoint_dirs"`
	// Failpoints are the names of the failpoints compiled in, sorted.
	Failpoints []string `json:"failpoints"`
	// Patches are the source patches applied (Patch.Failpoint), in the
	// order applied; empty for a release as published.
	Patches []string `json:"patches,omitempty"`
	// NoSumDB lists the modules whose checksum database lookup failed and
	// was skipped via GONOSUMDB (empty normally).
	NoSumDB []string `json:"nosumdb,omitempty"`
	// EtcdctlVersion is the release etcdctl was built from when the proxy
	// does not serve Version's etcdctl module (checkServed); "" means
	// Version's own.
	EtcdctlVersion string `json:"etcdctl_version,omitempty"`
	// Binaries are the executables built, by name.
	Binaries     []string  `json:"binaries"`
	BuiltAt      time.Time `json:"built_at"`
	BuildSeconds float64   `json:"build_seconds"`
}

// builder builds one release in a temporary directory.
type builder struct {
	rel  release
	log  *zap.Logger
	work string // the wrapper module
	src  string // the writable copy of rel.srcModule, inside work
	out  string // becomes the cache entry: bin/ and build-info.json
	// patches are applied to src before the failpoints are enabled.
	patches []Patch
	// noSumDB are modules added to GONOSUMDB after their checksum database
	// lookup failed.
	noSumDB []string
	info    buildInfo
	start   time.Time
}

// step is one stage of a build.
type step struct {
	name string
	run  func(ctx context.Context) error
}

// build builds rel, with patches applied to its source, into a temporary
// directory under etcdDir and renames the result to entry. The temporary
// directory is always removed.
func build(ctx context.Context, rel release, patches []Patch, etcdDir, entry string, log *zap.Logger) error {
	tmp, err := os.MkdirTemp(etcdDir, tempPattern(cacheKey(rel.version, patches)))
	if err != nil {
		return fmt.Errorf("creating etcd build dir: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			log.Warn("removing etcd build dir", zap.String("dir", tmp), zap.Error(rerr))
		}
	}()

	b := &builder{
		rel:     rel,
		patches: patches,
		log:     log,
		work:    filepath.Join(tmp, "wrapper"),
		out:     filepath.Join(tmp, "out"),
		start:   time.Now(),
	}
	b.src = filepath.Join(b.work, "src")
	b.info = buildInfo{
		Version:       rel.version,
		ModuleVersion: rel.moduleVersion,
		SourceModule:  rel.srcModule,
		GofailVersion: gofailVersion,
	}

	steps := []step{
		{"create wrapper module", b.initWrapper},
		{"check the proxy serves the version", b.checkServed},
		{"fetch modules", b.fetch},
		{"copy source", b.copySource},
		// Source patches (patch.go): a `// gofail:` comment the release
		// lacks, added before gofail rewrites the source. A patched build
		// is cached under a key that names its patches (cacheKey).
		{"apply patches", b.applyPatches},
		{"enable failpoints", b.enableFailpoints},
		{"build binaries", b.buildBinaries},
		{"build etcdctl of another patch release", b.buildSubstituteEtcdctl},
		{"verify", b.verify},
		{"record build info", b.recordInfo},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.run(ctx); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w (%w)", err, ctxErr)
			}
			var ns *notServedError
			if errors.As(err, &ns) {
				return err
			}
			return fmt.Errorf("building etcd %s: %s: %w", rel.version, s.name, err)
		}
		log.Debug("etcd build step done", zap.String("version", rel.version),
			zap.String("step", s.name), zap.Duration("duration", time.Since(t)))
	}

	// The entry can only be incomplete here if someone deleted part of it;
	// we hold the lock, so nobody is using it.
	if err := os.RemoveAll(entry); err != nil {
		return fmt.Errorf("removing incomplete etcd cache entry: %w", err)
	}
	if err := os.Rename(b.out, entry); err != nil {
		return fmt.Errorf("moving etcd build into the cache: %w", err)
	}
	return nil
}

func (b *builder) initWrapper(ctx context.Context) error {
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(b.out, binDir), 0o755); err != nil {
		return err
	}
	_, err := b.goCmd(ctx, "mod", "init", "etcdbuild/wrapper")
	return err
}

// notServedRE matches the go command's answers for a module version the
// proxy does not have.
var notServedRE = regexp.MustCompile(`(?i)403 Forbidden|not available|unknown revision|invalid version|no matching versions|404 Not Found|410 Gone`)

// checkServed asks the proxy for each module at the release's version. A
// v3.5+ release whose etcdctl module alone is not served (the proxy here
// refuses go.etcd.io/etcd/etcdctl/v3@v3.5.3 while it serves that release's
// server and etcdutl) gets etcdctl from the nearest served patch release of
// its line (substituteEtcdctl): etcdctl holds no failpoint, talks to the
// server only through the public API, and the harness uses it for
// conveniences a patch release does not change; build-info.json records
// which etcdctl was built.
func (b *builder) checkServed(ctx context.Context) error {
	ok, err := b.served(ctx, b.rel.modules, b.rel.moduleVersion)
	if err != nil || ok {
		return err
	}
	if slices.Contains(b.rel.modules, etcdctlModule) {
		rest := slices.DeleteFunc(slices.Clone(b.rel.modules), func(m string) bool { return m == etcdctlModule })
		if ok, err := b.served(ctx, rest, b.rel.moduleVersion); err != nil {
			return err
		} else if ok {
			for _, v := range etcdctlCandidates(b.rel.version, maxEtcdctlDistance) {
				ok, err := b.served(ctx, []string{etcdctlModule}, v)
				if err != nil {
					return err
				}
				if ok {
					b.substituteEtcdctl(v)
					return nil
				}
			}
		}
	}
	return &notServedError{version: b.rel.version}
}

// served reports whether the proxy serves every module at version: false
// (with no error) when the go command says a version is not available.
func (b *builder) served(ctx context.Context, modules []string, version string) (bool, error) {
	args := []string{"list", "-m"}
	for _, m := range modules {
		args = append(args, m+"@"+version)
	}
	out, err := b.goCmd(ctx, args...)
	if err != nil && ctx.Err() == nil && notServedRE.MatchString(out) {
		b.log.Debug("module proxy does not serve a module version", zap.Strings("modules", modules),
			zap.String("version", version), zap.String("go_output", strings.TrimSpace(out)))
		return false, nil
	}
	return err == nil, err
}

// etcdctlModule is etcdctl's module from v3.5 on.
const etcdctlModule = "go.etcd.io/etcd/etcdctl/v3"

// maxEtcdctlDistance bounds how many patch releases away a substitute
// etcdctl may be.
const maxEtcdctlDistance = 3

// etcdctlCandidates are the patch releases of version's line at most max
// away from it, nearest first, the older of two at the same distance first
// (its client is the one the release was tested with).
func etcdctlCandidates(version string, max int) []string {
	m := versionRE.FindStringSubmatch(version)
	if m == nil || m[4] != "" {
		return nil
	}
	patch, err := strconv.Atoi(m[3])
	if err != nil {
		return nil
	}
	var out []string
	for d := 1; d <= max; d++ {
		for _, p := range []int{patch - d, patch + d} {
			if p >= 0 {
				out = append(out, fmt.Sprintf("v%s.%s.%d", m[1], m[2], p))
			}
		}
	}
	return out
}

// substituteEtcdctl makes the build take etcdctl from release version, in
// a wrapper module of its own (buildSubstituteEtcdctl): the release's own
// wrapper fetches and builds the other modules.
func (b *builder) substituteEtcdctl(version string) {
	b.log.Warn("the Go module proxy does not serve this release's etcdctl; building etcdctl of the nearest served patch release",
		zap.String("version", b.rel.version), zap.String("etcdctl_version", version))
	b.rel.modules = slices.DeleteFunc(slices.Clone(b.rel.modules), func(m string) bool { return m == etcdctlModule })
	b.rel.binaries = slices.DeleteFunc(slices.Clone(b.rel.binaries), func(bin binary) bool { return bin.name == "etcdctl" })
	b.rel.etcdctlVersion = version
	b.info.EtcdctlVersion = version
}

// buildSubstituteEtcdctl builds etcdctl at b.rel.etcdctlVersion in a
// wrapper module of its own, when substituteEtcdctl chose one.
func (b *builder) buildSubstituteEtcdctl(ctx context.Context) error {
	if b.rel.etcdctlVersion == "" {
		return nil
	}
	sub := &builder{rel: b.rel, log: b.log, work: b.work + "-etcdctl", noSumDB: b.noSumDB}
	if err := os.MkdirAll(sub.work, 0o755); err != nil {
		return err
	}
	if _, err := sub.goCmd(ctx, "mod", "init", "etcdbuild/etcdctl"); err != nil {
		return err
	}
	if _, err := sub.goCmd(ctx, "get", etcdctlModule+"@"+b.rel.etcdctlVersion); err != nil {
		return err
	}
	dst := filepath.Join(b.out, binDir, "etcdctl")
	if _, err := sub.goCmd(ctx, "build", "-o", dst, etcdctlModule); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, dst, "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s version: %w: %s", dst, err, tail(string(out), outputTailLines))
	}
	if want := "etcdctl version: " + strings.TrimPrefix(b.rel.etcdctlVersion, "v"); !strings.Contains(string(out), want) {
		return fmt.Errorf("built etcdctl says %q, want %q", strings.TrimSpace(string(out)), want)
	}
	b.info.Binaries = append(b.info.Binaries, "etcdctl")
	return nil
}

// sumDBFailureRE matches a failed checksum database lookup (not a checksum
// mismatch) and captures the module.
var sumDBFailureRE = regexp.MustCompile(`verifying (?:module|go\.mod): ([^@\s]+)@[^:\s]+: reading \S*sum\S*: (?:404|410)`)

// fetch adds the release's modules and gofail to the wrapper module. It
// first tries the module cache alone (GOPROXY=off), which saves the proxy
// round trips of a rebuild, then the proxy. A module of etcd whose checksum
// database lookup fails (seen for etcdutl v3.6.1) is retried with that module
// in GONOSUMDB; nothing else is exempted.
func (b *builder) fetch(ctx context.Context) error {
	args := []string{"get"}
	for _, m := range b.rel.modules {
		args = append(args, m+"@"+b.rel.moduleVersion)
	}
	args = append(args, "go.etcd.io/gofail@"+gofailVersion)
	if _, err := b.goCmdEnv(ctx, []string{"GOPROXY=off"}, args...); err == nil || ctx.Err() != nil {
		return err
	}
	b.log.Debug("modules not all in the module cache; fetching from the proxy", zap.String("version", b.rel.version))
	for {
		out, err := b.goCmd(ctx, args...)
		if err == nil || ctx.Err() != nil || strings.Contains(out, "SECURITY ERROR") {
			return err
		}
		var added bool
		for _, m := range sumDBFailureRE.FindAllStringSubmatch(out, -1) {
			mod := m[1]
			if strings.HasPrefix(mod, "go.etcd.io/etcd") && !slices.Contains(b.noSumDB, mod) {
				b.noSumDB = append(b.noSumDB, mod)
				added = true
				b.log.Warn("checksum database lookup failed; skipping it for this module",
					zap.String("module", mod), zap.String("version", b.rel.version))
			}
		}
		if !added {
			return err
		}
	}
}

func (b *builder) copySource(ctx context.Context) error {
	out, err := b.goCmd(ctx, "list", "-m", "-f", "{{.Dir}}", b.rel.srcModule)
	if err != nil {
		return err
	}
	dir := strings.TrimSpace(out)
	if dir == "" {
		return fmt.Errorf("module %s has no directory in the module cache", b.rel.srcModule)
	}
	return copyTree(ctx, dir, b.src)
}

// copyTree copies the regular files and directories of from into to, making
// them writable by the owner (the module cache is read-only).
func copyTree(ctx context.Context, from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil // module zips hold only regular files
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(path, dst, fi.Mode().Perm()|0o200)
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}

// findFailpoints walks root for `// gofail: var` comments in non-test Go
// files and returns the directories that hold them (relative,
// slash-separated, sorted) and the failpoint names (sorted). A directory
// with only a `// gofail: label:` comment (v3.4's rafthttp keeps one whose
// failpoint was removed) is left out: gofail rewrites no file without a
// failpoint anyway.
func findFailpoints(root string) (dirs, names []string, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		found, err := failpointsInFile(path)
		if err != nil || len(found) == 0 {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dirs = append(dirs, filepath.ToSlash(rel))
		names = append(names, found...)
		return nil
	})
	slices.Sort(dirs)
	slices.Sort(names)
	return slices.Compact(dirs), slices.Compact(names), err
}

// failpointsInFile returns the names declared by `// gofail: var NAME TYPE`
// comments in a Go file, as gofail itself recognizes them.
func failpointsInFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "// gofail:")
		if !ok {
			continue
		}
		if fields := strings.Fields(rest); len(fields) == 3 && fields[0] == "var" {
			names = append(names, fields[1])
		}
	}
	return names, sc.Err()
}

// enableFailpoints runs `gofail enable` on every directory of the copied
// source that has failpoints (gofail does not recurse).
func (b *builder) enableFailpoints(ctx context.Context) error {
	dirs, names, err := findFailpoints(b.src)
	if err != nil {
		return fmt.Errorf("looking for failpoints: %w", err)
	}
	if len(dirs) == 0 || len(names) == 0 {
		return fmt.Errorf("no `// gofail:` failpoints found in %s", b.rel.srcModule)
	}
	args := []string{"run", "go.etcd.io/gofail@" + gofailVersion, "enable"}
	for _, d := range dirs {
		args = append(args, "./"+filepath.ToSlash(filepath.Join("src", d)))
	}
	if _, err := b.goCmd(ctx, args...); err != nil {
		return err
	}
	for _, d := range dirs {
		bindings, err := filepath.Glob(filepath.Join(b.src, d, "*.fail.go"))
		if err != nil {
			return err
		}
		if len(bindings) == 0 {
			return fmt.Errorf("gofail enable wrote no *.fail.go in %s", d)
		}
	}
	b.info.FailpointDirs = dirs
	b.info.Failpoints = names
	b.log.Debug("enabled failpoints", zap.String("version", b.rel.version),
		zap.Strings("dirs", dirs), zap.Int("failpoints", len(names)))
	return nil
}

// buildBinaries builds all the release's executables with one go command,
// which loads the packages once and links the executables in parallel.
func (b *builder) buildBinaries(ctx context.Context) error {
	if _, err := b.goCmd(ctx, "mod", "edit", "-replace", b.rel.srcModule+"=./src"); err != nil {
		return err
	}
	// With several packages, `go build -o dir/` names each executable after
	// its package's last path element that is not a major version suffix.
	tmpBin := filepath.Join(b.work, "bin")
	args := []string{"build", "-o", tmpBin + string(filepath.Separator)}
	for _, bin := range b.rel.binaries {
		args = append(args, bin.pkg)
	}
	if _, err := b.goCmd(ctx, args...); err != nil {
		return err
	}
	for _, bin := range b.rel.binaries {
		built := filepath.Join(tmpBin, goBuildName(bin.pkg))
		if err := os.Rename(built, filepath.Join(b.out, binDir, bin.name)); err != nil {
			return fmt.Errorf("go build did not produce %s: %w", bin.name, err)
		}
		b.info.Binaries = append(b.info.Binaries, bin.name)
	}
	return nil
}

var majorVersionRE = regexp.MustCompile(`^v[0-9]+$`)

// goBuildName is the name go build gives the executable of main package pkg.
func goBuildName(pkg string) string {
	elems := strings.Split(pkg, "/")
	name := elems[len(elems)-1]
	if len(elems) > 1 && majorVersionRE.MatchString(name) {
		name = elems[len(elems)-2]
	}
	return name
}

// verify checks the built etcd runs and reports the expected version.
func (b *builder) verify(ctx context.Context) error {
	etcd := filepath.Join(b.out, binDir, "etcd")
	got, err := etcdVersion(ctx, etcd)
	if err != nil {
		return err
	}
	if got != b.rel.version {
		return fmt.Errorf("built etcd reports version %s, want %s", got, b.rel.version)
	}
	if len(b.info.FailpointDirs) == 0 {
		return errors.New("no gofail-enabled directories")
	}
	return b.checkPatched()
}

// recordInfo writes build-info.json, the last file of a cache entry.
func (b *builder) recordInfo(ctx context.Context) error {
	gover, err := b.goCmd(ctx, "env", "GOVERSION")
	if err != nil {
		return err
	}
	b.info.GoVersion = strings.TrimSpace(gover)
	mods, err := b.goCmd(ctx, "list", "-m", "-f", "{{.Path}} {{.Version}}", "all")
	if err != nil {
		return err
	}
	b.info.Modules = map[string]string{}
	for _, line := range strings.Split(mods, "\n") {
		path, version, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if strings.HasPrefix(path, "go.etcd.io/") || path == "google.golang.org/grpc" {
			b.info.Modules[path] = version
		}
	}
	b.info.NoSumDB = b.noSumDB
	b.info.BuiltAt = time.Now().UTC()
	b.info.BuildSeconds = time.Since(b.start).Seconds()
	data, err := json.MarshalIndent(b.info, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(b.out, buildInfoFile), append(data, '\n'))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// goEnv is added to os.Environ() for every go command.
var goEnv = []string{
	"GOFLAGS=-mod=mod -buildvcs=false",
	"CGO_ENABLED=0",
	"GOWORK=off",
}

const outputTailLines = 20

// goCmd runs the go command in the wrapper module and returns its combined
// output. On failure the error names the command and holds the tail of its
// output, on one line.
func (b *builder) goCmd(ctx context.Context, args ...string) (string, error) {
	return b.goCmdEnv(ctx, nil, args...)
}

// goCmdEnv is goCmd with env added to the environment.
func (b *builder) goCmdEnv(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.work
	cmd.Env = append(os.Environ(), goEnv...)
	if len(b.noSumDB) > 0 {
		nosum := strings.Join(b.noSumDB, ",")
		if prev := os.Getenv("GONOSUMDB"); prev != "" {
			nosum = prev + "," + nosum
		}
		cmd.Env = append(cmd.Env, "GONOSUMDB="+nosum)
	}
	cmd.Env = append(cmd.Env, env...)
	// Kill the whole process group on cancel: the go command's compilers
	// and linkers would otherwise keep writing into the build dir.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second

	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	b.log.Debug("running", zap.String("cmd", "go "+strings.Join(args, " ")))
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return out.String(), fmt.Errorf("go %s: %w", strings.Join(args, " "), ctxErr)
		}
		return out.String(), fmt.Errorf("go %s: %w; output: %s", strings.Join(args, " "), err, tail(out.String(), outputTailLines))
	}
	return out.String(), nil
}

// tail returns the last n non-empty lines of s joined with " | ".
func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	if len(lines) == 0 {
		return "(none)"
	}
	return strings.Join(lines, " | ")
}

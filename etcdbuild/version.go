package etcdbuild

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// DefaultVersion is the newest etcd release the Go module proxy serves.
const DefaultVersion = "v3.7.3"

// ErrVersionNotServed is wrapped (errors.Is) by the errors Provision returns
// when the Go module proxy does not serve the requested etcd version.
var ErrVersionNotServed = errors.New("etcd version not served by the Go module proxy")

// servedSummary describes the versions the module proxy is known to serve. It
// only feeds error messages: whether a version is served is always asked of
// the proxy itself (except for v3.4, see v34PseudoVersions).
const servedSummary = "v3.4.3, v3.4.12, v3.5.0-v3.5.35 except v3.5.26/28/29/30, v3.6.0-v3.6.16, v3.7.0-v3.7.3, v3.8.0-alpha.0"

// gofailVersion is the gofail release etcd pins; it is used to enable the
// failpoints of every etcd version.
const gofailVersion = "v0.2.0"

// v34PseudoVersions maps the v3.4 releases the proxy holds to the
// pseudo-versions of module go.etcd.io/etcd under which it holds them (v3.4
// predates the /v3 modules and its +incompatible tags are not served).
var v34PseudoVersions = map[string]string{
	"v3.4.3":  "v0.0.0-20191023171146-3cf2f69b5738",
	"v3.4.12": "v0.5.0-alpha.5.0.20200819165624-17cef6e3e9d5",
}

var versionRE = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?$`)

// NormalizeVersion accepts an etcd release version with or without the
// leading "v" ("3.7.3" or "v3.7.3", pre-releases like "v3.8.0-alpha.0" too)
// and returns it with the "v". Malformed input, or a version that cannot be
// an etcd v3 release, is rejected with an error that shows the expected form
// and the versions the module proxy serves.
func NormalizeVersion(v string) (string, error) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("invalid etcd version %q: want a release version like %s or %s (served: %s)",
			v, DefaultVersion, DefaultVersion[1:], servedSummary)
	}
	if m[1] != "3" {
		return "", fmt.Errorf("invalid etcd version %q: only etcd v3 releases exist as Go modules, e.g. %s (served: %s)",
			v, DefaultVersion, servedSummary)
	}
	return "v" + m[1] + "." + m[2] + "." + m[3] + m[4], nil
}

// release says where the Go module proxy keeps one etcd release.
type release struct {
	version string // normalized, e.g. "v3.7.3"
	// modules are fetched with `go get module@moduleVersion`.
	modules       []string
	moduleVersion string
	// etcdctlVersion, if set, is the release etcdctl is built from, in a
	// module of its own, because the proxy does not serve moduleVersion's
	// etcdctl (builder.checkServed).
	etcdctlVersion string
	// srcModule is the module whose source gets the failpoints enabled.
	srcModule string
	// binaries maps an executable name to its main package.
	binaries []binary
}

type binary struct {
	name string // etcd, etcdctl or etcdutl
	pkg  string
}

// notServedError is returned when the proxy does not serve a version.
type notServedError struct {
	version string
}

func (e *notServedError) Error() string {
	return fmt.Sprintf("etcd version %s is not served by the Go module proxy (served: %s)", e.version, servedSummary)
}

func (e *notServedError) Unwrap() error { return ErrVersionNotServed }

// releaseFor maps a normalized version to the modules that hold it. It
// returns an error wrapping ErrVersionNotServed for versions that are known
// not to exist as modules (before v3.4, or a v3.4 with no known
// pseudo-version); any other version still has to be checked with the proxy.
func releaseFor(version string) (release, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return release{}, fmt.Errorf("invalid etcd version %q", version)
	}
	minor, err := strconv.Atoi(m[2])
	if err != nil {
		return release{}, fmt.Errorf("invalid etcd version %q: %w", version, err)
	}
	switch {
	case minor < 4:
		return release{}, &notServedError{version: version}
	case minor == 4:
		pseudo, ok := v34PseudoVersions[version]
		if !ok {
			return release{}, &notServedError{version: version}
		}
		return release{
			version:       version,
			modules:       []string{"go.etcd.io/etcd"},
			moduleVersion: pseudo,
			srcModule:     "go.etcd.io/etcd",
			binaries: []binary{
				{name: "etcd", pkg: "go.etcd.io/etcd"},
				{name: "etcdctl", pkg: "go.etcd.io/etcd/etcdctl"},
			},
		}, nil
	default:
		const (
			server  = "go.etcd.io/etcd/server/v3"
			etcdctl = "go.etcd.io/etcd/etcdctl/v3"
			etcdutl = "go.etcd.io/etcd/etcdutl/v3"
		)
		return release{
			version:       version,
			modules:       []string{server, etcdctl, etcdutl},
			moduleVersion: version,
			srcModule:     server,
			binaries: []binary{
				{name: "etcd", pkg: server},
				{name: "etcdctl", pkg: etcdctl},
				{name: "etcdutl", pkg: etcdutl},
			},
		}, nil
	}
}

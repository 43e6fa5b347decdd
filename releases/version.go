package releases

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/etcd-robustness/etcd-robustness/cluster"
)

// Versions are what a running member says of the releases at /version:
// its own, the cluster's, and (v3.6 and later) its storage version.
type Versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	// Storage is "" before v3.6, which keeps none.
	Storage string `json:"storage"`
}

func (v Versions) String() string {
	s := "server " + v.Server + ", cluster " + v.Cluster
	if v.Storage != "" {
		s += ", storage " + v.Storage
	}
	return s
}

// versionTimeout bounds one /version request.
const versionTimeout = 2 * time.Second

// ReadVersions asks the member listening on clientURL (http://host:port,
// or https:// for a member of a TLS cluster of this process, asked with the
// cluster's client certificate) for its /version.
func ReadVersions(ctx context.Context, clientURL string) (Versions, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/version", nil)
	if err != nil {
		return Versions{}, err
	}
	resp, err := cluster.HTTPClient(clientURL).Do(req)
	if err != nil {
		return Versions{}, fmt.Errorf("GET %s/version: %w", clientURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Versions{}, fmt.Errorf("GET %s/version: %w", clientURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Versions{}, fmt.Errorf("GET %s/version: %s: %s", clientURL, resp.Status, body)
	}
	var v Versions
	if err := json.Unmarshal(body, &v); err != nil {
		return Versions{}, fmt.Errorf("GET %s/version: %w (body %q)", clientURL, err, body)
	}
	return v, nil
}

// WaitVersions polls clientURL's /version every 200 ms until ok accepts
// it or ctx is done, and returns the last answer.
func WaitVersions(ctx context.Context, clientURL string, ok func(Versions) bool) (Versions, error) {
	for {
		v, err := ReadVersions(ctx, clientURL)
		if err == nil && ok(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("last answer: %s", v)
			}
			return v, fmt.Errorf("waiting for %s/version: %w: %w", clientURL, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

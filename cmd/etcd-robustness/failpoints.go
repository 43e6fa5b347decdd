package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/etcdbuild"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/robustness"
)

// failpointsCmd lists every fault with its family and whether it is
// available for a binary and cluster size, and if not, why. Availability
// is read from a real cluster of that binary, started in a temporary
// directory and stopped again: the gofail points are the ones the
// members' gofail endpoints list.
func failpointsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("failpoints", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		version  = fs.String("etcd-version", etcdbuild.DefaultVersion, "etcd release to check the faults against")
		binDir   = fs.String("etcd-bin", "", "directory with prebuilt etcd binaries to check instead of a release build")
		cacheDir = fs.String("cache-dir", "", "where etcd builds are cached (default $ETCD_ROBUSTNESS_CACHE or the user cache dir)")
		members  = fs.Int("members", 3, "cluster size the faults would run on: 1, 3 or 5")
	)
	if err := fs.Parse(args); err != nil {
		return exitSetup
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if *members != 1 && *members != 3 && *members != 5 {
		return usageErr(stderr, fmt.Errorf("--members must be 1, 3 or 5, not %d", *members))
	}
	v, err := etcdbuild.NormalizeVersion(*version)
	if err != nil && *binDir == "" {
		return usageErr(stderr, err)
	}
	lg := newLogger(stderr).WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	bins, err := robustness.ProvisionEtcd(ctx, lg, []string{v}, nil, *binDir, *cacheDir)
	if err != nil {
		return failed(ctx, stderr, err)
	}
	dir, err := os.MkdirTemp("", "etcd-robustness-failpoints-")
	if err != nil {
		return usageErr(stderr, err)
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := cluster.Start(startCtx, cluster.Config{Size: *members, EtcdPaths: []string{bins[0].Etcd}, Dir: dir, Logger: lg})
	if err != nil {
		return failed(ctx, stderr, fmt.Errorf("starting a cluster to read its failpoints: %w", err))
	}
	defer cl.Close()

	fmt.Fprintf(stdout, "faults for etcd %s on %d member(s):\n\n", bins[0].Version, *members)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFAMILY\tAVAILABLE")
	for _, f := range failpoint.All() {
		status := "yes"
		if err := f.Available(startCtx, cl); err != nil {
			reason, _, _ := strings.Cut(err.Error(), "; it has:")
			if strings.Contains(reason, "is not in the etcd binary") {
				reason = "not in this etcd binary"
			}
			status = "no: " + strings.ReplaceAll(reason, "\n", " ")
		} else if !failpoint.InRandomPool(f) {
			status = "yes (by name only: not picked by random)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name(), f.Family(), status)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n--failpoint takes one name, a comma-separated list, or %q (an available fault, picked from the seed before traffic starts; the lost-write disk fault and etcdutl-migrate run by name only). A gofail point's bare name is its panic.\n", failpoint.Random)
	if ctx.Err() != nil { // interrupted, or the output was closed
		return exitInterrupted
	}
	return exitPass
}

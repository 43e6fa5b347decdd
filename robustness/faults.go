package robustness

import (
	"context"
	"math/rand"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/scenarios"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// faultPlan is the faults a run injects, resolved from the scenario and
// checked against the running cluster.
type faultPlan struct {
	fp failpoint.Failpoint
}

// lookupFaults checks the scenario's fault names before anything starts.
func lookupFaults(sc scenarios.Scenario) error {
	_, err := failpoint.Lookup(sc.Failpoint)
	return err
}

// prepareFaults resolves the scenario's faults and checks that each can run
// against this cluster and its binaries.
func prepareFaults(ctx context.Context, sc scenarios.Scenario, cl *cluster.Cluster) (faultPlan, error) {
	fp, err := failpoint.Lookup(sc.Failpoint)
	if err != nil {
		return faultPlan{}, err
	}
	if err := fp.Available(ctx, cl); err != nil {
		return faultPlan{}, err
	}
	return faultPlan{fp: fp}, nil
}

// injectTimeout bounds one fault injection, recovery included.
const injectTimeout = 2 * time.Minute

// runTrafficAndFaults runs traffic for the scenario's duration and injects the
// fault after a quarter of it. Traffic keeps going until the cluster has
// recovered and at least a second longer, so the history shows etcd after
// the fault too.
func runTrafficAndFaults(ctx context.Context, lg *zap.Logger, cfg Config, cl *cluster.Cluster, clock *history.Clock,
	profile traffic.Profile, plan faultPlan) ([]history.Client, []history.Injection) {
	sc := cfg.Scenario
	fp := plan.fp
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	type trafficResult struct {
		clients []history.Client
		err     error
	}
	done := make(chan trafficResult, 1)
	lg.Info("traffic started", zap.String("profile", profile.Name()), zap.Int("clients", sc.Clients),
		zap.Float64("qps", sc.QPS), zap.Duration("duration", sc.Duration))
	go func() {
		clients, err := traffic.Run(trafficCtx, traffic.Config{
			Profile: profile, Endpoints: cl.Endpoints(), Clients: sc.Clients, QPS: sc.QPS,
			Seed: cfg.Seed, Clock: clock, Logger: lg,
		})
		done <- trafficResult{clients, err}
	}()

	var injections []history.Injection
	select {
	case <-time.After(sc.Duration / 4):
		start := clock.Now()
		lg.Info("injecting fault", zap.String("failpoint", fp.Name()))
		// A member that never recovers must not hang the run.
		injectCtx, cancel := context.WithTimeout(ctx, injectTimeout)
		member, err := fp.Inject(injectCtx, failpoint.Env{Cluster: cl, Logger: lg, Rand: rand.New(rand.NewSource(cfg.Seed))})
		cancel()
		inj := history.Injection{Name: fp.Name(), Targets: []string{member}, Start: start, End: clock.Now()}
		if err != nil {
			inj.Error = err.Error()
			lg.Warn("fault injection failed", zap.String("failpoint", fp.Name()), zap.Error(err))
		} else {
			lg.Info("cluster recovered from fault", zap.String("failpoint", fp.Name()), zap.String("member", member),
				zap.Duration("took", inj.End-inj.Start))
		}
		injections = append(injections, inj)
		wait := max(sc.Duration-clock.Now(), time.Second)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	stopTraffic()
	r := <-done
	if r.err != nil {
		lg.Warn("traffic", zap.Error(r.err))
	}
	return r.clients, injections
}

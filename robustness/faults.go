package robustness

import (
	"context"
	"math/rand"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-robustness/etcd-robustness/cluster"
	"github.com/etcd-robustness/etcd-robustness/failpoint"
	"github.com/etcd-robustness/etcd-robustness/history"
	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// injectTimeout bounds one fault injection, recovery included.
const injectTimeout = 2 * time.Minute

// runTrafficAndFault runs traffic for the scenario's duration and injects the
// fault after a quarter of it. Traffic keeps going until the cluster has
// recovered and at least a second longer, so the history shows etcd after
// the fault too.
func runTrafficAndFault(ctx context.Context, lg *zap.Logger, cfg Config, cl *cluster.Cluster, clock *history.Clock,
	profile traffic.Profile, fp failpoint.Failpoint) ([]history.Client, []history.Injection) {
	sc := cfg.Scenario
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
		inj := history.Injection{Name: fp.Name(), Member: member, Start: start, End: clock.Now()}
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


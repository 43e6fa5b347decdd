package scenarios

import "time"

// Watch is a scenario's watch traffic: watchers pinned to each member and
// one over the whole cluster, whose streams the watch stage checks (see
// traffic.StartWatchers). A scenario without it runs no watch.
type Watch struct {
	// ProgressRequestInterval is how often every watch stream sends
	// RequestProgress; zero means traffic.DefaultProgressRequestInterval.
	ProgressRequestInterval time.Duration `json:"progress_request_interval,omitempty"`
	// ProgressNotifyInterval is the members' watch progress notification
	// interval (etcd's --watch-progress-notify-interval, spelled
	// --experimental-… before 3.6), so that watches that asked for
	// progress_notify get notifications within a run; zero means
	// DefaultProgressNotifyInterval.
	ProgressNotifyInterval time.Duration `json:"progress_notify_interval,omitempty"`
	// SnapshotCount, if set, is the members' --snapshot-count: the leader
	// then compacts its raft log often, so that a member cut off for long
	// enough catches up from a snapshot (etcd 3.5 keeps 5000 entries for
	// slow followers, a number no flag changes).
	SnapshotCount int `json:"snapshot_count,omitempty"`
}

// DefaultProgressNotifyInterval is the members' progress notification
// interval in a run with watches. etcd's default, 10 minutes, would send
// none within a run; etcd does not go below 100 ms.
const DefaultProgressNotifyInterval = 500 * time.Millisecond

func init() {
	register(Scenario{
		Name:        "watch",
		Description: "3 members, etcd-style KV traffic and watches on every member, one member SIGKILLed and restarted",
		Members:     3,
		Failpoint:   "kill",
		Traffic:     "etcd-kv",
		Duration:    10 * time.Second,
		QPS:         200,
		Clients:     6,
		Watch:       &Watch{},
	})
	// etcd #15220: before 3.5.8 a member answers RequestProgress with its
	// current revision at once, from the control stream, even while the
	// watch has not sent every event up to it (an unsynced watch catching
	// up, or an event still in the watch's channel). A progress
	// notification then vouches for events that arrive after it. Frequent
	// progress requests under writes, and watches that catch up after a
	// restart, aim at it.
	register(Scenario{
		Name:        "watch-15220",
		Description: "etcd #15220 on v3.5.7: 1 member SIGKILLed and restarted under KV traffic, watches that ask for progress every 20 ms",
		Members:     1,
		Failpoint:   "kill",
		Traffic:     "etcd-kv",
		Duration:    10 * time.Second,
		QPS:         300,
		Clients:     6,
		EtcdVersion: "v3.5.7",
		Watch:       &Watch{ProgressRequestInterval: 20 * time.Millisecond},
	})
	// etcd #15271: before 3.5.8 a synced watch's next revision was not
	// kept up to date as it was notified, so when a member restored a
	// snapshot from the leader (after being cut off past the leader's
	// kept log), its watches were synced again from the revision they
	// started at and sent old events again: the watch went back in time.
	// etcd 3.5 keeps 5000 entries for a slow follower, so the member is cut
	// off for 25 s under as many writes as the machine takes, with a small
	// --snapshot-count.
	register(Scenario{
		Name:        "watch-15271",
		Description: "etcd #15271 on v3.5.7: 3 members, one cut off from its peers for 25 s under heavy KV traffic (snapshot count 100), watches on every member",
		Members:     3,
		Failpoint:   "blackhole-member",
		Faults:      []Fault{{Name: "blackhole-member", Start: 3 * time.Second, Duration: 25 * time.Second}},
		Traffic:     "etcd-kv",
		Duration:    32 * time.Second,
		QPS:         1000,
		Clients:     12,
		EtcdVersion: "v3.5.7",
		Watch:       &Watch{SnapshotCount: 100},
	})
}

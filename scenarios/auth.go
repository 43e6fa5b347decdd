package scenarios

import "time"

func init() {
	// etcd #14571: a member that rebuilt its auth store from a snapshot
	// kept its old permission cache (v3.5.5 and v3.4.20-21; fixed in
	// v3.5.6 and v3.4.22) until the next auth change it applied, and
	// refused, or allowed, writes the other members decided otherwise: the
	// members diverge. A follower is cut off until the leader compacted its
	// log past it (small --snapshot-count), while the admin changes the
	// users' permissions, so it catches up from a snapshot with different
	// auth than it had. v3.5.5 and v3.5.6 have no flag for the entries a
	// leader keeps for a slow follower (5,000), so blackhole-until-snapshot
	// is not available there: the follower is cut off instead for 35 s of
	// writes, with --snapshot-count 100, so that more than those 5,000
	// entries are committed without it (a 15 s cut, about 3,500 entries at
	// this rate, was caught up from the log, and no run showed the bug).
	register(Scenario{
		Name:        "auth-14571",
		Description: "etcd #14571 on v3.5.5: 3 members with auth (simple tokens), a member cut off for 35 s (snapshot count 100) while permissions change, so that it catches up from a snapshot",
		Members:     3,
		Failpoint:   "blackhole-member",
		Faults:      []Fault{{Name: "blackhole-member", Start: 3 * time.Second, Duration: 35 * time.Second}},
		Traffic:     "etcd",
		Duration:    45 * time.Second,
		Etcd:        &EtcdSettings{SnapshotCount: 100},
		QPS:         500,
		Clients:     10,
		EtcdVersion: "v3.5.5",
		Auth:        "simple",
	})
}

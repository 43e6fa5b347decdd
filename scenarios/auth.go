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
	// auth than it had.
	register(Scenario{
		Name:        "auth-14571",
		Description: "etcd #14571 on v3.5.5: 3 members with auth (simple tokens), a follower cut off until it needs a snapshot while permissions change",
		Members:     3,
		Failpoint:   "blackhole-until-snapshot",
		Faults:      []Fault{{Name: "blackhole-until-snapshot", Start: 3 * time.Second}},
		Traffic:     "etcd",
		Duration:    20 * time.Second,
		QPS:         500,
		Clients:     10,
		EtcdVersion: "v3.5.5",
		Auth:        "simple",
	})
}

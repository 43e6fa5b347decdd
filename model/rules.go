package model

import "fmt"

// Rules are the rules of etcd's applier that changed between releases, so
// that the model applies a committed entry as the members' release does.
// The zero value is the releases the harness runs first (v3.6 and v3.7).
//
// Only a request whose auth revision is known can tell the rules apart: one
// read from a member's WAL, whose header carries it, and only the replay of
// the committed log applies those (validate's patch stage, which starts from
// InitialStateWith(RulesOf(the run's releases))). A client's request has no
// known auth revision, so the other stages start from InitialState().
//
// A run whose members ran releases with different rules is replayed with the
// older rule (RulesOf): such a cluster can itself diverge where the rules
// differ, and the convergence stage would see it.
type Rules struct {
	// LeaseKeysEvenForAdmin: etcd's checkLeasePuts runs isOpPermitted on
	// every key attached to the lease for root too, and isOpPermitted
	// refuses an auth revision older than the store's before it looks at
	// the user's roles. So a lease revoke (or a put attaching the lease)
	// by root is refused at apply with "revision of auth store is old"
	// when an auth change was applied after it was proposed. The leader's
	// own revokes of expired leases are root's (authStore.WithRoot gives
	// them a root token at the auth revision of the moment), so an auth
	// change committed between such a revoke's proposal and its apply
	// leaves the lease and its keys in place, and the leader tries again
	// later. Since etcd PR #16005 (v3.6.0; v3.5.10 by backport #16019,
	// read in the module cache: v3.5.9's checkLeasePuts has no early
	// return, v3.5.10's has; 3.4 by backport #16020, taken here as
	// v3.4.27, not read in source) an admin returns before the keys are
	// checked, and the revision is not looked at.
	LeaseKeysEvenForAdmin bool
}

// RulesOf are the rules of the given releases ("v3.5.6"): the older rule of
// each where they differ. A version that does not parse as v3.M.P counts as
// a current release.
func RulesOf(releases []string) Rules {
	var r Rules
	for _, v := range releases {
		var major, minor, patch int
		if n, _ := fmt.Sscanf(v, "v%d.%d.%d", &major, &minor, &patch); n != 3 || major != 3 {
			continue
		}
		if minor < 4 || (minor == 4 && patch < 27) || (minor == 5 && patch < 10) {
			r.LeaseKeysEvenForAdmin = true
		}
	}
	return r
}

// InitialStateWith is a fresh etcd cluster (InitialState) whose applier
// follows rules.
func InitialStateWith(rules Rules) State {
	s := InitialState()
	s.rules = rules
	return s
}

package scenarios

import (
	"fmt"
	"slices"
	"strings"

	"github.com/etcd-robustness/etcd-robustness/traffic"
)

// Describe says what the scenario runs, from its fields alone: the cluster
// size, the traffic (profile, rate, clients, placement) and for how long,
// the watches, and each fault of the schedule with when it starts. A run
// whose flags changed the named scenario shows this instead of the
// registered Description, which describes the scenario as registered.
func (s Scenario) Describe() string {
	members := fmt.Sprintf("%d members", s.Members)
	if s.Members == 1 {
		members = "1 member"
	}
	clients := fmt.Sprintf("%d clients", s.Clients)
	if s.Clients == 1 {
		clients = "1 client"
	}
	if s.Explore != nil && len(s.Explore.MemberVersions) > 0 {
		members += " (running " + strings.Join(s.Explore.MemberVersions, ", ")
		if x := s.Explore; x.Older != "" {
			members += "; a " + x.Older + " on the older release, the leader on the " + x.LeaderOn + " side"
			if x.Leader != "" {
				members += ": " + x.Leader
				if x.Moved {
					members += ", moved there"
				}
			}
		}
		members += ")"
	}
	if s.TLS {
		members += " over TLS (client and peer, client certificates required)"
	}
	parts := []string{members, fmt.Sprintf("%s traffic for %s at %g requests/s from %s%s", s.Traffic, s.Duration, s.QPS, clients, s.rateNote())}
	switch s.Placement {
	case traffic.Pinned:
		parts[1] += ", each pinned to one member"
	case traffic.Spread:
		parts[1] += ", each spread over every member"
	}
	if s.CompactionInterval > 0 {
		parts[1] += fmt.Sprintf(", compacting every %s–%s", s.CompactionInterval, 2*s.CompactionInterval)
	}
	if s.LeaseKeepAlive > 0 {
		parts[1] += fmt.Sprintf(", every lease kept alive for %s", s.LeaseKeepAlive)
	}
	parts = append(parts, s.describeWatch())
	if s.Auth != "" {
		parts = append(parts, "auth with "+s.Auth+" tokens, traffic as several users, permissions changed during the run")
	}
	if e := s.Etcd.Describe(); e != "" {
		parts = append(parts, "etcd with "+e)
	}
	var faults []string
	for _, f := range s.Schedule() {
		d := fmt.Sprintf("%s at %s", f.Name, f.Start)
		if f.Duration > 0 {
			d += fmt.Sprintf(" for %s", f.Duration)
		}
		faults = append(faults, d)
	}
	switch len(faults) {
	case 0:
		parts = append(parts, "no fault")
	case 1:
		parts = append(parts, "fault: "+faults[0])
	default:
		parts = append(parts, "faults: "+strings.Join(faults, ", then "))
	}
	return strings.Join(parts, "; ")
}

// rateNote names the profile's rate level when QPS and Clients are still
// that level's.
func (s Scenario) rateNote() string {
	if s.Rate == "" {
		return ""
	}
	p, err := traffic.Lookup(s.Traffic)
	if err != nil {
		return ""
	}
	r, err := p.Rates().Level(s.Rate)
	if err != nil || r.QPS != s.QPS || r.Clients != s.Clients {
		return ""
	}
	return fmt.Sprintf(" (%s rate)", s.Rate)
}

func (s Scenario) describeWatch() string {
	if s.Watch == nil {
		return "no watches"
	}
	d := "watches on every member and over the cluster"
	var extra []string
	if s.Watch.ProgressRequestInterval > 0 {
		extra = append(extra, fmt.Sprintf("progress requested every %s", s.Watch.ProgressRequestInterval))
	}
	if s.Watch.ProgressNotifyInterval > 0 {
		extra = append(extra, fmt.Sprintf("progress notified every %s", s.Watch.ProgressNotifyInterval))
	}
	if s.Watch.SnapshotCount > 0 {
		extra = append(extra, fmt.Sprintf("snapshot count %d", s.Watch.SnapshotCount))
	}
	if len(extra) > 0 {
		d += " (" + strings.Join(extra, ", ") + ")"
	}
	return d
}

// Title is the scenario's name as a report shows it: the name, and the
// flags that changed it, "default, with flags: --traffic etcd --failpoint
// pause-follower".
func (s Scenario) Title() string {
	if s.Flags == "" {
		return s.Name
	}
	return s.Name + ", with flags: " + s.Flags
}

// Overridden is s as flags changed it: flags (as given, e.g. "--traffic
// etcd --failpoint kill") are recorded, and the description is made from
// the fields (Describe), as the registered one no longer says what runs.
// No flags leave s as it is.
func (s Scenario) Overridden(flags []string) Scenario {
	if len(flags) == 0 {
		return s
	}
	s.Flags = strings.Join(flags, " ")
	s.Description = s.Describe()
	return s
}

// WhatRan describes what a recorded scenario ran: its Description when
// that is still true of it, else Describe's. A record written before runs
// recorded their flags may carry the registered text of a scenario that
// flags changed; its fields differ from the registered scenario's, so it
// is described from them.
func (s Scenario) WhatRan() string {
	if s.Flags != "" && s.Description != "" {
		return s.Description
	}
	reg, err := Lookup(s.Name)
	switch {
	case err != nil && s.Description != "":
		return s.Description // not a registered scenario: its own text
	case err == nil && s.Description == reg.Description && sameRun(s, reg):
		return s.Description
	case s.Members == 0:
		return s.Description
	}
	return s.Describe()
}

// sameRun reports whether a and b run the same cluster, traffic, watches
// and faults.
func sameRun(a, b Scenario) bool {
	return a.Members == b.Members && a.TLS == b.TLS && a.Traffic == b.Traffic && a.Duration == b.Duration && a.QPS == b.QPS &&
		a.Clients == b.Clients && a.Placement == b.Placement && a.Failpoint == b.Failpoint && a.CompactionInterval == b.CompactionInterval &&
		a.LeaseKeepAlive == b.LeaseKeepAlive &&
		slices.Equal(a.Schedule(), b.Schedule()) && (a.Watch == nil) == (b.Watch == nil) && (a.Watch == nil || *a.Watch == *b.Watch) &&
		(a.Etcd == nil) == (b.Etcd == nil) && (a.Etcd == nil || *a.Etcd == *b.Etcd) && (a.Explore == nil) == (b.Explore == nil)
}

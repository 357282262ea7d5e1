// Equal fast timing for row (d), in a module of its own so that every target can read it without
// loading another target's code (the ceph and etcd targets run while paxmon's code is mid-edit).

/**
 * paxmon's fast options. etcd's follower starts an election when it heard nothing from the leader
 * for an election timeout (250 ms; heartbeats every 50 ms). A paxmon peon bootstraps when its
 * lease was not renewed within mon_lease × mon_lease_ack_timeout_factor (2), and the leader renews
 * every mon_lease × 0.25; an election with a monitor missing ends on mon_election_timeout. So:
 * mon_lease 0.125 s (renewal every 31 ms, failure noticed after 250 ms), mon_election_timeout
 * 0.25 s, mon_probe_timeout 0.25 s. The names and meanings are Ceph's: the ceph target sets the
 * same three in its ceph.conf.
 */
export const paxmonFastSets = ['mon_lease=0.125', 'mon_election_timeout=0.25', 'mon_probe_timeout=0.25'];

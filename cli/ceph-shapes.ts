// The `ceph` CLI's output shapes (Ceph 16.2, ../shared/testdata/ceph-golden/): paxmon's monitors
// answer with their own JSON; these pure functions give it the field names, shapes and plain text
// of `ceph quorum_status`, `mon dump`, `mon stat`, `health detail`, `log last` and `status`.
// Fields Ceph has and paxmon cannot fill (features, OSD/PG/MDS/mgr maps) are left out (README,
// "Where the CLI's output differs from Ceph's"); paxmon's extra facts keep names Ceph does not use.

/** A monmap as paxmon's monitors send it (machines/services/monmap.ts monmapJson). */
export interface PaxmonMonmap {
  epoch: number;
  fsid: string;
  modified: string;
  created: string;
  election_strategy: string;
  disallowed_leaders: string[];
  min_quorum_size?: number;
  mons: { rank: number; name: string; addr: string }[];
}

/** Ceph's election strategies by number (MonMap::election_strategy: CLASSIC = 1 …). */
const strategyNumber: Record<string, number> = { classic: 1, disallow: 2, connectivity: 3 };

/** The Ceph release whose monitor paxmon follows (min_mon_release). */
export const monRelease = { number: 16, name: 'pacific' };

const withNonce = (addr: string) => `${addr}/0`;
/** Ceph's addrvec text: `[v2:127.0.0.1:3300/0,v1:…]`; a paxmon monitor has one (v2-like) address. */
export const addrvecText = (addr: string) => `[v2:${addr}/0]`;
const addrvec = (addr: string) => ({ addrvec: [{ type: 'v2', addr, nonce: 0 }] });

/** `2026-12-05T19:49:45.931Z` → Ceph's `2026-12-05T19:49:45.931000Z` (JSON) or `…+0000` (plain). */
export function cephStamp(iso: string, plain = false): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(iso);
  if (!m) return iso;
  const micros = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  return `${m[1]}.${micros}${plain ? '+0000' : 'Z'}`;
}

/** The monmap as `ceph mon dump -f json` shows it. */
export function cephMonmap(m: PaxmonMonmap) {
  return {
    epoch: m.epoch,
    fsid: m.fsid,
    modified: cephStamp(m.modified),
    created: cephStamp(m.created),
    min_mon_release: monRelease.number,
    min_mon_release_name: monRelease.name,
    election_strategy: strategyNumber[m.election_strategy] ?? m.election_strategy,
    // Ceph's key names, trailing ": " included (MonMap::dump).
    'disallowed_leaders: ': m.disallowed_leaders.join(','),
    stretch_mode: false,
    tiebreaker_mon: '',
    'removed_ranks: ': '',
    mons: m.mons.map((x) => ({
      rank: x.rank,
      name: x.name,
      public_addrs: addrvec(x.addr),
      addr: withNonce(x.addr),
      public_addr: withNonce(x.addr),
      priority: 0,
      weight: 0,
      crush_location: '{}',
    })),
    // paxmon's own: the strategy's name, and the quorum size (Ceph derives it).
    paxmon_election_strategy: m.election_strategy,
    ...(m.min_quorum_size !== undefined ? { paxmon_min_quorum_size: m.min_quorum_size } : {}),
  };
}

export interface PaxmonQuorumStatus {
  election_epoch: number;
  quorum: number[];
  quorum_names: string[];
  quorum_leader_name: string;
  quorum_age: number;
  monmap: PaxmonMonmap;
}

export const cephQuorumStatus = (q: PaxmonQuorumStatus) => ({
  election_epoch: q.election_epoch,
  quorum: q.quorum,
  quorum_names: q.quorum_names,
  quorum_leader_name: q.quorum_leader_name,
  quorum_age: q.quorum_age,
  monmap: cephMonmap(q.monmap),
});

/** A monitor's `mon_status` as paxmon's monitor answers it (its own fields beside Ceph's). */
export interface PaxmonMonStatus {
  name: string;
  rank: number;
  state: string;
  election_epoch: number;
  quorum: number[];
  quorum_age?: number;
  outside_quorum: string[];
  extra_probe_peers: unknown[];
  sync_provider: unknown[];
  monmap: PaxmonMonmap;
  [own: string]: unknown;
}

/**
 * `ceph tell mon.X mon_status`: Ceph's fields in Ceph's order, the monmap as Ceph dumps it, no
 * stretch mode; no `features` and `feature_map` (paxmon has no feature bits). paxmon's own
 * fields (paxos, sync, sync_decision, last_bootstrap_reason) follow, under names Ceph does not use.
 */
export function cephMonStatus(s: PaxmonMonStatus) {
  const {
    name,
    rank,
    state,
    election_epoch,
    quorum,
    quorum_age,
    outside_quorum,
    extra_probe_peers,
    sync_provider,
    monmap,
    ...own
  } = s;
  return {
    name,
    rank,
    state,
    election_epoch,
    quorum,
    ...(quorum_age !== undefined ? { quorum_age } : {}),
    outside_quorum,
    extra_probe_peers,
    sync_provider,
    monmap: cephMonmap(monmap),
    stretch_mode: false,
    ...own,
  };
}

/** `ceph mon dump`: the JSON (with the quorum, as Ceph's), or the plain text. */
export const cephMonDump = (m: PaxmonMonmap, quorum?: number[]) => ({
  ...cephMonmap(m),
  ...(quorum ? { quorum } : {}),
});

export function plainMonDump(m: PaxmonMonmap): string {
  return [
    `epoch ${m.epoch}`,
    `fsid ${m.fsid}`,
    `last_changed ${cephStamp(m.modified, true)}`,
    `created ${cephStamp(m.created, true)}`,
    `min_mon_release ${monRelease.number} (${monRelease.name})`,
    `election_strategy: ${strategyNumber[m.election_strategy] ?? m.election_strategy}`,
    ...m.mons.map((x) => `${x.rank}: ${addrvecText(x.addr)} mon.${x.name}`),
  ].join('\n');
}

/** `ceph mon stat`: what paxmon's monitor sends ({text, …monmap, quorum}) in Ceph's shapes. */
export function cephMonStat(s: PaxmonMonmap & { quorum: number[]; text?: string }) {
  const names = new Map(s.mons.map((m) => [m.rank, m.name]));
  const leaderRank = s.quorum[0];
  return {
    epoch: s.epoch,
    min_mon_release_name: monRelease.name,
    num_mons: s.mons.length,
    ...(leaderRank !== undefined ? { leader: names.get(leaderRank) ?? '' } : {}),
    quorum: s.quorum.map((rank) => ({ rank, name: names.get(rank) ?? '' })),
  };
}

export function plainMonStat(s: PaxmonMonmap & { quorum: number[]; text?: string }): string {
  const names = new Map(s.mons.map((m) => [m.rank, m.name]));
  const epoch = /election epoch (\d+)/.exec(s.text ?? '')?.[1] ?? '?';
  const leader = s.quorum[0];
  return [
    `e${s.epoch}: ${s.mons.length} mons at {${s.mons.map((m) => `${m.name}=${addrvecText(m.addr)}`).join(',')}} removed_ranks: {}`,
    `election epoch ${epoch}`,
    `leader ${leader ?? '-'} ${leader !== undefined ? names.get(leader) : ''}`,
    `quorum ${s.quorum.join(',')} ${s.quorum.map((r) => names.get(r)).join(',')}`,
  ].join(', ');
}

export interface PaxmonHealth {
  status: string;
  checks: Record<string, { severity: string; summary: string; detail?: string[]; count?: number }>;
}

/** Monitor addresses in paxmon's check texts (`addr 127.0.0.1:6791`) written as Ceph's addrvec. */
const addrsInText = (text: string) =>
  text.replace(/\baddr (\S+:\d+)(?=\s|$)/g, (_, a: string) => `addr ${addrvecText(a)}`);

/** `ceph health [detail] -f json`: summary {message, count}, detail [{message}], muted, mutes. */
export function cephHealth(h: PaxmonHealth, detail: boolean) {
  return {
    status: h.status,
    checks: Object.fromEntries(
      Object.entries(h.checks).map(([name, c]) => [
        name,
        {
          severity: c.severity,
          summary: { message: c.summary, count: c.count ?? c.detail?.length ?? 1 },
          ...(detail
            ? { detail: (c.detail ?? []).map((message) => ({ message: addrsInText(message) })) }
            : {}),
          muted: false,
        },
      ]),
    ),
    mutes: [],
  };
}

const severityTag = (severity: string) =>
  severity === 'HEALTH_ERR' ? '[ERR]' : severity === 'HEALTH_WARN' ? '[WRN]' : '[INF]';

export function plainHealth(h: PaxmonHealth, detail: boolean): string {
  const checks = Object.entries(h.checks);
  const head = [h.status, checks.map(([, c]) => c.summary).join('; ')].filter(Boolean).join(' ');
  if (!detail) return head;
  return [
    head,
    ...checks.flatMap(([name, c]) => [
      `${severityTag(c.severity)} ${name}: ${c.summary}`,
      ...(c.detail ?? []).map((d) => `    ${addrsInText(d)}`),
    ]),
  ].join('\n');
}

export interface PaxmonLogLine {
  stamp: string;
  name: string;
  rank: number;
  seq: number;
  level: string;
  message: string;
  channel?: string;
  addr?: string;
}

/** `ceph log last -f json`: rank "mon.0" (client.? for clients), priority "[INF]", channel. */
export const cephLog = (entries: PaxmonLogLine[]) =>
  entries.map((e) => ({
    name: e.name,
    rank: e.rank >= 0 ? `mon.${e.rank}` : `${e.name.split('.')[0]}.?`,
    ...(e.addr ? { addrs: addrvec(e.addr) } : {}),
    stamp: cephStamp(e.stamp, true),
    seq: e.seq,
    channel: e.channel ?? 'cluster',
    priority: `[${e.level}]`,
    message: e.message,
  }));

export const plainLog = (entries: PaxmonLogLine[]) =>
  cephLog(entries)
    .map((e) => `${e.stamp} ${e.name} (${e.rank}) ${e.seq} : ${e.channel} ${e.priority} ${e.message}`)
    .join('\n');

export interface PaxmonStatus {
  fsid: string;
  health: PaxmonHealth;
  election_epoch: number;
  quorum: number[];
  quorum_names: string[];
  monmap: { epoch: number; num_mons: number };
  mon_stat?: string;
}

/** `ceph status -f json` (no osdmap, pgmap, fsmap, mgrmap, servicemap: paxmon has none). */
export const cephStatus = (s: PaxmonStatus, quorumAge?: number) => ({
  fsid: s.fsid,
  health: cephHealth(s.health, false),
  election_epoch: s.election_epoch,
  quorum: s.quorum,
  quorum_names: s.quorum_names,
  ...(quorumAge !== undefined ? { quorum_age: quorumAge } : {}),
  monmap: { epoch: s.monmap.epoch, min_mon_release_name: monRelease.name, num_mons: s.monmap.num_mons },
});

/**
 * An age as `ceph status` shows it (Ceph's timespan_str): seconds up to 2 minutes, then minutes
 * up to 2 hours, hours up to 2 days, days up to 2 weeks, weeks up to 2 years, then years.
 */
export function cephAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  if (s < 2 * 3600) return `${Math.floor(s / 60)}m`;
  if (s < 2 * 86_400) return `${Math.floor(s / 3600)}h`;
  if (s < 14 * 86_400) return `${Math.floor(s / 86_400)}d`;
  if (s < 2 * 365 * 86_400) return `${Math.floor(s / (7 * 86_400))}w`;
  return `${Math.floor(s / (365 * 86_400))}y`;
}

/** `ceph status`: the cluster and services sections (the mon line with age and who is out). */
export function plainStatus(s: PaxmonStatus, quorumAge?: number, monNames?: string[]): string {
  const out = (monNames ?? []).filter((n) => !s.quorum_names.includes(n));
  return [
    '  cluster:',
    `    id:     ${s.fsid}`,
    `    health: ${s.health.status}`,
    ...Object.values(s.health.checks).map((c) => `            ${c.summary}`),
    ' ',
    '  services:',
    `    mon: ${s.monmap.num_mons} daemons, quorum ${s.quorum_names.join(',')}${quorumAge !== undefined ? ` (age ${cephAge(quorumAge)})` : ''}${out.length ? `, out of quorum: ${out.join(', ')}` : ''}`,
    ' ',
  ].join('\n');
}

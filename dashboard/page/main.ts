// The dashboard page (issue 18): every monitor side by side with its statecharts (monitor, with
// Paxos's regions; elector; each PaxosService), the active states highlighted and transitions
// flashing as they are taken; the quorum, leader, epochs, versions, lease, sync and health; a
// message lane (a sequence diagram of the messages between monitors, with pause, step and a
// filter); and a time slider over every record received, so a live cluster can be scrubbed back
// and a recording (`--record FILE`) replayed and stepped through.
//
// Live and replay are one thing here: a list of inspection records and a cursor; the view is the
// World (dashboard/records.ts) of the records before the cursor. Live, the cursor follows the end
// unless paused. Everything shown is written as text (textContent), never parsed as HTML.
import type { StatechartGraph } from '../../cli/statecharts.ts';
import {
  activePaths,
  type DashRecord,
  healthOf,
  isStep,
  type LaneMessage,
  type MessageCategory,
  messageCategories,
  monFacts,
  parseRecording,
  World,
} from '../records.ts';
import type { DashboardSession, LiveMessage, StatusReport } from '../server.ts';
import { type ChartTemplate, ChartView, layoutChart } from './chart.ts';

/** Records kept in the page (live); the oldest go first. */
const recordsMax = 200_000;
/** Messages drawn in the lane (the newest before the cursor that pass the filter). */
const laneRowsMax = 250;

const $ = <T extends Element>(selector: string) => document.querySelector(selector) as T;
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// --- state ------------------------------------------------------------------------------------------

const state = {
  mode: 'live' as 'live' | 'replay',
  recordingName: '',
  records: [] as DashRecord[],
  /** Indices of the records worth a step (a state change, a message, an actor). */
  steps: [] as number[],
  cursor: 0,
  world: new World(),
  following: true,
  status: undefined as StatusReport | undefined,
  feeds: new Map<string, boolean>(),
  filter: new Set<MessageCategory>(messageCategories.filter((c) => c !== 'other' && c !== 'ping')),
  templates: new Map<string, ChartTemplate>(),
  socket: undefined as WebSocket | undefined,
  dirty: true,
  /** State changes already flashed (World.changes entries, by record index). */
  flashedUpTo: -1,
  /** How many transitions each state change flashed, by its record index (shown as data-flashed). */
  flashed: new Map<number, number>(),
};

/** Each actor's chart in each monitor's card: `${mon}/${actor}`. */
const charts = new Map<string, ChartView>();
const cards = new Map<string, HTMLElement>();

// --- records and the cursor -------------------------------------------------------------------------

/** Apply records from the cursor up to `end` (exclusive) to the world. */
function applyUpTo(end: number): void {
  const { records, world } = state;
  for (let i = state.cursor; i < end; i += 1) world.apply(records[i] as DashRecord);
  state.cursor = Math.max(state.cursor, end);
}

/** Put the cursor at `n` (records applied), rebuilding the world when going back. */
function goTo(n: number): void {
  const target = Math.max(0, Math.min(n, state.records.length));
  if (target < state.cursor) {
    state.world = new World();
    state.cursor = 0;
    resetViews();
    applyUpTo(target);
    // Going back flashes nothing; going forward flashes what was taken on the way.
    state.flashedUpTo = state.world.count - 1;
  } else applyUpTo(target);
  state.dirty = true;
}

/** Add records (live feed, or a recording loaded whole). */
function addRecords(records: DashRecord[]): void {
  for (const r of records) {
    // Whether it is a step is known against the world at its place: the steps of records past the
    // cursor are worked out on a scratch world that trails the end.
    state.records.push(r);
    if (isStep(r, stepWorld)) state.steps.push(state.records.length - 1);
    stepWorld.apply(r);
  }
  if (state.records.length > recordsMax) {
    const drop = state.records.length - recordsMax + 10_000;
    state.records.splice(0, drop);
    state.steps = state.steps.filter((i) => i >= drop).map((i) => i - drop);
    state.cursor = Math.max(0, state.cursor - drop);
  }
  if (state.following) applyUpTo(state.records.length);
  state.dirty = true;
}
let stepWorld = new World();

function stepForward(): void {
  const next = state.steps.find((i) => i >= state.cursor);
  state.following = false;
  goTo(next === undefined ? state.records.length : next + 1);
}
function stepBack(): void {
  let previous: number | undefined;
  for (const i of state.steps) if (i < state.cursor - 1) previous = i;
  state.following = false;
  goTo(previous === undefined ? 0 : previous + 1);
}

function loadRecording(name: string, text: string): void {
  const { records, malformed } = parseRecording(text);
  state.socket?.close();
  state.socket = undefined;
  state.mode = 'replay';
  state.recordingName = name;
  state.records = [];
  state.steps = [];
  state.status = undefined;
  state.feeds.clear();
  stepWorld = new World();
  state.world = new World();
  state.cursor = 0;
  state.flashedUpTo = -1;
  state.flashed.clear();
  drawn.lane = '';
  drawn.changes = '';
  state.following = false;
  for (const card of cards.values()) card.remove();
  cards.clear();
  charts.clear();
  addRecords(records);
  // A recording opens at its first step, to be stepped or scrubbed.
  goTo(Math.min(records.length, (state.steps[0] ?? 0) + 1));
  $('#notice').textContent =
    `${records.length} records from ${name}${malformed ? ` (${malformed} lines that are not records skipped)` : ''}`;
}

// --- drawing ------------------------------------------------------------------------------------------

function resetViews(): void {
  for (const chart of charts.values()) chart.setActive(new Set());
}

const machineOf = (actor: string): string | undefined =>
  actor === 'monitor'
    ? 'monitor'
    : actor === 'elector'
      ? 'elector'
      : actor.startsWith('service:')
        ? 'paxosService'
        : undefined;

function card(mon: string): HTMLElement {
  const existing = cards.get(mon);
  if (existing) return existing;
  const facts = el('dl', { class: 'facts' });
  const sync = el('div', { class: 'sync', hidden: '' }, el('span'), el('progress', { max: '1', value: '0' }));
  const monitorChart = el('div', { class: 'chart', 'data-actor': 'monitor' });
  const electorChart = el('div', { class: 'chart small', 'data-actor': 'elector' });
  const services = el('div', { class: 'services' });
  const node = el(
    'section',
    { class: 'mon', 'data-mon': mon },
    el(
      'h2',
      {},
      el('span', { class: 'name' }, `mon.${mon}`),
      el('span', { class: 'role' }),
      el('span', { class: 'down-badge' }, 'down'),
    ),
    facts,
    sync,
    el('h3', {}, 'monitor (Paxos in inQuorum.leader / inQuorum.peon)'),
    monitorChart,
    el('h3', {}, 'elector'),
    electorChart,
    el('h3', {}, 'services'),
    services,
  );
  cards.set(mon, node);
  const list = $('#mons');
  const after = [...cards.keys()].sort().indexOf(mon);
  const next = [...cards.keys()].sort()[after + 1];
  list.insertBefore(node, next !== undefined ? (cards.get(next) ?? null) : null);
  return node;
}

function chartFor(mon: string, actor: string): ChartView | undefined {
  const key = `${mon}/${actor}`;
  const found = charts.get(key);
  if (found) return found;
  const machine = machineOf(actor);
  const template = machine ? state.templates.get(machine) : undefined;
  if (!template) return undefined;
  const view = new ChartView(template);
  const node = card(mon);
  if (actor === 'monitor' || actor === 'elector')
    node.querySelector(`.chart[data-actor="${actor}"]`)?.append(view.element);
  else {
    const box = el(
      'div',
      { class: 'chart service', 'data-actor': actor },
      el('div', { class: 'caption' }, actor.replace(/^service:/, '')),
    );
    box.append(view.element);
    const services = node.querySelector('.services') as HTMLElement;
    const names = [...services.querySelectorAll<HTMLElement>('.service')].map((b) => b.dataset.actor ?? '');
    const before = names.filter((n) => n > actor).sort()[0];
    services.insertBefore(box, before ? services.querySelector(`.service[data-actor="${before}"]`) : null);
  }
  charts.set(key, view);
  return view;
}

function setFacts(dl: HTMLElement, rows: [string, string][]): void {
  const key = rows.flat().join('\u0000');
  if (dl.dataset.drawn === key) return;
  dl.dataset.drawn = key;
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k }, v)]));
}

const clock = (t: number) => {
  const d = new Date(t);
  return `${d.toLocaleTimeString('en-GB', { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

/**
 * Whether a monitor is down as the page knows it (live only): its feed closed (a monitor's feed
 * reconnects at once while it lives), or, for one that never fed this page, its status unreachable.
 */
function isDown(name: string): boolean {
  if (state.mode !== 'live') return false;
  const feed = state.feeds.get(name);
  return feed === false || (feed === undefined && state.status?.mons[name]?.reachable === false);
}

/** The cluster as the header shows it, and where that came from. */
interface ClusterView {
  leader?: string;
  quorum?: string[];
  epoch?: number;
  /** No leader shown, and the latest election epoch of a live monitor is odd: an election is under way. */
  electing: boolean;
  source: 'records' | 'status' | 'none';
}

/**
 * The leader, quorum and election epoch. From the monitors' records first — a monitor in
 * inQuorum.leader, not down, at the highest election epoch, with no live monitor at a later one
 * (an election under way) — as they stream in, within a fraction of a second of the monitors
 * themselves; from the status poll (once a second, and slow while there is no quorum) only when
 * it is newer, or when no record shows a leader (monitors without a feed), and never when the
 * records contradict it (its leader down, or no longer leading, or an epoch beyond its own).
 */
function clusterView(names: Set<string>): ClusterView {
  const { world, status } = state;
  const ranks = new Map<number, string>();
  let latest: number | undefined;
  let best: { name: string; epoch: number; quorum: number[] } | undefined;
  for (const name of names) {
    const f = monFacts(world.actorOf(name, 'monitor'));
    if (!f) continue;
    if (f.rank !== undefined) ranks.set(f.rank, name);
    if (isDown(name) || f.state === 'shutdown') continue;
    if (f.electionEpoch !== undefined) latest = Math.max(latest ?? 0, f.electionEpoch);
    if (f.state === 'leader' && (f.electionEpoch ?? 0) >= (best?.epoch ?? -1))
      best = { name, epoch: f.electionEpoch ?? 0, quorum: f.quorum ?? [] };
  }
  if (best && latest !== undefined && latest > best.epoch) best = undefined;
  const fromRecords = best && {
    leader: best.name,
    quorum: best.quorum.map((r) => ranks.get(r) ?? String(r)),
    epoch: best.epoch,
  };
  let fromStatus: { leader: string; quorum: string[]; epoch: number } | undefined;
  const q = state.mode === 'live' ? status?.quorum : undefined;
  if (q?.leader) {
    const own = monFacts(world.actorOf(q.leader, 'monitor'));
    const contradicted =
      isDown(q.leader) ||
      (own !== undefined && (own.state !== 'leader' || (own.electionEpoch ?? 0) > q.electionEpoch)) ||
      (latest !== undefined && latest > q.electionEpoch);
    if (!contradicted) fromStatus = { leader: q.leader, quorum: q.quorum, epoch: q.electionEpoch };
  }
  if (fromRecords && (!fromStatus || fromRecords.epoch >= fromStatus.epoch))
    return { ...fromRecords, electing: false, source: 'records' };
  if (fromStatus) return { ...fromStatus, electing: false, source: 'status' };
  const epoch = latest ?? (state.mode === 'live' ? q?.electionEpoch : undefined);
  return {
    ...(epoch !== undefined ? { epoch } : {}),
    electing: latest !== undefined && latest % 2 === 1,
    source: 'none',
  };
}

function render(): void {
  state.dirty = false;
  const { world, status } = state;
  // Layout is read before this frame writes anything, so reading it forces no layout.
  const lane = $<HTMLElement>('#lane-body');
  const laneAtBottom = lane.scrollTop + lane.clientHeight >= lane.scrollHeight - 30;
  // Names of the monitors: in the records, and in the status's monmap.
  const names = new Set<string>([...world.mons.keys()].filter((n) => n !== '?'));
  for (const m of status?.quorum?.monmap ?? []) names.add(m.name);
  for (const n of Object.keys(status?.mons ?? {})) names.add(n);

  const cluster = clusterView(names);
  const { leader, quorum } = cluster;
  // The health checks as the leader shown committed them (its health service's records: the same
  // report `health` answers), else as polled.
  const health =
    (leader ? healthOf(world.actorOf(leader, 'service:health')) : undefined) ??
    (state.mode === 'live' ? status?.health : undefined);

  $('#mode').textContent = state.mode === 'live' ? 'LIVE' : `REPLAY ${state.recordingName}`;
  $('#mode').className = state.mode;
  const healthNode = $<HTMLElement>('#health');
  healthNode.textContent = health ? health.status : '—';
  healthNode.className = health?.status ?? '';
  healthNode.title = health
    ? Object.entries(health.checks)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n')
    : '';
  $('#checks').textContent = health
    ? Object.entries(health.checks)
        .map(([k, v]) => `${k}: ${v}`)
        .join(' · ')
    : '';
  const leaderNode = $<HTMLElement>('#leader');
  const shown = leader ? `mon.${leader}` : cluster.electing ? 'none (electing)' : 'none';
  // When this page first showed this leader (wall clock, ms): what a spec measures the page by.
  if (leaderNode.textContent !== shown) leaderNode.dataset.since = String(Date.now());
  leaderNode.textContent = shown;
  leaderNode.dataset.source = cluster.source;
  leaderNode.title =
    cluster.source === 'records'
      ? "from the monitors' records (the leader's own state and context)"
      : cluster.source === 'status'
        ? 'from the status poll (no monitor record shows the leader)'
        : '';
  $('#quorum').textContent = quorum && quorum.length > 0 ? quorum.join(',') : 'none';
  $('#epoch').textContent =
    cluster.epoch !== undefined ? `${cluster.epoch}${cluster.electing ? ' (electing)' : ''}` : '—';
  $('#entity').textContent = status ? status.entity : state.mode === 'live' ? 'status not polled yet' : '—';

  // Cards of monitors the records before the cursor do not show yet (scrubbed back) stay, blank.
  for (const name of [...new Set([...names, ...cards.keys()])].sort()) {
    const node = card(name);
    const monitor = world.actorOf(name, 'monitor');
    const facts = monFacts(monitor);
    const polled = status?.mons[name];
    const feed = state.feeds.get(name);
    const down = isDown(name);
    const role = facts?.state ?? polled?.state ?? '?';
    node.dataset.state = down ? 'down' : role;
    node.dataset.leader = String(name === leader);
    node.dataset.down = String(down);
    node.dataset.inQuorum = String(quorum?.includes(name) ?? false);
    (node.querySelector('.role') as HTMLElement).textContent = down ? 'down' : role;
    const rows: [string, string][] = [
      ['rank', facts?.rank !== undefined ? String(facts.rank) : '—'],
      ['election epoch', String(facts?.electionEpoch ?? polled?.electionEpoch ?? '—')],
      [
        'committed',
        `${facts?.firstCommitted ?? polled?.firstCommitted ?? '—'} … ${facts?.lastCommitted ?? polled?.lastCommitted ?? '—'}`,
      ],
      ['paxos', facts?.paxos ?? '—'],
      ['lease', facts?.lease ?? '—'],
      [
        'feed',
        state.mode === 'replay'
          ? 'recording'
          : feed === true
            ? 'connected'
            : feed === false
              ? 'closed'
              : 'none',
      ],
    ];
    if (facts?.peersDown && facts.peersDown.length > 0) rows.push(['sees down', facts.peersDown.join(',')]);
    if (polled?.error && !polled.reachable) rows.push(['status', polled.error]);
    setFacts(node.querySelector('.facts') as HTMLElement, rows);
    const syncBox = node.querySelector('.sync') as HTMLElement;
    if (facts?.sync) {
      syncBox.hidden = false;
      const s = facts.sync;
      // The provider's total, when it announced one in keys: a recent sync's cookie counts the
      // versions to copy (fewer than the keys they hold), so a total below the keys copied is none.
      const total = s.totalKeys !== undefined && s.totalKeys >= s.keys ? s.totalKeys : undefined;
      (syncBox.querySelector('span') as HTMLElement).textContent =
        `${s.kind} sync from ${s.provider}: ${s.keys}${total ? `/${total}` : ''} keys, ${s.bytes} bytes`;
      const bar = syncBox.querySelector('progress') as HTMLProgressElement;
      // Without a total the bar is indeterminate (it moves, but claims no fraction).
      if (total) {
        bar.max = total;
        bar.value = s.keys;
      } else bar.removeAttribute('value');
      bar.dataset.keys = String(s.keys);
    } else syncBox.hidden = true;
    const view = world.mons.get(name);
    for (const actor of view?.actors.values() ?? []) {
      if (actor.value === undefined) continue;
      chartFor(name, actor.actor)?.setActive(activePaths(actor.value));
    }
  }
  // Transitions taken since the last frame flash (only when moving forward).
  for (const change of world.changes) {
    if (change.index <= state.flashedUpTo) continue;
    const chart = charts.get(`${change.mon}/${change.actor}`);
    if (chart)
      state.flashed.set(
        change.index,
        chart.flash(activePathsOf(change.from), activePathsOf(change.to), change.event),
      );
  }
  state.flashedUpTo = world.count - 1;
  const oldest = world.changes[0]?.index ?? 0;
  for (const index of state.flashed.keys()) if (index < oldest) state.flashed.delete(index);

  renderLane([...names].sort(), laneAtBottom);
  renderChanges();
  const slider = $<HTMLInputElement>('#slider');
  slider.max = String(state.records.length);
  slider.value = String(state.cursor);
  const first = state.records[0]?.t;
  const at = state.records[state.cursor - 1]?.t;
  $('#time').textContent =
    at !== undefined && first !== undefined
      ? `${clock(at)} (+${((at - first) / 1000).toFixed(3)} s) · record ${state.cursor}/${state.records.length}`
      : `record ${state.cursor}/${state.records.length}`;
  $('#pause').textContent = state.following ? 'Pause' : state.mode === 'live' ? 'Follow live' : 'Play';
  document.body.dataset.cursor = String(state.cursor);
  document.body.dataset.records = String(state.records.length);
  document.body.dataset.mode = state.mode;
}

function activePathsOf(leaves: string[]): Set<string> {
  const paths = new Set<string>(['']);
  for (const leaf of leaves) {
    const keys = leaf.split('.');
    for (let i = 1; i <= keys.length; i += 1) paths.add(keys.slice(0, i).join('.'));
  }
  return paths;
}

const svgNs = 'http://www.w3.org/2000/svg';
function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** What the lane and the list of state changes drew last: each is drawn again only when it changes. */
const drawn = { lane: '', changes: '' };

/**
 * The lane's drawing, kept from frame to frame: a row per message (by its record index) is made
 * once and only moved as newer ones arrive, so a frame costs the new rows, not all of them.
 */
const laneDrawing = {
  world: undefined as World | undefined,
  columns: '',
  root: undefined as SVGSVGElement | undefined,
  lifelines: [] as SVGLineElement[],
  rows: new Map<number, SVGGElement>(),
};
const laneColumnWidth = 120;
const laneRowHeight = 18;

function renderLane(mons: string[], atBottom: boolean): void {
  const own = new Set(state.status?.sessions ?? []);
  const shown: LaneMessage[] = [];
  const messages = state.world.messages;
  for (let i = messages.length - 1; i >= 0 && shown.length < laneRowsMax; i -= 1) {
    const m = messages[i] as LaneMessage;
    if (!state.filter.has(m.category) || own.has(m.from)) continue;
    shown.push(m);
  }
  shown.reverse();
  const key = `${mons.join()}|${[...state.filter].join()}|${shown.length}|${shown[0]?.index}|${shown[shown.length - 1]?.index}|${messages.length}`;
  if (key === drawn.lane) return;
  drawn.lane = key;
  const columns = [...mons, 'clients'];
  const x = (who: string) => {
    const i = columns.indexOf(who);
    return (i >= 0 ? i : columns.length - 1) * laneColumnWidth + laneColumnWidth / 2;
  };
  const lane = $<HTMLElement>('#lane-body');
  const d = laneDrawing;
  if (!d.root || d.world !== state.world || d.columns !== columns.join()) {
    d.world = state.world;
    d.columns = columns.join();
    d.rows.clear();
    d.lifelines = [];
    d.root = svg('svg', { class: 'lane-svg' });
    const defs = svg('defs', {});
    const marker = svg('marker', {
      id: 'lane-arrow',
      viewBox: '0 0 6 6',
      refX: 6,
      refY: 3,
      markerWidth: 6,
      markerHeight: 6,
      orient: 'auto',
    });
    marker.append(svg('path', { d: 'M0,0 L6,3 L0,6 z' }));
    defs.append(marker);
    d.root.append(defs);
    for (const c of columns) {
      const line = svg('line', { x1: x(c), x2: x(c), y1: 22, y2: 22, class: 'lifeline' });
      d.lifelines.push(line);
      const label = svg('text', { x: x(c), y: 14, 'text-anchor': 'middle', class: 'lane-head' });
      label.textContent = c === 'clients' ? 'clients' : `mon.${c}`;
      d.root.append(line, label);
    }
    lane.replaceChildren(d.root);
  }
  const root = d.root;
  const width = columns.length * laneColumnWidth;
  const height = 28 + shown.length * laneRowHeight + 8;
  root.setAttribute('width', String(width));
  root.setAttribute('height', String(height));
  root.setAttribute('viewBox', `0 0 ${width} ${height}`);
  for (const line of d.lifelines) line.setAttribute('y2', String(height));
  const keep = new Set(shown.map((m) => m.index));
  for (const [index, g] of d.rows)
    if (!keep.has(index)) {
      g.remove();
      d.rows.delete(index);
    }
  shown.forEach((m, i) => {
    let g = d.rows.get(m.index);
    if (!g) {
      g = laneRow(m, x(m.from), x(m.to));
      d.rows.set(m.index, g);
      root.append(g);
    }
    const y = String(28 + i * laneRowHeight);
    if (g.dataset.y !== y) {
      g.dataset.y = y;
      g.setAttribute('transform', `translate(0,${y})`);
    }
  });
  if (atBottom || state.following) lane.scrollTop = lane.scrollHeight;
  $('#lane-count').textContent = `${shown.length} shown of ${messages.length}`;
}

/** One message of the lane: an arrow from its sender's lifeline to its receiver's, with its words. */
function laneRow(m: LaneMessage, from: number, to: number): SVGGElement {
  const y = 12;
  const g = svg('g', { class: `msg ${m.category}` });
  g.dataset.category = m.category;
  if (from === to)
    g.append(
      svg('path', { d: `M${from},${y - 4} h16 v6 h-14`, class: 'arrow', 'marker-end': 'url(#lane-arrow)' }),
    );
  else
    g.append(
      svg('line', {
        x1: from,
        x2: to + (to > from ? -3 : 3),
        y1: y,
        y2: y,
        class: 'arrow',
        'marker-end': 'url(#lane-arrow)',
      }),
    );
  const label = svg('text', { x: (from + to) / 2, y: y - 3, 'text-anchor': 'middle' });
  label.textContent = m.text;
  const title = svg('title', {});
  title.textContent = `${clock(m.t)}  ${m.from} → ${m.to}  ${m.text}`;
  g.append(label, title);
  return g;
}

/** Leaves of the regions that change every lease round (leader's renew and lease acks, peon's watchdog and lease). */
const leaseChurn = /^inQuorum\.(leader|peon)\.(renew|leaseAck|watchdog|lease)\./;

/** The list's items, by the record index of their change, for the world they were made from. */
const changeItems = { world: undefined as World | undefined, items: new Map<number, HTMLLIElement>() };

function renderChanges(): void {
  const list = $<HTMLElement>('#changes');
  const showChurn = $<HTMLInputElement>('#churn').checked;
  const recent: typeof state.world.changes = [];
  for (let i = state.world.changes.length - 1; i >= 0 && recent.length < 120; i -= 1) {
    const c = state.world.changes[i] as (typeof state.world.changes)[number];
    const moved = [...c.from.filter((l) => !c.to.includes(l)), ...c.to.filter((l) => !c.from.includes(l))];
    if (!showChurn && c.actor === 'monitor' && moved.every((l) => leaseChurn.test(l))) continue;
    recent.push(c);
  }
  const key = recent.map((c) => `${c.index}:${state.flashed.get(c.index)}`).join();
  if (key === drawn.changes) return;
  drawn.changes = key;
  // Items are made once per change (by its record index) and kept while it is listed.
  if (changeItems.world !== state.world) {
    changeItems.world = state.world;
    changeItems.items.clear();
  }
  const listed = new Set(recent.map((c) => c.index));
  for (const index of changeItems.items.keys()) if (!listed.has(index)) changeItems.items.delete(index);
  list.replaceChildren(
    ...recent.map((c) => {
      let li = changeItems.items.get(c.index);
      if (!li) {
        li = el(
          'li',
          {
            'data-mon': c.mon,
            'data-actor': c.actor,
            'data-to': c.to.join(' '),
            'data-index': String(c.index),
          },
          el('time', {}, clock(c.t)),
          ` mon.${c.mon} ${c.actor}: ${c.from.filter((l) => !c.to.includes(l)).join(', ')} → `,
          el('b', {}, c.to.filter((l) => !c.from.includes(l)).join(', ')),
          c.event ? ` (on ${c.event.replace(/^xstate\.after\.([^.]+)\..*$/, 'after $1')})` : '',
        );
        changeItems.items.set(c.index, li);
      }
      const flashed = state.flashed.get(c.index);
      if (flashed !== undefined) li.dataset.flashed = String(flashed);
      return li;
    }),
  );
}

// --- wiring -------------------------------------------------------------------------------------------

function connectLive(): void {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/live`);
  state.socket = socket;
  socket.onmessage = (event) => {
    if (state.socket !== socket) return;
    let message: LiveMessage;
    try {
      message = JSON.parse(String(event.data)) as LiveMessage;
    } catch {
      return;
    }
    if (message.type === 'records' && Array.isArray(message.records)) addRecords(message.records);
    else if (message.type === 'feed') state.feeds.set(String(message.mon), message.connected === true);
    else if (message.type === 'status') state.status = message.status;
    state.dirty = true;
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    $('#notice').textContent = 'connection to the dashboard lost; reconnecting…';
    // The server sends its history again on a new connection: start from it.
    setTimeout(() => {
      if (state.socket !== socket) return;
      state.records = [];
      state.steps = [];
      stepWorld = new World();
      state.world = new World();
      state.cursor = 0;
      state.flashedUpTo = -1;
      state.flashed.clear();
      resetViews();
      connectLive();
    }, 1000);
  };
  socket.onopen = () => {
    $('#notice').textContent = '';
  };
}

function wireControls(): void {
  $('#pause').addEventListener('click', () => {
    state.following = !state.following;
    if (state.following) goTo(state.records.length);
    state.dirty = true;
  });
  $('#step').addEventListener('click', stepForward);
  $('#back').addEventListener('click', stepBack);
  $<HTMLInputElement>('#slider').addEventListener('input', (event) => {
    state.following = false;
    goTo(Number((event.target as HTMLInputElement).value));
  });
  $<HTMLInputElement>('#churn').addEventListener('change', () => {
    state.dirty = true;
  });
  $<HTMLInputElement>('#open').addEventListener('change', async (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file) loadRecording(file.name, await file.text());
  });
  const filters = $<HTMLElement>('#filters');
  for (const category of messageCategories) {
    const box = el('input', { type: 'checkbox', 'data-category': category });
    box.checked = state.filter.has(category);
    box.addEventListener('change', () => {
      if (box.checked) state.filter.add(category);
      else state.filter.delete(category);
      state.dirty = true;
    });
    filters.append(el('label', { class: `filter ${category}` }, box, category));
  }
  document.addEventListener('keydown', (event) => {
    if (
      (event.target as HTMLElement).tagName === 'INPUT' &&
      (event.target as HTMLInputElement).type !== 'range'
    )
      return;
    if (event.key === ' ') {
      event.preventDefault();
      $<HTMLButtonElement>('#pause').click();
    } else if (event.key === 'ArrowRight' && !event.shiftKey) stepForward();
    else if (event.key === 'ArrowLeft' && !event.shiftKey) stepBack();
  });
}

function frame(): void {
  if (state.dirty) {
    try {
      render();
    } catch (error) {
      console.error(error);
    }
  }
  requestAnimationFrame(frame);
}

async function main(): Promise<void> {
  wireControls();
  const response = await fetch('/session');
  const session = (await response.json()) as DashboardSession;
  for (const [name, graph] of Object.entries(session.graphs ?? {}) as [string, StatechartGraph][])
    state.templates.set(name, await layoutChart(graph));
  if (session.mode === 'replay') {
    const text = await (await fetch('/recording.jsonl')).text();
    loadRecording(session.recording ?? 'recording', text);
  } else connectLive();
  document.body.dataset.ready = 'true';
  requestAnimationFrame(frame);
}

void main().catch((error: unknown) => {
  $('#notice').textContent = `the page failed to start: ${String(error)}`;
  console.error(error);
});

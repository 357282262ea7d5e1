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
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k }, v)]));
}

const clock = (t: number) => {
  const d = new Date(t);
  return `${d.toLocaleTimeString('en-GB', { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

function render(): void {
  state.dirty = false;
  const { world, status } = state;
  // Names of the monitors: in the records, and in the status's monmap.
  const names = new Set<string>([...world.mons.keys()].filter((n) => n !== '?'));
  for (const m of status?.quorum?.monmap ?? []) names.add(m.name);
  for (const n of Object.keys(status?.mons ?? {})) names.add(n);

  // The leader and quorum: live from the status, in a replay from the monitors' own contexts.
  let leader = state.mode === 'live' ? status?.quorum?.leader : undefined;
  let quorum = state.mode === 'live' ? status?.quorum?.quorum : undefined;
  let epoch = state.mode === 'live' ? status?.quorum?.electionEpoch : undefined;
  if (state.mode === 'replay' || !status?.quorum) {
    let best: { name: string; epoch: number; quorum: number[] } | undefined;
    for (const name of names) {
      const f = monFacts(world.actorOf(name, 'monitor'));
      if (f?.state === 'leader' && (f.electionEpoch ?? 0) >= (best?.epoch ?? -1))
        best = { name, epoch: f.electionEpoch ?? 0, quorum: f.quorum ?? [] };
    }
    const ranks = new Map<number, string>();
    for (const name of names) {
      const rank = monFacts(world.actorOf(name, 'monitor'))?.rank;
      if (rank !== undefined) ranks.set(rank, name);
    }
    leader = best?.name;
    quorum = best?.quorum.map((r) => ranks.get(r) ?? String(r));
    epoch = best?.epoch;
  }
  const health =
    state.mode === 'live' && status?.health
      ? status.health
      : healthOf(leader ? world.actorOf(leader, 'service:health') : undefined);

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
  $('#leader').textContent = leader ? `mon.${leader}` : 'none';
  $('#quorum').textContent = quorum && quorum.length > 0 ? quorum.join(',') : 'none';
  $('#epoch').textContent = epoch !== undefined ? String(epoch) : '—';
  $('#entity').textContent = status ? status.entity : state.mode === 'live' ? 'status not polled yet' : '—';

  // Cards of monitors the records before the cursor do not show yet (scrubbed back) stay, blank.
  for (const name of [...new Set([...names, ...cards.keys()])].sort()) {
    const node = card(name);
    const monitor = world.actorOf(name, 'monitor');
    const facts = monFacts(monitor);
    const polled = status?.mons[name];
    const feed = state.feeds.get(name);
    // Down: its feed closed (a monitor's feed reconnects at once while it lives), or, for a monitor
    // that never fed this page, its own status unreachable.
    const down =
      state.mode === 'live' && (feed === false || (feed === undefined && polled?.reachable === false));
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
      (syncBox.querySelector('span') as HTMLElement).textContent =
        `${s.kind} sync from ${s.provider}: ${s.keys}${s.totalKeys ? `/${s.totalKeys}` : ''} keys, ${s.bytes} bytes`;
      const bar = syncBox.querySelector('progress') as HTMLProgressElement;
      bar.max = s.totalKeys ?? Math.max(1, s.keys * 2);
      bar.value = s.keys;
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
    chart?.flash(activePathsOf(change.from), activePathsOf(change.to), change.event);
  }
  state.flashedUpTo = world.count - 1;

  renderLane([...names].sort());
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

function renderLane(mons: string[]): void {
  const own = new Set(state.status?.sessions ?? []);
  const shown: LaneMessage[] = [];
  const messages = state.world.messages;
  for (let i = messages.length - 1; i >= 0 && shown.length < laneRowsMax; i -= 1) {
    const m = messages[i] as LaneMessage;
    if (!state.filter.has(m.category) || own.has(m.from)) continue;
    shown.push(m);
  }
  shown.reverse();
  const columns = [...mons, 'clients'];
  const colWidth = 120;
  const rowHeight = 18;
  const width = columns.length * colWidth;
  const height = 28 + shown.length * rowHeight + 8;
  const x = (who: string) => {
    const i = columns.indexOf(who);
    return (i >= 0 ? i : columns.length - 1) * colWidth + colWidth / 2;
  };
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'lane-svg' });
  for (const c of columns) {
    root.append(svg('line', { x1: x(c), x2: x(c), y1: 22, y2: height, class: 'lifeline' }));
    const label = svg('text', { x: x(c), y: 14, 'text-anchor': 'middle', class: 'lane-head' });
    label.textContent = c === 'clients' ? 'clients' : `mon.${c}`;
    root.append(label);
  }
  shown.forEach((m, i) => {
    const y = 28 + i * rowHeight + 12;
    const from = x(m.from);
    const to = x(m.to);
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
    root.append(g);
  });
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
  root.prepend(defs);
  const lane = $<HTMLElement>('#lane-body');
  const atBottom = lane.scrollTop + lane.clientHeight >= lane.scrollHeight - 30;
  lane.replaceChildren(root);
  if (atBottom || state.following) lane.scrollTop = lane.scrollHeight;
  $('#lane-count').textContent = `${shown.length} shown of ${messages.length}`;
}

/** Leaves of the regions that change every lease round (leader's renew and lease acks, peon's watchdog and lease). */
const leaseChurn = /^inQuorum\.(leader|peon)\.(renew|leaseAck|watchdog|lease)\./;

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
  list.replaceChildren(
    ...recent.map((c) =>
      el(
        'li',
        { 'data-mon': c.mon, 'data-actor': c.actor, 'data-to': c.to.join(' ') },
        el('time', {}, clock(c.t)),
        ` mon.${c.mon} ${c.actor}: ${c.from.filter((l) => !c.to.includes(l)).join(', ')} → `,
        el('b', {}, c.to.filter((l) => !c.from.includes(l)).join(', ')),
        c.event ? ` (on ${c.event.replace(/^xstate\.after\.([^.]+)\..*$/, 'after $1')})` : '',
      ),
    ),
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

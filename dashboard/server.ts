// The dashboard's server (issue 18): one HTTP server, on 127.0.0.1 unless told otherwise, that
//   - serves the page (dist/dashboard/: built by `npm run build` from dashboard/page/, every
//     library bundled in, nothing loaded from anywhere else) and the statecharts' definitions;
//   - takes the monitors' inspection records on a WebSocket, /feed/TOKEN (`paxmon mon
//     --dashboard-feed URL`: the `--record` format, redacted by the monitor's recorder), and
//     passes them on to the pages on another, /live;
//   - polls the monitors with read-only commands (quorum_status, health, mon_status of each) as
//     a client whose key has read caps only, and passes that on too;
//   - or serves a recording (`--record FILE`) for the page to replay.
// It is an observer: it sends the monitors nothing but read commands, and a slow page or a dead
// dashboard never holds a monitor up (dashboard/feed.ts).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { type MonAddress, MonClient } from '../actors/mon-client.ts';
import { type StatechartGraph, statechartGraph, statecharts } from '../cli/statecharts.ts';
import { type DashRecord, parseRecordLine, recordLineCharsMax, sortRecords } from './records.ts';

/** What the page asks first (`GET /session`). */
export interface DashboardSession {
  mode: 'live' | 'replay';
  /** The machines' graphs: monitor, elector and the PaxosService template. */
  graphs: Record<string, StatechartGraph>;
  /** Replay: the recording's name (its file names). */
  recording?: string;
  /** Live: the client entity the status is polled with. */
  entity?: string;
}

/** The cluster's status as the dashboard's read-only client sees it (one poll). */
export interface StatusReport {
  t: number;
  /** The client entity polling (read caps only). */
  entity: string;
  /** The client sessions of this dashboard (its own commands, left out of the message lane). */
  sessions: string[];
  quorum?: {
    electionEpoch: number;
    quorum: string[];
    leader: string;
    monmap: { name: string; addr: string }[];
  };
  health?: { status: string; checks: Record<string, string> };
  /** Each monitor of the monmap: reachable or not, and its own view (mon_status). */
  mons: Record<
    string,
    {
      addr: string;
      reachable: boolean;
      state?: string;
      electionEpoch?: number;
      firstCommitted?: number;
      lastCommitted?: number;
      error?: string;
    }
  >;
  /** Why the cluster-wide commands failed, when they did. */
  error?: string;
}

/** Messages from the server to a page over /live (JSON). */
export type LiveMessage =
  | { type: 'records'; records: DashRecord[] }
  | { type: 'feed'; mon: string; connected: boolean }
  | { type: 'status'; status: StatusReport };

/** Where the dashboard polls the cluster's status from, and with which read-only key. */
export interface StatusSource {
  mons: MonAddress[];
  fsid?: string;
  /** A client entity with read caps only (`mon 'allow r'`). */
  name: string;
  key: string;
  /** Time between polls (default 1 s). */
  intervalMs?: number;
}

export interface DashboardOptions {
  port: number;
  /** Default 127.0.0.1: the page and the feed are for this machine unless the user says otherwise. */
  host?: string;
  /** A recording to replay instead of a live cluster: its records and a name. */
  recording?: { name: string; records: DashRecord[] };
  /** Where the built page is (default: dist/dashboard/ of this package). */
  assetsDir?: string;
}

export interface Dashboard {
  /** The page. */
  readonly url: string;
  /** Where monitors send their records (`paxmon mon --dashboard-feed URL`). */
  readonly feedUrl: string;
  /** Start (or re-point) polling the cluster's status with a read-only key. */
  pollStatus(source: StatusSource): void;
  /** Records received so far from the monitors. */
  readonly received: number;
  stop(): Promise<void>;
}

/** Records kept for a page that opens late (plus each actor's creation and last snapshot). */
const historyRecordsMax = 6000;
/** Bytes waiting to be sent to a page beyond which it is dropped (the history it gets first aside). */
const pageBacklogBytesMax = 32 * 1024 * 1024;
/** Records sent to a page in one WebSocket message. */
const batchRecordsMax = 2000;

/** The built page's directory: dist/dashboard/ beside the sources, or beside the built chunk. */
export function dashboardAssetsDir(): string | undefined {
  for (const up of ['../dist/dashboard/', '../dashboard/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'page.js'))) return dir;
  }
  return undefined;
}

/** The graphs of the machines the page draws. */
export function dashboardGraphs(): Record<string, StatechartGraph> {
  return Object.fromEntries(Object.entries(statecharts).map(([name, m]) => [name, statechartGraph(m)]));
}

const assetTypes: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'page.js': 'text/javascript; charset=utf-8',
  'page.css': 'text/css; charset=utf-8',
};

/**
 * Start the dashboard's server. Rejects with an error whose code is EADDRINUSE when the port is
 * taken, ENOENT when the page is not built.
 *
 * @example
 * const dashboard = await startDashboard({ port: 8090 });
 * // monitors: paxmon mon --dir DIR --dashboard-feed <dashboard.feedUrl>
 * dashboard.pollStatus({ mons, name: 'client.dashboard', key });
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  const assetsDir = options.assetsDir ?? dashboardAssetsDir();
  if (!assetsDir)
    throw Object.assign(new Error('the dashboard page is not built (npm run build builds dist/dashboard/)'), {
      code: 'ENOENT',
    });
  const assets = new Map<string, Buffer>();
  for (const name of Object.keys(assetTypes)) assets.set(name, readFileSync(join(assetsDir, name)));
  const token = randomBytes(18).toString('base64url');
  const session: DashboardSession = {
    mode: options.recording ? 'replay' : 'live',
    graphs: dashboardGraphs(),
    ...(options.recording ? { recording: options.recording.name } : {}),
  };
  const recordingText = options.recording
    ? `${options.recording.records.map((r) => JSON.stringify(r)).join('\n')}\n`
    : '';

  // --- history and the pages ---------------------------------------------------------------------
  const history: DashRecord[] = [];
  // Creation and last snapshot of every actor whose records left the history.
  const base = new Map<string, { actor?: DashRecord; snapshot?: DashRecord }>();
  const pages = new Set<WebSocket>();
  let outgoing: DashRecord[] = [];
  let received = 0;
  const remember = (r: DashRecord) => {
    history.push(r);
    if (history.length <= historyRecordsMax) return;
    const old = history.shift() as DashRecord;
    const key = `${old.mon}\u0000${old.session}`;
    if (old.kind === 'actor' && old.parent === undefined)
      for (const k of base.keys()) if (k.startsWith(`${old.mon}\u0000`)) base.delete(k);
    const entry = base.get(key) ?? {};
    if (old.kind === 'actor') base.set(key, { actor: old });
    else if (old.kind === 'snapshot') base.set(key, { ...entry, snapshot: old });
  };
  const sendTo = (page: WebSocket, message: LiveMessage, backlogAllowed = false) => {
    // A page that does not keep up is closed (it reconnects and starts from the history).
    if (!backlogAllowed && page.bufferedAmount > pageBacklogBytesMax) return page.terminate();
    if (page.readyState === WebSocket.OPEN) page.send(JSON.stringify(message));
  };
  const broadcast = (message: LiveMessage) => {
    for (const page of pages) sendTo(page, message);
  };
  const flushTimer = setInterval(() => {
    if (outgoing.length === 0) return;
    const batch = outgoing;
    outgoing = [];
    for (let i = 0; i < batch.length; i += batchRecordsMax)
      broadcast({ type: 'records', records: batch.slice(i, i + batchRecordsMax) });
  }, 100);
  flushTimer.unref();
  const feeds = new Map<WebSocket, string | undefined>();
  let lastStatus: StatusReport | undefined;

  // --- HTTP --------------------------------------------------------------------------------------
  let port = options.port;
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(host);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const allowedHosts = () => new Set([`${urlHost}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`]);
  const allowedOrigins = () => new Set([...allowedHosts()].map((h) => `http://${h}`));
  const headers = (type: string) => ({
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    // Nothing from anywhere else: the page's script, style and WebSocket are this server's.
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  });
  const handle = (request: IncomingMessage, response: ServerResponse) => {
    // Another site's page in this browser may reach 127.0.0.1 through a name it controls (DNS
    // rebinding): on loopback, only requests addressed to this server's own names are answered.
    if (loopback && !allowedHosts().has(String(request.headers.host))) {
      response.writeHead(421, { 'Content-Type': 'text/plain' });
      return response.end('misdirected request\n');
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD' });
      return response.end();
    }
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const asset = path === '/' ? 'index.html' : path.slice(1);
    const body = assets.get(asset);
    if (body) {
      response.writeHead(200, headers(assetTypes[asset] as string));
      return response.end(request.method === 'HEAD' ? undefined : body);
    }
    if (path === '/favicon.ico') {
      response.writeHead(204, headers('image/x-icon'));
      return response.end();
    }
    if (path === '/session') {
      response.writeHead(200, headers('application/json'));
      return response.end(
        JSON.stringify({ ...session, ...(lastStatus ? { entity: lastStatus.entity } : {}) }),
      );
    }
    if (path === '/recording.jsonl' && options.recording) {
      response.writeHead(200, headers('application/x-ndjson'));
      return response.end(recordingText);
    }
    response.writeHead(404, headers('text/plain; charset=utf-8'));
    response.end('not found\n');
  };
  const server = createServer(handle);
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  // --- WebSockets --------------------------------------------------------------------------------
  const tokenBytes = Buffer.from(token);
  const feedPath = (url: string | undefined) => {
    const match = /^\/feed\/([A-Za-z0-9_-]{1,64})$/.exec(url ?? '');
    if (!match) return false;
    const given = Buffer.from(match[1] as string);
    return given.length === tokenBytes.length && timingSafeEqual(given, tokenBytes);
  };
  const feedServer = new WebSocketServer({ noServer: true, maxPayload: recordLineCharsMax });
  const liveServer = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  server.on('upgrade', (request, socket, head) => {
    const origin = request.headers.origin;
    if (request.url === '/live' && typeof origin === 'string' && allowedOrigins().has(origin)) {
      liveServer.handleUpgrade(request, socket, head, (ws) => liveServer.emit('connection', ws, request));
    } else if (feedPath(request.url) && origin === undefined) {
      // Monitors (node) send no Origin; a browser always does: no web page may feed the dashboard.
      feedServer.handleUpgrade(request, socket, head, (ws) => feedServer.emit('connection', ws, request));
    } else {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    }
  });
  feedServer.on('connection', (ws: WebSocket) => {
    feeds.set(ws, undefined);
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const record = parseRecordLine(data.toString());
      if (!record) return;
      // One connection speaks for one monitor: the first record names it.
      const mon = feeds.get(ws);
      if (mon === undefined) {
        if (record.mon === '?') return;
        feeds.set(ws, record.mon);
        broadcast({ type: 'feed', mon: record.mon, connected: true });
      } else if (record.mon !== mon) return;
      received += 1;
      remember(record);
      outgoing.push(record);
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      const mon = feeds.get(ws);
      feeds.delete(ws);
      if (mon !== undefined && ![...feeds.values()].includes(mon))
        broadcast({ type: 'feed', mon, connected: false });
    });
  });
  liveServer.on('connection', (ws: WebSocket) => {
    pages.add(ws);
    ws.on('message', () => {});
    ws.on('error', () => {});
    ws.on('close', () => pages.delete(ws));
    const start: DashRecord[] = [];
    for (const entry of base.values()) {
      if (entry.actor) start.push(entry.actor);
      if (entry.snapshot) start.push(entry.snapshot);
    }
    const all = [...sortRecords(start), ...history, ...outgoing];
    outgoing = [];
    for (let i = 0; i < all.length; i += batchRecordsMax)
      sendTo(ws, { type: 'records', records: all.slice(i, i + batchRecordsMax) }, true);
    for (const mon of new Set(feeds.values()))
      if (mon !== undefined) sendTo(ws, { type: 'feed', mon, connected: true });
    if (lastStatus) sendTo(ws, { type: 'status', status: lastStatus });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address && typeof address === 'object') port = address.port;

  // --- status ------------------------------------------------------------------------------------
  let poller: StatusPoller | undefined;
  const url = `http://${urlHost}:${port}/`;
  return {
    url,
    feedUrl: `ws://${urlHost}:${port}/feed/${token}`,
    get received() {
      return received;
    },
    pollStatus(source) {
      void poller?.stop();
      poller = new StatusPoller(source, (status) => {
        lastStatus = status;
        broadcast({ type: 'status', status });
      });
    },
    async stop() {
      clearInterval(flushTimer);
      await poller?.stop();
      for (const ws of [...pages, ...feeds.keys()]) ws.terminate();
      feedServer.close();
      liveServer.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const text = new TextDecoder();
const asObject = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Polls the cluster: quorum_status and health from any monitor, mon_status from each (one client
 * per monitor, so a monitor that is down is seen as such). Read commands only.
 */
class StatusPoller {
  readonly #source: StatusSource;
  readonly #report: (status: StatusReport) => void;
  readonly #cluster: MonClient;
  readonly #each = new Map<string, MonClient>();
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(source: StatusSource, report: (status: StatusReport) => void) {
    this.#source = source;
    this.#report = report;
    this.#cluster = this.#client(source.mons);
    this.#running = this.#poll();
  }

  #client(mons: MonAddress[]): MonClient {
    return new MonClient({
      mons,
      name: this.#source.name,
      key: this.#source.key,
      ...(this.#source.fsid ? { fsid: this.#source.fsid } : {}),
      timeoutMs: 1500,
      attemptTimeoutMs: 700,
    });
  }

  async #json(client: MonClient, cmd: string[]): Promise<Record<string, unknown>> {
    const reply = await client.command(cmd);
    if (reply.r < 0) throw new Error(reply.rs || `error ${reply.r}`);
    return asObject(JSON.parse(text.decode(reply.data)));
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    const status: StatusReport = {
      t: Date.now(),
      entity: this.#source.name,
      sessions: [this.#cluster.name],
      mons: {},
    };
    let monmap = this.#source.mons.flatMap((m) => (m.name ? [{ name: m.name, addr: m.addr }] : []));
    // Each monitor's own view, asked at the same time as the cluster's (a cluster without a quorum
    // answers slowly, a dead monitor at once).
    const each = this.#eachStatus(monmap, status);
    try {
      const q = await this.#json(this.#cluster, ['quorum_status']);
      const mons = (asObject(q.monmap).mons ?? []) as unknown[];
      monmap = mons.flatMap((m) => {
        const o = asObject(m);
        const vec = asObject(o.public_addrs).addrvec;
        const first = Array.isArray(vec) ? asObject(vec[0]).addr : undefined;
        const plain =
          typeof first === 'string' ? first : typeof o.addr === 'string' ? o.addr.replace(/\/\d+$/, '') : '';
        return typeof o.name === 'string' ? [{ name: o.name, addr: plain }] : [];
      });
      status.quorum = {
        electionEpoch: num(q.election_epoch) ?? 0,
        quorum: Array.isArray(q.quorum_names) ? q.quorum_names.map(String) : [],
        leader: String(q.quorum_leader_name ?? ''),
        monmap,
      };
      const h = await this.#json(this.#cluster, ['health', 'detail']);
      const checks: Record<string, string> = {};
      for (const [name, check] of Object.entries(asObject(h.checks))) {
        const summary = asObject(check).summary;
        const message = typeof summary === 'string' ? summary : asObject(summary).message;
        checks[name] = typeof message === 'string' ? message : name;
      }
      status.health = { status: String(h.status ?? '?'), checks };
    } catch (error) {
      status.error = (error as Error).message;
    }
    await each;
    // Monitors of the monmap the list given did not name (a map that grew).
    const known = new Set(Object.keys(status.mons));
    await this.#eachStatus(
      monmap.filter((m) => !known.has(m.name)),
      status,
    );
    if (this.#stopped) return;
    this.#report(status);
    this.#timer = setTimeout(() => {
      this.#running = this.#poll();
    }, this.#source.intervalMs ?? 1000);
    this.#timer.unref();
  }

  async #eachStatus(monmap: { name: string; addr: string }[], status: StatusReport): Promise<void> {
    await Promise.all(
      monmap.map(async ({ name, addr }) => {
        let client = this.#each.get(`${name}@${addr}`);
        if (!client) {
          client = this.#client([{ name, addr }]);
          this.#each.set(`${name}@${addr}`, client);
        }
        status.sessions.push(client.name);
        try {
          const s = await this.#json(client, ['mon_status']);
          const paxos = asObject(s.paxos);
          const view: StatusReport['mons'][string] = { addr, reachable: true, state: String(s.state ?? '?') };
          const set = (key: 'electionEpoch' | 'firstCommitted' | 'lastCommitted', v: unknown) => {
            const n = num(v);
            if (n !== undefined) view[key] = n;
          };
          set('electionEpoch', s.election_epoch);
          set('firstCommitted', paxos.first_committed);
          set('lastCommitted', paxos.last_committed);
          status.mons[name] = view;
        } catch (error) {
          status.mons[name] = { addr, reachable: false, error: (error as Error).message };
        }
      }),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
    await Promise.all([this.#cluster, ...this.#each.values()].map((c) => c.close()));
  }
}

// A monitor's side of the dashboard's live feed (`paxmon mon --dashboard-feed URL`, which
// `paxmon up --dashboard` gives every monitor it starts): the monitor's inspection records
// (actors/inspect.ts createRecorder: the `--record` format, users' data reduced to its size,
// key material never) sent as WebSocket text messages, one record each, to the dashboard.
//
// An observer must never slow or break the monitor it watches: writes only queue (bounded; the
// oldest are dropped and counted when the dashboard is slow or away), the socket is opened and
// re-opened in the background with a growing delay, and no error leaves this module.
import WebSocket from 'ws';

/** Limits and timing of a feed. */
export interface DashboardFeedOptions {
  /** Lines held while the dashboard is unreachable or slow (default 5000); older ones are dropped. */
  queuedLinesMax?: number;
  /** First and longest delay between connection attempts (default 100 ms and 5 s). */
  reconnectMs?: { initial: number; max: number };
}

/** One monitor's live feed to a dashboard. */
export interface DashboardFeed {
  /** Queue one record line (createRecorder's `write`). */
  write(line: string): void;
  /** Records dropped so far because the queue was full. */
  readonly dropped: number;
  /** Close the socket and stop reconnecting. */
  close(): void;
}

/** Bytes buffered in the socket beyond which lines wait in the queue instead. */
const socketBufferedBytesMax = 1024 * 1024;

/**
 * Send records to the dashboard at `url` (ws:// or wss://; `paxmon dashboard` prints it).
 *
 * @example
 * const feed = connectDashboardFeed('ws://127.0.0.1:8090/feed/TOKEN');
 * const recorder = createRecorder({ write: feed.write, mon: 'a' });
 */
export function connectDashboardFeed(url: string, options: DashboardFeedOptions = {}): DashboardFeed {
  const queuedLinesMax = options.queuedLinesMax ?? 5000;
  const { initial, max } = options.reconnectMs ?? { initial: 100, max: 5000 };
  const queue: string[] = [];
  let socket: WebSocket | undefined;
  let open = false;
  let closed = false;
  let dropped = 0;
  let delayMs = initial;
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    while (open && socket && queue.length > 0 && socket.bufferedAmount < socketBufferedBytesMax) {
      socket.send(queue.shift() as string);
    }
  };
  const connect = () => {
    timer = undefined;
    if (closed) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, { handshakeTimeout: 2000, maxPayload: 64 * 1024 });
    } catch {
      return retry();
    }
    socket = ws;
    ws.on('open', () => {
      open = true;
      delayMs = initial;
      flush();
    });
    // The dashboard says nothing to a monitor; whatever arrives is ignored.
    ws.on('message', () => {});
    ws.on('error', () => {});
    ws.on('close', () => {
      open = false;
      if (socket === ws) socket = undefined;
      retry();
    });
  };
  const retry = () => {
    if (closed || timer) return;
    timer = setTimeout(connect, delayMs);
    timer.unref();
    delayMs = Math.min(max, delayMs * 2);
  };
  // Lines that wait for the socket to drain go out on a short timer (at most one pending).
  let drain: NodeJS.Timeout | undefined;
  const scheduleFlush = () => {
    if (drain) return;
    drain = setTimeout(() => {
      drain = undefined;
      flush();
      if (queue.length > 0 && open) scheduleFlush();
    }, 20);
    drain.unref();
  };
  connect();
  return {
    write(line) {
      if (closed) return;
      queue.push(line);
      if (queue.length > queuedLinesMax) {
        queue.shift();
        dropped += 1;
      }
      if (open) {
        flush();
        if (queue.length > 0) scheduleFlush();
      }
    },
    get dropped() {
      return dropped;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (drain) clearTimeout(drain);
      socket?.close();
    },
  };
}

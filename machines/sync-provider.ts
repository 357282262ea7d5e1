// Store sync, provider side (Ceph's Monitor::handle_sync_get_cookie / handle_sync_get_chunk): the
// decisions — whether to give a cookie, which chunk a cookie is at, when a cookie is gone — as a
// child of the monitor statechart. The reading of the store is the io actor's (actors/io.ts
// serveSync): it reads what a decision asks for, answers the requester, and reports back what it
// served (`sync.served`), in that order, so a cookie has moved on before its next get_chunk can
// arrive. The requester's side is machines/sync.ts.
//
// Cookies name a sync in progress; an idle one expires after 2 × mon_sync_timeout (Ceph's
// sync_timeout on the provider).
import { assign, enqueueActions, setup } from 'xstate';
import type { EntityName, MonSync } from '../transport/messages.ts';
import { effects, type IoEffectsEvent } from './effects.ts';

export interface ProviderCookie {
  peer: EntityName;
  kind: 'full' | 'recent';
  /** Recent sync: the next Paxos version to send. */
  nextVersion: number;
  /** When the requester last used it (wall-clock ms, from the request's receipt). */
  lastUsedMs: number;
}

export interface SyncProviderInput {
  /** The prefixes a full sync copies (machines/sync.ts syncPrefixesFor the monitor's services). */
  prefixes: readonly string[];
  payloadBytesMax: number;
  payloadKeysMax: number;
  /** mon_sync_timeout: an idle cookie is forgotten after twice this. */
  timeoutMs: number;
}

export interface SyncProviderContext extends SyncProviderInput {
  cookies: Record<number, ProviderCookie>;
  /** The next cookie's number; 0 until the first request (then from its time: see nextCookieAfter). */
  nextCookie: number;
}

/** The largest number of cookies kept (a limit on memory held for peers). */
export const providerCookiesMax = 64;

/**
 * What the io actor reads and sends for a decision: a cookie (with the store's last_committed and,
 * for a full sync, the totals), or a chunk (the next keys after `after`, or the versions from
 * `nextVersion`).
 */
export type SyncServe =
  | {
      kind: 'cookie';
      to: EntityName;
      cookie: number;
      sync: 'full' | 'recent';
      fromVersion: number;
      prefixes: readonly string[];
    }
  | {
      kind: 'chunk';
      to: EntityName;
      cookie: number;
      sync: 'full';
      after?: { prefix: string; key: string };
      prefixes: readonly string[];
      payloadBytesMax: number;
      payloadKeysMax: number;
    }
  | {
      kind: 'chunk';
      to: EntityName;
      cookie: number;
      sync: 'recent';
      nextVersion: number;
      payloadBytesMax: number;
      payloadKeysMax: number;
    };

/** The provider's output to the io actor (through the monitor): one serve, read and sent at once. */
export interface IoSyncServeEvent {
  type: 'io.sync_serve';
  serve: SyncServe;
}

export type SyncProviderEvent =
  /**
   * A provider-side mon.sync (get_cookie_full, get_cookie_recent, get_chunk) from a monitor in
   * this monitor's map, with what the monitor knows: whether it can provide now (it is not
   * itself syncing and its store is whole) and its first_committed.
   */
  | {
      type: 'sync.request';
      from: EntityName;
      msg: MonSync;
      nowMs: number;
      canProvide: boolean;
      firstCommitted: number;
    }
  /** The io actor served a chunk: where the cookie is now, or that it is done or gone. */
  | { type: 'sync.served'; cookie: number; nextVersion?: number; done: boolean };

/** What a request leads to: the cookies after it, and its one record for the io actor. */
export interface ProviderStep {
  context: Pick<SyncProviderContext, 'cookies' | 'nextCookie'>;
  io: IoEffectsEvent | IoSyncServeEvent;
}

const noCookie = (to: EntityName, cookie = 0): IoEffectsEvent =>
  effects([], [{ to, msg: { type: 'mon.sync', op: 'no_cookie', cookie, lastCommitted: 0 } }]);

/**
 * The first cookie of a provider: from the time of its first request, so that a restarted
 * provider does not take a cookie it gave before the restart for one of its own.
 */
export function nextCookieAfter(nowMs: number): number {
  return Math.floor(nowMs % 1_000_000) * 1000 + 1;
}

/** Monitor::handle_sync_get_cookie / handle_sync_get_chunk: the decision for one request. Pure. */
export function onSyncRequest(
  context: SyncProviderContext,
  event: Extract<SyncProviderEvent, { type: 'sync.request' }>,
): ProviderStep {
  const { from, msg, nowMs } = event;
  // Idle cookies expire (Ceph's sync_timeout on the provider side).
  const cookies: Record<number, ProviderCookie> = {};
  for (const [id, cookie] of Object.entries(context.cookies))
    if (nowMs - cookie.lastUsedMs <= 2 * context.timeoutMs) cookies[Number(id)] = cookie;
  let nextCookie = context.nextCookie || nextCookieAfter(nowMs);
  const unchanged = (io: IoEffectsEvent | IoSyncServeEvent): ProviderStep => ({
    context: { cookies, nextCookie },
    io,
  });

  if (msg.op === 'get_cookie_full' || msg.op === 'get_cookie_recent') {
    // A provider that is itself syncing (or holds an interrupted sync) has nothing whole to give.
    if (!event.canProvide || Object.keys(cookies).length >= providerCookiesMax)
      return unchanged(noCookie(from));
    // The versions it misses are trimmed here: only a full sync can help it.
    if (msg.op === 'get_cookie_recent' && msg.lastCommitted + 1 < event.firstCommitted)
      return unchanged(noCookie(from));
    const cookie = nextCookie;
    nextCookie += 1;
    const kind = msg.op === 'get_cookie_full' ? 'full' : 'recent';
    cookies[cookie] = { peer: from, kind, nextVersion: msg.lastCommitted + 1, lastUsedMs: nowMs };
    return {
      context: { cookies, nextCookie },
      io: {
        type: 'io.sync_serve',
        serve: {
          kind: 'cookie',
          to: from,
          cookie,
          sync: kind,
          fromVersion: msg.lastCommitted,
          prefixes: context.prefixes,
        },
      },
    };
  }
  if (msg.op !== 'get_chunk') return unchanged(effects([], []));
  const cookie = cookies[msg.cookie];
  if (!cookie || cookie.peer !== from || !event.canProvide) return unchanged(noCookie(from, msg.cookie));
  cookies[msg.cookie] = { ...cookie, lastUsedMs: nowMs };
  const limits = { payloadBytesMax: context.payloadBytesMax, payloadKeysMax: context.payloadKeysMax };
  // A full sync resumes after the last key the requester applied (Ceph's WholeStoreIterator,
  // stateless here); a recent one at the cookie's next version.
  const serve: SyncServe =
    cookie.kind === 'full'
      ? {
          kind: 'chunk',
          to: from,
          cookie: msg.cookie,
          sync: 'full',
          ...(msg.lastKey ? { after: msg.lastKey } : {}),
          prefixes: context.prefixes,
          ...limits,
        }
      : {
          kind: 'chunk',
          to: from,
          cookie: msg.cookie,
          sync: 'recent',
          nextVersion: cookie.nextVersion,
          ...limits,
        };
  return { context: { cookies, nextCookie }, io: { type: 'io.sync_serve', serve } };
}

/** What the io actor served: the cookie moves on, or is forgotten once done (or gone). Pure. */
export function onSyncServed(
  context: SyncProviderContext,
  event: Extract<SyncProviderEvent, { type: 'sync.served' }>,
): Pick<SyncProviderContext, 'cookies'> {
  const cookie = context.cookies[event.cookie];
  if (!cookie) return { cookies: context.cookies };
  const cookies = { ...context.cookies };
  if (event.done) delete cookies[event.cookie];
  else if (event.nextVersion !== undefined)
    cookies[event.cookie] = { ...cookie, nextVersion: event.nextVersion };
  return { cookies };
}

/** The provider as a child of the monitor: its records go to the monitor, which hands them to io. */
export const syncProviderMachine = setup({
  types: {
    context: {} as SyncProviderContext,
    input: {} as SyncProviderInput,
    events: {} as SyncProviderEvent,
  },
}).createMachine({
  id: 'syncProvider',
  context: ({ input }) => ({ ...input, prefixes: [...input.prefixes], cookies: {}, nextCookie: 0 }),
  on: {
    'sync.request': {
      actions: enqueueActions(({ enqueue, context, event }) => {
        const step = onSyncRequest(context, event);
        enqueue.assign(step.context);
        enqueue.sendParent(step.io);
      }),
    },
    'sync.served': { actions: assign(({ context, event }) => onSyncServed(context, event)) },
  },
});

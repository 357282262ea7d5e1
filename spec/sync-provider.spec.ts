// The sync provider's decisions (machines/sync-provider.ts, Ceph's Monitor::handle_sync_get_cookie
// / handle_sync_get_chunk) as pure functions: who gets a cookie, which chunk a cookie is at, and
// when a cookie is gone. The reading and sending are the io actor's (spec/sync.spec.ts runs whole
// syncs over it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  nextCookieAfter,
  onSyncRequest,
  onSyncServed,
  providerCookiesMax,
  type SyncProviderContext,
  type SyncProviderEvent,
} from '../machines/sync-provider.ts';
import type { MonSync } from '../transport/messages.ts';

const timeoutMs = 1000;
const fresh = (): SyncProviderContext => ({
  prefixes: ['paxos', 'kv'],
  payloadBytesMax: 1024,
  payloadKeysMax: 10,
  timeoutMs,
  cookies: {},
  nextCookie: 0,
});
const request = (
  msg: Omit<MonSync, 'type'>,
  over: Partial<Extract<SyncProviderEvent, { type: 'sync.request' }>> = {},
): Extract<SyncProviderEvent, { type: 'sync.request' }> => ({
  type: 'sync.request',
  from: 'mon.b',
  msg: { type: 'mon.sync', ...msg },
  nowMs: 5_000,
  canProvide: true,
  firstCommitted: 10,
  ...over,
});
/** The op of the one message a step sends, or the serve it asks the io actor for. */
const outcome = (io: ReturnType<typeof onSyncRequest>['io']) =>
  io.type === 'io.sync_serve' ? io.serve : (io.messages[0]?.msg as MonSync | undefined)?.op;
/** `cookie` or `chunk` for a serve, else the op sent (no_cookie). */
const kindOf = (io: ReturnType<typeof onSyncRequest>['io']) =>
  io.type === 'io.sync_serve' ? io.serve.kind : (io.messages[0]?.msg as MonSync | undefined)?.op;

test('a full cookie is given, numbered from the time of the first request, and served from the resume key', () => {
  let c = fresh();
  const step = onSyncRequest(c, request({ op: 'get_cookie_full', cookie: 0, lastCommitted: 0 }));
  const serve = outcome(step.io);
  assert.equal(serve, {
    kind: 'cookie',
    to: 'mon.b',
    cookie: nextCookieAfter(5_000),
    sync: 'full',
    fromVersion: 0,
    prefixes: ['paxos', 'kv'],
  });
  c = { ...c, ...step.context };
  const cookie = nextCookieAfter(5_000);
  const lastKey = { prefix: 'kv', key: 'k7' };
  const chunk = onSyncRequest(
    c,
    request({ op: 'get_chunk', cookie, lastCommitted: 0, lastKey }, { nowMs: 5_500 }),
  );
  assert.equal(outcome(chunk.io), {
    kind: 'chunk',
    to: 'mon.b',
    cookie,
    sync: 'full',
    after: lastKey,
    prefixes: ['paxos', 'kv'],
    payloadBytesMax: 1024,
    payloadKeysMax: 10,
  });
  assert.is(chunk.context.cookies[cookie]?.lastUsedMs, 5_500);
  // The last chunk served: the cookie is forgotten; a get_chunk with it is no_cookie.
  c = {
    ...c,
    ...chunk.context,
    ...onSyncServed({ ...c, ...chunk.context }, { type: 'sync.served', cookie, done: true }),
  };
  assert.equal(c.cookies, {});
  assert.is(
    outcome(onSyncRequest(c, request({ op: 'get_chunk', cookie, lastCommitted: 0 })).io),
    'no_cookie',
  );
});

test('a recent sync moves on version by version as the io actor serves it', () => {
  let c = fresh();
  const step = onSyncRequest(c, request({ op: 'get_cookie_recent', cookie: 0, lastCommitted: 20 }));
  c = { ...c, ...step.context };
  const cookie = (step.io as { serve: { cookie: number } }).serve.cookie;
  assert.is(c.cookies[cookie]?.nextVersion, 21);
  c = { ...c, ...onSyncServed(c, { type: 'sync.served', cookie, nextVersion: 31, done: false }) };
  const next = onSyncRequest(c, request({ op: 'get_chunk', cookie, lastCommitted: 30 }));
  assert.equal(outcome(next.io), {
    kind: 'chunk',
    to: 'mon.b',
    cookie,
    sync: 'recent',
    nextVersion: 31,
    payloadBytesMax: 1024,
    payloadKeysMax: 10,
  });
});

test('no cookie: while syncing itself, for versions trimmed here, beyond the cookie limit, or to another peer', () => {
  const c = fresh();
  assert.is(
    outcome(
      onSyncRequest(c, request({ op: 'get_cookie_full', cookie: 0, lastCommitted: 0 }, { canProvide: false }))
        .io,
    ),
    'no_cookie',
  );
  // first_committed 10: a peer at 5 misses 6..9, which only a full sync can give it.
  assert.is(
    outcome(onSyncRequest(c, request({ op: 'get_cookie_recent', cookie: 0, lastCommitted: 5 })).io),
    'no_cookie',
  );
  assert.is(
    kindOf(onSyncRequest(c, request({ op: 'get_cookie_recent', cookie: 0, lastCommitted: 9 })).io),
    'cookie',
  );
  const full: SyncProviderContext = { ...c, cookies: {}, nextCookie: 1 };
  for (let i = 0; i < providerCookiesMax; i++)
    full.cookies[1000 + i] = { peer: 'mon.c', kind: 'full', nextVersion: 1, lastUsedMs: 5_000 };
  assert.is(
    outcome(onSyncRequest(full, request({ op: 'get_cookie_full', cookie: 0, lastCommitted: 0 })).io),
    'no_cookie',
  );
  // A cookie is its peer's only.
  const given = onSyncRequest(c, request({ op: 'get_cookie_full', cookie: 0, lastCommitted: 0 }));
  const cookie = (given.io as { serve: { cookie: number } }).serve.cookie;
  const other = onSyncRequest(
    { ...c, ...given.context },
    request({ op: 'get_chunk', cookie, lastCommitted: 0 }, { from: 'mon.c' }),
  );
  assert.is(outcome(other.io), 'no_cookie');
});

test('an idle cookie expires after 2 × mon_sync_timeout', () => {
  const c = fresh();
  const given = onSyncRequest(c, request({ op: 'get_cookie_full', cookie: 0, lastCommitted: 0 }));
  const cookie = (given.io as { serve: { cookie: number } }).serve.cookie;
  const held = { ...c, ...given.context };
  assert.is(
    kindOf(
      onSyncRequest(
        held,
        request({ op: 'get_chunk', cookie, lastCommitted: 0 }, { nowMs: 5_000 + 2 * timeoutMs }),
      ).io,
    ),
    'chunk',
  );
  const late = onSyncRequest(
    held,
    request({ op: 'get_chunk', cookie, lastCommitted: 0 }, { nowMs: 5_001 + 2 * timeoutMs }),
  );
  assert.is(outcome(late.io), 'no_cookie');
  assert.equal(late.context.cookies, {});
});

test.run();

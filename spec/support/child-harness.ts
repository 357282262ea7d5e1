// Runs one child machine (elector, paxos) under a tiny parent that records what the child asks of
// the world: the I/O effects it sends to 'io' and the events it sends to its parent. Timers run
// on a SimulatedClock, so specs advance time explicitly and deterministically.
import {
  type AnyActorRef,
  type AnyStateMachine,
  assign,
  createActor,
  fromCallback,
  SimulatedClock,
  sendTo,
  setup,
} from 'xstate';
import type { IoEffectsEvent } from '../../machines/effects.ts';

export interface Harness {
  clock: SimulatedClock;
  io: IoEffectsEvent[];
  parent: { type: string; [key: string]: unknown }[];
  child(): AnyActorRef;
  send(event: { type: string; [key: string]: unknown }): void;
  advance(ms: number): void;
  /** Messages sent since the last take, flattened. */
  takeMessages(): { to: string; op?: string | undefined; type: string; msg: Record<string, unknown> }[];
  takeParent(): { type: string; [key: string]: unknown }[];
  stop(): void;
}

export interface HarnessOptions {
  /** The child's systemId (its io.written notifications are addressed by it). */
  systemId?: string;
  /** Answer every write notification with io.written at once, as a store whose writes are durable immediately. */
  autoWritten?: boolean;
}

export function runChild(machine: AnyStateMachine, input: unknown, options: HarnessOptions = {}): Harness {
  const io: IoEffectsEvent[] = [];
  const parent: { type: string; [key: string]: unknown }[] = [];
  const clock = new SimulatedClock();
  const host = setup({
    actors: {
      io: fromCallback(({ receive, system }) => {
        receive((event) => {
          const effects = event as IoEffectsEvent;
          io.push(effects);
          if (options.autoWritten && effects.notify) {
            const target = system.get(effects.notify.systemId);
            const token = effects.notify.token;
            target?.send({ type: 'io.written', token });
          }
        });
      }),
      child: machine,
    },
  }).createMachine({
    invoke: [
      { id: 'io', systemId: 'io', src: 'io' },
      { id: 'child', systemId: options.systemId ?? 'child', src: 'child', input: () => input },
    ],
    on: {
      forward: { actions: sendTo('child', ({ event }) => (event as unknown as { event: never }).event) },
      '*': {
        actions: ({ event }) => {
          parent.push(event as never);
        },
      },
    },
  });
  const actor = createActor(host, { clock });
  actor.start();
  let taken = 0;
  let parentTaken = 0;
  return {
    clock,
    io,
    parent,
    child: () => actor.getSnapshot().children.child as AnyActorRef,
    send: (event) => actor.send({ type: 'forward', event } as never),
    advance: (ms) => clock.increment(ms),
    takeMessages() {
      const fresh = io.slice(taken);
      taken = io.length;
      return fresh.flatMap((e) =>
        e.messages.map((m) => ({
          to: m.to,
          type: m.msg.type,
          op: (m.msg as { op?: string }).op,
          msg: m.msg as unknown as Record<string, unknown>,
        })),
      );
    },
    takeParent() {
      const fresh = parent.slice(parentTaken);
      parentTaken = parent.length;
      return fresh;
    },
    stop: () => actor.stop(),
  };
}

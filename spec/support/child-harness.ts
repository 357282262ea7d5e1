// Runs one child machine (elector, paxos) under a tiny parent that records what the child asks of
// the world: the I/O effects it sends to 'io' and the events it sends to its parent. Timers run
// on a SimulatedClock, so specs advance time explicitly and deterministically.
import {
  type AnyActorRef,
  type AnyStateMachine,
  createActor,
  fromCallback,
  SimulatedClock,
  sendTo,
  setup,
} from 'xstate';
import type { CommandReplyData, IoEffectsEvent, ReplyTarget, StoreOp } from '../../machines/effects.ts';

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
  /**
   * The proposals a service handed its parent (paxos.propose). Sending the child a
   * `paxos.committed` / `paxos.aborted` first answers the proposals it names, as Paxos does
   * (with the commit; EAGAIN when abandoned), in `io`.
   */
  proposals(): Proposed[];
  stop(): void;
}

export interface Proposed {
  id: string;
  ops: StoreOp[];
  replies: { target: ReplyTarget; reply: CommandReplyData }[];
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
            const target = system.get(options.systemId ?? 'child');
            target?.send({ type: 'io.written', token: effects.notify });
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
      // A child hands its effects to its parent (machines/monitor.ts passes them to io).
      'io.effects': { actions: sendTo('io', ({ event }) => event) },
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
  const answered = new Set<string>();
  const proposed = () => parent.filter((e) => e.type === 'paxos.propose') as unknown as Proposed[];
  return {
    clock,
    io,
    parent,
    child: () => actor.getSnapshot().children.child as AnyActorRef,
    send: (event) => {
      // Paxos answers a proposal's clients: with its commit, or EAGAIN when it is abandoned.
      if (event.type === 'paxos.committed' || event.type === 'paxos.aborted') {
        const ids = (event as { ids?: string[] }).ids ?? [];
        const rs = `update not committed (${String((event as { reason?: string }).reason)}); retry`;
        const answers = proposed()
          .filter((p) => ids.includes(p.id) && !answered.has(p.id))
          .flatMap((p) => {
            answered.add(p.id);
            return p.replies.map((r) =>
              event.type === 'paxos.committed' ? r : { target: r.target, reply: { r: -11, rs } },
            );
          });
        if (answers.length) io.push({ type: 'io.effects', writes: [], messages: [], replies: answers });
      }
      actor.send({ type: 'forward', event } as never);
    },
    proposals: () => proposed(),
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

// A command client on the simulator's network: sends mon.command, collects mon.command_ack.
import type { SimCluster } from '../../sim/cluster.ts';
import type { EntityName, Message } from '../../transport/messages.ts';

export interface Ack {
  from: EntityName;
  tid: number;
  r: number;
  rs: string;
  data: string;
}

export function simClient(cluster: SimCluster, name = 'client.spec') {
  const endpoint = cluster.network.endpoint(name as EntityName);
  const acks: Ack[] = [];
  endpoint.setHandlers({
    onMessage(from, msg: Message) {
      if (msg.type !== 'mon.command_ack') return;
      acks.push({ from, tid: msg.tid, r: msg.r, rs: msg.rs, data: new TextDecoder().decode(msg.data) });
    },
  });
  let tid = 0;
  // One deadline per request, the same for every attempt (as MonClient's): a minute of simulated time.
  const deadlines = new Map<number, number>();
  return {
    acks,
    nextTid: () => {
      tid += 1;
      return tid;
    },
    send(to: string, cmd: string[], withTid?: number) {
      if (withTid === undefined) tid += 1;
      const t = withTid ?? tid;
      let deadline = deadlines.get(t);
      if (deadline === undefined) {
        deadline = cluster.clock.now() + 60_000;
        deadlines.set(t, deadline);
      }
      endpoint.send(`mon.${to}` as EntityName, { type: 'mon.command', tid: t, cmd, deadline });
      return t;
    },
    /** Send and run the cluster until the answer arrives (bounded in simulated time). */
    async call(to: string, cmd: string[], withTid?: number, maxMs = 5_000): Promise<Ack> {
      const t = this.send(to, cmd, withTid);
      await cluster.runUntil(() => acks.some((a) => a.tid === t && a.from === `mon.${to}`), maxMs);
      return acks.filter((a) => a.tid === t && a.from === `mon.${to}`).at(-1) as Ack;
    },
    close: () => endpoint.close(),
  };
}

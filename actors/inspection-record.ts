// The line format of a recording (`--record FILE`, the dashboard's feed): one JSON object per
// inspection event. No node APIs here: the dashboard's page (dashboard/records.ts) checks records
// against this same type in the browser; actors/inspect.ts writes and reads them.

/** Format version of InspectionRecord lines. */
export const inspectionRecordVersion = 1;

/** One line of a recording (`--record FILE`): JSON, one per inspection event. */
export interface InspectionRecord {
  v: typeof inspectionRecordVersion;
  /** Order within one recorder (one monitor): ties in `t` keep it. */
  seq: number;
  /** Milliseconds: wall clock, or the simulated clock in the simulator. */
  t: number;
  /** The monitor's name (`a`); '?' when the tree is not a monitor's. */
  mon: string;
  kind: 'actor' | 'event' | 'snapshot';
  /** The actor: `monitor` (the root), `elector`, `paxos`, `io`, services by their ids. */
  actor: string;
  /** XState's session id of the actor, unique within its monitor. */
  session: string;
  /** actor: the parent actor, absent for the root. */
  parent?: string;
  /** actor: the machine's id when the actor runs a statechart. */
  machine?: string;
  /** event: the actor that sent it; absent when it came from outside the tree. */
  source?: string;
  /** event: the event itself; snapshot: the type of the event that led to it. */
  event?: unknown;
  /** snapshot: the state value (absent for actors that are not statecharts). */
  value?: unknown;
  /** snapshot: active, done, error or stopped. */
  status?: string;
  /** snapshot: the context (bounded), when the recorder keeps contexts. */
  context?: unknown;
  /** Parts were dropped to keep the line under the recorder's size limit. */
  truncated?: true;
}

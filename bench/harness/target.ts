// What the workloads need from a system under test: a 3-member cluster on loopback whose members
// are OS processes we own, the current leader, clients pinned to one member, and kill -9.
import type { Owned } from './proc.ts';

export type ReadMode = 'linearizable' | 'serializable' | 'default';

export interface KvClient {
  put(key: string, value: string): Promise<void>;
  /** The value, or null when the key does not exist. */
  get(key: string, mode: ReadMode): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

export interface ClientOptions {
  /** Give up on one request after this long (it then counts as an error). */
  timeoutMs: number;
}

export interface Member {
  readonly name: string;
  readonly addr: string;
  readonly process: Owned;
}

export interface Cluster {
  readonly members: readonly Member[];
  readonly dir: string;
  /** The member that leads now (asked of the cluster). */
  leader(): Promise<string>;
  /** A client with one connection, to `member` only (no failover). */
  client(member: string, options: ClientOptions): Promise<KvClient>;
  /**
   * Stop every member and remove the data dir: SIGKILL (the data is thrown away), or with
   * `graceful` SIGTERM, a bounded wait for a clean exit, then SIGKILL.
   */
  stop(options?: { graceful?: boolean }): Promise<void>;
}

export interface StartOptions {
  /** Equal fast failure-detection timing (etcd's 50 ms heartbeat / 250 ms election timeout). */
  fast: boolean;
  /** paxmon only: run the monitors under `node --cpu-prof`, profiles written here on exit. */
  cpuProfileDir?: string;
  /** paxmon only: Ceph-style options for every monitor (`name=value`, as `paxmon mon --set`). */
  sets?: string[];
}

export interface Target {
  readonly name: 'paxmon' | 'etcd' | 'ceph';
  /** Version string, e.g. `etcd 3.4.23`. */
  version(): Promise<string>;
  /** How the fast timing maps onto this target's options (for the report). */
  timing(fast: boolean): string;
  start(options: StartOptions): Promise<Cluster>;
}

// The Transport port: typed messages to and from named peers. TCP (transport/messenger.ts) and the
// simulator's in-memory network (transport/memory-network.ts) both implement it.
import type { EntityName, Message } from './messages.ts';

/** What a peer proved in its session's handshake. */
export interface PeerSession {
  /**
   * The entity whose key the peer proved (`mon.` for monitors, `client.admin`, …): caps are this
   * entity's. A client's session name (`from`) is its own instance's, unique per process.
   */
  entity: string;
}

export interface TransportHandlers {
  /** A validated message from an authenticated peer. */
  onMessage(from: EntityName, message: Message, session?: PeerSession): void;
  /** The connection to a peer was lost (Ceph's ms_handle_reset); pending requests to it may be lost. */
  onReset?(peer: EntityName): void;
  /**
   * A dial to a peer with messages waiting for it failed before any session existed (refused,
   * unreachable, bad handshake). The messages stay queued for the next dial; a client can fail
   * over at once instead of waiting out its attempt (Ceph's MonClient hunts on).
   */
  onUnreachable?(peer: EntityName, reason: string): void;
}

export interface Transport {
  /** Own entity name (`mon.a`, `client.x`). */
  readonly name: EntityName;
  /**
   * Send to a peer. A monitor is dialled lazily at `addr` (reconnecting with backoff); a client is
   * reached over the connection it opened. Never throws: what cannot be delivered is dropped and
   * counted, as Ceph's lossy monitor connections do.
   */
  send(to: EntityName, message: Message, addr?: string): void;
  setHandlers(handlers: TransportHandlers): void;
  close(): Promise<void>;
}

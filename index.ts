/**
 * paxmon's public API: the Ceph monitor's core as XState v5 statecharts, to embed in a Node app.
 *
 * The package ships JavaScript (dist/index.mjs, built from these sources by cli/build.mjs) with
 * its declarations (dist/types/): import it from any Node app, TypeScript or not.
 *
 * - Run monitors: {@link startLocalCluster} (N monitors in this process over TCP + RocksDB),
 *   {@link startMonitor} (one monitor from a store made by `paxmon mkfs`), {@link createMonitor}
 *   (one monitor over any Store and Transport, e.g. the in-memory ones).
 * - Talk to them: {@link MonClient} (Ceph's commands: quorum_status, mon_status, config-key…).
 * - The statecharts themselves: {@link monitorMachine}, {@link electorMachine},
 *   {@link paxosMachine}, to `createActor` with your own implementations via `provide`.
 * - The ports and their implementations: {@link Store} ({@link RocksDBStore},
 *   {@link MemoryStore}), {@link Transport} ({@link Messenger}, {@link MemoryNetwork}).
 * - Watch them: {@link createRecorder} + {@link formatTimeline} (offline), or
 *   {@link connectStatelyInspector} (the Stately inspector); logs via {@link createLogger}; or
 *   subscribe to a monitor's actor (`handle.actor.subscribe(...)`) with XState's types,
 *   re-exported here ({@link MonitorSnapshot}, {@link InspectionEvent}, {@link Subscription}…).
 *
 * @example
 * import { startLocalCluster } from 'paxmon';
 *
 * const cluster = await startLocalCluster({ dir: '/tmp/paxmon-demo', size: 3, basePort: 0 });
 * const quorum = await cluster.waitForQuorum();
 * console.log(`leader ${quorum.quorum_leader_name}, quorum ${quorum.quorum_names.join(',')}`);
 * await cluster.stop();
 *
 * @packageDocumentation
 */

// --- XState's types, to subscribe to and inspect a monitor's actors ------------------------------------
/**
 * XState's own types, as paxmon's actors use them: an app subscribing to `MonitorHandle.actor`
 * (`actor.subscribe((snapshot) => …)`, a {@link Subscription}) or passing an `inspect` observer
 * (each {@link InspectionEvent}) names them from here, with the XState paxmon runs on.
 */
export type {
  Actor,
  ActorRefFrom,
  AnyActorRef,
  AnyStateMachine,
  InspectionEvent,
  Observer,
  SnapshotFrom,
  StateValue,
  Subscription,
} from 'xstate';
// --- running monitors ----------------------------------------------------------------------------
export { type DaemonHandle, type StartMonitorOptions, startMonitor } from './actors/daemon.ts';
// --- logs and inspection -------------------------------------------------------------------------
export {
  combineInspectors,
  connectStatelyInspector,
  createRecorder,
  type FileSink,
  fileSink,
  formatTimeline,
  type InspectionRecord,
  type InspectObserver,
  type InspectorServer,
  type JsonSafeLimits,
  type Recorder,
  type RecorderOptions,
  readRecords,
  type StatelyInspector,
  type StatelyInspectorOptions,
  startInspectorServer,
  type TimelineOptions,
  toJsonSafe,
} from './actors/inspect.ts';
// --- the statecharts -----------------------------------------------------------------------------
export { type IoDeps, ioLogic } from './actors/io.ts';
// --- authentication: keyrings, keys and caps (Ceph's cephx, AuthMonitor and MonCap) -----------------
export {
  formatKeyring,
  generateKey,
  type KeyringEntry,
  KeyringError,
  keySecret,
  parseKeyring,
  readKeyring,
  writeKeyring,
} from './actors/keyring.ts';
export {
  type LocalCluster,
  LocalClusterError,
  type LocalClusterOptions,
  type QuorumStatus,
  startLocalCluster,
} from './actors/local-cluster.ts';
export {
  createLogger,
  type Logger,
  type LogOptions,
  MonitorLogContext,
  type MonitorLogFields,
  silentLogger,
} from './actors/log.ts';
export { buildMonMap, mkfsTransaction, newClusterKeyring } from './actors/mkfs.ts';
export {
  type MonAddress,
  MonClient,
  MonClientError,
  type MonClientOptions,
  requestDeadlineMaxMs,
} from './actors/mon-client.ts';
export {
  type Clock,
  type CreateMonitorOptions,
  createMonitor,
  type MonitorHandle,
  type MonitorStateName,
} from './actors/monitor.ts';
export { statechartJson, statechartMermaid, statecharts } from './cli/statecharts.ts';
export { CapsError, capsAllow, commandPerm, type MonCaps, type Perm, parseMonCaps } from './machines/caps.ts';
export {
  applyCephOptions,
  cephDefaults,
  cephOptionNames,
  defaultConfig,
  type MonConfig,
} from './machines/config.ts';
export { decodeCryptoKey, encodeCryptoKey } from './machines/crypto-key.ts';
export type { IoEffectsEvent, MessageEvent, Outgoing, StoreOp } from './machines/effects.ts';
export {
  type ElectorContext,
  type ElectorEvent,
  type ElectorInput,
  type ElectorParentEvent,
  electorMachine,
} from './machines/elector.ts';
export {
  assertPaxosInvariants,
  createMonitorMachine,
  type MonitorActorRef,
  type MonitorContext,
  type MonitorEvent,
  type MonitorInput,
  type MonitorSnapshot,
  minQuorumSize,
  monitorMachine,
  monitorStateName,
  paxosStamp,
} from './machines/monitor.ts';
export {
  isReadable,
  isWriteable,
  type PaxosContext,
  type PaxosEvent,
  type PaxosOutcome,
  type PaxosStatus,
  paxosStateName,
} from './machines/paxos.ts';
// --- PaxosService: the template and the custom-service API -----------------------------------------
/**
 * The PaxosService template (Ceph's PaxosService): `createPaxosService(definition)` makes a
 * service's statechart from its hooks; pass definitions to startMonitor / startLocalCluster /
 * createMonitor as `services` to run them beside paxmon's own. See examples/counter-service.ts.
 */
export {
  createPaxosService,
  type MonitorView,
  type Preprocessed,
  type Reply,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceEvent,
  type ServiceInput,
  type ServiceRequest,
  type ServiceVersions,
} from './machines/paxos-service.ts';
export type { LoadableService, ServiceLoad, StoredService, StoredVersion } from './machines/service-load.ts';
export { type AuthServiceOptions, authLookup } from './machines/services/auth.ts';
/** paxmon's own services (monmap, auth, config-key, log, health), built on the template. */
export {
  authService,
  configKeyService,
  defaultServices,
  healthService,
  logService,
  monmapService,
} from './machines/services/index.ts';
// --- the deterministic simulator -----------------------------------------------------------------
export { SimCluster, type SimClusterOptions, type SimNode, settle } from './sim/cluster.ts';
export { Prng } from './sim/prng.ts';
// --- storage: the Store port and its implementations ------------------------------------------------
export {
  type IterateOptions,
  MemoryStore,
  type MemoryStoreOptions,
  RocksDBStore,
  type Store,
  StoreError,
  type StoreErrorCode,
  Transaction,
  type TransactionOp,
} from './storage/index.ts';
// --- transport: the Transport port, TCP and in-memory ------------------------------------------------
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  Messenger,
  type MessengerOptions,
  type NetworkFaults,
} from './transport/index.ts';
export type {
  CommandReply,
  ElectionStrategy,
  EntityName,
  Message,
  MessageType,
  MonInfo,
  MonMap,
} from './transport/messages.ts';
export type { MessengerAuth, SessionMode } from './transport/messenger.ts';
export type { PeerSession, Transport, TransportHandlers } from './transport/transport.ts';

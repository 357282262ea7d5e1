// The services every paxmon monitor runs (DESIGN.md §2), in Monitor::dispatch's order.
import type { ServiceDefinition } from '../paxos-service.ts';
import { type AuthServiceOptions, authService } from './auth.ts';
import { configKeyService } from './config-key.ts';
import { healthService } from './health.ts';
import { logService } from './log.ts';
import { monmapService } from './monmap.ts';

export { authService, configKeyService, healthService, logService, monmapService };

export interface ServiceOptions {
  /** mon_config_key_max_entry_size. */
  configKeyMaxEntrySizeBytes: number;
  /** mon_clock_drift_allowed. */
  clockDriftAllowedMs: number;
  /**
   * The auth service's randomness and this monitor's keyring (machines/services/auth.ts). The
   * auth service runs only when given: its state must also be loaded at start-up (`authLoaded`
   * from the 'auth' versions and the 'auth_entity' prefix), and both prefixes synced.
   */
  auth?: AuthServiceOptions;
}

export function defaultServices(options: ServiceOptions): ServiceDefinition[] {
  return [
    monmapService,
    ...(options.auth ? [authService(options.auth)] : []),
    configKeyService({ maxEntrySizeBytes: options.configKeyMaxEntrySizeBytes }),
    logService,
    healthService({ driftAllowedMs: options.clockDriftAllowedMs }),
  ] as unknown as ServiceDefinition[];
}

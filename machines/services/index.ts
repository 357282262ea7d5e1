// The services every paxmon monitor runs (DESIGN.md §2), in Monitor::dispatch's order.
import type { ServiceDefinition } from '../paxos-service.ts';
import { configKeyService } from './config-key.ts';
import { healthService } from './health.ts';
import { logService } from './log.ts';
import { monmapService } from './monmap.ts';

export { configKeyService, healthService, logService, monmapService };

export interface ServiceOptions {
  /** mon_config_key_max_entry_size. */
  configKeyMaxEntrySizeBytes: number;
  /** mon_clock_drift_allowed. */
  clockDriftAllowedMs: number;
}

export function defaultServices(options: ServiceOptions): ServiceDefinition[] {
  return [
    monmapService,
    configKeyService({ maxEntrySizeBytes: options.configKeyMaxEntrySizeBytes }),
    logService,
    healthService({ driftAllowedMs: options.clockDriftAllowedMs }),
  ] as unknown as ServiceDefinition[];
}

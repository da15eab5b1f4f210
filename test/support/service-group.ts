import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService, type RunningService, type StartServiceOptions } from '../../src/demo/start-service.js';
import { createGovernanceClient, type GovernanceClient } from './governance-client.js';

/** Writes `text` as policy.yaml in a fresh temporary directory and returns its path. */
export function writePolicyFile(text: string, prefix = 'genops-policy-'): string {
  const path = join(mkdtempSync(join(tmpdir(), prefix)), 'policy.yaml');
  writeFileSync(path, text);
  return path;
}

/** Service processes a test file starts, each with a gRPC client; `stop()` closes and stops them all. */
export interface ServiceGroup {
  start(options: StartServiceOptions): Promise<{ readonly service: RunningService; readonly client: GovernanceClient }>;
  /** Another part (a Redis) to stop after the services. */
  track(part: { stop(): Promise<unknown> }): void;
  /** Closes the clients, then stops the services and the tracked parts, newest first; the group can be used again. */
  stop(): Promise<void>;
}

export function createServiceGroup(): ServiceGroup {
  const clients: GovernanceClient[] = [];
  const parts: { stop(): Promise<unknown> }[] = [];
  return {
    async start(options) {
      const service = await startService(options);
      parts.push(service);
      const client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
      clients.push(client);
      return { service, client };
    },
    track(part) {
      parts.push(part);
    },
    async stop() {
      for (const client of clients.splice(0)) client.close();
      for (const part of parts.splice(0).reverse()) await part.stop().catch(() => undefined);
    },
  };
}

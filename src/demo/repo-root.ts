import { fileURLToPath } from 'node:url';

/** The repository root: src/demo and dist/demo sit at the same depth below it. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The compiled service the harness and the demo spawn. */
export const SERVICE_ENTRY = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/**
 * The V8 flags the service ships with (`npm start`, the Dockerfile's ENTRYPOINT, and every
 * process the tests, demo and bench start). V8 sizes the young generation from the machine's
 * memory, up to 2 × 64 MB; the service's per-request garbage needs 8 MB. Capped, the process
 * holds ~120 MB less under load, scavenges pause ≤ 5 ms instead of ≤ 20 ms, and Check throughput
 * is unchanged (bench/RESULTS.md). It has to be a command-line flag: V8 reads it once, at start.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

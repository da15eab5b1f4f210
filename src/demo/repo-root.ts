import { fileURLToPath } from 'node:url';

/** The repository root: src/demo and dist/demo sit at the same depth below it. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The compiled service the harness and the demo spawn. */
export const SERVICE_ENTRY = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/**
 * The V8 flags the service ships with (`npm start`, the Dockerfile's ENTRYPOINT, and every
 * process the tests, demo and bench start). V8 sizes the young generation from the machine's
 * memory, up to 2 × 64 MB here, far more than per-request garbage needs. Capped at 2 × 4 MB, the
 * process holds ~110 MB less under load, scavenges pause ≤ 5–7 ms instead of 14–21 ms, and CPU per
 * Check is unchanged (bench/RESULTS.md). The old generation grows by 2× its live size after a full
 * * GC (--heap-growing-percent=100) instead of V8's dynamic 1.1–4×: ~50 MB less RSS at 1,000 AI exchanges a
 * second, the same CPU (bench/RESULTS.md, issue 18). Command-line flags: V8 reads them once, at start.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=100'];

/**
 * The environment the service ships with (`npm start`, the Dockerfile's ENV, every process the
 * tests, demo and bench start). MALLOC_ARENA_MAX=1: glibc gives each thread that allocates its
 * own malloc arena, and V8's background threads (concurrent GC and compilation) leave 10–25 MB
 * in theirs under load that is never handed back; one arena reuses it. 1,000 AI exchanges a
 * second: peak RSS ~20 MB lower, the same CPU per exchange (bench/RESULTS.md, issue 18). The
 * JavaScript runs on one thread, so one arena is not contended. Read by glibc at process start.
 */
export const SERVICE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' };

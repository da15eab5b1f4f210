/**
 * The V8 flags the service ships with: `npm start` and the Dockerfile's ENTRYPOINT carry exactly
 * these (test/mesh/dockerfile.test.ts), and every process the tests, demo and bench start runs with
 * them. V8 sizes the young generation from the machine's memory, up to 2 × 64 MB here, far more
 * than per-request garbage needs. Capped at 2 × 4 MB, the process holds ~110 MB less under load,
 * scavenges pause ≤ 5–7 ms instead of 14–21 ms, and CPU per Check is unchanged (bench/RESULTS.md).
 * The old generation grows by 2× its live size after a full GC (--heap-growing-percent=100) instead
 * of V8's dynamic 1.1–4×: ~50 MB less RSS at 1,000 AI exchanges a second, the same CPU
 * (bench/RESULTS.md, issue 18). Command-line flags: V8 reads them once, at start.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=100'];

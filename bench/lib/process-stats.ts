import { readFileSync } from 'node:fs';

/** CPU and memory of one process over a scenario, from /proc (Linux). */
export interface ProcessUsage {
  /** CPU time over wall time, in percent of one core (above 100 when several threads are busy). */
  readonly cpuPercent: number;
  /** Resident set size at the end, MiB. */
  readonly rssMb: number;
  /** Largest resident set size seen while sampling, MiB. */
  readonly rssPeakMb: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** VmRSS of `pid` in MiB. */
export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}

export interface UsageSampler {
  /** Stops sampling and reports; undefined when the process is gone. */
  stop(): ProcessUsage | undefined;
}

/** Samples `pid` every `intervalMs` from now until stop(). */
export function sampleUsage(pid: number, intervalMs = 250): UsageSampler {
  let peak = 0;
  let alive = true;
  const read = () => {
    try {
      peak = Math.max(peak, rssMb(pid));
    } catch {
      alive = false;
    }
  };
  let startTicks: number;
  try {
    startTicks = cpuTicks(pid);
  } catch {
    return { stop: () => undefined };
  }
  const startedAt = performance.now();
  read();
  const timer = setInterval(read, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      read();
      if (!alive) return undefined;
      const seconds = (performance.now() - startedAt) / 1000;
      const cpuSeconds = (cpuTicks(pid) - startTicks) / CLOCK_TICKS_PER_SECOND;
      const rss = rssMb(pid);
      return { cpuPercent: Math.round((cpuSeconds / seconds) * 1000) / 10, rssMb: round1(rss), rssPeakMb: round1(Math.max(peak, rss)) };
    },
  };
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

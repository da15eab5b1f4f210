/** Counters the bench reads from genops-mesh's /metrics, to check what it decided and exported. */
export interface ServiceCounters {
  /** genops_requests_total summed by decision. */
  readonly decisions: Record<string, number>;
  readonly spansExported: number;
  /** genops_spans_dropped_total summed by reason. */
  readonly spansDropped: Record<string, number>;
  readonly heapUsedMb: number;
}

export async function readCounters(adminUrl: string): Promise<ServiceCounters> {
  const response = await fetch(`${adminUrl}/metrics`);
  const text = await response.text();
  const decisions: Record<string, number> = {};
  const spansDropped: Record<string, number> = {};
  let spansExported = 0;
  let heapUsedMb = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('genops_requests_total{')) {
      const decision = /decision="([^"]*)"/.exec(line)?.[1] ?? '';
      decisions[decision] = (decisions[decision] ?? 0) + value;
    } else if (line.startsWith('genops_spans_exported_total')) {
      spansExported += value;
    } else if (line.startsWith('genops_spans_dropped_total{')) {
      const reason = /reason="([^"]*)"/.exec(line)?.[1] ?? '';
      spansDropped[reason] = (spansDropped[reason] ?? 0) + value;
    } else if (line.startsWith('nodejs_heap_size_used_bytes ')) {
      heapUsedMb = Math.round((value / 1024 / 1024) * 10) / 10;
    }
  }
  return { decisions, spansExported, spansDropped, heapUsedMb };
}

/** after − before, per key, leaving out keys that did not change. */
export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const change = value - (before[key] ?? 0);
    if (change !== 0) out[key] = change;
  }
  return out;
}

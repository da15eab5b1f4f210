/**
 * The service's ext_proc stream trace (LOG_LEVEL=trace, `event: ext_proc_stream` lines), read back by
 * the one-round-trip suites: which messages reached the service before it first answered, and how
 * many replies that answer carried.
 */
import { expect } from 'vitest';

export interface TraceStep {
  stream: number;
  step: string;
  kind?: string;
  end?: boolean;
  sent?: boolean;
  count?: number;
}

/**
 * The deciding streams opened while `send` ran (streams whose `open` is in the new lines: an earlier
 * request's stream may still log its last steps): each one's messages up to the first reply the
 * service wrote, and that reply.
 */
export async function decidingStreams(logs: () => readonly Record<string, unknown>[], send: () => Promise<unknown>, settleMs = 150): Promise<TraceStep[][]> {
  const before = logs().length;
  await send();
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const steps = logs().slice(before).filter((line) => line.event === 'ext_proc_stream') as unknown as TraceStep[];
  const byStream = new Map<number, TraceStep[]>();
  for (const step of steps) byStream.set(step.stream, [...(byStream.get(step.stream) ?? []), step]);
  const opened = [...byStream.values()].filter((stream) => stream[0]?.step === 'open');
  return opened.map((stream) => {
    const firstReply = stream.findIndex((step) => step.step === 'reply' && step.sent === true);
    return stream.slice(0, firstReply + 1).filter((step) => step.step === 'message' || step.sent === true);
  });
}

/** One round trip: the headers, then the whole body (one or more messages), then one write of the held headers reply and the body. */
export function expectOneRoundTrip(stream: readonly TraceStep[] | undefined): void {
  const [headers, ...rest] = stream ?? [];
  const reply = rest.pop();
  expect(headers).toMatchObject({ step: 'message', kind: 'request_headers', end: false });
  expect(rest.length).toBeGreaterThanOrEqual(1);
  for (const step of rest) expect(step).toMatchObject({ step: 'message', kind: 'request_body' });
  expect(rest.at(-1)?.end).toBe(true);
  expect(reply).toMatchObject({ step: 'reply', sent: true, count: 2 });
}

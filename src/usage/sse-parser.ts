/** Incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation"), bounded memory. */
export interface SseEvent {
  readonly event: string | undefined;
  readonly data: string;
}

export interface SseParser {
  push(chunk: Uint8Array, onEvent: (event: SseEvent) => void): void;
  end(onEvent: (event: SseEvent) => void): void;
  readonly droppedEvents: number;
}

export function createSseParser(options?: { maxEventBytes?: number }): SseParser {
  void options;
  throw new Error('createSseParser: not implemented yet');
}

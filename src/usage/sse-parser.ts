/**
 * Incremental Server-Sent Events parser following the WHATWG HTML "event stream
 * interpretation": lines end with LF, CRLF or CR (a CR ending one chunk and an LF starting
 * the next are one line end); `field: value` with one optional space after the colon;
 * `data` lines of one event are joined with "\n"; `event` sets the type; `id`, `retry`,
 * unknown fields and `:` comment lines are ignored; a blank line dispatches the event
 * (none when it had no data line); a leading UTF-8 BOM is skipped; an event the stream
 * ends in the middle of is discarded, as the spec says.
 *
 * Bytes in, strings out: line ends are found with Buffer.indexOf, and only the values of
 * `data` and `event` lines are decoded, once, after the whole line is known — so an event
 * split anywhere, even inside a multi-byte UTF-8 character, decodes correctly (line-end bytes
 * never occur inside one). Memory is bounded by `maxEventBytes`: an event (its pending line
 * plus its data) growing past it is dropped, counted in `droppedEvents`, and the parser
 * resynchronises at the next blank line without buffering any more of it.
 */
export interface SseEvent {
  readonly event: string | undefined;
  readonly data: string;
}

export interface SseParser {
  push(chunk: Uint8Array, onEvent: (event: SseEvent) => void): void;
  end(onEvent: (event: SseEvent) => void): void;
  readonly droppedEvents: number;
  /** Bytes held right now (pending line + the current event's data): never more than maxEventBytes. */
  readonly bufferedBytes: number;
}

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = Buffer.from('data', 'latin1');
const EVENT = Buffer.from('event', 'latin1');

/** The line `[start, end)` is `<name>` alone or `<name>:...`. */
function isField(line: Buffer, start: number, end: number, name: Buffer): boolean {
  const fieldEnd = start + name.length;
  if (fieldEnd > end) return false;
  for (let index = 0; index < name.length; index += 1) if (line[start + index] !== name[index]) return false;
  return fieldEnd === end || line[fieldEnd] === COLON;
}

/** After the field name at `fieldEnd`: skip the colon and one optional space. */
function valueStartOf(line: Buffer, fieldEnd: number, end: number): number {
  if (fieldEnd === end) return end;
  const afterColon = fieldEnd + 1;
  return afterColon < end && line[afterColon] === SPACE ? afterColon + 1 : afterColon;
}

export function createSseParser(options: { maxEventBytes?: number } = {}): SseParser {
  const maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  if (!Number.isInteger(maxEventBytes) || maxEventBytes < 1) throw new RangeError(`maxEventBytes must be a positive integer (got ${maxEventBytes})`);

  // The line being received, when it spans chunks (copies: the caller may reuse its buffers).
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  // The current line is a comment (or part of a dropped event): its bytes are not kept.
  let skippingLine = false;
  // Bytes of the current line seen so far, kept or not (to tell a blank line from a skipped one).
  let lineHasBytes = false;
  let lastChunkEndedWithCr = false;
  let atStreamStart = true;

  let eventType: string | undefined;
  let data: string[] = [];
  let dataBytes = 0;
  let dropping = false;
  let droppedEvents = 0;

  function resetEvent(): void {
    eventType = undefined;
    data = [];
    dataBytes = 0;
  }

  function startDropping(): void {
    dropping = true;
    resetEvent();
    pending = [];
    pendingBytes = 0;
  }

  function dispatch(onEvent: (event: SseEvent) => void): void {
    if (dropping) {
      dropping = false;
      droppedEvents += 1;
      resetEvent();
      return;
    }
    if (data.length === 0) {
      eventType = undefined;
      return;
    }
    const event: SseEvent = { event: eventType, data: data.length === 1 ? data[0]! : data.join('\n') };
    resetEvent();
    onEvent(event);
  }

  /** One complete, non-empty line in `line[start, end)`. */
  function processLine(line: Buffer, start: number, end: number): void {
    if (atStreamStart) {
      atStreamStart = false;
      if (end - start >= 3 && line[start] === 0xef && line[start + 1] === 0xbb && line[start + 2] === 0xbf) start += 3;
      if (start === end) return;
    }
    if (isField(line, start, end, DATA)) {
      const valueStart = valueStartOf(line, start + DATA.length, end);
      dataBytes += end - valueStart + 1;
      if (dataBytes > maxEventBytes) {
        startDropping();
        return;
      }
      data.push(line.toString('utf8', valueStart, end));
    } else if (isField(line, start, end, EVENT)) {
      eventType = line.toString('utf8', valueStartOf(line, start + EVENT.length, end), end);
    }
    // id, retry and unknown fields are ignored.
  }

  /** The current line ended at `end` in `chunk` (its start at `start` in this chunk, plus any pending bytes). */
  function endLine(chunk: Buffer, start: number, end: number, onEvent: (event: SseEvent) => void): void {
    if (!lineHasBytes && start === end) {
      dispatch(onEvent);
    } else if (skippingLine || dropping) {
      // A comment, or a line of an event being dropped: nothing to keep.
    } else if (pendingBytes === 0) {
      if (chunk[start] !== COLON) processLine(chunk, start, end);
    } else {
      pending.push(chunk.subarray(start, end));
      const line = Buffer.concat(pending, pendingBytes + end - start);
      pending = [];
      pendingBytes = 0;
      processLine(line, 0, line.length);
    }
    skippingLine = false;
    lineHasBytes = false;
    if (atStreamStart) atStreamStart = false;
  }

  /** The chunk ended inside a line: keep `chunk[start, end)` unless it is not needed. */
  function holdPartialLine(chunk: Buffer, start: number, end: number): void {
    if (start === end) return;
    if (!lineHasBytes && chunk[start] === COLON) skippingLine = true;
    lineHasBytes = true;
    if (skippingLine || dropping) return;
    if (pendingBytes + (end - start) + dataBytes > maxEventBytes) {
      startDropping();
      return;
    }
    pending.push(Buffer.from(chunk.subarray(start, end)));
    pendingBytes += end - start;
  }

  return {
    push(input, onEvent) {
      if (input.length === 0) return;
      const chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
      let position = 0;
      if (lastChunkEndedWithCr) {
        lastChunkEndedWithCr = false;
        if (chunk[0] === LF) position = 1;
      }
      let nextLf = chunk.indexOf(LF, position);
      let nextCr = chunk.indexOf(CR, position);
      while (position < chunk.length) {
        if (nextLf !== -1 && nextLf < position) nextLf = chunk.indexOf(LF, position);
        if (nextCr !== -1 && nextCr < position) nextCr = chunk.indexOf(CR, position);
        const lineEnd = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
        if (lineEnd === -1) {
          holdPartialLine(chunk, position, chunk.length);
          return;
        }
        endLine(chunk, position, lineEnd, onEvent);
        if (chunk[lineEnd] === CR) {
          if (lineEnd + 1 === chunk.length) {
            lastChunkEndedWithCr = true;
            return;
          }
          position = chunk[lineEnd + 1] === LF ? lineEnd + 2 : lineEnd + 1;
        } else {
          position = lineEnd + 1;
        }
      }
    },
    end() {
      // An event the stream ends in the middle of is not dispatched (WHATWG: "any pending data must be discarded").
      pending = [];
      pendingBytes = 0;
      skippingLine = false;
      lineHasBytes = false;
      lastChunkEndedWithCr = false;
      if (dropping) {
        dropping = false;
        droppedEvents += 1;
      }
      resetEvent();
    },
    get droppedEvents() {
      return droppedEvents;
    },
    get bufferedBytes() {
      return pendingBytes + dataBytes;
    },
  };
}

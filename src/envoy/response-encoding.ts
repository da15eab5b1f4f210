import type { ProtoStruct, ProtoValue } from './struct-to-json.js';
import type { BodySendMode, CheckResponse, HeaderMutation, HeaderSendMode, HeaderValue, HeaderValueOption, ImmediateResponse, CommonResponse, ProcessingMode, ProcessingResponse, ProcessingResponseMember } from './envoy-messages.js';

/**
 * Protobuf encoding of the two messages the service sends on every request,
 * CheckResponse and ProcessingResponse, written straight from the adapters'
 * plain objects. It produces the bytes protobufjs produces (proto-loader's
 * fromObject + encode: fields present in the object, in field-number order,
 * defaults included when set) without building message objects first, which
 * was a sixth of the CPU time of a Check. test/unit/response-encoding.test.ts
 * holds it byte for byte to the generic encoder.
 *
 * Field numbers are those of proto/. Each table must name every field of
 * its TypeScript type (`satisfies`), so a field added to envoy-messages.ts
 * cannot be left out here unnoticed.
 */

const CHECK_RESPONSE = { status: 1, denied_response: 2, ok_response: 3 } as const satisfies Record<keyof CheckResponse, number>;
const RPC_STATUS = { code: 1, message: 2 } as const satisfies Record<keyof CheckResponse['status'], number>;
const DENIED = { status: 1, headers: 2, body: 3 } as const satisfies Record<keyof NonNullable<CheckResponse['denied_response']>, number>;
const OK = { headers: 2, headers_to_remove: 5, response_headers_to_add: 6 } as const satisfies Record<keyof NonNullable<CheckResponse['ok_response']>, number>;
const HEADER_VALUE_OPTION = { header: 1, append: 2, append_action: 3 } as const satisfies Record<keyof HeaderValueOption, number>;
const HEADER_VALUE = { key: 1, value: 2, raw_value: 3 } as const satisfies Record<keyof HeaderValue, number>;
const HEADER_MUTATION = { set_headers: 1, remove_headers: 2 } as const satisfies Record<keyof HeaderMutation, number>;
const COMMON_RESPONSE = { status: 1, header_mutation: 2, body_mutation: 3, clear_route_cache: 5 } as const satisfies Record<keyof CommonResponse, number>;
const BODY_MUTATION_BODY = 1;
const BODY_MUTATION_STREAMED = 3;
const STREAMED_BODY = { body: 1, end_of_stream: 2 } as const;
const PROCESSING_MODE = {
  request_header_mode: 1,
  response_header_mode: 2,
  request_body_mode: 3,
  response_body_mode: 4,
  request_trailer_mode: 5,
  response_trailer_mode: 6,
} as const satisfies Record<keyof ProcessingMode, number>;
const PROCESSING_MODE_FIELDS = Object.keys(PROCESSING_MODE) as (keyof ProcessingMode)[];
const MODE_OVERRIDE_FIELD = 9;
const DYNAMIC_METADATA_FIELD = 8;
/** google.protobuf.Struct: map<string, Value> fields = 1 (entries: key 1, value 2); Value's oneof members. */
const STRUCT_FIELDS = 1;
const VALUE = { numberValue: 2, stringValue: 3, boolValue: 4, structValue: 5 } as const;
const HEADER_SEND_MODE: Readonly<Record<HeaderSendMode, number>> = { DEFAULT: 0, SEND: 1, SKIP: 2 };
const BODY_SEND_MODE: Readonly<Record<BodySendMode, number>> = { NONE: 0, STREAMED: 1, BUFFERED: 2, BUFFERED_PARTIAL: 3, FULL_DUPLEX_STREAMED: 4 };
const PROCESSING_MODE_ENUMS: Readonly<Record<keyof ProcessingMode, Readonly<Record<string, number>>>> = {
  request_header_mode: HEADER_SEND_MODE,
  response_header_mode: HEADER_SEND_MODE,
  request_body_mode: BODY_SEND_MODE,
  response_body_mode: BODY_SEND_MODE,
  request_trailer_mode: HEADER_SEND_MODE,
  response_trailer_mode: HEADER_SEND_MODE,
};
const IMMEDIATE_RESPONSE = { status: 1, headers: 2, body: 3, details: 5 } as const satisfies Record<keyof ImmediateResponse, number>;
/** ProcessingResponse's `response` oneof; each member is a message with one field, 1 (response or header_mutation). */
const PROCESSING_RESPONSE = {
  request_headers: 1,
  response_headers: 2,
  request_body: 3,
  response_body: 4,
  request_trailers: 5,
  response_trailers: 6,
  immediate_response: 7,
} as const;
type ProcessingKind = keyof typeof PROCESSING_RESPONSE;
// Every member of the ProcessingResponse union is covered, and nothing else.
const _processingKinds = PROCESSING_RESPONSE satisfies Record<ProcessingResponseMember extends infer R ? (R extends unknown ? keyof R : never) : never, number>;
void _processingKinds;

const APPEND_ACTION: Readonly<Record<NonNullable<HeaderValueOption['append_action']>, number>> = {
  APPEND_IF_EXISTS_OR_ADD: 0,
  ADD_IF_ABSENT: 1,
  OVERWRITE_IF_EXISTS_OR_ADD: 2,
  OVERWRITE_IF_EXISTS: 3,
};
const RESPONSE_STATUS: Readonly<Record<NonNullable<CommonResponse['status']>, number>> = { CONTINUE: 0, CONTINUE_AND_REPLACE: 1 };

const WIRE_VARINT = 0;
const WIRE_LENGTH = 2;

/** Bytes of a varint (non-negative values; negative int32 take 10, as protobuf encodes them). */
function varintSize(value: number): number {
  if (value < 0) return 10;
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** UTF-8 length of a string (as protobufjs's utf8.length). */
function utf8Length(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) length += 1;
    else if (code < 0x800) length += 2;
    else if ((code & 0xfc00) === 0xd800 && index + 1 < text.length && (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00) {
      index++;
      length += 4;
    } else length += 3;
  }
  return length;
}

/**
 * Sizes first, bytes second: `measure*` functions push the length of every
 * nested message in visiting order, `write*` functions pop them in the same
 * order. One Buffer per response, no intermediate objects.
 */
class Encoder {
  private sizes: number[] = [];
  private next = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private position = 0;

  begin(): void {
    this.sizes.length = 0;
    this.next = 0;
  }

  /** Records the size of a nested message; returns its size with tag and length prefix. */
  private nested(size: number, index: number): number {
    this.sizes[index] = size;
    return 1 + varintSize(size) + size;
  }

  private slot(): number {
    return this.sizes.push(0) - 1;
  }

  // ---- measuring ----

  stringField(text: string | undefined): number {
    if (text === undefined || text === null) return 0;
    const length = utf8Length(text);
    return 1 + varintSize(length) + length;
  }

  bytesField(bytes: Uint8Array | undefined): number {
    if (bytes === undefined || bytes === null) return 0;
    return 1 + varintSize(bytes.length) + bytes.length;
  }

  varintField(value: number | undefined): number {
    if (value === undefined || value === null) return 0;
    return 1 + varintSize(value);
  }

  boolField(value: boolean | undefined): number {
    return value === undefined || value === null ? 0 : 2;
  }

  headerValue(header: HeaderValue): number {
    const index = this.slot();
    const raw = header.raw_value;
    const size = this.stringField(header.key) + this.stringField(header.value) + (typeof raw === 'string' ? this.stringField(raw) : this.bytesField(raw));
    return this.nested(size, index);
  }

  headerValueOption(option: HeaderValueOption): number {
    const index = this.slot();
    let size = 0;
    if (option.header !== undefined && option.header !== null) size += this.headerValue(option.header);
    if (option.append !== undefined && option.append !== null) {
      const appendIndex = this.slot();
      size += this.nested(this.boolField(option.append.value), appendIndex);
    }
    if (option.append_action !== undefined && option.append_action !== null) size += this.varintField(APPEND_ACTION[option.append_action]);
    return this.nested(size, index);
  }

  headerValueOptions(options: readonly HeaderValueOption[] | undefined): number {
    let size = 0;
    if (options) for (const option of options) size += this.headerValueOption(option);
    return size;
  }

  strings(values: readonly string[] | undefined): number {
    let size = 0;
    if (values) for (const value of values) size += this.stringField(value);
    return size;
  }

  httpStatus(status: { code: number }): number {
    const index = this.slot();
    return this.nested(this.varintField(status.code), index);
  }

  headerMutation(mutation: HeaderMutation): number {
    const index = this.slot();
    return this.nested(this.headerValueOptions(mutation.set_headers) + this.strings(mutation.remove_headers), index);
  }

  checkResponse(response: CheckResponse): number {
    let size = 0;
    if (response.status !== undefined && response.status !== null) {
      const index = this.slot();
      size += this.nested(this.varintField(response.status.code) + this.stringField(response.status.message), index);
    }
    const denied = response.denied_response;
    if (denied !== undefined && denied !== null) {
      const index = this.slot();
      let inner = 0;
      if (denied.status !== undefined && denied.status !== null) inner += this.httpStatus(denied.status);
      inner += this.headerValueOptions(denied.headers) + this.stringField(denied.body);
      size += this.nested(inner, index);
    }
    const ok = response.ok_response;
    if (ok !== undefined && ok !== null) {
      const index = this.slot();
      size += this.nested(this.headerValueOptions(ok.headers) + this.strings(ok.headers_to_remove) + this.headerValueOptions(ok.response_headers_to_add), index);
    }
    return size;
  }

  commonResponse(response: CommonResponse): number {
    const index = this.slot();
    let size = 0;
    if (response.status !== undefined && response.status !== null) size += this.varintField(RESPONSE_STATUS[response.status]);
    if (response.header_mutation !== undefined && response.header_mutation !== null) size += this.headerMutation(response.header_mutation);
    if (response.body_mutation !== undefined && response.body_mutation !== null) {
      const mutationIndex = this.slot();
      const streamed = response.body_mutation.streamed_response;
      if (streamed) {
        const streamedIndex = this.slot();
        size += this.nested(this.nested(this.bytesField(streamed.body) + this.boolField(streamed.end_of_stream), streamedIndex), mutationIndex);
      } else size += this.nested(this.bytesField(response.body_mutation.body), mutationIndex);
    }
    size += this.boolField(response.clear_route_cache);
    return this.nested(size, index);
  }

  processingMode(mode: ProcessingMode): number {
    const index = this.slot();
    let size = 0;
    for (const field of PROCESSING_MODE_FIELDS) {
      const value = mode[field];
      if (value !== undefined && value !== null) size += this.varintField(PROCESSING_MODE_ENUMS[field][value]);
    }
    return this.nested(size, index);
  }

  immediateResponse(response: ImmediateResponse): number {
    const index = this.slot();
    let size = 0;
    if (response.status !== undefined && response.status !== null) size += this.httpStatus(response.status);
    if (response.headers !== undefined && response.headers !== null) size += this.headerMutation(response.headers);
    size += this.bytesField(response.body) + this.stringField(response.details);
    return this.nested(size, index);
  }

  processingResponse(kind: ProcessingKind, member: unknown): number {
    if (kind === 'immediate_response') return this.immediateResponse(member as ImmediateResponse);
    const index = this.slot();
    let size = 0;
    const body = member as { response?: CommonResponse; header_mutation?: HeaderMutation };
    if (kind === 'request_trailers' || kind === 'response_trailers') {
      if (body.header_mutation !== undefined && body.header_mutation !== null) size += this.headerMutation(body.header_mutation);
    } else if (body.response !== undefined && body.response !== null) {
      size += this.commonResponse(body.response);
    }
    return this.nested(size, index);
  }

  /** google.protobuf.Struct with string, number, bool and Struct values (what the session emits as dynamic metadata). */
  struct(struct: ProtoStruct): number {
    const index = this.slot();
    let size = 0;
    const fields = struct.fields;
    if (fields) {
      for (const key in fields) {
        const value = fields[key];
        if (value === undefined) continue;
        const entryIndex = this.slot();
        size += this.nested(this.stringField(key) + this.value(value), entryIndex);
      }
    }
    return this.nested(size, index);
  }

  value(value: ProtoValue): number {
    const index = this.slot();
    let size = 0;
    if (value.numberValue !== undefined && value.numberValue !== null) size += 9;
    else if (value.stringValue !== undefined && value.stringValue !== null) size += this.stringField(value.stringValue);
    else if (value.boolValue !== undefined && value.boolValue !== null) size += 2;
    else if (value.structValue !== undefined && value.structValue !== null) size += this.struct(value.structValue);
    return this.nested(size, index);
  }

  // ---- writing ----

  allocate(size: number): void {
    // Buffer.allocUnsafe takes small buffers from Node's shared pool.
    this.buffer = Buffer.allocUnsafe(size);
    this.position = 0;
  }

  finish(): Buffer {
    return this.buffer;
  }

  private byte(value: number): void {
    this.buffer[this.position++] = value;
  }

  private varint(value: number): void {
    if (value < 0) {
      // Negative int32: sign-extended to 64 bits, 10 bytes.
      let low = value >>> 0;
      for (let index = 0; index < 4; index++) {
        this.byte((low & 0x7f) | 0x80);
        low >>>= 7;
      }
      this.byte((low & 0x0f) | 0x70 | 0x80);
      for (let index = 0; index < 4; index++) this.byte(0xff);
      this.byte(0x01);
      return;
    }
    while (value > 0x7f) {
      this.byte((value & 0x7f) | 0x80);
      value >>>= 7;
    }
    this.byte(value);
  }

  private tag(field: number, wire: number): void {
    this.byte((field << 3) | wire);
  }

  private beginNested(field: number): void {
    this.tag(field, WIRE_LENGTH);
    this.varint(this.sizes[this.next++]!);
  }

  writeString(field: number, text: string | undefined): void {
    if (text === undefined || text === null) return;
    this.tag(field, WIRE_LENGTH);
    const length = utf8Length(text);
    this.varint(length);
    if (length === text.length) {
      for (let index = 0; index < length; index++) this.buffer[this.position + index] = text.charCodeAt(index);
    } else {
      this.buffer.write(text, this.position, length, 'utf8');
    }
    this.position += length;
  }

  writeBytes(field: number, bytes: Uint8Array | undefined): void {
    if (bytes === undefined || bytes === null) return;
    this.tag(field, WIRE_LENGTH);
    this.varint(bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  writeVarint(field: number, value: number | undefined): void {
    if (value === undefined || value === null) return;
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  writeBool(field: number, value: boolean | undefined): void {
    if (value === undefined || value === null) return;
    this.tag(field, WIRE_VARINT);
    this.byte(value ? 1 : 0);
  }

  writeHeaderValueOption(field: number, option: HeaderValueOption): void {
    this.beginNested(field);
    const header = option.header;
    if (header !== undefined && header !== null) {
      this.beginNested(HEADER_VALUE_OPTION.header);
      this.writeString(HEADER_VALUE.key, header.key);
      this.writeString(HEADER_VALUE.value, header.value);
      const raw = header.raw_value;
      if (typeof raw === 'string') this.writeString(HEADER_VALUE.raw_value, raw);
      else this.writeBytes(HEADER_VALUE.raw_value, raw);
    }
    if (option.append !== undefined && option.append !== null) {
      this.beginNested(HEADER_VALUE_OPTION.append);
      this.writeBool(1, option.append.value);
    }
    if (option.append_action !== undefined && option.append_action !== null) this.writeVarint(HEADER_VALUE_OPTION.append_action, APPEND_ACTION[option.append_action]);
  }

  writeHeaderValueOptions(field: number, options: readonly HeaderValueOption[] | undefined): void {
    if (options) for (const option of options) this.writeHeaderValueOption(field, option);
  }

  writeStrings(field: number, values: readonly string[] | undefined): void {
    if (values) for (const value of values) this.writeString(field, value);
  }

  writeHttpStatus(field: number, status: { code: number }): void {
    this.beginNested(field);
    this.writeVarint(1, status.code);
  }

  writeHeaderMutation(field: number, mutation: HeaderMutation): void {
    this.beginNested(field);
    this.writeHeaderValueOptions(HEADER_MUTATION.set_headers, mutation.set_headers);
    this.writeStrings(HEADER_MUTATION.remove_headers, mutation.remove_headers);
  }

  writeCheckResponse(response: CheckResponse): void {
    if (response.status !== undefined && response.status !== null) {
      this.beginNested(CHECK_RESPONSE.status);
      this.writeVarint(RPC_STATUS.code, response.status.code);
      this.writeString(RPC_STATUS.message, response.status.message);
    }
    const denied = response.denied_response;
    if (denied !== undefined && denied !== null) {
      this.beginNested(CHECK_RESPONSE.denied_response);
      if (denied.status !== undefined && denied.status !== null) this.writeHttpStatus(DENIED.status, denied.status);
      this.writeHeaderValueOptions(DENIED.headers, denied.headers);
      this.writeString(DENIED.body, denied.body);
    }
    const ok = response.ok_response;
    if (ok !== undefined && ok !== null) {
      this.beginNested(CHECK_RESPONSE.ok_response);
      this.writeHeaderValueOptions(OK.headers, ok.headers);
      this.writeStrings(OK.headers_to_remove, ok.headers_to_remove);
      this.writeHeaderValueOptions(OK.response_headers_to_add, ok.response_headers_to_add);
    }
  }

  writeCommonResponse(field: number, response: CommonResponse): void {
    this.beginNested(field);
    if (response.status !== undefined && response.status !== null) this.writeVarint(COMMON_RESPONSE.status, RESPONSE_STATUS[response.status]);
    if (response.header_mutation !== undefined && response.header_mutation !== null) this.writeHeaderMutation(COMMON_RESPONSE.header_mutation, response.header_mutation);
    if (response.body_mutation !== undefined && response.body_mutation !== null) {
      this.beginNested(COMMON_RESPONSE.body_mutation);
      const streamed = response.body_mutation.streamed_response;
      if (streamed) {
        this.beginNested(BODY_MUTATION_STREAMED);
        this.writeBytes(STREAMED_BODY.body, streamed.body);
        this.writeBool(STREAMED_BODY.end_of_stream, streamed.end_of_stream);
      } else this.writeBytes(BODY_MUTATION_BODY, response.body_mutation.body);
    }
    this.writeBool(COMMON_RESPONSE.clear_route_cache, response.clear_route_cache);
  }

  writeProcessingMode(field: number, mode: ProcessingMode): void {
    this.beginNested(field);
    for (const name of PROCESSING_MODE_FIELDS) {
      const value = mode[name];
      if (value !== undefined && value !== null) this.writeVarint(PROCESSING_MODE[name], PROCESSING_MODE_ENUMS[name][value]);
    }
  }

  writeStruct(field: number, struct: ProtoStruct): void {
    this.beginNested(field);
    const fields = struct.fields;
    if (!fields) return;
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      this.beginNested(STRUCT_FIELDS);
      this.writeString(1, key);
      this.writeValue(2, value);
    }
  }

  writeValue(field: number, value: ProtoValue): void {
    this.beginNested(field);
    if (value.numberValue !== undefined && value.numberValue !== null) {
      this.tag(VALUE.numberValue, 1);
      this.buffer.writeDoubleLE(value.numberValue, this.position);
      this.position += 8;
    } else if (value.stringValue !== undefined && value.stringValue !== null) this.writeString(VALUE.stringValue, value.stringValue);
    else if (value.boolValue !== undefined && value.boolValue !== null) this.writeBool(VALUE.boolValue, value.boolValue);
    else if (value.structValue !== undefined && value.structValue !== null) this.writeStruct(VALUE.structValue, value.structValue);
  }

  writeProcessingResponse(kind: ProcessingKind, member: unknown): void {
    const field = PROCESSING_RESPONSE[kind];
    if (kind === 'immediate_response') {
      const response = member as ImmediateResponse;
      this.beginNested(field);
      if (response.status !== undefined && response.status !== null) this.writeHttpStatus(IMMEDIATE_RESPONSE.status, response.status);
      if (response.headers !== undefined && response.headers !== null) this.writeHeaderMutation(IMMEDIATE_RESPONSE.headers, response.headers);
      this.writeBytes(IMMEDIATE_RESPONSE.body, response.body);
      this.writeString(IMMEDIATE_RESPONSE.details, response.details);
      return;
    }
    this.beginNested(field);
    const body = member as { response?: CommonResponse; header_mutation?: HeaderMutation };
    if (kind === 'request_trailers' || kind === 'response_trailers') {
      if (body.header_mutation !== undefined && body.header_mutation !== null) this.writeHeaderMutation(1, body.header_mutation);
    } else if (body.response !== undefined && body.response !== null) {
      this.writeCommonResponse(1, body.response);
    }
  }
}

const encoder = new Encoder();

/** envoy.service.auth.v3.CheckResponse, as protobuf bytes. */
export function encodeCheckResponse(response: CheckResponse): Buffer {
  encoder.begin();
  const size = encoder.checkResponse(response);
  encoder.allocate(size);
  encoder.writeCheckResponse(response);
  return encoder.finish();
}

/** envoy.service.ext_proc.v3.ProcessingResponse (one member of its `response` oneof), as protobuf bytes. */
export function encodeProcessingResponse(response: ProcessingResponse): Buffer {
  let kind: ProcessingKind | undefined;
  let member: unknown;
  let modeOverride: ProcessingMode | undefined;
  let dynamicMetadata: ProtoStruct | undefined;
  for (const key in response) {
    const value = (response as Record<string, unknown>)[key];
    if (value === undefined || value === null) continue;
    if (key === 'mode_override') {
      modeOverride = value as ProcessingMode;
      continue;
    }
    if (key === 'dynamic_metadata') {
      dynamicMetadata = value as ProtoStruct;
      continue;
    }
    if (!(key in PROCESSING_RESPONSE) || kind !== undefined) {
      throw new TypeError(`ProcessingResponse: expected exactly one of ${Object.keys(PROCESSING_RESPONSE).join(', ')}; got ${Object.keys(response).join(', ')}`);
    }
    kind = key as ProcessingKind;
    member = value;
  }
  if (kind === undefined) return Buffer.alloc(0);
  encoder.begin();
  let size = encoder.processingResponse(kind, member);
  if (dynamicMetadata) size += encoder.struct(dynamicMetadata);
  if (modeOverride) size += encoder.processingMode(modeOverride);
  encoder.allocate(size);
  encoder.writeProcessingResponse(kind, member);
  if (dynamicMetadata) encoder.writeStruct(DYNAMIC_METADATA_FIELD, dynamicMetadata);
  if (modeOverride) encoder.writeProcessingMode(MODE_OVERRIDE_FIELD, modeOverride);
  return encoder.finish();
}

/**
 * The shapes @grpc/proto-loader gives Envoy's messages (keepCase, oneofs,
 * bytes as Buffer), trimmed to the fields the adapters read or write.
 * Only this folder knows about them.
 */
import type { ProtoStruct } from './struct-to-json.js';

export interface HeaderValue {
  key?: string;
  value?: string;
  /**
   * Bytes as decoded. A reply may give text instead: the encoder writes its UTF-8 bytes (the same
   * wire bytes), so a reply does not make a Buffer per header.
   */
  raw_value?: Buffer | Uint8Array | string;
}

export interface HeaderMap {
  headers?: HeaderValue[];
}

export interface HeaderValueOption {
  header: HeaderValue;
  append?: { value: boolean };
  append_action?: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
}

/**
 * google.protobuf.Struct as proto-loader decodes it: the well-known types come
 * from protobufjs with camelCase field names (`stringValue`), keepCase or not.
 * `string_value` is accepted too for hand-built messages.
 */
export interface StructValue {
  fields?: Record<string, { stringValue?: string; string_value?: string; kind?: string } | undefined>;
}

/** envoy.config.core.v3.Metadata: dynamic metadata per filter namespace. */
export interface Metadata {
  filter_metadata?: Record<string, ProtoStruct | undefined> | null;
}

// ext_authz

export interface CheckRequest {
  attributes?: {
    source?: { principal?: string };
    /** The namespaces listed in the filter's metadata_context_namespaces. */
    metadata_context?: Metadata | null;
    request?: { http?: HttpRequestAttributes };
  };
}

export interface HttpRequestAttributes {
  id?: string;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  header_map?: HeaderMap;
  /** Request body as text (with_request_body). */
  body?: string;
  /** Request body as bytes (with_request_body.pack_as_bytes). */
  raw_body?: Buffer | Uint8Array;
}

export interface CheckResponse {
  status: { code: number; message?: string };
  denied_response?: {
    status: { code: number };
    headers: HeaderValueOption[];
    body: string;
  };
  ok_response?: {
    headers: HeaderValueOption[];
    headers_to_remove?: string[];
    response_headers_to_add: HeaderValueOption[];
  };
}

// ext_proc

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}

export interface ProcessingRequest {
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: { body?: Buffer; end_of_stream?: boolean };
  response_body?: { body?: Buffer; end_of_stream?: boolean };
  request_trailers?: { trailers?: HeaderMap };
  response_trailers?: { trailers?: HeaderMap };
  request?: string;
  attributes?: Record<string, StructValue | undefined>;
  /** The namespaces listed in the filter's metadata_options.forwarding_namespaces. */
  metadata_context?: Metadata | null;
  observability_mode?: boolean;
  /** Sent with the stream's first message: the body modes in force (per-route overrides merged). */
  protocol_config?: ProtocolConfiguration | null;
}

/** Decoded by protobufjs the enums are numbers (FULL_DUPLEX_STREAMED = 4); hand-built messages may name them. */
export interface ProtocolConfiguration {
  request_body_mode?: BodySendMode | number;
  response_body_mode?: BodySendMode | number;
  send_body_without_waiting_for_header_response?: boolean;
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}

/**
 * One of: `body` replaces the whole body (BUFFERED) or the chunk (STREAMED); `streamed_response`
 * is what goes upstream in FULL_DUPLEX_STREAMED (Envoy forwards only what the service sends back).
 */
export type BodyMutation = { body: Buffer; streamed_response?: undefined } | { body?: undefined; streamed_response: StreamedBodyResponse };

export interface StreamedBodyResponse {
  body: Buffer;
  end_of_stream: boolean;
}

export interface CommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: HeaderMutation;
  body_mutation?: BodyMutation;
  clear_route_cache?: boolean;
}

export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';
export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED';

/** envoy.extensions.filters.http.ext_proc.v3.ProcessingMode (honoured with allow_mode_override). */
export interface ProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  request_trailer_mode?: HeaderSendMode;
  response_trailer_mode?: HeaderSendMode;
}

export interface ImmediateResponse {
  status: { code: number };
  headers?: HeaderMutation;
  /** bytes since Envoy 1.3x: a JS string here would be read as base64. */
  body?: Buffer;
  details?: string;
}

/** One member of ProcessingResponse's `response` oneof, plus mode_override on a headers reply. */
export type ProcessingResponse = ProcessingResponseMember & {
  mode_override?: ProcessingMode;
  /** Emitted as dynamic metadata, one namespace per top-level field (kept only for the filter's receiving_namespaces). */
  dynamic_metadata?: ProtoStruct;
};

export type ProcessingResponseMember =
  | { request_headers: { response: CommonResponse } }
  | { response_headers: { response: CommonResponse } }
  | { request_body: { response: CommonResponse } }
  | { response_body: { response: CommonResponse } }
  | { request_trailers: Record<string, never> }
  | { response_trailers: Record<string, never> }
  | { immediate_response: ImmediateResponse };

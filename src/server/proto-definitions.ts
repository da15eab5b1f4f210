import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** proto/ sits beside src/ and dist/, at the same depth from both. */
export const PROTO_ROOT = fileURLToPath(new URL('../../proto', import.meta.url));

/** How messages map to plain objects: the service's own (de)serializers and the test clients' proto-loader use the same. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export interface ServiceDefinitions {
  readonly authorization: grpc.ServiceDefinition;
  readonly externalProcessor: grpc.ServiceDefinition;
  readonly health: grpc.ServiceDefinition;
}

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
export const EXTERNAL_PROCESSOR_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';
const HEALTH_SERVICE = 'grpc.health.v1.Health';

const PROTO_FILES = ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/ext_proc/v3/external_processor.proto', 'grpc/health/v1/health.proto'];

/**
 * The one tree of the service's protos, parsed once per process. Both the
 * gRPC service definitions and the hot-path request decoders come from it:
 * proto-loader would parse the same files into a second tree (and build
 * descriptor copies of every file), ~2 MB of RSS the service does not need.
 */
let loadedRoot: protobuf.Root | undefined;
/** The service's one protobufjs tree of proto/ (loaded once, resolved). */
export function protoRoot(): protobuf.Root {
  if (loadedRoot) return loadedRoot;
  const root = new protobuf.Root();
  const bundled = root.resolvePath;
  // As proto-loader's includeDirs: proto/ first, protobufjs's bundled google/protobuf files otherwise.
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    const local = join(PROTO_ROOT, target);
    return existsSync(local) ? local : bundled(origin, target);
  };
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  loadedRoot = root;
  return root;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: false, oneofs: true };

/**
 * A grpc-js service definition with the generic codecs proto-loader builds
 * (fromObject + encode; decode + toObject with PROTO_LOADER_OPTIONS), so a
 * method keeps the same plain-object shapes it had with proto-loader.
 */
function serviceDefinition(root: protobuf.Root, name: string): grpc.ServiceDefinition {
  const service = root.lookupService(name);
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    const request = method.resolvedRequestType!;
    const response = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/${name}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}

function serializer(type: protobuf.Type): (value: unknown) => Buffer {
  return (value) => type.encode(type.fromObject(value as Record<string, unknown>)).finish() as Buffer;
}

function deserializer(type: protobuf.Type): (buffer: Buffer) => unknown {
  return (buffer) => type.toObject(type.decode(buffer), TO_OBJECT);
}

export function loadServiceDefinitions(): ServiceDefinitions {
  const root = protoRoot();
  return {
    authorization: serviceDefinition(root, AUTHORIZATION_SERVICE),
    externalProcessor: serviceDefinition(root, EXTERNAL_PROCESSOR_SERVICE),
    health: serviceDefinition(root, HEALTH_SERVICE),
  };
}

export interface RequestDecoders {
  /** envoy.service.auth.v3.CheckRequest. */
  checkRequest(buffer: Buffer): unknown;
  /** envoy.service.ext_proc.v3.ProcessingRequest. */
  processingRequest(buffer: Buffer): unknown;
}

/**
 * Decoders for the two requests Envoy sends on every call that hand over
 * protobufjs's decoded message as it is. The generic deserializer decodes
 * the same way and then copies every field into a plain object (toObject);
 * the copy was a quarter of the decoding time and half its garbage. Field
 * names and shapes are the same (keepCase; maps as objects; bytes as
 * Buffers); the difference is that a field absent on the wire reads as its
 * protobuf default (`""`, `false`, `null`, an empty list or map) instead of
 * `undefined` — which proto3 cannot tell apart anyway — so the adapters
 * treat an empty value as absent.
 */
export function loadRequestDecoders(): RequestDecoders {
  const root = protoRoot();
  const checkRequest = root.lookupType('envoy.service.auth.v3.CheckRequest');
  const processingRequest = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
  return {
    checkRequest: (buffer) => checkRequest.decode(buffer),
    processingRequest: (buffer) => processingRequest.decode(buffer),
  };
}

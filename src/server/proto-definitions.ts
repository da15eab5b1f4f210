import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** proto/ sits beside src/ and dist/, at the same depth from both. */
export const PROTO_ROOT = fileURLToPath(new URL('../../proto', import.meta.url));

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

const ENVOY_SERVICE_FILES = ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/ext_proc/v3/external_processor.proto'];

export function loadServiceDefinitions(): ServiceDefinitions {
  const definition = protoLoader.loadSync(
    [...ENVOY_SERVICE_FILES, 'grpc/health/v1/health.proto'],
    PROTO_LOADER_OPTIONS,
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } }; ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return {
    authorization: loaded.envoy.service.auth.v3.Authorization.service,
    externalProcessor: loaded.envoy.service.ext_proc.v3.ExternalProcessor.service,
    health: loaded.grpc.health.v1.Health.service,
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
 * protobufjs's decoded message as it is. proto-loader's deserializer decodes
 * the same way and then copies every field into a plain object (toObject);
 * the copy was a quarter of the decoding time and half its garbage. Field
 * names and shapes are the same (keepCase; maps as objects; bytes as
 * Buffers); the difference is that a field absent on the wire reads as its
 * protobuf default (`""`, `false`, `null`, an empty list or map) instead of
 * `undefined` — which proto3 cannot tell apart anyway — so the adapters
 * treat an empty value as absent.
 */
export function loadRequestDecoders(): RequestDecoders {
  const root = new protobuf.Root();
  const bundled = root.resolvePath;
  // As proto-loader's includeDirs: proto/ first, protobufjs's bundled google/protobuf files otherwise.
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    const local = join(PROTO_ROOT, target);
    return existsSync(local) ? local : bundled(origin, target);
  };
  root.loadSync(ENVOY_SERVICE_FILES, { keepCase: true });
  root.resolveAll();
  const checkRequest = root.lookupType('envoy.service.auth.v3.CheckRequest');
  const processingRequest = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
  return {
    checkRequest: (buffer) => checkRequest.decode(buffer),
    processingRequest: (buffer) => processingRequest.decode(buffer),
  };
}

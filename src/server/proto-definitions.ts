import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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

export function loadServiceDefinitions(): ServiceDefinitions {
  const definition = protoLoader.loadSync(
    ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/ext_proc/v3/external_processor.proto', 'grpc/health/v1/health.proto'],
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

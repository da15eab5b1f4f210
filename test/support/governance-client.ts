import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '../../src/server/proto-definitions.js';
import type { CheckRequest, CheckResponse } from '../../src/envoy/envoy-messages.js';

type Constructors = {
  envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } }; ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

let constructors: Constructors | undefined;
function load(): Constructors {
  constructors ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(['envoy/service/auth/v3/external_auth.proto', 'envoy/service/ext_proc/v3/external_processor.proto', 'grpc/health/v1/health.proto'], { ...PROTO_LOADER_OPTIONS, enums: Number }),
  ) as unknown as Constructors;
  return constructors;
}

export interface GovernanceClient {
  check(headers: Record<string, string>, extra?: Partial<NonNullable<CheckRequest['attributes']>>): Promise<CheckResponse>;
  checkRaw(request: CheckRequest): Promise<CheckResponse>;
  health(service?: string): Promise<string>;
  readonly authz: grpc.Client;
  readonly extProc: grpc.Client;
  readonly healthClient: grpc.Client;
  close(): void;
}

/**
 * A request body of the API `path` names, naming `model` (the header's, when the test sets one),
 * as Envoy sends it: Embeddings for /v1/embeddings, else Chat Completions.
 */
export function aiRequestBody(model = 'claude-sonnet-4-5', path = '/v1/chat/completions'): Buffer {
  const body = path.includes('/embeddings') ? { model, input: 'Say hello.' } : { model, max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] };
  return Buffer.from(JSON.stringify(body));
}

/** A gRPC client of the service built from our protos, for process-level tests. */
export function createGovernanceClient(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), channelOptions?: grpc.ChannelOptions): GovernanceClient {
  const loaded = load();
  const authz = new loaded.envoy.service.auth.v3.Authorization(address, credentials, channelOptions);
  const extProc = new loaded.envoy.service.ext_proc.v3.ExternalProcessor(address, credentials, channelOptions);
  const healthClient = new loaded.grpc.health.v1.Health(address, credentials, channelOptions);
  const unary = <Request, Response>(client: grpc.Client, method: string, request: Request) =>
    new Promise<Response>((resolve, reject) => {
      (client as unknown as Record<string, (request: Request, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: Response) => void) => void>)[method]!(
        request,
        { deadline: Date.now() + 5_000 },
        (error, response) => (error ? reject(error) : resolve(response)),
      );
    });
  const checkRaw = (request: CheckRequest) => unary<CheckRequest, CheckResponse>(authz, 'Check', request);
  return {
    check: (headers, extra = {}) => checkRaw({ attributes: { ...extra, request: { http: { method: 'POST', path: '/v1/chat/completions', headers, raw_body: aiRequestBody(headers['x-genops-model']) } } } }),
    checkRaw,
    health: (service = '') =>
      unary<{ service: string }, { status: number }>(healthClient, 'Check', { service }).then((response) => SERVING_STATUS[response.status] ?? String(response.status)),
    authz,
    extProc,
    healthClient,
    close() {
      authz.close();
      extProc.close();
      healthClient.close();
    },
  };
}


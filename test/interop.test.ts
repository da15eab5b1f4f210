/**
 * Wire compatibility with Envoy's own protos: a Go client built on
 * go-control-plane (test/interop/envoyclient) sends ext_authz Checks and
 * ext_proc streams to the real service (dist/main.js) and prints each decoded
 * response as protojson. If our trimmed proto/ disagreed with Envoy's on a
 * field number or type, Go would decode something else, or keep unknown bytes.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const CLIENT_DIR = join(ROOT, 'test/interop/envoyclient');
const SCENARIOS = join(ROOT, 'test/interop/scenarios.json');
const MAIN = join(ROOT, 'dist/main.js');

// protojson shapes (proto field names), only what the assertions read.
interface HeaderValueOption {
  header: { key: string; value?: string; raw_value?: string };
  append?: boolean;
  append_action?: string;
}
interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}
interface CommonResponse {
  status?: string;
  header_mutation?: HeaderMutation;
  clear_route_cache?: boolean;
}
interface CheckResponse {
  status: { code?: number; message?: string };
  ok_response?: { headers?: HeaderValueOption[]; headers_to_remove?: string[]; response_headers_to_add?: HeaderValueOption[] };
  denied_response?: { status: { code: string }; headers?: HeaderValueOption[]; body?: string };
}
interface ProcessingResponse {
  request_headers?: { response: CommonResponse };
  response_headers?: { response: CommonResponse };
  request_body?: { response: CommonResponse };
  immediate_response?: { status: { code: string }; headers?: HeaderMutation; body?: string; details?: string };
  mode_override?: Record<string, string>;
}
interface Result {
  name: string;
  kind: 'check' | 'ext_proc';
  response?: CheckResponse;
  responses?: ProcessingResponse[];
  error?: { code: string; message: string };
  unknown_fields?: string[];
}

/** The members of ProcessingResponse's `response` oneof. */
const RESPONSE_KINDS = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers', 'immediate_response', 'streamed_immediate_response'];

let tmp: string;
let service: ChildProcess | undefined;
let serviceOutput = '';
const results = new Map<string, Result>();

function result(name: string): Result {
  const found = results.get(name);
  if (!found) throw new Error(`the Go client printed no result for scenario ${name}`);
  expect(found.error, `${name}: RPC failed`).toBeUndefined();
  expect(found.unknown_fields ?? [], `${name}: fields Envoy's protos do not know`).toEqual([]);
  return found;
}

function checkResponse(name: string): CheckResponse {
  const response = result(name).response;
  if (!response) throw new Error(`${name}: no CheckResponse`);
  return response;
}

function extProcResponses(name: string): ProcessingResponse[] {
  return result(name).responses ?? [];
}

/** ext_authz reads HeaderValue.value. */
function valueOf(options: HeaderValueOption[] | undefined, key: string): string | undefined {
  return options?.find((option) => option.header.key === key)?.header.value;
}

/** ext_proc reads HeaderValue.raw_value (protojson: base64). */
function rawValueOf(options: HeaderValueOption[] | undefined, key: string): string | undefined {
  const raw = options?.find((option) => option.header.key === key)?.header.raw_value;
  return raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
}

function denialBody(body: string | undefined): Record<string, unknown> {
  expect(body, 'deny body').toBeTruthy();
  return JSON.parse(body!) as Record<string, unknown>;
}

/** `go` on PATH (or $GO, or the standard install path); a missing Go fails the suite, never skips it. */
function findGo(): string {
  const candidates = [process.env.GO, 'go', '/usr/local/go/bin/go'].filter((c): c is string => Boolean(c));
  for (const candidate of candidates) {
    if (spawnSync(candidate, ['version'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  throw new Error(
    'Go toolchain not found (tried $GO, `go` on PATH, /usr/local/go/bin/go). test/interop.test.ts builds a Go client ' +
      'from Envoy\'s go-control-plane protos and needs Go >= 1.26: install it and put `go` on PATH.',
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitReady(adminPort: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode} before ready:\n${serviceOutput}`);
    try {
      const response = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`service not ready on /readyz within 20 s:\n${serviceOutput}`);
}

beforeAll(async () => {
  const go = findGo();
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first with \`npx tsc -p tsconfig.build.json\``);
  tmp = await mkdtemp(join(tmpdir(), 'genops-interop-'));
  const client = join(tmp, 'envoyclient');

  // The Go module cache may be cold in CI: the first build downloads go-control-plane and grpc.
  try {
    await run(go, ['build', '-buildvcs=false', '-o', client, '.'], {
      cwd: CLIENT_DIR,
      env: { ...process.env, GOTOOLCHAIN: 'local' },
      timeout: 170_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`go build in ${CLIENT_DIR} failed:\n${stderr ?? String(error)}`);
  }

  const [grpcPort, adminPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: {
      ...process.env,
      GENOPS_GRPC_PORT: String(grpcPort),
      GENOPS_ADMIN_PORT: String(adminPort),
      GENOPS_LISTEN_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      OTEL_SDK_DISABLED: 'true',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service = child;
  child.stdout?.on('data', (chunk: Buffer) => (serviceOutput += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (serviceOutput += chunk.toString()));
  await waitReady(adminPort, child);

  let stdout: string;
  try {
    ({ stdout } = await run(client, ['-addr', `127.0.0.1:${grpcPort}`, '-scenarios', SCENARIOS], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }));
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`Go client failed:\n${stderr ?? String(error)}\nservice output:\n${serviceOutput}`);
  }
  for (const line of stdout.split('\n').filter(Boolean)) {
    const parsed = JSON.parse(line) as Result;
    results.set(parsed.name, parsed);
  }
}, 240_000);

afterAll(async () => {
  if (service && service.exitCode === null) {
    const exited = new Promise((r) => service!.once('exit', r));
    service.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (service.exitCode === null) service.kill('SIGKILL');
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('ext_authz Check from an Envoy go-control-plane client', () => {
  it('allows a complete premium ml-platform request and routes it to claude-opus', () => {
    const response = checkResponse('check-allowed');
    expect(response.status.code).toBe(0);
    expect(response.denied_response).toBeUndefined();
    const ok = response.ok_response!;
    const route = ok.headers?.find((option) => option.header.key === 'x-genops-route');
    // ext_authz reads `value`, and append:false overwrites the client's spoofed x-genops-route.
    expect(route).toMatchObject({ header: { key: 'x-genops-route', value: 'claude-opus', raw_value: '' }, append: false });
    const decisionId = valueOf(ok.headers, 'x-genops-decision-id');
    expect(decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(valueOf(ok.headers, 'x-genops-team')).toBe('ml-platform');
    expect(valueOf(ok.headers, 'x-genops-customer-tier')).toBe('premium');
    expect(valueOf(ok.response_headers_to_add, 'x-genops-decision-id')).toBe(decisionId);
    for (const option of [...(ok.headers ?? []), ...(ok.response_headers_to_add ?? [])]) expect(option.append).toBe(false);
  });

  it('reads the raw header_map Envoy sends with encode_raw_headers', () => {
    const response = checkResponse('check-allowed-raw-header-map');
    expect(response.status.code).toBe(0);
    // product-team overrides premium only; standard stays on the tier default.
    expect(valueOf(response.ok_response?.headers, 'x-genops-route')).toBe('claude-haiku');
  });

  it.each([
    ['check-missing-team', 'Forbidden', 7, 'x_missing_context'],
    ['check-unknown-team', 'Forbidden', 7, 'x_team_not_allowed'],
    ['check-basic-tier-opus', 'Forbidden', 7, 'POLICY_DENY_MODEL'],
    ['check-invalid-customer-id', 'BadRequest', 3, 'x_invalid_context'],
    ['check-no-attributes', 'BadRequest', 3, 'x_malformed_request'],
  ])('%s → %s with reason %s', (name, httpStatus, rpcCode, reasonCode) => {
    const response = checkResponse(name);
    expect(response.ok_response).toBeUndefined();
    expect(response.status.code).toBe(rpcCode);
    const denied = response.denied_response!;
    // Envoy's envoy.type.v3.StatusCode enum names the number we sent (403 Forbidden, 400 BadRequest).
    expect(denied.status.code).toBe(httpStatus);
    expect(valueOf(denied.headers, 'content-type')).toBe('application/json');
    const body = denialBody(denied.body);
    expect(body).toMatchObject({ reason_code: reasonCode, error: httpStatus === 'BadRequest' ? 'bad_request' : 'forbidden' });
    expect(typeof body.message).toBe('string');
    expect(body.decision_id).toBe(valueOf(denied.headers, 'x-genops-decision-id'));
  });
});

describe('ext_proc Process from an Envoy go-control-plane client', () => {
  it('answers each message with a reply of its own kind, in order, and ends the stream cleanly', () => {
    const responses = extProcResponses('ext-proc-allowed');
    const kinds = responses.map((response) => Object.keys(response).filter((key) => RESPONSE_KINDS.includes(key)));
    expect(kinds).toEqual([['request_headers'], ['request_body'], ['response_headers']]);
  });

  it('asks for the body of an AI request and its response chunks with a mode override on the headers reply', () => {
    const first = extProcResponses('ext-proc-allowed')[0]!;
    expect(first.mode_override).toMatchObject({ request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' });
  });

  it('continues an allowed request, on its body, with raw_value header mutations and a cleared route cache', () => {
    const common = extProcResponses('ext-proc-allowed')[1]!.request_body!.response;
    expect(common.status).toBe('CONTINUE');
    expect(common.clear_route_cache).toBe(true);
    const set = common.header_mutation?.set_headers ?? [];
    expect(set.length).toBeGreaterThan(0);
    for (const option of set) {
      // Envoy reads raw_value: `value` must be empty (both set is a 500 in Envoy).
      expect(option.header.value, option.header.key).toBe('');
      expect(option.header.raw_value, option.header.key).not.toBe('');
      expect(option.append_action, option.header.key).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    }
    expect(rawValueOf(set, 'x-genops-route')).toBe('claude-opus');
    expect(rawValueOf(set, 'x-genops-team')).toBe('ml-platform');
    expect(rawValueOf(set, 'x-genops-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers the request headers of an AI request with a plain continue until its body is known', () => {
    const reply = extProcResponses('ext-proc-allowed')[0]!;
    expect(reply.request_headers).toBeDefined();
    expect(reply.request_headers!.response.header_mutation).toBeUndefined();
  });

  it('returns the request phase decision id on the response headers', () => {
    const [, requestPhase, responsePhase] = extProcResponses('ext-proc-allowed');
    const decisionId = rawValueOf(requestPhase!.request_body!.response.header_mutation?.set_headers, 'x-genops-decision-id');
    const set = responsePhase!.response_headers!.response.header_mutation?.set_headers;
    expect(rawValueOf(set, 'x-genops-decision-id')).toBe(decisionId);
    for (const option of set ?? []) {
      expect(option.header.value).toBe('');
      expect(option.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    }
  });

  it('denies with an immediate_response: 403, JSON body, raw_value headers', () => {
    const responses = extProcResponses('ext-proc-denied');
    expect(responses).toHaveLength(2);
    const immediate = responses[1]!.immediate_response!;
    expect(immediate).toBeDefined();
    expect(immediate.status.code).toBe('Forbidden');
    const set = immediate.headers?.set_headers;
    for (const option of set ?? []) expect(option.header.value).toBe('');
    expect(rawValueOf(set, 'content-type')).toBe('application/json');
    const body = denialBody(Buffer.from(immediate.body ?? '', 'base64').toString('utf8'));
    expect(body).toMatchObject({ error: 'forbidden', reason_code: 'x_team_not_allowed' });
    expect(body.decision_id).toBe(rawValueOf(set, 'x-genops-decision-id'));
    expect(immediate.details).toBe('genops_x_team_not_allowed');
  });

  it('survives a stream reset like the one Envoy ends every stream with', () => {
    const responses = extProcResponses('ext-proc-reset');
    expect(responses).toHaveLength(2);
    expect(rawValueOf(responses[1]!.request_body?.response.header_mutation?.set_headers, 'x-genops-route')).toBe('claude-sonnet');
    // the scenarios after it ran on the same service
    expect(results.get('ext-proc-denied')).toBeDefined();
    expect(service?.exitCode).toBeNull();
  });
});

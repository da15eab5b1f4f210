/**
 * Test harness. The pieces the demo needs too (free ports, finding and
 * booting Envoy, spawning the service) live in src/demo, which is compiled;
 * the test-only pieces live here.
 */
export { freePort } from '../../src/demo/free-port.js';
export { findEnvoy } from '../../src/demo/find-envoy.js';
export { renderEnvoyConfig, placeholdersOf } from '../../src/demo/render-envoy-config.js';
export { startEnvoy, type DownstreamTls, type RunningEnvoy, type StartEnvoyOptions } from '../../src/demo/start-envoy.js';
export { startService, type RunningService, type StartServiceOptions } from '../../src/demo/start-service.js';
export { startGovernanceStack, ENVOY_CONFIGS, type EnvoyMode, type GovernanceStack } from '../../src/demo/start-governance-stack.js';
export { REPO_ROOT } from '../../src/demo/repo-root.js';
export { http2Request, httpRequest, type HttpRequestOptions, type HttpResponse } from './http-request.js';
export { startUpstream, type EchoBody, type RecordedRequest, type Upstream } from './start-upstream.js';
export { createTestPki, type ClientCertificate, type TestPki } from './create-test-pki.js';
export { startStubLlm, STUB_BEHAVIOR_HEADER, STUB_MODEL_HEADER, STUB_TEST_ID_HEADER, STUB_USAGE_HEADER, STUB_DEFAULT_USAGE, type StartStubLlmOptions, type StubLlm, type StubLlmRequest } from './stub-llm.js';
export * as llmWire from './llm-wire.js';

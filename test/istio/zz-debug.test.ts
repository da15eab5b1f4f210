import { writeFileSync, mkdirSync } from 'node:fs';
import { get } from 'node:http';
import { it } from 'vitest';
import { startIstioMesh } from './support/istio-mesh.js';
import { context } from '../support/request-context.js';
const fetchText = (url: string) => new Promise<string>((resolve, reject) => get(url, (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => resolve(b)); }).on('error', reject));
it('debug', async () => {
  const mesh = await startIstioMesh((process.env.VARIANT as 'ext-authz') ?? 'ext-authz');
  mkdirSync('/tmp/istio-debug', { recursive: true });
  try {
    const r = await mesh.throughGateway('/v1/chat/completions', { 'content-type': 'application/json', ...context({ 'x-genops-customer-tier': 'premium' }) }, '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[]}');
    console.log('premium', r.status, r.headers, r.body);
    for (const [name, proxy] of [['gateway', mesh.gateway], ['sidecar', mesh.sidecar]] as const) {
      writeFileSync(`/tmp/istio-debug/${name}-config.json`, await fetchText(`${proxy.envoy.adminUrl}/config_dump?include_eds`));
      writeFileSync(`/tmp/istio-debug/${name}-clusters.txt`, await fetchText(`${proxy.envoy.adminUrl}/clusters`));
      writeFileSync(`/tmp/istio-debug/${name}-stderr.txt`, proxy.envoy.process.stderrTail());
    }
    writeFileSync('/tmp/istio-debug/istiod-stderr.txt', mesh.istiod.process.stderrTail());
  } finally { await mesh.stop(); }
}, 120_000);

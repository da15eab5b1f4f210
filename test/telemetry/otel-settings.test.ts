import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { SERVICE_ENTRY } from '../../src/demo/repo-root.js';
import { loadTracingSettings } from '../../src/settings/otel-settings.js';
import { loadSettings } from '../../src/settings/settings.js';

describe('OTEL_* settings', () => {
  it('defaults: tracing on, OTLP/gRPC to localhost:4317, parent-based always-on, SDK batch defaults', () => {
    expect(loadTracingSettings({})).toEqual({
      enabled: true,
      endpoint: 'http://localhost:4317',
      sampler: 'parentbased_always_on',
      samplerArg: 1,
      scheduledDelayMillis: 5000,
      exportTimeoutMillis: 30000,
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
    });
  });

  it('OTEL_SDK_DISABLED=true (any casing) or OTEL_TRACES_EXPORTER=none turn tracing off and read nothing else', () => {
    expect(loadTracingSettings({ OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_SAMPLER: 'bogus' }).enabled).toBe(false);
    expect(loadTracingSettings({ OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    expect(loadTracingSettings({ OTEL_SDK_DISABLED: 'false' }).enabled).toBe(true);
  });

  it('reads the endpoint (the traces-specific one first), sampler, ratio and batch settings', () => {
    const settings = loadTracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example:4317',
      OTEL_TRACES_SAMPLER: 'ParentBased_TraceIdRatio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_BSP_EXPORT_TIMEOUT: '2000',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '500',
    });
    expect(settings).toMatchObject({
      endpoint: 'https://traces.example:4317',
      sampler: 'parentbased_traceidratio',
      samplerArg: 0.25,
      scheduledDelayMillis: 100,
      exportTimeoutMillis: 2000,
      maxQueueSize: 100,
      maxExportBatchSize: 100,
    });
    expect(loadTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }).endpoint).toBe('collector:4317');
  });

  it.each([
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER=sometimes: must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio'],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG=1.5: must be a number from 0 to 1'],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '0' }, 'OTEL_BSP_MAX_QUEUE_SIZE=0: must be an integer from 1 to 1000000'],
    [{ OTEL_BSP_SCHEDULE_DELAY: '5s' }, 'OTEL_BSP_SCHEDULE_DELAY=5s: must be an integer from 0 to 3600000'],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER=zipkin: must be otlp or none'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector:4317' }, 'OTEL_EXPORTER_OTLP_ENDPOINT=ftp://collector:4317: must be an http:// or https:// URL'],
  ])('%j is refused naming the variable', (env, message) => {
    expect(() => loadTracingSettings(env)).toThrow(message);
  });

  it('are part of the settings, with the metrics label opt-in', () => {
    const settings = loadSettings([], { OTEL_SDK_DISABLED: 'true', GENOPS_METRICS_CUSTOMER_LABEL: 'TRUE', GENOPS_METRICS_CUSTOMER_LIMIT: '25' });
    expect(settings.tracing.enabled).toBe(false);
    expect(settings.metricsCustomerLabel).toBe(true);
    expect(settings.metricsCustomerLimit).toBe(25);
    expect(loadSettings(['--metrics-customer-label', 'false'], {}).metricsCustomerLabel).toBe(false);
    expect(() => loadSettings([], { GENOPS_METRICS_CUSTOMER_LIMIT: '0' })).toThrow('GENOPS_METRICS_CUSTOMER_LIMIT=0: must be an integer from 1 to 10000');
  });

  it('a bad OTEL_* value stops the service at start-up with one line naming it', () => {
    const result = spawnSync(process.execPath, [SERVICE_ENTRY], {
      env: { PATH: process.env.PATH, GENOPS_GRPC_PORT: '0', GENOPS_ADMIN_PORT: '0', GENOPS_LISTEN_HOST: '127.0.0.1', OTEL_TRACES_SAMPLER: 'sometimes' },
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('genops-mesh: OTEL_TRACES_SAMPLER=sometimes: must be one of');
  });
});

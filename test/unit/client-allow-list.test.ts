import { describe, expect, it } from 'vitest';
import { createClientAllowList, subjectAltNames } from '../../src/server/client-allow-list.js';

describe('client allow-list (GENOPS_TLS_CLIENT_ALLOW)', () => {
  const allow = createClientAllowList(['spiffe://cluster.local/ns/genops/sa/envoy-*', 'gateway.genops.svc']);
  const certificate = (subjectaltname: string) => ({ subjectaltname });

  it('matches SPIFFE ids against URI SANs and names against DNS SANs, "*" as a wildcard', () => {
    expect(allow.allowedIdentityOf(certificate('DNS:x.internal, URI:spiffe://cluster.local/ns/genops/sa/envoy-gateway'))).toBe('spiffe://cluster.local/ns/genops/sa/envoy-gateway');
    expect(allow.allowedIdentityOf(certificate('DNS:Gateway.Genops.Svc'))).toBe('Gateway.Genops.Svc');
  });

  it('does not let a URI entry match a DNS SAN, nor a DNS entry a URI SAN', () => {
    expect(allow.allowedIdentityOf(certificate('DNS:spiffe://cluster.local/ns/genops/sa/envoy-gateway'))).toBeUndefined();
    expect(allow.allowedIdentityOf(certificate('URI:gateway.genops.svc'))).toBeUndefined();
  });

  it('refuses a certificate without SANs, or none at all, and names what a refused one carries', () => {
    expect(allow.allowedIdentityOf(certificate(''))).toBeUndefined();
    expect(allow.allowedIdentityOf(undefined)).toBeUndefined();
    expect(allow.identitiesOf(certificate('DNS:a.example, URI:spiffe://td/ns/x/sa/y, IP Address:10.0.0.1'))).toEqual(['DNS:a.example', 'spiffe://td/ns/x/sa/y', 'IP Address:10.0.0.1']);
  });

  it('reads the JSON-quoted values Node writes for SANs with commas or quotes, without being fooled by them', () => {
    expect(subjectAltNames('URI:"spiffe://td/ns/a, DNS:gateway.genops.svc", DNS:other.example')).toEqual([
      { type: 'URI', value: 'spiffe://td/ns/a, DNS:gateway.genops.svc' },
      { type: 'DNS', value: 'other.example' },
    ]);
    expect(allow.allowedIdentityOf(certificate('URI:"spiffe://td/ns/a, DNS:gateway.genops.svc"'))).toBeUndefined();
  });
});

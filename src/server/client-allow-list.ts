import type { PeerCertificate } from 'node:tls';

/** Which mTLS clients may call: by the URI SANs (SPIFFE ids) and DNS SANs of their certificates. */
export interface ClientAllowList {
  /** The SAN that made the certificate acceptable, or undefined when none does. */
  allowedIdentityOf(certificate: Pick<PeerCertificate, 'subjectaltname'> | undefined): string | undefined;
  /** The identities a certificate carries, for the refusal message. */
  identitiesOf(certificate: Pick<PeerCertificate, 'subjectaltname'> | undefined): string[];
}

/**
 * Entries with a scheme (`spiffe://cluster.local/ns/genops/sa/envoy`) match
 * URI SANs; the others (`envoy.genops.svc`) match DNS SANs, case-insensitively.
 * "*" matches any run of characters.
 */
export function createClientAllowList(entries: readonly string[]): ClientAllowList {
  const uris = entries.filter((entry) => entry.includes('://')).map((entry) => globOf(entry, false));
  const dnsNames = entries.filter((entry) => !entry.includes('://')).map((entry) => globOf(entry, true));
  const identitiesOf = (certificate: Pick<PeerCertificate, 'subjectaltname'> | undefined) =>
    subjectAltNames(certificate?.subjectaltname).map(({ type, value }) => `${type === 'URI' ? '' : `${type}:`}${value}`);
  return {
    allowedIdentityOf(certificate) {
      for (const { type, value } of subjectAltNames(certificate?.subjectaltname)) {
        if (type === 'URI' && uris.some((pattern) => pattern.test(value))) return value;
        if (type === 'DNS' && dnsNames.some((pattern) => pattern.test(value))) return value;
      }
      return undefined;
    },
    identitiesOf,
  };
}

function globOf(pattern: string, ignoreCase: boolean): RegExp {
  const body = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`, ignoreCase ? 'i' : '');
}

/**
 * Node's `subjectaltname`: "DNS:a, URI:spiffe://b, IP Address:127.0.0.1";
 * a value with a comma or quote in it is written as a JSON string.
 */
export function subjectAltNames(text: string | undefined): { type: string; value: string }[] {
  if (!text) return [];
  const names: { type: string; value: string }[] = [];
  const pattern = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const match of text.matchAll(pattern)) {
    const raw = match[2] ?? '';
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        continue;
      }
    }
    names.push({ type: (match[1] ?? '').trim(), value });
  }
  return names;
}

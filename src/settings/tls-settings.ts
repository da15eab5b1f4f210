import { GenopsError } from '../errors/genops-error.js';

/** TLS on the service's own ports (gRPC and forward auth); the admin port stays plain HTTP for probes and scrapes. */
export interface TlsSettings {
  /** PEM paths, re-read every reloadIntervalMs: a renewed certificate is served without a restart. */
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle for client certificates; set = mTLS: a client without a certificate it signed is refused. */
  readonly clientCaFile: string | undefined;
  /**
   * Client identities allowed to call (mTLS only): `spiffe://…` (or any `scheme://…`) entries
   * match URI SANs, others DNS SANs; "*" matches any run of characters. Empty = any client
   * certificate the CA signed.
   */
  readonly clientAllow: readonly string[];
  readonly reloadIntervalMs: number;
}

export type SettingReader = (flag: 'tls-cert' | 'tls-key' | 'tls-client-ca' | 'tls-client-allow' | 'tls-reload-interval') => { value: string | undefined; name: string };

export function loadTlsSettings(read: SettingReader): TlsSettings | undefined {
  const cert = read('tls-cert');
  const key = read('tls-key');
  const clientCa = read('tls-client-ca');
  const allow = read('tls-client-allow');
  const interval = read('tls-reload-interval');
  if (cert.value === undefined && key.value === undefined) {
    const stray = [clientCa, allow, interval].find((source) => source.value !== undefined);
    if (stray) throw new GenopsError('invalid_settings', `${stray.name} needs TLS: set ${cert.name} and ${key.name} as well`);
    return undefined;
  }
  if (cert.value === undefined || key.value === undefined) {
    const missing = cert.value === undefined ? cert : key;
    throw new GenopsError('invalid_settings', `${missing.name} is not set: TLS needs both a certificate (${cert.name}) and its private key (${key.name})`);
  }
  const clientAllow = (allow.value ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (clientAllow.length > 0 && clientCa.value === undefined) {
    throw new GenopsError('invalid_settings', `${allow.name} needs client certificates: set ${clientCa.name} to the CA that signs them`);
  }
  let reloadIntervalMs = 60_000;
  if (interval.value !== undefined) {
    reloadIntervalMs = Number(interval.value);
    if (!/^\d+$/.test(interval.value.trim()) || reloadIntervalMs < 100 || reloadIntervalMs > 86_400_000) {
      throw new GenopsError('invalid_settings', `${interval.name}=${interval.value}: must be an integer from 100 to 86400000 (milliseconds)`);
    }
  }
  return { certFile: cert.value, keyFile: key.value, clientCaFile: clientCa.value, clientAllow, reloadIntervalMs };
}

import { readFileSync } from 'node:fs';
import { createSecureContext, createServer as createTlsServer, type SecureContextOptions, type TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type IdentityCertificateUpdate = grpc.experimental.IdentityCertificateUpdate;
type CaCertificateUpdate = grpc.experimental.CaCertificateUpdate;
type IdentityCertificateUpdateListener = grpc.experimental.IdentityCertificateUpdateListener;
type CaCertificateUpdateListener = grpc.experimental.CaCertificateUpdateListener;
import { GenopsError } from '../errors/genops-error.js';
import type { TlsSettings } from '../settings/tls-settings.js';
import type { Logger } from '../telemetry/logger.js';
import type { GrpcListener } from './grpc-server.js';
import { createClientAllowList, type ClientAllowList } from './client-allow-list.js';

/** TLS for the service's ports: one set of files, watched, shared by the gRPC and forward-auth servers. */
export interface ServiceTls {
  readonly mutual: boolean;
  /** Undefined when any certificate the client CA signed may call. */
  readonly allowList: ClientAllowList | undefined;
  /**
   * How the gRPC server gets TLS: grpc-js credentials fed by the watched files, or — with an
   * allow-list — a TLS listener of our own that checks each connection's identity once.
   */
  grpcBinding(): { readonly credentials: grpc.ServerCredentials } | { readonly listen: (server: grpc.Server, host: string, port: number) => Promise<GrpcListener> };
  /** The certificate, key and CA in force now, for node:https. */
  current(): SecureContextOptions;
  /** Called with each new good set of files (not with a broken one). */
  onChange(listener: (options: SecureContextOptions) => void): void;
  close(): void;
}

/**
 * Watches the certificate, key and client CA with grpc-js's own
 * FileWatcherCertificateProvider (it re-reads them every reload interval) and
 * passes a new set on only when it is whole and consistent — certificate and
 * key belong together, the CA parses. A half-written rotation (the new
 * certificate beside the old key) keeps the last good set in force, so
 * connections are never refused because of it; the next read picks the
 * finished files up. Open connections keep their session either way.
 */
export async function createServiceTls(settings: TlsSettings, logger: Logger): Promise<ServiceTls> {
  const initial = readInitial(settings);
  const watcher = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: settings.certFile,
    privateKeyFile: settings.keyFile,
    ...(settings.clientCaFile ? { caCertificateFile: settings.clientCaFile } : {}),
    refreshIntervalMs: settings.reloadIntervalMs,
  });
  let good = initial;
  let pendingIdentity: IdentityCertificateUpdate | null | undefined;
  let pendingCa: CaCertificateUpdate | null | undefined;
  let lastRejected: string | undefined;
  const identityListeners = new Set<IdentityCertificateUpdateListener>();
  const caListeners = new Set<CaCertificateUpdateListener>();
  const changeListeners = new Set<(options: SecureContextOptions) => void>();

  // The watcher reports identity and CA one after the other in the same tick: judge them together.
  let judging = false;
  const judge = () => {
    if (judging) return;
    judging = true;
    queueMicrotask(() => {
      judging = false;
      const next = {
        cert: pendingIdentity?.certificate ?? good.cert,
        key: pendingIdentity?.privateKey ?? good.key,
        ca: settings.clientCaFile ? (pendingCa?.caCertificate ?? good.ca) : undefined,
      };
      const missing = pendingIdentity === null ? 'the certificate or key cannot be read' : settings.clientCaFile && pendingCa === null ? 'the client CA cannot be read' : undefined;
      pendingIdentity = undefined;
      pendingCa = undefined;
      if (next.cert.equals(good.cert) && next.key.equals(good.key) && sameBuffer(next.ca, good.ca) && !missing) return;
      const problem = missing ?? problemOf(next);
      if (problem) {
        const fingerprint = `${problem}:${next.cert.length}:${next.key.length}`;
        if (fingerprint !== lastRejected) logger.warn({ event: 'tls_reload_rejected', cert: settings.certFile, key: settings.keyFile, err: problem }, 'TLS files changed but are not usable yet; the last good certificate stays in force');
        lastRejected = fingerprint;
        return;
      }
      lastRejected = undefined;
      good = next;
      logger.info({ event: 'tls_reloaded', cert: settings.certFile }, 'TLS certificate reloaded');
      for (const listener of identityListeners) listener({ certificate: good.cert, privateKey: good.key });
      if (good.ca) for (const listener of caListeners) listener({ caCertificate: good.ca });
      const options = secureOptionsOf(good);
      for (const listener of changeListeners) listener(options);
    });
  };
  const onIdentity: IdentityCertificateUpdateListener = (update) => {
    pendingIdentity = update;
    judge();
  };
  const onCa: CaCertificateUpdateListener = (update) => {
    pendingCa = update;
    judge();
  };
  watcher.addIdentityCertificateListener(onIdentity);
  if (settings.clientCaFile) watcher.addCaCertificateListener(onCa);

  /** A CertificateProvider that hands grpc-js only the sets judged good. */
  const provider: CertificateProvider = {
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      process.nextTick(listener, { certificate: good.cert, privateKey: good.key });
    },
    removeIdentityCertificateListener(listener) {
      identityListeners.delete(listener);
    },
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      if (good.ca) process.nextTick(listener, { caCertificate: good.ca });
    },
    removeCaCertificateListener(listener) {
      caListeners.delete(listener);
    },
  };

  const mutual = settings.clientCaFile !== undefined;
  const allowList = mutual && settings.clientAllow.length > 0 ? createClientAllowList(settings.clientAllow) : undefined;
  return {
    mutual,
    allowList,
    grpcBinding() {
      if (!allowList) {
        // grpc-js's implementation takes the identity provider first, the CA provider second.
        return { credentials: grpc.experimental.createCertificateProviderServerCredentials(provider, mutual ? provider : null, mutual) };
      }
      return { listen: (server, host, port) => listenWithAllowList({ server, host, port, allowList, logger, secure: () => secureOptionsOf(good), onChange: (listener) => changeListeners.add(listener) }) };
    },
    current: () => secureOptionsOf(good),
    onChange(listener) {
      changeListeners.add(listener);
    },
    close() {
      watcher.removeIdentityCertificateListener(onIdentity);
      watcher.removeCaCertificateListener(onCa);
      identityListeners.clear();
      caListeners.clear();
      changeListeners.clear();
    },
  };
}

interface CertificateSet {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/** The files must be readable and consistent at start-up: a bad setting fails fast with its name. */
function readInitial(settings: TlsSettings): CertificateSet {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new GenopsError('invalid_settings', `cannot read the TLS ${what} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  const set = {
    cert: read(settings.certFile, 'certificate (GENOPS_TLS_CERT)'),
    key: read(settings.keyFile, 'private key (GENOPS_TLS_KEY)'),
    ca: settings.clientCaFile ? read(settings.clientCaFile, 'client CA (GENOPS_TLS_CLIENT_CA)') : undefined,
  };
  const problem = problemOf(set);
  if (problem) throw new GenopsError('invalid_settings', `TLS files ${settings.certFile}, ${settings.keyFile}${settings.clientCaFile ? `, ${settings.clientCaFile}` : ''}: ${problem}`);
  return set;
}

function problemOf(set: CertificateSet): string | undefined {
  try {
    createSecureContext(secureOptionsOf(set));
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function secureOptionsOf(set: CertificateSet): SecureContextOptions {
  return set.ca ? { cert: set.cert, key: set.key, ca: set.ca } : { cert: set.cert, key: set.key };
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.equals(b));
}

/**
 * mTLS with an allow-list, checked once per connection. grpc-js exposes the
 * peer certificate per call only (its auth context runs getPeerCertificate(),
 * which decodes the whole certificate: ~190 µs measured here, more than a
 * decision), so this listener terminates TLS itself (Node's tls.Server, fed
 * by the same watched files), reads the client's SANs once from the
 * handshake, and hands the decrypted connection to grpc-js through its
 * connection injector. A connection whose certificate carries no allowed
 * identity is still served — by an injector whose every call ends in
 * PERMISSION_DENIED naming the identities it saw — so the caller learns why.
 */
async function listenWithAllowList(options: {
  server: grpc.Server;
  host: string;
  port: number;
  allowList: ClientAllowList;
  logger: Logger;
  secure: () => SecureContextOptions;
  onChange: (listener: (options: SecureContextOptions) => void) => void;
}): Promise<GrpcListener> {
  const { server, allowList, logger } = options;
  const insecure = grpc.ServerCredentials.createInsecure();
  const allowed = server.createConnectionInjector(insecure);
  const tlsServer = createTlsServer({ ...options.secure(), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  options.onChange((secure) => tlsServer.setSecureContext(secure));
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => undefined); // the HTTP/2 session reports and ends it
    const certificate = { subjectaltname: socket.getPeerX509Certificate()?.subjectAltName ?? '' };
    if (allowList.allowedIdentityOf(certificate) !== undefined) {
      allowed.injectConnection(socket);
      return;
    }
    const identities = allowList.identitiesOf(certificate);
    logger.warn({ event: 'client_refused', identities }, 'gRPC client certificate is not on GENOPS_TLS_CLIENT_ALLOW');
    const refused = server.createConnectionInjector(grpc.experimental.createServerCredentialsWithInterceptors(insecure, [refuseEveryCall(`client identity ${identities.join(', ') || '(none)'} is not allowed to call genops-mesh`)]));
    socket.once('close', () => refused.destroy());
    refused.injectConnection(socket);
  });
  const port = await new Promise<number>((resolve, reject) => {
    tlsServer.once('error', (error) => reject(new GenopsError('invalid_settings', `cannot listen for gRPC on ${options.host}:${options.port}: ${error.message}`, { cause: error })));
    tlsServer.listen(options.port, options.host, () => {
      const address = tlsServer.address();
      resolve(typeof address === 'object' && address ? address.port : options.port);
    });
  });
  return { port, close: () => tlsServer.close() };
}

/** Ends every call with PERMISSION_DENIED before any handler sees it (grpc-js's interceptor pattern for authentication). */
function refuseEveryCall(details: string): grpc.ServerInterceptor {
  return (_method, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata(() => call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details, metadata: new grpc.Metadata() }))
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}

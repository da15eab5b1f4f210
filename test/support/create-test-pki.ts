import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ClientCertificate {
  readonly principal: string;
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  /** CA certificate (PEM path) that signed everything below. */
  readonly ca: string;
  /** Server certificate for 127.0.0.1 / localhost and its key (PEM paths). */
  readonly serverCert: string;
  readonly serverKey: string;
  /** One client certificate per requested SPIFFE id, with that id as its URI SAN. */
  readonly clients: ReadonlyMap<string, ClientCertificate>;
  /** A new loopback server certificate and key from the same CA (a rotation), as PEM paths. */
  reissueServerCertificate(): { readonly cert: string; readonly key: string };
  remove(): void;
}

/**
 * A throw-away PKI made with the openssl CLI: a CA, a loopback server
 * certificate and client certificates whose URI SANs are SPIFFE ids, the way a
 * mesh identifies workloads. Valid for one day; deleted by remove().
 */
export function createTestPki(principals: readonly string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'genops-pki-'));
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      const detail = (error as { code?: string; stderr?: Buffer }).code === 'ENOENT' ? 'the openssl CLI is not installed' : String((error as { stderr?: Buffer }).stderr ?? error);
      throw new Error(`createTestPki: openssl ${args[0]} failed: ${detail}`);
    }
  };
  const issue = (name: string, subject: string, san: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    writeFileSync(path(`${name}.ext`), `subjectAltName=${san}\n`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };

  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=genops-mesh test CA');
  issue('server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
  const clients = new Map<string, ClientCertificate>();
  let reissued = 0;
  principals.forEach((principal, index) => {
    issue(`client-${index}`, `/CN=client-${index}`, `URI:${principal}`);
    clients.set(principal, { principal, cert: path(`client-${index}.crt`), key: path(`client-${index}.key`) });
  });
  return {
    dir,
    ca: path('ca.crt'),
    serverCert: path('server.crt'),
    serverKey: path('server.key'),
    clients,
    reissueServerCertificate() {
      const name = `server-${++reissued}`;
      issue(name, '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
      return { cert: path(`${name}.crt`), key: path(`${name}.key`) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

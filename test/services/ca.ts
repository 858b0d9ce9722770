import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { run } from './exec.ts';

export interface TestCA {
  /** PEM path of the self-signed CA certificate. */
  caCert: string;
  /** PEM path of the CA's private key. */
  caKey: string;
  /**
   * Issue a server certificate (EC P-256, extendedKeyUsage serverAuth) whose
   * subjectAltName lists `hosts` (IPs become IP:, names DNS:); with
   * `client`, a client certificate (clientAuth) for mutual TLS. Paths of PEM files in the CA dir.
   */
  issue(name: string, hosts: string[], opts?: { client?: boolean }): Promise<{ cert: string; key: string }>;
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** Create a throwaway CA with the openssl CLI. All files are written into `dir` (created if needed). */
export async function createTestCA(dir: string): Promise<TestCA> {
  await fs.mkdir(dir, { recursive: true });
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.crt');
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKey]);
  await run('openssl', [
    'req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '3650', '-subj', '/CN=airlock test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', caCert,
  ]);
  let serial = 0;

  async function issue(name: string, hosts: string[], opts: { client?: boolean } = {}): Promise<{ cert: string; key: string }> {
    serial += 1;
    const base = path.join(dir, `${safe(name)}-${serial}`);
    const key = `${base}.key`;
    const cert = `${base}.crt`;
    const csr = `${base}.csr`;
    const ext = `${base}.ext`;
    const san = hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    await fs.writeFile(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
        ...(san ? [`subjectAltName=${san}`] : []),
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid',
        '',
      ].join('\n'),
    );
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    await run('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
    await run('openssl', [
      'x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', String(1000 + serial),
      '-days', '825', '-sha256', '-extfile', ext, '-out', cert,
    ]);
    await fs.rm(csr, { force: true });
    await fs.rm(ext, { force: true });
    return { cert, key };
  }

  return { caCert, caKey, issue };
}

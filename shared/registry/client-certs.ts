import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../cli/errors.ts';

/**
 * Client certificates for registries behind mutual TLS, and the per-host CAs
 * Docker keeps next to them. Two sources, the flags first:
 *
 * - `--client-cert FILE` / `--client-key FILE`, for the registry the command
 *   talks to;
 * - Docker's certs.d convention (docker/docs "Verify repository client with
 *   certificates"): in DIR/HOST[:PORT]/, every `*.crt` is a CA trusted for
 *   that host, every `*.cert` a client certificate whose key is the `*.key`
 *   of the same name. DIR is /etc/docker/certs.d, or AIRLOCK_CERTS_D.
 *
 * Only the host they are for gets them: never git, S3, or another host a
 * redirect leads to.
 */
export interface HostTls {
  /** PEM CA certificates trusted for this host, on top of the usual ones. */
  ca: string[];
  /** PEM client certificate chain and key, when the host gets one. */
  cert?: string;
  key?: string;
  /** Where they came from, for messages: "--client-cert", "/etc/docker/certs.d/HOST". */
  source: string;
}

export interface ClientCertOptions {
  /** The registry (HOST[:PORT]) --client-cert and --client-key are for. */
  registryHost?: string;
  clientCert?: string;
  clientKey?: string;
  /** The flags named in messages (default --client-cert / --client-key). */
  flagNames?: { cert: string; key: string };
  /** The certs.d directory; default AIRLOCK_CERTS_D, else /etc/docker/certs.d. */
  certsDir?: string;
}

export const DEFAULT_CERTS_D = '/etc/docker/certs.d';

export function certsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.AIRLOCK_CERTS_D || DEFAULT_CERTS_D;
}

/** What each host gets, read once per host. */
export class ClientCertificates {
  private readonly flags: { cert: string; key: string } | undefined;
  private readonly flagNames: { cert: string; key: string };
  private readonly dir: string;
  private readonly cache = new Map<string, HostTls | undefined>();

  constructor(private readonly options: ClientCertOptions = {}) {
    const names = (this.flagNames = options.flagNames ?? { cert: '--client-cert', key: '--client-key' });
    if ((options.clientCert === undefined) !== (options.clientKey === undefined)) {
      throw new UsageError(`${names.cert} and ${names.key} go together`, { hint: 'give the certificate and its private key, both PEM files' });
    }
    this.flags =
      options.clientCert !== undefined && options.clientKey !== undefined
        ? { cert: readPem(options.clientCert, names.cert, 'CERTIFICATE'), key: readPem(options.clientKey, names.key, 'PRIVATE KEY') }
        : undefined;
    this.dir = options.certsDir ?? certsDir();
  }

  /**
   * The TLS extras for `host` ("HOST" or "HOST:PORT" as in the URL), if any.
   * The flags' certificate goes to the registry the command names (to any
   * registry the command talks to, when it names none), never to a host a
   * redirect or a token realm leads to; certs.d is per host anyway.
   */
  for(host: string, isRegistry: boolean): HostTls | undefined {
    const key = `${isRegistry ? 'registry' : 'other'} ${host}`;
    if (!this.cache.has(key)) this.cache.set(key, this.lookup(host, isRegistry));
    return this.cache.get(key);
  }

  private lookup(host: string, isRegistry: boolean): HostTls | undefined {
    const fromDir = readCertsD(join(this.dir, host));
    if (this.flags && isRegistry && (this.options.registryHost === undefined || withoutDefaultPort(this.options.registryHost) === withoutDefaultPort(host))) {
      return { ca: fromDir?.ca ?? [], cert: this.flags.cert, key: this.flags.key, source: this.flagNames.cert };
    }
    return fromDir;
  }
}

/** "reg:443" and "reg" are one host to a URL. */
const withoutDefaultPort = (host: string) => host.replace(/:(443|80)$/, '');

/** Docker's reading of one certs.d/HOST directory: undefined when it does not exist or holds nothing. */
export function readCertsD(dir: string): HostTls | undefined {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) return undefined;
    names = readdirSync(dir).sort();
  } catch {
    return undefined;
  }
  const ca = names.filter((n) => n.endsWith('.crt')).map((n) => readPem(join(dir, n), 'CA certificate', 'CERTIFICATE'));
  const certs = names.filter((n) => n.endsWith('.cert'));
  for (const n of names.filter((k) => k.endsWith('.key'))) {
    if (!names.includes(n.replace(/\.key$/, '.cert'))) {
      throw new UsageError(`${join(dir, n)}: a client key without its certificate ${n.replace(/\.key$/, '.cert')}`, { hint: 'Docker reads client certificates from certs.d as NAME.cert with NAME.key' });
    }
  }
  if (certs.length > 1) throw new UsageError(`${dir}: ${certs.length} client certificates (${certs.join(', ')}); airlock offers one per registry`);
  let cert: string | undefined;
  let key: string | undefined;
  if (certs.length === 1) {
    const keyName = certs[0]!.replace(/\.cert$/, '.key');
    if (!names.includes(keyName)) {
      throw new UsageError(`${join(dir, certs[0]!)}: a client certificate without its key ${keyName}`, { hint: 'Docker reads client certificates from certs.d as NAME.cert with NAME.key' });
    }
    cert = readPem(join(dir, certs[0]!), 'client certificate', 'CERTIFICATE');
    key = readPem(join(dir, keyName), 'client key', 'PRIVATE KEY');
  }
  if (ca.length === 0 && cert === undefined) return undefined;
  return { ca, ...(cert !== undefined ? { cert, key } : {}), source: dir };
}

function readPem(path: string, what: string, kind: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(pem)) throw new UsageError(`${what} ${path} holds no PEM ${kind.toLowerCase()}`);
  return pem;
}

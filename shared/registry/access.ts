import { RetrySummary } from '../net/retry-summary.ts';
import { ClientCertificates } from './client-certs.ts';
import { RegistryClient, type RegistryOptions } from './client.ts';
import { credentialsFor, onePerHost, type Credentials } from './credentials.ts';
import { HttpTransport } from './transport.ts';

/**
 * How a command reaches a registry, from its flags: the credentials
 * (--registry-username / --registry-password-env, else Docker's config and
 * credential helpers), plain HTTP, and the client certificate of a registry
 * behind mutual TLS (--client-cert / --client-key, else certs.d). Every
 * enclave command builds its registry clients from one of these.
 */
export interface RegistryAccess {
  username?: string;
  passwordEnv?: string;
  plainHttp?: boolean;
  clientCert?: string;
  clientKey?: string;
  /** The flags it came from, named in messages (default --registry-username, --client-cert...). */
  flags?: RegistryFlags;
}

/** The names (without dashes) of the flags a RegistryAccess comes from. */
export interface RegistryFlags {
  username: string;
  passwordEnv: string;
  plainHttp: string;
  clientCert: string;
  clientKey: string;
}

/** Where the messages of registry access go (a Logger fits). */
export interface AccessLog {
  warn(message: string): void;
  debug(message: string): void;
}

/**
 * The RegistryOptions of `access` for the registry `host`: credentials asked
 * once per host (a credential helper runs, and its warning shows, once), and
 * the flags' client certificate for `host` alone (certs.d for every host).
 */
export function registryOptions(host: string, access: RegistryAccess, log: Pick<AccessLog, 'warn'>): Pick<RegistryOptions, 'plainHttp' | 'clientCertificates' | 'credentials'> {
  return { plainHttp: access.plainHttp, clientCertificates: clientCertificates(access, host), credentials: credentials(access, log) };
}

/** A client of the registry `host` (HOST[:PORT]) reached as `access` says. */
export function registryClient(host: string, transport: HttpTransport, access: RegistryAccess, log: Pick<AccessLog, 'warn'>): RegistryClient {
  return new RegistryClient(host, transport, registryOptions(host, access, log));
}

/**
 * Clients of whichever registries a command meets (the hosts a branch pins),
 * one per host, all reached as `access` says. The certificate files are read
 * now: a wrong one stops the command before it starts.
 */
export function registryClients(transport: HttpTransport, access: RegistryAccess, log: Pick<AccessLog, 'warn'>): (host: string) => RegistryClient {
  const options = { plainHttp: access.plainHttp, clientCertificates: clientCertificates(access, undefined), credentials: credentials(access, log) };
  const clients = new Map<string, RegistryClient>();
  return (host) => {
    let client = clients.get(host);
    if (client === undefined) clients.set(host, (client = new RegistryClient(host, transport, options)));
    return client;
  };
}

/** The flags' certificate for `registryHost` (for any registry a client talks to, when undefined), and certs.d. */
function clientCertificates(access: RegistryAccess, registryHost: string | undefined): ClientCertificates {
  const { flags } = access;
  return new ClientCertificates({
    registryHost,
    clientCert: access.clientCert,
    clientKey: access.clientKey,
    ...(flags ? { flagNames: { cert: `--${flags.clientCert}`, key: `--${flags.clientKey}` } } : {}),
  });
}

/** The flags' credentials, else Docker's config, asked once per host. */
function credentials(access: RegistryAccess, log: Pick<AccessLog, 'warn'>): (host: string) => Credentials | undefined {
  const { flags } = access;
  const flagNames = flags ? { flagNames: { username: `--${flags.username}`, passwordEnv: `--${flags.passwordEnv}` } } : {};
  return onePerHost((host) => credentialsFor(host, { username: access.username, passwordEnv: access.passwordEnv, ...flagNames, warn: (m) => log.warn(m) }));
}

/** A transport whose retries show as a summary line per endpoint and cause (net/retry-summary.ts), each one in the debug log. */
export interface SummarizedTransport {
  transport: HttpTransport;
  retries: RetrySummary;
  /** The last summary, then the connections closed. */
  close(): Promise<void>;
}

/** The transport of an enclave command: --ca-file, retries summed up, registries' Warning headers as warnings. */
export function summarizedTransport(caFile: string | undefined, log: AccessLog): SummarizedTransport {
  const retries = new RetrySummary((line) => log.warn(line));
  const transport = new HttpTransport({
    caFile,
    onRetry: (r) => {
      log.debug(`retrying ${r.what} in ${r.delayMs} ms: ${r.reason}`);
      retries.record(r.endpoint, r.reason);
    },
    onWarning: (w) => log.warn(`${w.what}: ${w.warning}`),
  });
  return {
    transport,
    retries,
    close: async () => {
      retries.close();
      await transport.close();
    },
  };
}

import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import { Progress } from '../shared/cli/progress.ts';
import type { BundleBytes } from '../shared/bundle/volumes.ts';
import { RetrySummary } from '../shared/net/retry-summary.ts';
import { ClientCertificates } from '../shared/registry/client-certs.ts';
import { RegistryClient, type RegistryOptions } from '../shared/registry/client.ts';
import { credentialsFor, onePerHost } from '../shared/registry/credentials.ts';
import { HttpTransport } from '../shared/registry/transport.ts';
import { readPublicKey } from '../shared/sign/keys.ts';
import { openAnyBundle } from '../shared/transfer/open.ts';
import { TargetStores } from './target-stores.ts';

export interface LoadContextOptions {
  bundle: string;
  key: string;
  username?: string;
  passwordEnv?: string;
  plainHttp?: boolean;
  caFile?: string;
  /** --client-cert / --client-key, and certs.d: for a registry behind mutual TLS. */
  clientCert?: string;
  clientKey?: string;
  /** --s3-endpoint, for s3:// bundles. */
  s3Endpoint?: string;
  json?: boolean;
  logger: Logger;
}

/** What a load works with: the public key, the bundle's bytes, the registry's client, progress and the retry summary. */
export interface LoadContext {
  target: { host: string; prefix: string };
  publicKey: KeyObject;
  bytes: BundleBytes;
  transport: HttpTransport;
  registryOptions: Pick<RegistryOptions, 'plainHttp' | 'clientCertificates' | 'credentials'>;
  stores: TargetStores;
  progress: Progress;
  retries: RetrySummary;
  /** Upload sessions left open closed, connections and the bundle closed. */
  close(): Promise<void>;
}

export async function openLoadContext(options: LoadContextOptions, target: { host: string; prefix: string }): Promise<LoadContext> {
  const { logger } = options;
  const keyPem = await readFile(options.key, 'utf8').catch((err: Error) => {
    throw new UsageError(`cannot read the public key ${options.key}: ${err.message}`);
  });
  const publicKey = readPublicKey(keyPem, options.key);
  const bytes = await openAnyBundle(options.bundle, { s3: { endpoint: options.s3Endpoint, caFile: options.caFile } });
  const certificates = new ClientCertificates({ registryHost: target.host, clientCert: options.clientCert, clientKey: options.clientKey });
  const progress = new Progress({ json: options.json, summaryLine: false });
  logger.attachStatusLine(progress);
  const retries = new RetrySummary((line) => logger.warn(line));
  const transport = new HttpTransport({
    caFile: options.caFile,
    onRetry: (r) => {
      logger.debug(`retrying ${r.what} in ${r.delayMs} ms: ${r.reason}`);
      retries.record(r.endpoint, r.reason);
    },
    onWarning: (w) => logger.warn(`${w.what}: ${w.warning}`),
  });
  const registryOptions = {
    plainHttp: options.plainHttp,
    clientCertificates: certificates,
    credentials: onePerHost((h) => credentialsFor(h, { username: options.username, passwordEnv: options.passwordEnv, warn: (m) => logger.warn(m) })),
  };
  // The enclave's registry: manifests looked up by GET, on kept-alive connections (RegistryOptions.lookupsByGet).
  const client = new RegistryClient(target.host, transport, { ...registryOptions, lookupsByGet: true });
  return {
    target,
    publicKey,
    bytes,
    transport,
    registryOptions,
    stores: new TargetStores(client),
    progress,
    retries,
    async close() {
      retries.close();
      logger.attachStatusLine(undefined);
      await client.cancelKeptUploads();
      await transport.close();
      await bytes.close();
    },
  };
}

import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import { Progress } from '../shared/cli/progress.ts';
import type { BundleBytes } from '../shared/bundle/volumes.ts';
import type { RetrySummary } from '../shared/net/retry-summary.ts';
import { registryOptions as accessOptions, summarizedTransport, type RegistryAccess } from '../shared/registry/access.ts';
import { RegistryClient, type RegistryOptions } from '../shared/registry/client.ts';
import type { HttpTransport } from '../shared/registry/transport.ts';
import { readPublicKey } from '../shared/sign/keys.ts';
import { openAnyBundle } from '../shared/transfer/open.ts';
import { TargetStores } from './target-stores.ts';

export interface LoadContextOptions {
  bundle: string;
  key: string;
  /** Credentials, plain HTTP, the client certificate (and certs.d) of the registry. */
  access: RegistryAccess;
  caFile?: string;
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
  const progress = new Progress({ json: options.json, summaryLine: false });
  logger.attachStatusLine(progress);
  const { transport, retries, close: closeTransport } = summarizedTransport(options.caFile, logger);
  const registryOptions = accessOptions(target.host, options.access, logger);
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
      logger.attachStatusLine(undefined);
      await client.cancelKeptUploads();
      await closeTransport();
      await bytes.close();
    },
  };
}

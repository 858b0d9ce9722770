import type { Argv } from 'yargs';
import { UsageError } from '../shared/cli/errors.ts';
import { formatBytes } from '../shared/cli/progress.ts';
import type { EnvironmentCopyReport } from './gitops/envRegistry.ts';
import type { RegistryFlags } from '../shared/registry/access.ts';

/** The flags of the environment registry, as registryAccess reads them. */
export const ENV_REGISTRY_FLAGS: RegistryFlags = {
  username: 'env-registry-username',
  passwordEnv: 'env-registry-password-env',
  plainHttp: 'env-registry-plain-http',
  clientCert: 'env-registry-client-cert',
  clientKey: 'env-registry-client-key',
};

/** promote's --env-registry flags: the environment's own registry, its credentials and transport. */
export function withEnvRegistry<T>(y: Argv<T>) {
  return y
    .option('env-registry', {
      type: 'string',
      describe:
        "The environment's own registry HOST[:PORT][/PREFIX]: copy every image (and Flux chart) the environment receives there first, same digests, and map the names in PATH/overlays/ENV/airlock/",
      group: 'Environment registry:',
    })
    .option('env-registry-username', {
      type: 'string',
      describe: 'User name for the environment registry (with --env-registry-password-env; default: ~/.docker/config.json)',
      group: 'Environment registry:',
    })
    .option('env-registry-password-env', {
      type: 'string',
      describe: 'NAME of the environment variable holding the environment registry password or token',
      group: 'Environment registry:',
    })
    .option('env-registry-plain-http', { type: 'boolean', default: false, describe: 'Talk plain HTTP (no TLS) to the environment registry', group: 'Environment registry:' })
    .option('env-registry-client-cert', {
      type: 'string',
      describe: 'Client certificate (PEM) for an environment registry behind mutual TLS, with --env-registry-client-key (default: certs.d/HOST[:PORT]/*.cert, as Docker reads it)',
      normalize: true,
      group: 'Environment registry:',
    })
    .option('env-registry-client-key', { type: 'string', describe: 'Private key (PEM) of --env-registry-client-cert', normalize: true, group: 'Environment registry:' })
    .check((argv) => {
      const given = ['env-registry-username', 'env-registry-password-env', 'env-registry-plain-http', 'env-registry-client-cert', 'env-registry-client-key'].filter(
        (f) => argv[f] !== undefined && argv[f] !== false,
      );
      if (given.length > 0 && argv['env-registry'] === undefined) {
        throw new UsageError(`--${given[0]} goes with --env-registry`, { hint: "add --env-registry HOST[:PORT][/PREFIX], the environment's own registry" });
      }
      if ((argv['env-registry-username'] === undefined) !== (argv['env-registry-password-env'] === undefined)) {
        throw new UsageError('--env-registry-username and --env-registry-password-env go together: give both or neither', {
          hint: '--env-registry-password-env names an environment variable holding the password, e.g. --env-registry-password-env PROD_REGISTRY_PASSWORD',
        });
      }
      if ((argv['env-registry-client-cert'] === undefined) !== (argv['env-registry-client-key'] === undefined)) {
        throw new UsageError('--env-registry-client-cert and --env-registry-client-key go together: give both or neither', {
          hint: 'give the certificate and its private key, both PEM files',
        });
      }
      return true;
    });
}

/** "env registry R: 3 images and 1 chart: 2 copied, 2 already there; ..." or that everything was there. */
export function formatEnvironmentCopy(r: EnvironmentCopyReport): string {
  const count = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  const what = `${count(r.images, 'image')}${r.charts > 0 ? ` and ${count(r.charts, 'chart')}` : ''}`;
  if (r.copied === 0 && r.signatures === 0) return `env registry ${r.registry}: ${what}, all already there; nothing copied`;
  const signatures = r.signatures > 0 ? `; ${count(r.signatures, 'signature tag')} set` : '';
  return `env registry ${r.registry}: ${what}: ${r.copied} copied, ${r.present} already there${signatures} (${count(r.blobsUploaded, 'blob')}, ${formatBytes(r.bytesUploaded)} uploaded; ${r.blobsMounted} mounted; ${r.blobsPresent} present)`;
}

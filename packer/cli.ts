/**
 * The connected side's commands: keygen, pack, upload (split is shared/cli/split.ts,
 * registered by loader/cli.ts: the enclave has it too).
 * (verify and inspect live in loader/cli.ts: the one-file enclave loader is
 * built from loader/cli.ts alone and needs them; the airlock entry point
 * composes both sides.)
 */
import type { Argv } from 'yargs';
import { dirname } from 'node:path';
import { rm } from 'node:fs/promises';
import { keygen } from './keygen.ts';
import { parseVolumeSize, splitBundle } from '../shared/bundle/volumes.ts';
import { uploadSftp } from '../shared/transfer/sftp.ts';
import { uploadS3 } from '../shared/transfer/s3.ts';
import { UsageError } from '../shared/cli/errors.ts';
import { sshAuth } from '../shared/transfer/ssh.ts';
import { runTransfer } from '../shared/transfer/report.ts';
import { formatPackSummary, pack } from './pack.ts';
import { findLoaderFile } from './loader-file.ts';
import { Logger } from '../shared/cli/log.ts';
import { splitText, type SplitResult } from '../shared/cli/split.ts';
import { printResult } from '../shared/cli/output.ts';
import { positiveInteger, withGitAuth, withJobs, withJson, withNetworkOptions, withPlainHttp } from '../shared/cli/main.ts';

export function registerPackerCommands(y: Argv): Argv {
  return y
    .command(
      'keygen',
      'Make a signing key pair: airlock.key (cosign format, encrypted with the password in AIRLOCK_PASSWORD or COSIGN_PASSWORD, else asked for) and airlock.pub',
      (b) =>
        withJson(
          b
            .option('out-dir', {
            type: 'string',
            default: '.',
            describe: 'Directory to write airlock.key and airlock.pub to',
            normalize: true,
            })
            .option('password', {
              type: 'boolean',
              default: true,
              describe: 'Encrypt airlock.key with a password; --no-password makes an unprotected key (an empty password) without asking',
            }),
        ),
      async (argv) => {
        const { privateKeyPath, publicKeyPath } = await keygen(argv['out-dir'], { noPassword: !argv.password });
        printResult('keygen', { privateKey: privateKeyPath, publicKey: publicKeyPath }, argv.json, () => `wrote ${privateKeyPath} (private, keep it on the connected side) and ${publicKeyPath}`);
      },
    )
    .command(
      'pack',
      'Pack an application (manifests, charts, images) into one signed bundle',
      (b) =>
        withJson(
          withGitAuth(
            withNetworkOptions(
              withPlainHttp(
                withJobs(
                  b
                    .option('file', {
                      alias: 'f',
                      type: 'string',
                      default: 'airlock.yaml',
                      describe: 'The bundle spec',
                      normalize: true,
                    })
                    .option('output', {
                      alias: 'o',
                      type: 'string',
                      demandOption: true,
                      describe: 'The bundle to write (BUNDLE.tar)',
                      normalize: true,
                    })
                    .option('key', {
                      type: 'string',
                      demandOption: true,
                      describe: 'Private key to sign with (airlock.key or a cosign key; password from AIRLOCK_PASSWORD or COSIGN_PASSWORD)',
                      normalize: true,
                    })
                    .option('platform', {
                      type: 'string',
                      array: true,
                      describe: 'Platform to pack, os/arch[/variant]; repeat for several (default: the spec\'s platforms)',
                    })
                    .option('registry-mirror', {
                      type: 'string',
                      array: true,
                      describe: 'Pull a registry\'s images from a mirror: REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000; repeatable',
                    })
                    .option('volume-size', {
                      type: 'string',
                      describe: 'Also split the bundle into volumes of at most this size (e.g. 4G, 700M)',
                    })
                    .option('helm', {
                      type: 'string',
                      describe: 'The helm binary (3.x or 4.x) that renders the spec\'s charts (default: helm on PATH)',
                      normalize: true,
                    })
                    .option('with-signatures', {
                      type: 'boolean',
                      describe: "Also pack each image's cosign signatures, attestations and SBOMs (sha256-<hex>.sig/.att/.sbom) and OCI 1.1 referrers, byte for byte",
                    })
                    .option('include-loader', {
                      type: 'boolean',
                      default: false,
                      describe: 'Carry the one-file enclave loader (airlock-loader.mjs) in the bundle, listed in the signed index',
                    })
                    .option('loader-file', {
                      type: 'string',
                      describe: 'The loader file --include-loader packs (default: airlock-loader.mjs next to airlock, from npm run build)',
                      normalize: true,
                    })
                    .option('since', {
                      type: 'string',
                      describe: 'Make a delta: leave out blobs the enclave already has, per an inventory (airlock inventory), an older bundle, or its airlock.json',
                      normalize: true,
                    }),
                  'downloads',
                ),
                'Talk plain HTTP to source registries given as HOST:PORT (mirrors carry their own scheme)',
              ),
            ),
          ),
        ),
      async (argv) => {
        const volumeSize = argv['volume-size'] === undefined ? undefined : parseVolumeSize(argv['volume-size']);
        const json = Boolean(argv.json);
        if (argv['loader-file'] !== undefined && !argv['include-loader']) throw new UsageError('--loader-file goes with --include-loader');
        const loaderFile = argv['include-loader'] ? await findLoaderFile(argv['loader-file']) : undefined;
        const summary = await pack({
          spec: argv.file,
          output: argv.output,
          key: argv.key,
          platforms: argv.platform,
          mirrors: argv['registry-mirror'],
          jobs: argv.jobs,
          caFile: argv['ca-file'],
          plainHttp: argv['plain-http'],
          sources: {
            gitUsername: argv['git-username'],
            gitPasswordEnv: argv['git-password-env'],
            sshKey: argv['ssh-key'],
            knownHosts: argv['known-hosts'],
            s3Endpoint: argv['s3-endpoint'],
          },
          helm: argv.helm,
          withSignatures: argv['with-signatures'] === true,
          since: argv.since,
          loaderFile,
          json,
          logger: new Logger({ json }),
        });
        let split: SplitResult | undefined;
        if (volumeSize !== undefined) {
          // The volumes replace the single file: DESIGN.md §2 makes them byte ranges of it.
          const { parts, files } = await splitBundle(argv.output, volumeSize, dirname(argv.output));
          await rm(argv.output);
          split = { bundle: argv.output, volumes: parts.volumes.length, files };
        }
        printResult('pack', { ...summary, ...(split ? { split } : {}) }, json, () => formatPackSummary(summary) + (split ? `\n${splitText(split)}` : ''));
      },
    )
    .command(
      'upload <bundle> <destination>',
      'Upload a bundle (with its volumes and parts list, if split) to s3://bucket/key or sftp://user@host[:port]/path',
      (b) =>
        withJson(
          withNetworkOptions(
            b
              .positional('bundle', { type: 'string', demandOption: true, describe: 'The bundle, or the first volume of a split bundle' })
              .positional('destination', {
                type: 'string',
                demandOption: true,
                describe: 's3://bucket/key or sftp://user@host[:port]/path',
              })
              .option('part-size', { type: 'string', describe: 'S3 multipart part size (default 64M; at least 5M)' })
              .option('jobs', { type: 'string', describe: 'S3 parts uploaded at once (default: 4)', coerce: positiveInteger('jobs') }),
          ),
        ),
      async (argv) => {
        const destination = argv.destination as string;
        const bundle = argv.bundle as string;
        if (destination.startsWith('s3://')) {
          const s3 = { endpoint: argv['s3-endpoint'], caFile: argv['ca-file'], partSize: argv['part-size'] === undefined ? undefined : parseVolumeSize(argv['part-size']), concurrency: argv.jobs };
          await runTransfer('upload', destination, Boolean(argv.json), (progress) => uploadS3(bundle, destination, s3, progress), { caFile: s3.caFile, s3Endpoint: s3.endpoint });
        } else if (destination.startsWith('sftp://')) {
          await runTransfer('upload', destination, Boolean(argv.json), (progress) => uploadSftp(bundle, destination, sshAuth(argv), progress), { ssh: sshAuth(argv) });
        } else {
          throw new UsageError(`${destination}: upload takes s3://bucket/key or sftp://user@host/path`);
        }
      },
    );
}

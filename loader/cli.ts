/**
 * The enclave side's commands: verify, inspect, load, promote, approve,
 * download, split, inventory. The one-file enclave loader is built from this
 * module alone, so it must not import packer/. Each command imports its heavy modules (undici,
 * isomorphic-git, ssh2, the AWS SDK) when it runs, so `--help` and `--version`
 * start as fast as Node does; verify and inspect, which need none of them, are imported up front.
 */
import type { Argv } from 'yargs';
import type { GitOptions } from './gitops/commit.ts';
import { keyPassword } from '../shared/sign/password.ts';
import { REVIEW_STYLES } from './gitops/reviewStyles.ts';
import { runTransfer } from '../shared/transfer/report.ts';
import { Logger } from '../shared/cli/log.ts';
import { printResult } from '../shared/cli/output.ts';
import { UsageError } from '../shared/cli/errors.ts';
import { registerSplitCommand } from '../shared/cli/split.ts';
import { ENV_REGISTRY_FLAGS, formatEnvironmentCopy, withEnvRegistry } from './envRegistryCli.ts';
import { Progress } from '../shared/cli/progress.ts';
// verify and inspect are light (no network client: an s3:// bundle imports its client when it opens): loaded up front,
// so verify never compiles the commands' chunk of the one-file loader.
import { inspectCommand, verifyCommand } from './verify.ts';
import { positiveInteger, registryAccess, withGitAuth, withJobs, withJson, withNetworkOptions, withPlainHttp, withRegistryAuth } from '../shared/cli/main.ts';

const BUNDLE_DESCRIPTION = 'The bundle: a file, s3://bucket/key, or the first volume of a split bundle (BUNDLE.000)';

export function registerLoaderCommands(y: Argv): Argv {
  return registerSplitCommand(y)
    .command(
      'verify <bundle>',
      "Check a bundle's signature, then every entry's size and sha256",
      (b) =>
        withJson(
          withNetworkOptions(
            b
              .positional('bundle', { type: 'string', demandOption: true, describe: BUNDLE_DESCRIPTION })
              .option('key', { type: 'string', demandOption: true, describe: 'Public key (airlock.pub)', normalize: true }),
          ),
        ),
      async (argv) => {
        await verifyCommand(argv.bundle as string, argv.key as string, Boolean(argv.json), { endpoint: argv['s3-endpoint'], caFile: argv['ca-file'] });
      },
    )
    .command(
      'inspect <bundle>',
      'Show what a bundle holds: name, version, images, charts, manifests, sizes (reads the index only; use verify to check it)',
      (b) =>
        withJson(
          withNetworkOptions(b.positional('bundle', { type: 'string', demandOption: true, describe: BUNDLE_DESCRIPTION })),
        ),
      async (argv) => {
        await inspectCommand(argv.bundle as string, Boolean(argv.json), { endpoint: argv['s3-endpoint'], caFile: argv['ca-file'] });
      },
    )
    .command(
      'load <bundle>',
      'Verify a bundle while loading it: images into the enclave registry, manifests into git as a kustomize base',
      (b) =>
        withJson(
          withNetworkOptions(
            withGitAuth(
              withRegistryAuth(
                withPlainHttp(
                  withJobs(
                    b
                      .positional('bundle', { type: 'string', demandOption: true, describe: BUNDLE_DESCRIPTION })
                      .option('key', { type: 'string', demandOption: true, describe: 'Public key (airlock.pub)', normalize: true })
                      .option('registry', {
                        type: 'string',
                        demandOption: true,
                        describe: 'Enclave registry: HOST[:PORT][/PREFIX]',
                        group: 'Registry:',
                      })
                      .option('map-depth', {
                        type: 'number',
                        describe: 'Keep at most N path segments under the prefix: the first N-1, the rest joined with "-" (registries that limit the depth, such as GitLab)',
                        coerce: positiveInteger('map-depth'),
                        group: 'Registry:',
                      })
                      .option('git', { type: 'string', describe: 'Git repository URL (https:// or ssh://) to commit the manifests to', group: 'Git:' })
                      .option('git-branch', { type: 'string', default: 'dev', describe: 'Branch to commit to', group: 'Git:' })
                      .option('git-path', { type: 'string', describe: "Directory in the repository (default: the bundle's name)", group: 'Git:' })
                      .option('git-author', { type: 'string', describe: 'Commit author "Name <email>" (default: GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL, else airlock)', group: 'Git:' })
                      .option('overwrite-tags', {
                        type: 'boolean',
                        default: false,
                        describe: 'Move tags that already point at other content (default: refuse, exit 5)',
                      })
                      .option('skip-images', { type: 'boolean', default: false, describe: 'Do not push images (verify and write git only)' })
                      .option('dry-run', {
                        type: 'boolean',
                        default: false,
                        describe: 'Verify and show what would be pushed and committed, change nothing',
                      }),
                    'uploads',
                  ),
                ),
              ),
            ),
          ),
        ),
      async (argv) => {
        if (argv['skip-images'] && argv.git === undefined) throw new UsageError('--skip-images only makes sense with --git');
        const json = Boolean(argv.json);
        const { formatLoadReport, load } = await import('./load.ts');
        const report = await load({
          bundle: argv.bundle as string,
          key: argv.key,
          registry: argv.registry,
          mapDepth: argv['map-depth'],
          access: registryAccess(argv),
          caFile: argv['ca-file'],
          s3Endpoint: argv['s3-endpoint'],
          overwriteTags: argv['overwrite-tags'],
          jobs: argv.jobs,
          dryRun: argv['dry-run'],
          skipImages: argv['skip-images'],
          git: argv.git === undefined ? undefined : gitOptions({ ...argv, git: argv.git }),
          json,
          logger: new Logger({ json }),
        });
        printResult('load', report, json, () => formatLoadReport(report));
      },
    )
    .command(
      'promote',
      'Merge the dev branch into an environment branch (or push a review branch with --review); overlays survive',
      (b) =>
        withJson(
          withNetworkOptions(
            withRegistryAuth(
              withPlainHttp(
                withGitAuth(
                  withEnvRegistry(withJobs(b, 'registry transfers'))
                    .option('git', { type: 'string', demandOption: true, describe: 'Git repository URL (https:// or ssh://)', group: 'Git:' })
                    .option('require-approval', {
                      type: 'string',
                      normalize: true,
                      describe: "Approver's public key: refuse (exit 5) unless every image the environment would receive carries a signature by it (airlock approve)",
                    })
                    .option('from', { type: 'string', default: 'dev', describe: 'Branch to promote from', group: 'Git:' })
                    .option('to', { type: 'string', demandOption: true, describe: 'Environment branch to promote to (ENV)', group: 'Git:' })
                    .option('git-path', { type: 'string', describe: "Directory in the repository (default: the bundle's name)", group: 'Git:' })
                    .option('git-author', { type: 'string', describe: 'Commit author "Name <email>" (default: GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL, else airlock)', group: 'Git:' })
                    .option('review', {
                      type: 'boolean',
                      default: false,
                      describe: 'Push a review branch for a merge request instead of updating the environment branch',
                    })
                    .option('review-style', {
                      choices: REVIEW_STYLES,
                      describe:
                        'How --review reaches the server: branch (push airlock/promote-ENV-VERSION), gitlab (that branch with push options: GitLab opens the merge request), agit (refs/for/ENV with a topic: Gitea, Forgejo, Gerrit open a pull request or change)',
                    }),
                ),
              ),
            ),
          ),
        ),
      async (argv) => {
        const logger = new Logger({ json: argv.json });
        const [{ promote }, { summarizedTransport }] = await Promise.all([import('./gitops/promote.ts'), import('../shared/registry/access.ts')]);
        const net = summarizedTransport(argv['ca-file'], logger);
        try {
          const r = await promote(
            {
              url: argv.git,
              from: argv.from,
              to: argv.to,
              path: argv['git-path'],
              review: argv.review,
              reviewStyle: argv['review-style'],
              sshKey: argv['ssh-key'],
              knownHosts: argv['known-hosts'],
              username: argv['git-username'],
              passwordEnv: argv['git-password-env'],
              author: argv['git-author'],
              requireApproval: argv['require-approval'],
              registry: registryAccess(argv),
              ...(argv['env-registry'] === undefined ? {} : { envRegistry: { registry: argv['env-registry'], access: registryAccess(argv, ENV_REGISTRY_FLAGS) } }),
              log: logger,
              jobs: argv.jobs,
              progress: new Progress({ json: argv.json, summaryLine: false }),
            },
            net.transport,
          );
          const what: Record<typeof r.outcome, string> = {
            created: `created ${r.branch} from ${argv.from} with a starter overlay ${r.path}/overlays/${argv.to}/`,
            merged: `merged ${argv.from} into ${r.branch}`,
            'fast-forward': `fast-forwarded ${r.branch} to ${argv.from}`,
            'up to date': `${r.branch} already has ${argv.from}; nothing to do`,
            'registry mapped': `${r.branch} already has ${argv.from}; its airlock component now maps the images to ${r.envRegistry?.registry}`,
            'review pushed': {
              branch: `pushed ${r.branch} (${argv.from} merged into ${argv.to}): open a merge request from it into ${argv.to}`,
              gitlab: `pushed ${r.branch} (${argv.from} merged into ${argv.to}) with merge request options: the server opens "${r.review?.title}" into ${argv.to}`,
              agit: `pushed ${r.review?.ref} (${argv.from} merged into ${argv.to}): the server opens "${r.review?.title}" for ${argv.to}`,
            }[r.review?.style ?? 'branch'],
          };
          printResult('promote', r, argv.json, () => `${r.envRegistry ? formatEnvironmentCopy(r.envRegistry) + '\n' : ''}promote ${r.name} ${r.version}: ${what[r.outcome]}${r.commit ? ` (${r.commit.slice(0, 12)})` : ''}`);
        } finally {
          await net.close();
        }
      },
    )
    .command(
      'approve',
      "Scan the images the branch pins and sign the accepted ones with the approver's key (cosign signatures); record the outcome in git",
      (b) =>
        withJson(
          withNetworkOptions(
            withGitAuth(
              withRegistryAuth(
                withPlainHttp(
                  withJobs(
                    b
                      .option('registry', { type: 'string', demandOption: true, describe: 'Enclave registry: HOST[:PORT][/PREFIX]', group: 'Registry:' })
                      .option('key', { type: 'string', demandOption: true, describe: "Approver's private key (cosign format; password from AIRLOCK_PASSWORD / COSIGN_PASSWORD or a prompt)", normalize: true })
                      .option('git', { type: 'string', demandOption: true, describe: 'Git repository URL (https:// or ssh://)', group: 'Git:' })
                      .option('git-branch', { type: 'string', default: 'dev', describe: 'Branch whose base pins the images; the record is committed there', group: 'Git:' })
                      .option('git-path', { type: 'string', describe: 'Directory in the repository (default: the one folder holding airlock/airlock.json)', group: 'Git:' })
                      .option('git-author', { type: 'string', describe: 'Commit author "Name <email>"', group: 'Git:' })
                      .option('scan-command', {
                        type: 'string',
                        describe: 'Shell command run per image, with the image reference by digest as its last argument and in AIRLOCK_IMAGE; a non-zero exit rejects the image',
                      })
                      .option('image', { type: 'string', array: true, describe: 'Approve only this image (REPO or REGISTRY/REPO, optionally @DIGEST); repeatable' }),
                    'images',
                  ),
                ),
              ),
            ),
          ),
        ),
      async (argv) => {
        const json = Boolean(argv.json);
        const logger = new Logger({ json });
        const [{ approve }, { summarizedTransport }] = await Promise.all([import('./approve.ts'), import('../shared/registry/access.ts')]);
        const net = summarizedTransport(argv['ca-file'], logger);
        try {
          const r = await approve(
            {
              registry: argv.registry,
              key: argv.key,
              password: await keyPassword({ confirm: false }),
              access: registryAccess(argv),
              scanCommand: argv['scan-command'],
              images: argv.image,
              jobs: argv.jobs,
              git: gitOptions(argv),
              logger,
            },
            net.transport,
          );
          printResult('approve', r, json, () => `approve ${r.name} ${r.version}: ${r.approvals.length} images approved and signed; recorded in ${r.record}${r.commit ? ` (${r.commit.slice(0, 12)})` : ''}`);
        } finally {
          await net.close();
        }
      },
    )
    .command(
      'download <source>',
      'Download a bundle (with its volumes, if split) from s3://... or sftp://...',
      (b) =>
        withJson(
          withNetworkOptions(
            b
              .positional('source', { type: 'string', demandOption: true, describe: 's3://bucket/key or sftp://user@host[:port]/path' })
              .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'The bundle file to write', normalize: true }),
          ),
        ),
      async (argv) => {
        const source = argv.source as string;
        const s3 = { endpoint: argv['s3-endpoint'], caFile: argv['ca-file'] };
        if (source.startsWith('s3://')) {
          const { downloadS3 } = await import('../shared/transfer/s3.ts');
          await runTransfer('download', source, Boolean(argv.json), (progress) => downloadS3(source, argv.output, s3, progress), { caFile: s3.caFile, s3Endpoint: s3.endpoint });
        } else if (source.startsWith('sftp://')) {
          const [{ downloadSftp }, { sshAuth }] = await Promise.all([import('../shared/transfer/sftp.ts'), import('../shared/transfer/ssh.ts')]);
          await runTransfer('download', source, Boolean(argv.json), (progress) => downloadSftp(source, argv.output, sshAuth(argv), progress), { ssh: sshAuth(argv) });
        } else throw new UsageError(`${source}: download takes s3://bucket/key or sftp://user@host/path`);
      },
    )
    .command(
      'inventory',
      'List the blobs and tags the enclave registry holds (by digest), for pack --since',
      (b) =>
        withJson(
          withNetworkOptions(
            withGitAuth(
              withRegistryAuth(
                withPlainHttp(
                  withJobs(
                    b
                      .option('registry', { type: 'string', demandOption: true, describe: 'Enclave registry: HOST[:PORT][/PREFIX]', group: 'Registry:' })
                      .option('output', { alias: 'o', type: 'string', default: 'inventory.json', describe: 'File to write', normalize: true })
                      .option('from-git', {
                        type: 'string',
                        describe: 'Where the registry refuses its catalog: take the images of the bundle last loaded into this git repository (URL) and check each in the registry',
                        group: 'Git:',
                      })
                      .option('git-branch', { type: 'string', default: 'dev', describe: 'Branch load committed to', group: 'Git:' })
                      .option('git-path', { type: 'string', describe: 'Directory in the repository (default: the one folder holding airlock/airlock.json)', group: 'Git:' })
                      .option('page-size', { type: 'number', hidden: true, coerce: positiveInteger('page-size') }),
                    'manifest reads',
                  ),
                ),
              ),
            ),
          ),
        ),
      async (argv) => {
        const json = Boolean(argv.json);
        const { formatInventorySummary, takeInventory } = await import('./inventory.ts');
        const summary = await takeInventory({
          registry: argv.registry,
          output: argv.output,
          access: registryAccess(argv),
          caFile: argv['ca-file'],
          jobs: argv.jobs,
          pageSize: argv['page-size'],
          fromGit: argv['from-git'] === undefined ? undefined : gitOptions({ ...argv, git: argv['from-git'] }),
          json,
          logger: new Logger({ json }),
        });
        printResult('inventory', summary, json, () => formatInventorySummary(summary));
      },
    );
}

/** The --git target of load and approve, from their flags. */
function gitOptions(argv: {
  git: string;
  'git-branch': string;
  'git-path'?: string;
  'git-username'?: string;
  'git-password-env'?: string;
  'git-author'?: string;
  'ssh-key'?: string;
  'known-hosts'?: string;
}): GitOptions {
  return {
    url: argv.git,
    branch: argv['git-branch'],
    path: argv['git-path'],
    username: argv['git-username'],
    passwordEnv: argv['git-password-env'],
    author: argv['git-author'],
    sshKey: argv['ssh-key'],
    knownHosts: argv['known-hosts'],
  };
}

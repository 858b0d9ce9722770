import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { PolicyError, UsageError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import { registryClient, type RegistryAccess } from '../shared/registry/access.ts';
import type { HttpTransport } from '../shared/registry/transport.ts';
import { signImage } from '../shared/sign/cosignImage.ts';
import { keyFingerprint, readPrivateKey } from '../shared/sign/keys.ts';
import { authorOf, openRemote } from './gitops/commit.ts';
import { pinnedImages, type Pin } from './gitops/pinned.ts';
import { findBundleFolder, readRelease } from './gitops/promote.ts';
import { commitFiles, fetchTip, initRepository } from './gitops/repo.ts';
import { parseRegistryTarget } from './load.ts';
import { runScan, type ScanResult } from './scan.ts';

/**
 * airlock approve: every image the branch's base pins (PATH/base/
 * kustomization.yaml images: newName + digest), or the ones named, is
 * scanned (--scan-command) and, when accepted, signed with the approver's
 * key as cosign signs images. The outcome of each is recorded in one commit
 * "airlock: approve NAME VERSION" under PATH/airlock/approvals/VERSION/RUN/;
 * any rejected image then makes it exit 5.
 */
export interface ApproveOptions {
  registry: string;
  /** The approver's private key (cosign format) and its password. */
  key: string;
  password: string;
  git: { url: string; branch: string; path?: string; username?: string; passwordEnv?: string; author?: string; sshKey?: string; knownHosts?: string };
  /** Credentials, plain HTTP, client certificate. */
  access: RegistryAccess;
  scanCommand?: string;
  images?: string[];
  jobs?: number;
  logger: Logger;
}

export interface Approval {
  /** REGISTRY/REPOSITORY@DIGEST */
  image: string;
  digest: string;
  outcome: 'accepted' | 'rejected';
  scan?: { exit: number | string; output: string; outputDigest: string; outputBytes: number; truncated: boolean };
  signature?: { tag: string; manifest: string };
}

export interface ApproveReport {
  name: string;
  version: string;
  branch: string;
  path: string;
  approver: string;
  time: string;
  approvals: Approval[];
  /** The commit recording them (undefined if the branch already had exactly this record). */
  commit?: string;
  record: string;
}

export async function approve(options: ApproveOptions, transport: HttpTransport): Promise<ApproveReport> {
  const { host } = parseRegistryTarget(options.registry);
  const keyPem = await readFile(options.key, 'utf8').catch((err: Error) => {
    throw new UsageError(`cannot read the approver key ${options.key}: ${err.message}`);
  });
  const key = readPrivateKey(keyPem, options.password, options.key);
  const approver = keyFingerprint(key);
  const remote = openRemote(options.git, transport);
  const gitdir = await mkdtemp(join(tmpdir(), 'airlock-approve-'));
  try {
    // 1. What the branch pins.
    await initRepository(gitdir, remote, options.git.branch);
    const tip = await fetchTip(gitdir, remote, options.git.branch);
    if (!tip) throw new UsageError(`${remote.display} has no branch ${options.git.branch}`, { hint: 'run airlock load --git first' });
    const path = options.git.path?.replace(/^\/+|\/+$/g, '') ?? (await findBundleFolder(gitdir, tip, remote, options.git.branch));
    const { name, version } = await readRelease(gitdir, tip, path, options.git.branch);
    const pins = await pinnedImages(gitdir, tip, path, options.git.branch);
    const chosen = choose(pins, options.images ?? [], host);
    const foreign = chosen.filter((p) => !p.newName.startsWith(`${host}/`));
    if (foreign.length > 0) {
      throw new UsageError(`${foreign.map((p) => p.newName).join(', ')}: not in the registry ${options.registry}`, { hint: `the branch pins images in another registry: give that one as --registry` });
    }

    // 2. Scan and sign, a few at a time.
    const client = registryClient(host, transport, options.access, options.logger);
    const limit = pLimit(Math.max(1, options.jobs ?? 2));
    // Every image is there before anything is signed.
    const absent = (await Promise.all(chosen.map((p) => limit(async () => ((await client.resolve(p.newName.slice(host.length + 1), p.digest)) ? undefined : p))))).filter((p) => p !== undefined);
    if (absent.length > 0) {
      throw new UsageError(`not in the registry: ${absent.map((p) => `${p.newName}@${p.digest}`).join(', ')}; nothing was signed`, {
        hint: 'load the release with its images first (airlock load without --skip-images)',
      });
    }
    const scans = new Map<string, ScanResult>();
    const approvals = await Promise.all(
      chosen.map((p) =>
        limit(async (): Promise<Approval> => {
          const repository = p.newName.slice(host.length + 1);
          const image = `${p.newName}@${p.digest}`;
          let scan: ScanResult | undefined;
          if (options.scanCommand) {
            scan = await runScan(options.scanCommand, image);
            scans.set(image, scan);
          }
          const scanned = scan
            ? { scan: { exit: scan.exit, output: scanFile(p), outputDigest: scan.outputDigest, outputBytes: scan.outputBytes, truncated: scan.truncated } }
            : {};
          if (scan && !scan.accepted) {
            options.logger.warn(`${image}: rejected by the scan command (exit ${scan.exit})`);
            return { image, digest: p.digest, outcome: 'rejected', ...scanned };
          }
          const signed = await signImage(client, repository, p.digest, key);
          options.logger.info(`${image}: approved, signed (${signed.tag})`);
          return { image, digest: p.digest, outcome: 'accepted', ...scanned, signature: { tag: signed.tag, manifest: signed.manifest } };
        }),
      ),
    );

    // 3. One commit recording every outcome.
    const time = new Date().toISOString();
    const run = `${time.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${approver.slice('sha256:'.length, 'sha256:'.length + 12)}`;
    const files = new Map<string, Buffer>();
    const record = { bundle: name, version, approver, time, scanCommand: options.scanCommand ?? null, approvals };
    files.set(`${run}/approvals.json`, Buffer.from(JSON.stringify(record, null, 2) + '\n'));
    for (const a of approvals) {
      const s = scans.get(a.image);
      if (s && a.scan) files.set(`${run}/${a.scan.output}`, s.output);
    }
    const recordPath = `${path}/airlock/approvals/${version}`;
    const committed = await commitFiles({
      remote,
      branch: options.git.branch,
      path: recordPath,
      replace: [run],
      files,
      message: `airlock: approve ${name} ${version}\n\n${approvals.filter((a) => a.outcome === 'accepted').length} accepted, ${approvals.filter((a) => a.outcome === 'rejected').length} rejected; approver key ${approver}.\n`,
      author: authorOf(options.git.author),
    });
    const report: ApproveReport = { name, version, branch: options.git.branch, path, approver, time, approvals, commit: committed.commit, record: `${recordPath}/${run}/approvals.json` };
    const rejected = approvals.filter((a) => a.outcome === 'rejected');
    if (rejected.length > 0) {
      throw new PolicyError(`${rejected.length} of ${approvals.length} images rejected by the scan command (recorded in ${report.record}): ${rejected.map((a) => a.image).join(', ')}`, {
        hint: 'see each scan output next to the record; fix the images in a new release, or approve them once the scanner accepts them',
      });
    }
    return report;
  } finally {
    await remote.close?.();
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** Where a scan's output is kept in the record folder. */
function scanFile(p: Pin): string {
  return `scans/${p.newName.replace(/[^A-Za-z0-9._-]+/g, '_')}-${p.digest.slice('sha256:'.length, 'sha256:'.length + 12)}.txt`;
}

/** All pins, or those --image names (REGISTRY/REPO, REPO under the registry, or either @DIGEST). */
function choose(pins: Pin[], wanted: string[], host: string): Pin[] {
  if (wanted.length === 0) {
    if (pins.length === 0) throw new UsageError('the base pins no images: nothing to approve');
    return pins;
  }
  const out = new Set<Pin>();
  const unknown: string[] = [];
  for (const w of wanted) {
    const [nameOnly, digest] = w.split('@') as [string, string | undefined];
    const full = nameOnly.startsWith(`${host}/`) ? nameOnly : `${host}/${nameOnly}`;
    const found = pins.filter((p) => p.newName === full && (digest === undefined || p.digest === digest));
    if (found.length === 0) unknown.push(w);
    for (const f of found) out.add(f);
  }
  if (unknown.length > 0) {
    throw new UsageError(`--image ${unknown.join(', ')}: not pinned by the base`, { hint: `the base pins: ${pins.map((p) => p.newName).join(', ') || 'nothing'}` });
  }
  return pins.filter((p) => out.has(p));
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startLyingRegistry, type Lie } from '../services/lyingRegistry.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { airlock, type CliResult } from './cli.ts';

/**
 * What a lying registry (test/services/lyingRegistry.ts) may tell pack (as
 * the source) or load (as the target), and what airlock must answer: exit 3
 * when the content is not what was promised, 4 when the registry fails, 0
 * when the lie was a one-off that a retry gets past. Used by
 * test/integration/lying-registries.test.ts and the faults campaign.
 */
export interface LieCase {
  name: string;
  side: 'pack' | 'load';
  /** The lies, given the digest of the image's largest layer (hex-prefixed "sha256:..."). */
  lies: (bigLayer: string) => Lie[];
  code: 0 | 3 | 4;
  refusal?: RegExp;
  /** load: the bundle loaded honestly first, so that the load through the liar reads every tag's manifest. */
  preloaded?: boolean;
}

const blob = (digest: string) => new RegExp(`/blobs/${digest}$`);

export const LIE_CASES: LieCase[] = [
  { name: 'source blob longer than its descriptor', side: 'pack', lies: (d) => [{ kind: 'longer', method: 'GET', path: blob(d) }], code: 3, refusal: /the registry answers \d+ bytes, the descriptor says \d+/ },
  { name: 'source blob shorter than its descriptor', side: 'pack', lies: (d) => [{ kind: 'shorter', method: 'GET', path: blob(d) }], code: 3, refusal: /the registry answers \d+ bytes, the descriptor says \d+/ },
  { name: 'source blob body short of its Content-Length, once', side: 'pack', lies: (d) => [{ kind: 'short-body', method: 'GET', path: blob(d), times: 1 }], code: 0 },
  { name: 'source blob body short of its Content-Length, always', side: 'pack', lies: (d) => [{ kind: 'short-body', method: 'GET', path: blob(d) }], code: 4, refusal: /download failed at byte \d+ of \d+: the answer was cut short/ },
  { name: 'source manifest with bytes added', side: 'pack', lies: () => [{ kind: 'longer', method: 'GET', path: /\/manifests\// }], code: 3, refusal: /content has digest sha256:[0-9a-f]{64}, the registry claims/ },
  { name: 'source manifest GET that never ends', side: 'pack', lies: () => [{ kind: 'endless', method: 'GET', path: /\/manifests\// }], code: 3, refusal: /ran past the 4 MiB a manifest may hold/ },
  { name: 'source redirect loop', side: 'pack', lies: () => [{ kind: 'redirect-loop', path: /\/manifests\// }], code: 4, refusal: /more than 5 redirects/ },
  { name: 'source token endpoint answering garbage', side: 'pack', lies: () => [{ kind: 'token-garbage', path: /.*/ }], code: 4, refusal: /the token server 127\.0\.0\.1:\d+ did not answer JSON/ },
  { name: 'target token endpoint answering garbage', side: 'load', lies: () => [{ kind: 'token-garbage', path: /.*/ }], code: 4, refusal: /the token server 127\.0\.0\.1:\d+ did not answer JSON/ },
  { name: 'target redirect loop on uploads', side: 'load', lies: () => [{ kind: 'redirect-loop', path: /\/blobs\/uploads/ }], code: 4, refusal: /HTTP 307/ },
  { name: 'target manifest answers short of their Content-Length, once', side: 'load', lies: () => [{ kind: 'short-body', path: /\/manifests\//, times: 1 }], code: 0 },
  { name: 'target manifest answers short of their Content-Length, always', side: 'load', preloaded: true, lies: () => [{ kind: 'short-body', path: /\/manifests\// }], code: 4, refusal: /get manifest .*: the answer was cut short/ },
  { name: 'target claiming a blob of another size', side: 'load', lies: () => [{ kind: 'phantom', method: 'HEAD', path: /\/blobs\/sha256:/ }], code: 3, refusal: /the registry holds \d+ bytes, the descriptor says \d+/ },
];

/** What a lie is told against: the source registry, an honest bundle of its image, the spec and keys that made it. */
export interface LieWorld {
  work: string;
  source: RegistryService;
  spec: string;
  bundle: string;
  key: string;
  pub: string;
  password: string;
  /** The digest of the image's largest layer. */
  bigLayer: string;
}

export interface LieOutcome {
  res: CliResult;
  /** How many answers were lies. */
  told: number;
  /** pack: whether a bundle was written. */
  wrote: boolean;
}

/** pack through a lying source, or load into a lying target (a fresh registry behind it); --timeout 3. */
export async function tellLie(w: LieWorld, c: LieCase, i: number): Promise<LieOutcome> {
  const target = c.side === 'pack' ? w.source : await startRegistry();
  const load = (host: string) => airlock(['load', w.bundle, '--key', w.pub, '--registry', host, '--plain-http', '--timeout', '3'], { timeoutMs: 90_000 });
  try {
    if (c.preloaded) {
      const honest = await load(target.host);
      if (honest.code !== 0) throw new Error(`${c.name}: the honest load first failed: ${honest.stderr}`);
    }
    const liar = await startLyingRegistry({ host: '127.0.0.1', port: target.port });
    try {
      for (const lie of c.lies(w.bigLayer)) liar.lie(lie);
      const out = join(w.work, `lie-${i}.tar`);
      const res =
        c.side === 'pack'
          ? await airlock(['pack', '-f', w.spec, '-o', out, '--key', w.key, '--registry-mirror', `docker.io=${liar.url}`, '--timeout', '3'], {
              env: { AIRLOCK_PASSWORD: w.password },
              timeoutMs: 90_000,
            })
          : await load(liar.host);
      return { res, told: [...liar.told.values()].reduce((a, b) => a + b, 0), wrote: c.side === 'pack' && existsSync(out) };
    } finally {
      await liar.stop();
    }
  } finally {
    if (target !== w.source) await target.stop();
  }
}

/** What was wrong with an outcome, or undefined when airlock answered the lie as it must. */
export function lieFinding(c: LieCase, o: LieOutcome): string | undefined {
  const said = `exit ${o.res.code}${o.res.signal ? ` (${o.res.signal}: a hang)` : ''}: ${o.res.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  if (o.told === 0) return `${c.name}: the lie was never told (${said})`;
  if (o.res.code !== c.code || (c.refusal && !c.refusal.test(o.res.stderr)) || /a bug in airlock/.test(o.res.stderr)) return `${c.name}: wanted exit ${c.code} ${c.refusal ?? ''}, got ${said}`;
  if (c.side === 'pack' && o.wrote !== (c.code === 0)) return `${c.name}: a bundle ${o.wrote ? 'was' : 'was not'} written`;
  return undefined;
}

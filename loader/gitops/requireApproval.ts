import type { KeyObject } from 'node:crypto';
import pLimit from 'p-limit';
import { PolicyError } from '../../shared/cli/errors.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { hasValidSignature } from '../../shared/sign/cosignImage.ts';
import { keyFingerprint } from '../../shared/sign/keys.ts';
import type { Pin } from './pinned.ts';

/**
 * promote --require-approval KEY.pub: every image the environment would
 * receive (the digests dev's base pins) carries a cosign signature by that
 * key in its registry; otherwise PolicyError (exit 5) naming each one.
 */
export async function requireApproval(pins: readonly Pin[], publicKey: KeyObject, clientFor: (host: string) => RegistryClient, jobs = 4): Promise<void> {
  const limit = pLimit(jobs);
  const unsigned = (
    await Promise.all(
      pins.map((p) =>
        limit(async () => {
          const slash = p.newName.indexOf('/');
          const ok = await hasValidSignature(clientFor(p.newName.slice(0, slash)), p.newName.slice(slash + 1), p.digest, publicKey);
          return ok ? undefined : `${p.newName}@${p.digest}`;
        }),
      ),
    )
  ).filter((x): x is string => x !== undefined);
  if (unsigned.length > 0) {
    throw new PolicyError(`${unsigned.length} of ${pins.length} images have no valid signature by the approver key ${keyFingerprint(publicKey)}: ${unsigned.join(', ')}; nothing was changed`, {
      hint: 'approve them first: airlock approve --key <the approver key> (with a scan command), then promote again',
    });
  }
}

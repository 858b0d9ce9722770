import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { generateKeyPair } from '../../shared/sign/keys.ts';

/**
 * docs/examples/kyverno-verify-images.yaml: valid YAML, a Kyverno ClusterPolicy
 * whose verifyImages rule requires the approver key's signature, pins digests,
 * and checks with a key alone (no transparency log in an enclave); with a real
 * approver.pub pasted in, the key field is a PEM public key.
 */
const EXAMPLE = join(import.meta.dirname, '..', '..', 'docs', 'examples', 'kyverno-verify-images.yaml');

interface Policy {
  apiVersion: string;
  kind: string;
  spec: {
    validationFailureAction: string;
    rules: {
      match: { any: { resources: { kinds: string[] } }[] };
      verifyImages: {
        imageReferences: string[];
        required: boolean;
        mutateDigest: boolean;
        verifyDigest: boolean;
        attestors: { entries: { keys: { publicKeys: string; rekor: { ignoreTlog: boolean }; ctlog: { ignoreSCT: boolean } } }[] }[];
      }[];
    }[];
  };
}

test('the Kyverno example: a ClusterPolicy that requires the approver signature on every enclave image, by digest, with the key alone', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const policy = parse(text) as Policy;
  assert.equal(policy.apiVersion, 'kyverno.io/v1');
  assert.equal(policy.kind, 'ClusterPolicy');
  assert.equal(policy.spec.validationFailureAction, 'Enforce');
  const [rule] = policy.spec.rules;
  assert.deepEqual(rule!.match.any[0]!.resources.kinds, ['Pod']);
  const [verify] = rule!.verifyImages;
  assert.ok(verify!.imageReferences.length > 0 && verify!.imageReferences.every((r) => /^[a-z0-9.-]+(:\d+)?\/\*$/.test(r)), 'registry patterns');
  assert.deepEqual([verify!.required, verify!.mutateDigest, verify!.verifyDigest], [true, true, true]);
  const keys = verify!.attestors[0]!.entries[0]!.keys;
  assert.equal(keys.rekor.ignoreTlog, true);
  assert.equal(keys.ctlog.ignoreSCT, true);
  assert.match(keys.publicKeys, /^-----BEGIN PUBLIC KEY-----\n<the base64 lines of approver\.pub>\n-----END PUBLIC KEY-----$/);

  // With an approver.pub pasted in as the comment says, the field is the PEM key, whole.
  const pem = generateKeyPair('example').publicKeyPem;
  const body = pem.trim().split('\n').slice(1, -1).join('\n                      ');
  const filled = parse(text.replace('<the base64 lines of approver.pub>', body)) as Policy;
  const key = createPublicKey(filled.spec.rules[0]!.verifyImages[0]!.attestors[0]!.entries[0]!.keys.publicKeys);
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(key.export({ type: 'spki', format: 'pem' }).toString(), pem.trim() + '\n');
});

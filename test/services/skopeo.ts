import type { RegistryService } from './registry.ts';

/**
 * skopeo flags to reach a test registry: `--tls-verify=false` for plain HTTP, else
 * `--cert-dir DIR` (a dir holding only the test CA as ca.crt), plus `--creds` when it has an account.
 * `role` prefixes them for `skopeo copy` (`--src-…` / `--dest-…`). Never relies on environment CA variables.
 */
export function skopeoFlags(reg: RegistryService, role?: 'src' | 'dest', opts: { creds?: boolean } = {}): string[] {
  const p = role ? `--${role}-` : '--';
  const flags = reg.certDir ? [`${p}cert-dir`, reg.certDir] : [`${p}tls-verify=false`];
  if ((opts.creds ?? true) && reg.username !== undefined) flags.push(`${p}creds`, `${reg.username}:${reg.password}`);
  return flags;
}

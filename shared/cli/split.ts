/**
 * `airlock split`: cut a bundle into volumes. Both sides have it (the enclave
 * may need to move a bundle on in smaller pieces), so it lives here and each
 * side's cli registers it: the connected side through `pack --volume-size`
 * (splitText), the enclave loader as a command.
 */
import type { Argv } from 'yargs';
import { dirname } from 'node:path';
import { notBuiltYet, withJson, withNetworkOptions } from './main.ts';
import { printResult } from './output.ts';

/** What split made (also pack --volume-size's `split` field). */
export interface SplitResult {
  bundle: string;
  volumes: number;
  files: string[];
}

/** The volumes, in words. */
export function splitText({ bundle, volumes, files }: SplitResult): string {
  return `split ${bundle} into ${volumes} volume${volumes === 1 ? '' : 's'}:\n${files.map((f) => `  ${f}`).join('\n')}\ncarry all of them; give the first volume (.000) to verify, inspect and load`;
}

export function registerSplitCommand(y: Argv): Argv {
  return y.command(
    'split <bundle>',
    'Split a bundle into volumes (BUNDLE.000, BUNDLE.001, ...) plus BUNDLE.parts.json',
    (b) =>
      withJson(
        withNetworkOptions(
          b
            .positional('bundle', { type: 'string', demandOption: true, describe: 'The bundle (a file or s3://...)' })
            .option('volume-size', {
              type: 'string',
              demandOption: true,
              describe: 'Largest volume size (e.g. 4G, 700M, 1048576)',
            })
            .option('out-dir', {
              type: 'string',
              describe: 'Directory for the volumes (default: next to the bundle)',
              normalize: true,
            }),
        ),
      ),
    async (argv) => {
      const bundle = argv.bundle as string;
      if (/^[a-z0-9]+:\/\//.test(bundle)) notBuiltYet('split of a remote bundle');
      const { parseVolumeSize, splitBundle } = await import('../bundle/volumes.ts');
      const { parts, files } = await splitBundle(bundle, parseVolumeSize(argv['volume-size'] as string), argv['out-dir'] ?? dirname(bundle));
      const split: SplitResult = { bundle, volumes: parts.volumes.length, files };
      printResult('split', split, Boolean(argv.json), () => splitText(split));
    },
  );
}

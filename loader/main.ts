#!/usr/bin/env node
/**
 * The one-file enclave loader's entry point (dist/airlock-loader.mjs): the
 * enclave side's commands from loader/cli.ts alone, nothing of packer/.
 */
import { hideBin } from 'yargs/helpers';
import { registerLoaderCommands } from './cli.ts';
import { EXIT_CODES_EPILOG, packageVersion, runCli } from '../shared/cli/main.ts';

await runCli(hideBin(process.argv), (y) =>
  registerLoaderCommands(
    y
      .scriptName('airlock-loader.mjs')
      .usage('node airlock-loader.mjs <command> [options]\n\nThe enclave side of airlock: verify, inspect and load bundles, promote and approve releases.')
      .version(packageVersion(import.meta.url)),
  ).epilog(EXIT_CODES_EPILOG),
);

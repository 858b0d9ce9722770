#!/usr/bin/env node
/**
 * The airlock entry point: composes the connected side's commands
 * (packer/cli.ts) and the enclave side's (loader/cli.ts) into one CLI.
 */
import { hideBin } from 'yargs/helpers';
import { registerLoaderCommands } from './loader/cli.ts';
import { registerPackerCommands } from './packer/cli.ts';
import { EXIT_CODES_EPILOG, packageVersion, runCli } from './shared/cli/main.ts';

await runCli(hideBin(process.argv), (y) =>
  registerLoaderCommands(
    registerPackerCommands(
      y
        .scriptName('airlock')
        .usage('airlock <command> [options]\n\nMove a Kubernetes application and its images into an air-gapped enclave.')
        .version(packageVersion(import.meta.url)),
    ),
  ).epilog(EXIT_CODES_EPILOG),
);

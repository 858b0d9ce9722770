import { run } from '../test/services/exec.ts';

/**
 * The demo's checkout of an environment branch, for the user to look at
 * afterwards. The git password reaches git through a credential helper given
 * on the command line (`-c`, so never written to the clone's .git/config) that
 * reads it from the environment (so it is not in any argv either): the
 * checkout left in .tmp/demo holds no secret.
 */
export async function checkoutBranch(options: { url: string; branch: string; dir: string; username: string; password: string; caFile: string }): Promise<void> {
  const helper = '!f() { test "$1" = get || exit 0; echo "username=$DEMO_GIT_USERNAME"; echo "password=$DEMO_GIT_PASSWORD"; }; f';
  await run('git', ['-c', 'credential.helper=', '-c', `credential.helper=${helper}`, 'clone', '--quiet', '--branch', options.branch, options.url, options.dir], {
    env: {
      GIT_SSL_CAINFO: options.caFile,
      GIT_TERMINAL_PROMPT: '0',
      DEMO_GIT_USERNAME: options.username,
      DEMO_GIT_PASSWORD: options.password,
    },
  });
}

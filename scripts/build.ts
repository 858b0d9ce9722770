/**
 * npm run build: the two one-file programs airlock ships, made with esbuild.
 *
 *   dist/airlock.mjs         the whole CLI (airlock.ts): what `npm install -g` runs
 *   dist/airlock-loader.mjs  the enclave side alone (loader/main.ts): copied into the
 *                            enclave, or carried inside a bundle (pack --include-loader)
 *
 * Each runs on a stock Node >= 20.19 from an empty folder: every dependency is
 * inside. ssh2's optional native add-ons (cpu-features, sshcrypto.node) stay
 * outside; ssh2 loads them in a try block and falls back to its JavaScript
 * crypto when they are missing. The version is built in, since package.json
 * does not travel with the files.
 *
 * Start-up: the commands import their heavy modules (undici, isomorphic-git,
 * ssh2, the AWS SDK) with `await import()`. Bundled as usual, V8 would still
 * parse those 2 MB on every start; so each file is built in three steps:
 *   1. the start-up graph: the entry with the commands' dynamic imports cut off;
 *   2. the command modules, as one CommonJS chunk, sharing the start-up graph's
 *      own modules (one UsageError class, one set of shutdown hooks); each
 *      command's modules are initialised when it imports them (inventory does
 *      not initialise the AWS SDK or ssh2);
 *   3. the entry again, with that chunk inside as a compressed string, unpacked
 *      and compiled (vm) the first time a command imports it.
 */
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { chmod, readFile, rm } from 'node:fs/promises';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { join, relative, resolve } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

/**
 * startupBudget: the most bytes the entry may load at start-up before the
 * build warns (the loader's `--version` must start within 3x of `node -e 0`;
 * the full CLI's packer commands import what they use up front).
 */
const ENTRIES = [
  { entry: 'airlock.ts', out: 'airlock.mjs', startupBudget: Infinity },
  { entry: 'loader/main.ts', out: 'airlock-loader.mjs', startupBudget: 500_000 },
] as const;

/** The CommonJS packages inside (ssh2, the AWS SDK...) use require() and __dirname: give them Node's. */
const COMMONJS_SHIM = [
  "import { createRequire as __airlockCreateRequire } from 'node:module';",
  "import { dirname as __airlockDirname } from 'node:path';",
  "import { fileURLToPath as __airlockFileURLToPath } from 'node:url';",
  'const require = __airlockCreateRequire(import.meta.url);',
  'const __filename = __airlockFileURLToPath(import.meta.url);',
  'const __dirname = __airlockDirname(__filename);',
].join(' ');

const LAZY = 'airlock-lazy';
const SHARED_PREFIX = 'airlock-startup:';

async function commonOptions(): Promise<BuildOptions> {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  return {
    bundle: true,
    platform: 'node',
    target: 'node20.19',
    external: ['cpu-features', '*.node'],
    define: { AIRLOCK_BUILD_VERSION: JSON.stringify(pkg.version) },
    // AIRLOCK_BUILD_MINIFY=0: readable names and module comments, for profiling (BENCH_PROFILE=1 npm run bench).
    minify: process.env.AIRLOCK_BUILD_MINIFY !== '0',
    legalComments: 'none',
    logLevel: 'warning',
    absWorkingDir: root,
    // yargs measures its help with string-width, whose loading alone costs every start about 0.05 s of CPU.
    alias: { 'string-width': './shared/cli/string-width.ts' },
  };
}

const isProjectFile = (path: string): boolean => path !== '' && !path.includes('/node_modules/');

/**
 * Resolve a project module's dynamic imports with `onTarget` (the targets are
 * project files: `await import('./load.ts')`); other imports resolve as usual.
 */
function dynamicImports(name: string, onTarget: (absolutePath: string) => { path: string; namespace?: string; external?: boolean }): Plugin {
  return {
    name,
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind !== 'dynamic-import' || !isProjectFile(args.importer) || args.pluginData === name) return undefined;
        const resolved = await b.resolve(args.path, { kind: 'import-statement', resolveDir: args.resolveDir, importer: args.importer, pluginData: name });
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        return onTarget(resolved.path);
      });
    },
  };
}

/** Step 1: the project modules the entry loads at start-up, and the targets of their dynamic imports. */
async function startupGraph(common: BuildOptions, entry: string, startupBudget: number): Promise<{ modules: Set<string>; lazyTargets: string[] }> {
  const lazyTargets: string[] = [];
  const result = await build({
    ...common,
    format: 'esm',
    entryPoints: [entry],
    outfile: join(dist, 'startup.mjs'),
    write: false,
    metafile: true,
    plugins: [
      dynamicImports('cut', (path) => {
        if (!lazyTargets.includes(path)) lazyTargets.push(path);
        return { path, external: true };
      }),
    ],
  });
  const modules = new Set(
    Object.keys(result.metafile.inputs)
      .map((p) => resolve(root, p))
      .filter(isProjectFile),
  );
  const startupBytes = result.outputFiles.find((f) => f.path.endsWith('.mjs'))?.contents.byteLength ?? 0;
  if (startupBytes > startupBudget) {
    // An error, not a warning: one eager import of the registry or git clients undoes the loader's fast start.
    throw new Error(`${entry} loads ${startupBytes} bytes at start-up (budget ${startupBudget}): import heavy modules inside the command handlers`);
  }
  return { modules, lazyTargets };
}

/**
 * Step 2: the dynamic imports' targets as one CommonJS chunk (exports m0, m1, ...),
 * with the start-up graph's project modules left out as `require('airlock-startup:PATH')`.
 */
async function lazyChunk(common: BuildOptions, startup: Set<string>, targets: string[]): Promise<{ code: string; shared: string[] }> {
  const shared = new Set<string>();
  const shareStartupModules: Plugin = {
    name: 'share-startup-modules',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === 'share' || (args.importer !== '' && !isProjectFile(args.importer)) || args.kind === 'entry-point') return undefined;
        const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'share' });
        if (!startup.has(resolved.path)) return undefined;
        shared.add(resolved.path);
        return { path: SHARED_PREFIX + relative(root, resolved.path), external: true };
      });
    },
  };
  const result = await build({
    ...common,
    format: 'cjs',
    // Each target behind a function: loading the chunk initialises no module; a command initialises what it imports, no more.
    stdin: { contents: targets.map((t, i) => `export const m${i} = () => require(${JSON.stringify(t)});`).join('\n'), resolveDir: root, sourcefile: 'commands.ts', loader: 'ts' },
    write: false,
    outfile: join(dist, 'commands.cjs'),
    plugins: [shareStartupModules],
  });
  return { code: result.outputFiles[0].text, shared: [...shared] };
}

/**
 * The chunk as it sits in the entry: brotli-compressed, as base64. Every start
 * reads and parses the whole file, the chunk included: 2 MB of JavaScript in a
 * string literal cost every command (--version and verify too) about 0.1 s of
 * CPU; a quarter of the bytes, in characters that need no unescaping, cost
 * far less, and unpacking takes a few milliseconds when a command needs it.
 */
function packChunk(code: string): string {
  const packed = brotliCompressSync(Buffer.from(code, 'utf8'), {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: Buffer.byteLength(code) },
  });
  return packed.toString('base64');
}

/** Step 3's runtime: unpacks and compiles the chunk on first use, handing it the start-up graph's modules. */
function lazyRuntimeModule(chunk: { code: string; shared: string[] }): string {
  return [
    "import { runInThisContext } from 'node:vm';",
    "import { brotliDecompressSync } from 'node:zlib';",
    ...chunk.shared.map((path, i) => `import * as shared${i} from ${JSON.stringify(path)};`),
    `const shared = { ${chunk.shared.map((path, i) => `${JSON.stringify(SHARED_PREFIX + relative(root, path))}: shared${i}`).join(', ')} };`,
    `const packed = ${JSON.stringify(packChunk(chunk.code))};`,
    'let commands;',
    'export function commandModules() {',
    '  if (commands === undefined) {',
    "    const code = brotliDecompressSync(Buffer.from(packed, 'base64')).toString('utf8');",
    '    const module = { exports: {} };',
    "    const wrapper = runInThisContext('(function (exports, require, module, __filename, __dirname) {' + code + '\\n})', { filename: __filename + ' (commands)' });",
    '    wrapper(module.exports, (id) => shared[id] ?? require(id), module, __filename, __dirname);',
    '    commands = module.exports;',
    '  }',
    '  return commands;',
    '}',
  ].join('\n');
}

/** Step 3: the entry, each dynamic import answered from the lazily compiled chunk. */
async function buildEntry(common: BuildOptions, { entry, out, startupBudget }: (typeof ENTRIES)[number]): Promise<void> {
  const outfile = join(dist, out);
  const { modules, lazyTargets } = await startupGraph(common, entry, startupBudget);
  const chunk = await lazyChunk(common, modules, lazyTargets);
  const fromChunk: Plugin = {
    name: 'from-chunk',
    setup(b) {
      b.onResolve({ filter: /^runtime$/, namespace: LAZY }, () => ({ path: 'runtime', namespace: LAZY }));
      b.onLoad({ filter: /^runtime$/, namespace: LAZY }, () => ({ contents: lazyRuntimeModule(chunk), resolveDir: root, loader: 'js' }));
      b.onLoad({ filter: /^m\d+$/, namespace: LAZY }, (args) => ({
        contents: `module.exports = require('runtime').commandModules().${args.path}();`,
        resolveDir: root,
        loader: 'js',
      }));
    },
  };
  await build({
    ...common,
    format: 'esm',
    entryPoints: [join(root, entry)],
    outfile,
    // The entry files carry their own shebang; esbuild keeps it as the first line.
    banner: { js: COMMONJS_SHIM },
    plugins: [dynamicImports('lazy', (path) => ({ path: `m${lazyTargets.indexOf(path)}`, namespace: LAZY })), fromChunk],
  });
  await chmod(outfile, 0o755);
}

async function main(): Promise<void> {
  const common = await commonOptions();
  await rm(dist, { recursive: true, force: true });
  for (const entry of ENTRIES) await buildEntry(common, entry);
  process.stdout.write(`built ${ENTRIES.map((e) => `dist/${e.out}`).join(', ')}\n`);
}

await main();

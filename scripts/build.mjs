#!/usr/bin/env node
/**
 * Builds the bundles into dist/:
 *   dist/extension.js   VS Code extension host (Node, CommonJS)     entry src/extension/extension.ts
 *   dist/job-worker.js  quantize/analysis worker thread (Node, CJS) entry src/runtime/worker/job-worker.ts
 *   dist/webview.js     model editor webview (browser, ES module)   entry webview/main.ts
 *   dist/results.js     results panel webview (browser, ES module)  entry webview/results/main.ts
 *   dist/cli.js         `onnx-quant` command line (Node, CommonJS) entry src/cli/bin.ts
 *
 * Flags:
 *   --watch        rebuild on change (keeps running; errors are reported, not fatal)
 *   --production   minify, no source maps (default: linked source maps, no minification)
 *
 * Exits non-zero when any bundle fails to build.
 */
import * as esbuild from 'esbuild';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');

const KNOWN_FLAGS = new Set(['--watch', '--production']);
const args = process.argv.slice(2);
for (const a of args) {
  if (!KNOWN_FLAGS.has(a)) {
    console.error(`build: unknown flag ${a} (known: ${[...KNOWN_FLAGS].join(', ')})`);
    process.exit(2);
  }
}
const watch = args.includes('--watch');
const production = args.includes('--production');

const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
const version = typeof pkg.version === 'string' ? pkg.version : '0.0.0';

const SHEBANG = '#!/usr/bin/env node';

/** Options every bundle shares. */
const common = {
  absWorkingDir: root,
  bundle: true,
  minify: production,
  sourcemap: production ? false : 'linked',
  sourcesContent: !production,
  logLevel: 'silent', // reported by the plugin below, once per bundle
  metafile: true,
  legalComments: production ? 'none' : 'inline',
  define: { ONNX_QUANT_VERSION: JSON.stringify(version) },
};

/** Node bundles: the extension host and the CLI. */
const nodeCommon = {
  ...common,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Prefer CommonJS entry points for Node packages: the output is CommonJS.
  mainFields: ['main', 'module'],
};

/** @type {Array<{ name: string; options: import('esbuild').BuildOptions; after?: (outfile: string) => Promise<void> }>} */
const bundles = [
  {
    name: 'extension',
    options: {
      ...nodeCommon,
      entryPoints: ['src/extension/extension.ts'],
      outfile: 'dist/extension.js',
      // vscode is provided by the extension host; onnxruntime-node is a native addon shipped in node_modules.
      external: ['vscode', 'onnxruntime-node'],
    },
  },
  {
    // The extension runs quantization and analysis here, off the extension host's thread; it sits
    // next to extension.js, so onnxruntime-node resolves from the same node_modules.
    name: 'job-worker',
    options: {
      ...nodeCommon,
      entryPoints: ['src/runtime/worker/job-worker.ts'],
      outfile: 'dist/job-worker.js',
      external: ['onnxruntime-node'],
    },
  },
  {
    name: 'results',
    options: {
      ...common,
      entryPoints: ['webview/results/main.ts'],
      outfile: 'dist/results.js',
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      define: {},
    },
  },
  {
    name: 'webview',
    options: {
      ...common,
      entryPoints: ['webview/main.ts'],
      outfile: 'dist/webview.js',
      platform: 'browser',
      format: 'esm',
      // VS Code's webviews run in its Electron Chromium.
      target: 'es2022',
      define: {},
    },
  },
  {
    name: 'cli',
    options: {
      ...nodeCommon,
      entryPoints: ['src/cli/bin.ts'],
      outfile: 'dist/cli.js',
      external: ['onnxruntime-node'],
      banner: { js: SHEBANG },
    },
    after: async (outfile) => {
      await ensureSingleShebang(outfile);
      await chmod(outfile, 0o755);
    },
  },
];

/**
 * esbuild keeps an entry point's own `#!` line and also writes the banner; keep exactly one
 * shebang, first, whichever way the entry is written.
 */
async function ensureSingleShebang(file) {
  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && lines[i].startsWith('#!')) i++;
  if (i === 1 && lines[0] === SHEBANG) return;
  await writeFile(file, [SHEBANG, ...lines.slice(i)].join('\n'));
}

function formatSize(n) {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(2)} MB`;
}

/** Reports errors, warnings and output sizes after each (re)build, and runs the bundle's post step. */
function reporter(bundle) {
  return {
    name: 'onnx-quant-report',
    setup(build) {
      let started = 0;
      build.onStart(() => {
        started = Date.now();
      });
      build.onEnd(async (result) => {
        const ms = Date.now() - started;
        if (result.warnings.length) {
          const lines = await esbuild.formatMessages(result.warnings, { kind: 'warning', color: process.stderr.isTTY });
          process.stderr.write(lines.join(''));
        }
        if (result.errors.length) {
          const lines = await esbuild.formatMessages(result.errors, { kind: 'error', color: process.stderr.isTTY });
          process.stderr.write(lines.join(''));
          console.error(`build: ${bundle.name} failed with ${result.errors.length} error(s)`);
          return;
        }
        if (bundle.after) {
          try {
            await bundle.after(path.join(root, bundle.options.outfile));
          } catch (err) {
            console.error(`build: ${bundle.name} post-build step failed: ${err instanceof Error ? err.message : String(err)}`);
            process.exitCode = 1;
            return;
          }
        }
        const outputs = Object.entries(result.metafile?.outputs ?? {})
          .filter(([file]) => !file.endsWith('.map'))
          .map(([file, info]) => `${file} ${formatSize(info.bytes)}`);
        console.log(`build: ${bundle.name} -> ${outputs.join(', ')} (${ms} ms${production ? ', production' : ''})`);
      });
    },
  };
}

// Stale bundles and source maps from another mode must not linger in dist/.
await rm(dist, { recursive: true, force: true });

const configs = bundles.map((b) => ({ ...b.options, plugins: [reporter(b)] }));

if (watch) {
  const contexts = await Promise.all(configs.map((c) => esbuild.context(c)));
  await Promise.all(contexts.map((ctx) => ctx.watch()));
  console.log('build: watching for changes (Ctrl+C to stop)');
  const stop = async () => {
    await Promise.all(contexts.map((ctx) => ctx.dispose()));
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} else {
  const results = await Promise.allSettled(configs.map((c) => esbuild.build(c)));
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length) {
    // The reporter already printed esbuild's messages; add anything it could not see.
    for (const f of failed) {
      const err = f.reason;
      if (!(err && Array.isArray(err.errors))) console.error(`build: ${err instanceof Error ? err.stack : String(err)}`);
    }
    process.exitCode = 1;
  }
}

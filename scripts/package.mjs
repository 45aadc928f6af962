#!/usr/bin/env node
/**
 * Packages the extension as a platform-specific VSIX, offline:
 *
 *   npm run package [-- --target linux-x64] [--out FILE] [--no-build]
 *
 * 1. `npm run build -- --production` (skipped with --no-build);
 * 2. `vsce package --target <target>`: vsce asks `npm list --production` for the dependency
 *    folders and filters them with .vscodeignore, which keeps only onnxruntime-node and
 *    onnxruntime-common (the bundles inline everything else). onnxruntime-node ships native
 *    binaries for every platform (about 290 MB); the VSIX gets only the target's. vsce applies
 *    every exclusion before every negation, so an exclusion cannot trim a negated folder: this script
 *    hands vsce a copy of .vscodeignore whose `!node_modules/onnxruntime-node/bin/...` line names
 *    the target's folder only (and which also leaves out the end-to-end tests' cache);
 * 3. checks what went in (the bundles, the target's native binaries, nothing of other platforms,
 *    no sources or caches) and prints the file's size.
 *
 * Writes <name>-<version>-<target>.vsix in the repository root (or --out). Exits non-zero on
 * failure.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** vsce target → onnxruntime-node's binaries folder, bin/napi-v<N>/<os>/<arch>. */
const ORT_PLATFORM = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'darwin-arm64': 'darwin/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
};
const ORT_BIN = 'node_modules/onnxruntime-node/bin/';
/** Left out whatever .vscodeignore says: the end-to-end tests' install of code-server. */
const ALWAYS_EXCLUDED = ['.e2e-cache/**'];

function usage(message) {
  console.error(`package: ${message}\nusage: node scripts/package.mjs [--target ${Object.keys(ORT_PLATFORM).join('|')}] [--out FILE] [--no-build]`);
  process.exit(2);
}

let target = 'linux-x64';
let out;
let build = true;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--target' || a === '--out') {
    const v = args[++i];
    if (!v) usage(`${a} needs a value`);
    if (a === '--target') target = v;
    else out = path.resolve(v);
  } else if (a === '--no-build') build = false;
  else usage(`unknown argument ${a}`);
}
const ortPlatform = ORT_PLATFORM[target];
if (!ortPlatform) usage(`unsupported target ${target}: onnxruntime-node ships binaries for ${Object.keys(ORT_PLATFORM).join(', ')}`);

const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
out ??= path.join(root, `${manifest.name}-${manifest.version}-${target}.vsix`);

function run(command, argv, what) {
  const started = Date.now();
  const r = spawnSync(command, argv, {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'], // vsce's confirmation prompts get EOF and abort instead of waiting
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_update_notifier: 'false' },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`package: ${what} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  return Date.now() - started;
}

function formatSize(n) {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** .vscodeignore with onnxruntime-node's binaries narrowed to the target's. */
function ignoreFileFor() {
  const lines = readFileSync(path.join(root, '.vscodeignore'), 'utf8').split(/\r?\n/);
  let narrowed = 0;
  const result = lines.map((line) => {
    const t = line.trim();
    if (t.startsWith(`!${ORT_BIN}`)) {
      narrowed++;
      return `!${ORT_BIN}napi-v*/${ortPlatform}/**`;
    }
    return line;
  });
  if (narrowed === 0) {
    // Nothing re-includes the binaries: the VSIX check below reports it.
    console.warn(`package: .vscodeignore has no !${ORT_BIN}… line`);
  }
  result.push('', `# Added by scripts/package.mjs for --target ${target}`, ...ALWAYS_EXCLUDED);
  return result.join('\n');
}

/** Names (and sizes) of the VSIX's entries, from the zip's central directory. */
function listVsix(file) {
  const entries = [];
  unzipSync(readFileSync(file), {
    filter: (f) => {
      entries.push({ name: f.name, size: f.originalSize });
      return false;
    },
  });
  return entries;
}

function checkVsix(entries) {
  const names = entries.map((e) => e.name);
  const problems = [];
  const required = [
    'extension/package.json',
    'extension/dist/extension.js',
    'extension/dist/webview.js',
    'extension/dist/job-worker.js',
    'extension/dist/results.js',
    'extension/media/editor.css',
    'extension/media/results.css',
    'extension/schemas/recipe.schema.json',
    'extension/node_modules/onnxruntime-common/package.json',
    'extension/node_modules/onnxruntime-node/package.json',
  ];
  for (const r of required) if (!names.includes(r)) problems.push(`missing ${r}`);
  const native = new RegExp(`^extension/${ORT_BIN}napi-v\\d+/${ortPlatform}/onnxruntime_binding\\.node$`);
  if (!names.some((n) => native.test(n))) problems.push(`missing onnxruntime-node's ${ortPlatform} binding`);
  const otherPlatform = new RegExp(`^extension/${ORT_BIN}napi-v\\d+/(?!${ortPlatform}/)`);
  const forbidden = [
    [otherPlatform, "another platform's onnxruntime binaries"],
    [/^extension\/\.e2e-cache\//, 'the end-to-end test cache'],
    [/^extension\/(src|webview|test|bench|scripts)\//, 'sources or tests'],
    [/^extension\/dist\/.*\.map$/, 'source maps of our bundles (not a production build?)'],
  ];
  for (const [re, what] of forbidden) {
    const hits = names.filter((n) => re.test(n));
    if (hits.length) problems.push(`${what}: ${hits.slice(0, 3).join(', ')}${hits.length > 3 ? ` and ${hits.length - 3} more` : ''}`);
  }
  return problems;
}

const started = Date.now();
if (build) run('npm', ['run', '--silent', 'build', '--', '--production'], 'npm run build -- --production');

const tmp = mkdtempSync(path.join(tmpdir(), 'onnx-quant-package-'));
try {
  const ignoreFile = path.join(tmp, 'vscodeignore');
  writeFileSync(ignoreFile, ignoreFileFor());
  const vsce = require.resolve('@vscode/vsce/vsce');
  const vsceArgs = ['package', '--target', target, '--out', out, '--ignoreFile', ignoreFile];
  if (!manifest.repository) {
    // A local build: no repository to point README links at, so leave them relative.
    vsceArgs.push('--allow-missing-repository', '--no-rewrite-relative-links');
  }
  rmSync(out, { force: true });
  const ms = run(process.execPath, [vsce, ...vsceArgs], 'vsce package');
  console.log(`package: vsce took ${(ms / 1000).toFixed(1)} s`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const entries = listVsix(out);
const problems = checkVsix(entries);
if (problems.length) {
  for (const p of problems) console.error(`package: ${path.basename(out)}: ${p}`);
  process.exit(1);
}
const unpacked = entries.reduce((s, e) => s + e.size, 0);
console.log(
  `package: ${path.relative(process.cwd(), out) || out} ${formatSize(statSync(out).size)} ` +
    `(${entries.length} files, ${formatSize(unpacked)} unpacked; ${((Date.now() - started) / 1000).toFixed(1)} s)`,
);

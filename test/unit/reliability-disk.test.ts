/**
 * Nothing lost on a full disk or an unwritable folder, with real file systems: a 1 MB tmpfs that
 * fills up mid-write (ENOSPC), the same tmpfs remounted read-only (EROFS), and a folder without
 * write permission written by an unprivileged user (EACCES; the tests run as root, which ignores
 * permission bits, so that write runs in a child process under `setpriv` as nobody).
 *
 * saveModel directly and `onnx-quant quantize` / `analyze --write-recipe` through the CLI: a clear
 * error naming the file; the earlier output, the input and the folder exactly as they were (no
 * temporary file); an unwritable folder refused up front, before any calibration.
 *
 * Mounting needs root (CAP_SYS_ADMIN); without it these tests skip, saying so.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildDemoModel } from '../../src/cli/demo-model';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxFormatError } from '../../src/onnx/errors';
import type { ModelProto } from '../../src/onnx/proto';
import { saveModel, writeFileAtomic } from '../../src/onnx/save';
import { tempDir } from '../helpers/ort';

const ROOT = path.join(__dirname, '../..');
const NOBODY = 65534;

function mountTmpfs(dir: string, size: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
}

function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, dir], { stdio: 'pipe' });
}

function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'pipe' });
}

/** Why these tests cannot run here, or undefined when a tmpfs can be mounted (and remounted read-only). */
function mountUnavailable(): string | undefined {
  const { dir, cleanup } = tempDir();
  try {
    mountTmpfs(dir, '64k');
    try {
      remount(dir, 'ro');
    } finally {
      unmount(dir);
    }
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN; ${String(err).split('\n')[0]}): full-disk and read-only tests skipped`;
  } finally {
    cleanup();
  }
}

function setprivUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: cannot switch to an unprivileged user with setpriv';
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'true']);
  return r.status === 0 ? undefined : `setpriv cannot switch to uid ${NOBODY}: ${r.error?.message ?? r.stderr.toString()}`;
}

/** A model of about `mb` megabytes of float weights (a chain of Gemm layers). */
function modelOfSize(mb: number, seed: number): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed });
  let x = b.input('x', DataType.FLOAT, [1, 256]);
  const layers = Math.max(1, Math.round((mb * 1e6) / (256 * 256 * 4)));
  for (let i = 0; i < layers; i++) x = b.gemm(x, 256, 256);
  b.output(x, DataType.FLOAT, [1, 256]);
  return b.build();
}

/** Every file of a folder with its bytes: what "exactly as it was" compares. */
function snapshot(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

function assertSame(dir: string, before: Map<string, Buffer>, what: string): void {
  const now = snapshot(dir);
  assert.deepEqual([...now.keys()].sort(), [...before.keys()].sort(), `${what}: the same files, no temporary file left`);
  for (const [f, bytes] of before) assert.ok(now.get(f)!.equals(bytes), `${what}: ${f} is unchanged`);
}

/** The CLI from the sources (the bundle may be older than the tree), in a child process. */
function cli(args: string[], opts: { uid?: number } = {}): { status: number | null; stderr: string; stdout: string; ms: number } {
  const node = [process.execPath, '--import', 'tsx', path.join(ROOT, 'src/cli/bin.ts'), ...args];
  const argv = opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', ...node] : node;
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: 'utf8', env: { ...process.env, HOME: '/tmp' }, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, ms: performance.now() - t0 };
}

const noMount = mountUnavailable();
const noSetpriv = setprivUnavailable();

describe('full disk and read-only folders', { skip: noMount }, () => {
  let dir: string;
  let cleanup: () => void;
  let mnt: string;
  let input: string;
  let inputBytes: Buffer;

  before(() => {
    ({ dir, cleanup } = tempDir());
    fs.chmodSync(dir, 0o755); // readable by the unprivileged user of the EACCES tests
    input = path.join(dir, 'in.onnx');
    saveModel(buildDemoModel(), input);
    inputBytes = fs.readFileSync(input);
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
  });
  after(() => cleanup());

  /** A fresh 1 MB tmpfs at `mnt` for one test. */
  const withDisk = async (fn: () => void | Promise<void>) => {
    mountTmpfs(mnt, '1m');
    try {
      await fn();
    } finally {
      unmount(mnt);
    }
  };

  it('saveModel: a full disk mid-write gives a clear error and keeps the earlier model', () =>
    withDisk(() => {
      const out = path.join(mnt, 'out.onnx');
      saveModel(modelOfSize(0.3, 1), out);
      const earlier = snapshot(mnt);
      assert.throws(
        () => saveModel(modelOfSize(2, 2), out),
        (err: Error) => err instanceof OnnxFormatError && err.message.startsWith(`${out}: `) && /disk is full/.test(err.message),
      );
      assertSame(mnt, earlier, 'inline model');
    }));

  it('saveModel: a full disk while writing external data keeps the earlier model and its data', () =>
    withDisk(() => {
      const out = path.join(mnt, 'out.onnx');
      saveModel(modelOfSize(0.3, 1), out, { externalData: 'always' });
      const earlier = snapshot(mnt);
      assert.deepEqual([...earlier.keys()].sort(), ['out.onnx', 'out.onnx.data']);
      assert.throws(
        () => saveModel(modelOfSize(2, 2), out, { externalData: 'always' }),
        (err: Error) => err instanceof OnnxFormatError && err.message.startsWith(`${out}: `) && /disk is full/.test(err.message),
      );
      assertSame(mnt, earlier, 'external data');
    }));

  it('writeFileAtomic: a full disk keeps the earlier file', () =>
    withDisk(() => {
      const out = path.join(mnt, 'recipe.json');
      writeFileAtomic(out, '{"version": 1}\n');
      fs.writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(1000 * 1024));
      const earlier = snapshot(mnt);
      assert.throws(() => writeFileAtomic(out, 'x'.repeat(200_000)), (err: Error) => err.message.startsWith(`${out}: `) && /disk is full/.test(err.message));
      assertSame(mnt, earlier, 'recipe');
    }));

  it('saveModel: a read-only folder is refused up front, naming the file', () =>
    withDisk(() => {
      const out = path.join(mnt, 'out.onnx');
      saveModel(modelOfSize(0.1, 1), out);
      const earlier = snapshot(mnt);
      remount(mnt, 'ro');
      assert.throws(
        () => saveModel(modelOfSize(0.1, 2), out),
        (err: Error) => err instanceof OnnxFormatError && err.message.startsWith(`${out}: cannot write to folder ${mnt}: `) && /read-only file system/.test(err.message),
      );
      assertSame(mnt, earlier, 'read-only');
    }));

  it('quantize: a full disk gives exit code 2 naming the output; earlier output and input untouched', { timeout: 180_000 }, () =>
    withDisk(() => {
      const out = path.join(mnt, 'out.onnx');
      saveModel(modelOfSize(0.1, 1), out);
      // Leave about 64 KB: the quantized demo model (≈ 250 KB) cannot fit.
      fs.writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(1024 * 1024 - 64 * 1024 - fs.statSync(out).size));
      const earlier = snapshot(mnt);
      const r = cli(['quantize', input, '-o', out, '--samples', '4', '--latency-runs', '0']);
      assert.equal(r.status, 2, `exit code 2 (stderr: ${r.stderr})`);
      assert.match(r.stderr, new RegExp(`^onnx-quant: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*disk is full`, 'm'));
      assertSame(mnt, earlier, 'quantize on a full disk');
      assert.ok(fs.readFileSync(input).equals(inputBytes), 'the input is unchanged');
    }));

  it('quantize and analyze --write-recipe: a read-only folder is refused before any work', { timeout: 120_000 }, () =>
    withDisk(() => {
      const out = path.join(mnt, 'out.onnx');
      saveModel(modelOfSize(0.1, 1), out);
      const earlier = snapshot(mnt);
      remount(mnt, 'ro');
      const q = cli(['quantize', input, '-o', out, '--progress', 'ndjson']);
      assert.equal(q.status, 2, q.stderr);
      assert.match(q.stderr, /cannot write to folder .*: it is on a read-only file system/);
      assert.ok(q.stderr.includes(out), 'the message names the output');
      assert.ok(!q.stderr.includes('"calibrate"'), `refused before calibration: ${q.stderr}`);
      const recipe = path.join(mnt, 'recipe.json');
      const a = cli(['analyze', input, '--write-recipe', recipe, '--progress', 'ndjson']);
      assert.equal(a.status, 2, a.stderr);
      assert.match(a.stderr, /recipe\.json: cannot write to folder .*: it is on a read-only file system/);
      assert.ok(!a.stderr.includes('"phase"'), `refused before the analysis: ${a.stderr}`);
      assertSame(mnt, earlier, 'read-only');
      assert.ok(fs.readFileSync(input).equals(inputBytes), 'the input is unchanged');
    }));
});

describe('a folder the user cannot write', { skip: noSetpriv }, () => {
  let dir: string;
  let cleanup: () => void;
  let locked: string;
  let input: string;

  before(() => {
    ({ dir, cleanup } = tempDir());
    fs.chmodSync(dir, 0o755);
    input = path.join(dir, 'in.onnx');
    saveModel(buildDemoModel(), input);
    locked = path.join(dir, 'locked');
    fs.mkdirSync(locked);
    fs.writeFileSync(path.join(locked, 'out.onnx'), 'earlier output');
    fs.chmodSync(locked, 0o555);
  });
  after(() => cleanup());

  it('saveModel as an unprivileged user: refused up front with EACCES in words', () => {
    const out = path.join(locked, 'out.onnx');
    const code = `const { saveModel } = require(${JSON.stringify(path.join(ROOT, 'src/onnx/save.ts'))});
const { buildDemoModel } = require(${JSON.stringify(path.join(ROOT, 'src/cli/demo-model.ts'))});
try { saveModel(buildDemoModel(), ${JSON.stringify(out)}); console.log('saved'); } catch (e) { console.log(e.name + ': ' + e.message); }`;
    const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '--import', 'tsx', '-e', code], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, HOME: '/tmp' },
    });
    assert.equal(r.stdout.trim(), `OnnxFormatError: ${out}: cannot write to folder ${locked}: permission denied`, r.stderr);
    assert.deepEqual(fs.readdirSync(locked), ['out.onnx']);
    assert.equal(fs.readFileSync(path.join(locked, 'out.onnx'), 'utf8'), 'earlier output');
  });

  it('quantize as an unprivileged user: exit code 2 before any work', { timeout: 120_000 }, () => {
    const out = path.join(locked, 'out.onnx');
    const r = cli(['quantize', input, '-o', out, '--progress', 'ndjson'], { uid: NOBODY });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `onnx-quant: ${out}: cannot write to folder ${locked}: permission denied`);
    assert.equal(fs.readFileSync(path.join(locked, 'out.onnx'), 'utf8'), 'earlier output');
    assert.deepEqual(fs.readdirSync(locked), ['out.onnx']);
  });
});

/**
 * A model with more than 2 GB of float32 weights (34 MatMul/Gemm layers of 4096 × 4096, 2.28 GB)
 * in external data, through `inspect`, the weight-reading path, `analyze --sensitivity none` and
 * `quantize --mode weight-only --weight-type int4`, each in a fresh process whose peak RSS
 * (getrusage maxRSS; per phase from /proc for the commands with `--progress ndjson`) is measured;
 * the quantized output must use external data and run in onnxruntime-node.
 *
 * Not part of `npm test`: it writes about 5 GB and takes minutes. Run it with
 * `scripts/large-model-test.sh` (which `.ci/run` calls). Environment:
 *   ONNX_QUANT_LARGE_DIR      where the model is written (default: the OS temp folder)
 *   ONNX_QUANT_LARGE_LAYERS   layers (default 34)        ONNX_QUANT_LARGE_SIZE  K = N (default 4096)
 *   ONNX_QUANT_LARGE_REPORT   also write the measurements to this JSON file
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OnnxModel } from '../../src/onnx/model';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/cli.js');
const LAYERS = Number(process.env.ONNX_QUANT_LARGE_LAYERS ?? 34);
const SIZE = Number(process.env.ONNX_QUANT_LARGE_SIZE ?? 4096);
/** Weight bytes: every layer's [SIZE, SIZE] float32 weight, plus the Gemm layers' biases. */
const WEIGHT_BYTES = LAYERS * SIZE * SIZE * 4 + Math.floor(LAYERS / 2) * SIZE * 4;
/** Peak RSS allowed for the steps that must stream, as a share of the weights' size. */
const STREAMING_RSS_SHARE = 0.5;

interface StepRun {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  maxRssBytes: number;
  /** Peak RSS per phase named by `--progress ndjson` events (Linux: sampled from /proc every 50 ms). */
  phaseRssBytes: Record<string, number>;
}

function sampleRss(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const MB = 2 ** 20;
const results: Record<string, { seconds: number; maxRssMB: number; note?: string }> = {};

describe(`model over 2 GB (${LAYERS} × [${SIZE}, ${SIZE}] float32 = ${(WEIGHT_BYTES / 2 ** 30).toFixed(2)} GiB of external data)`, () => {
  const base = process.env.ONNX_QUANT_LARGE_DIR ?? os.tmpdir();
  let dir = '';
  let model = '';
  let quantized = '';
  let probe = '';
  let skip: string | false = false;
  /** sha256 of the quantized model's output, once it ran. */
  let quantizedOutput = '';

  /**
   * Runs a command in a fresh process with the RSS probe preloaded. With `phases`, the command's
   * `--progress ndjson` events on stderr name the phase each RSS sample is counted in.
   */
  function runStep(args: string[], opts: { tsx?: boolean; phases?: boolean } = {}): Promise<StepRun> {
    const rssFile = path.join(dir, `rss-${process.hrtime.bigint()}.txt`);
    const execArgs = [...(opts.tsx ? ['--import', 'tsx'] : []), '--require', probe, ...args];
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, execArgs, { cwd: ROOT, env: { ...process.env, ONNX_QUANT_RSS_FILE: rssFile }, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const phaseRssBytes: Record<string, number> = {};
      let phase = 'start';
      let pending = '';
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => {
        err.push(d);
        if (!opts.phases) return;
        pending += d.toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          try {
            const e = JSON.parse(line) as { phase?: unknown };
            if (typeof e.phase === 'string') phase = e.phase;
          } catch {
            // Not an event line.
          }
        }
      });
      const timer = opts.phases
        ? setInterval(() => {
            const rss = child.pid === undefined ? undefined : sampleRss(child.pid);
            if (rss !== undefined) phaseRssBytes[phase] = Math.max(phaseRssBytes[phase] ?? 0, rss);
          }, 50)
        : undefined;
      child.on('error', reject);
      child.on('close', (code) => {
        if (timer) clearInterval(timer);
        let maxRssBytes = NaN;
        try {
          maxRssBytes = Number(fs.readFileSync(rssFile, 'utf8'));
          fs.rmSync(rssFile);
        } catch {
          // The process died before its exit handler ran.
        }
        resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), seconds: (performance.now() - start) / 1000, maxRssBytes, phaseRssBytes });
      });
    });
  }

  function note(step: string, r: StepRun, extra?: string): void {
    const phases = Object.entries(r.phaseRssBytes).map(([p, b]) => `${p} ${Math.round(b / MB)} MB`).join(', ');
    if (phases) extra = `${extra ? `${extra}; ` : ''}peak RSS by phase: ${phases}`;
    results[step] = { seconds: Math.round(r.seconds * 10) / 10, maxRssMB: Math.round(r.maxRssBytes / MB), ...(extra ? { note: extra } : {}) };
    console.log(`# ${step}: ${r.seconds.toFixed(1)} s, peak RSS ${(r.maxRssBytes / MB).toFixed(0)} MB (${((100 * r.maxRssBytes) / WEIGHT_BYTES).toFixed(1)}% of the weights)${extra ? `; ${extra}` : ''}`);
  }

  function lastJson<T>(r: StepRun): T {
    const line = r.stdout.trim().split('\n').pop() ?? '';
    return JSON.parse(line) as T;
  }

  before(async () => {
    // Model + staging copy while building + quantized output, with room to spare.
    const free = fs.statfsSync(base);
    const needed = 2.4 * WEIGHT_BYTES;
    if (free.bavail * free.bsize < needed) {
      skip = `needs ${(needed / 2 ** 30).toFixed(1)} GiB free in ${base}, has ${((free.bavail * free.bsize) / 2 ** 30).toFixed(1)} GiB`;
      return;
    }
    assert.ok(fs.existsSync(CLI), 'dist/cli.js is missing: run npm run build first');
    dir = fs.mkdtempSync(path.join(base, 'onnx-quant-large-'));
    model = path.join(dir, 'large.onnx');
    quantized = path.join(dir, 'large.int4.onnx');
    probe = path.join(dir, 'rss-probe.cjs');
    fs.writeFileSync(
      probe,
      "process.on('exit', () => { try { require('fs').writeFileSync(process.env.ONNX_QUANT_RSS_FILE, String(process.resourceUsage().maxRSS * 1024)); } catch {} });\n",
    );
    const r = await runStep([path.join(__dirname, 'large-model-steps.ts'), 'build', model, String(LAYERS), String(SIZE)], { tsx: true });
    assert.equal(r.code, 0, r.stderr);
    const built = lastJson<{ weightBytes: number; externalBytes: number }>(r);
    note('build (saveModel, externalData: always)', r, `${(built.externalBytes / 2 ** 30).toFixed(2)} GiB written to ${path.basename(model)}.data`);
    assert.equal(built.weightBytes, WEIGHT_BYTES);
    assert.ok(built.externalBytes >= WEIGHT_BYTES);
    assert.ok(r.maxRssBytes < STREAMING_RSS_SHARE * WEIGHT_BYTES, 'saveModel copies external tensors one at a time');
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    console.log(`# results: ${JSON.stringify(results)}`);
    if (process.env.ONNX_QUANT_LARGE_REPORT) fs.writeFileSync(process.env.ONNX_QUANT_LARGE_REPORT, JSON.stringify({ layers: LAYERS, size: SIZE, weightBytes: WEIGHT_BYTES, steps: results }, null, 2));
  });

  it('inspect --json reads no tensor data', async (t) => {
    if (skip) return t.skip(skip);
    const r = await runStep([CLI, 'inspect', model, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { weights: { count: number; bytes: number; byLocation: { external: number } } };
    note('inspect', r);
    assert.equal(j.weights.bytes, WEIGHT_BYTES);
    assert.ok(j.weights.bytes > 2 ** 31);
    assert.equal(j.weights.byLocation.external, j.weights.count);
    assert.ok(r.maxRssBytes < STREAMING_RSS_SHARE * WEIGHT_BYTES, `peak RSS ${r.maxRssBytes}`);
  });

  it('every weight is read and reduced, one tensor at a time', async (t) => {
    if (skip) return t.skip(skip);
    const r = await runStep([path.join(__dirname, 'large-model-steps.ts'), 'weights', model], { tsx: true });
    assert.equal(r.code, 0, r.stderr);
    const j = lastJson<{ tensors: number; external: number; elements: number; rms: number }>(r);
    note('weights (rawBytes + tensorToFloat32 per tensor)', r);
    assert.equal(j.elements * 4, WEIGHT_BYTES);
    assert.equal(j.external, j.tensors);
    assert.ok(j.rms > 0 && Number.isFinite(j.rms));
    assert.ok(r.maxRssBytes < STREAMING_RSS_SHARE * WEIGHT_BYTES, `peak RSS ${r.maxRssBytes}`);
  });

  it('analyze --sensitivity none: its weight statistics stream', async (t) => {
    if (skip) return t.skip(skip);
    const help = await runStep([CLI, '--help']);
    if (!/^\s*analyze\b/m.test(help.stdout)) return t.skip('onnx-quant analyze is not available yet');
    const r = await runStep([CLI, 'analyze', model, '--sensitivity', 'none', '--json', '--progress', 'ndjson'], { phases: true });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const report = JSON.parse(r.stdout) as { layers: unknown[] };
    note('analyze --sensitivity none', r, `${report.layers.length} layers`);
    assert.equal(report.layers.length, LAYERS);
    // The weight statistics read one tensor at a time. Activation statistics (calibration on
    // synthetic inputs) run the float model in onnxruntime, which holds about 1× the weights.
    const weightsPhase = r.phaseRssBytes.weights;
    if (weightsPhase !== undefined) assert.ok(weightsPhase < STREAMING_RSS_SHARE * WEIGHT_BYTES, `peak RSS in the weights phase ${weightsPhase}`);
    assert.ok(r.maxRssBytes < 2.5 * WEIGHT_BYTES, `peak RSS ${r.maxRssBytes}`);
  });

  it('quantize --mode weight-only --weight-type int4: external data output that onnxruntime runs', async (t) => {
    if (skip) return t.skip(skip);
    const r = await runStep([CLI, 'quantize', model, '-o', quantized, '--mode', 'weight-only', '--weight-type', 'int4', '--latency-runs', '0', '--json', '--progress', 'ndjson'], { phases: true });
    assert.equal(r.code, 0, `quantize failed (exit code ${r.code}): ${r.stderr.slice(0, 2000)}`);
    const report = JSON.parse(r.stdout) as { quantizedNodes: number; sizeBytes: { after: number }; eval: { outputs: { cosine: number }[] } };
    const out = OnnxModel.load(quantized);
    let external = 0;
    try {
      external = out.weights().filter((w) => w.external).length;
    } finally {
      out.close();
    }
    note('quantize --mode weight-only --weight-type int4', r, `${report.quantizedNodes} nodes, output ${(report.sizeBytes.after / MB).toFixed(0)} MB, ${external} external tensor(s), cosine ${report.eval.outputs[0]?.cosine.toFixed(4)}`);
    assert.equal(report.quantizedNodes, LAYERS);
    // int4 error compounds over 34 random layers (about 0.93 measured); this only catches garbage.
    assert.ok(report.eval.outputs[0]!.cosine > 0.8, `cosine ${report.eval.outputs[0]!.cosine}`);
    // The transform reads and quantizes one weight at a time.
    const transform = r.phaseRssBytes.quantize;
    if (transform !== undefined) assert.ok(transform < STREAMING_RSS_SHARE * WEIGHT_BYTES, `peak RSS in the quantize phase ${transform}`);
    // The comparison runs the float model in onnxruntime, which alone holds about 1× the weights;
    // more than 2.5× would mean the pipeline also holds the float weights in JavaScript.
    assert.ok(r.maxRssBytes < 2.5 * WEIGHT_BYTES, `peak RSS ${r.maxRssBytes}`);
    const run = await runStep([path.join(__dirname, 'large-model-steps.ts'), 'run', quantized, String(SIZE)], { tsx: true });
    assert.equal(run.code, 0, run.stderr);
    const j = lastJson<{ outputs: number; finite: boolean; rms: number; sha256: string }>(run);
    note('onnxruntime-node runs the quantized model (from its path)', run);
    assert.equal(j.outputs, SIZE);
    assert.ok(j.finite && j.rms > 0);
    quantizedOutput = j.sha256;
    assert.ok(
      external > 0 && fs.existsSync(`${quantized}.data`),
      `the quantized model was written inline (${fs.statSync(quantized).size} bytes, no external data): ` +
        `src/runtime/quantize-model.ts should save with externalData 'always' when the input model keeps weights in external data`,
    );
  });

  it('the quantized model with its weights in external data runs in onnxruntime-node, with the same output', async (t) => {
    if (skip) return t.skip(skip);
    if (!quantizedOutput) return t.skip('no quantized model');
    const ext = path.join(dir, 'large.int4.ext.onnx');
    const r = await runStep([path.join(__dirname, 'large-model-steps.ts'), 'resave', quantized, ext], { tsx: true });
    assert.equal(r.code, 0, r.stderr);
    const saved = lastJson<{ externalBytes: number }>(r);
    note('saveModel of the quantized model with externalData: always', r, `${(saved.externalBytes / MB).toFixed(0)} MB external`);
    assert.ok(saved.externalBytes > 0);
    const run = await runStep([path.join(__dirname, 'large-model-steps.ts'), 'run', ext, String(SIZE)], { tsx: true });
    assert.equal(run.code, 0, run.stderr);
    note('onnxruntime-node runs it (from its path)', run);
    assert.equal(lastJson<{ sha256: string }>(run).sha256, quantizedOutput, 'bit-identical output');
  });
});

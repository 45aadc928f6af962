/**
 * The job worker (src/runtime/worker): real quantization, analysis and comparison of a small CNN
 * built with our builder, run in a worker thread with progress streamed back; cancelling midway
 * rejects with an AbortError only after the thread has ended, and leaves no file behind.
 * The worker runs from the TypeScript sources through tsx (and from dist/job-worker.js when built).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { saveModel } from '../../src/onnx/save';
import { buildDemoModel } from '../../src/cli/demo-model';
import { writeNpy } from '../../src/runtime/data';
import { OnnxModel } from '../../src/onnx/model';
import { runJobInWorker } from '../../src/runtime/worker/job-host';
import type { Job } from '../../src/runtime/worker/job-protocol';
import { cliValues } from '../../src/runtime/worker/run-job';
import { resolveConfig } from '../../src/cli/quantize';
import type { PipelineProgress } from '../../src/runtime/quantize-model';
import { tempDir } from '../helpers/ort';

const SOURCE = path.join(__dirname, '../../src/runtime/worker/job-worker.ts');
const BUNDLE = path.join(__dirname, '../../dist/job-worker.js');

/** A workspace with the demo CNN and 10 calibration samples as .npy. */
function setup(): { dir: string; model: string; calib: string; cleanup: () => void } {
  const { dir, cleanup } = tempDir();
  const model = path.join(dir, 'cnn.onnx');
  saveModel(buildDemoModel(), model);
  const calib = path.join(dir, 'calib');
  fs.mkdirSync(calib);
  const rng = new Rng(3);
  for (let i = 0; i < 10; i++) {
    const x = new Float32Array(3 * 64 * 64).map(() => rng.normal());
    fs.writeFileSync(path.join(calib, `s${i}.npy`), writeNpy(x, [1, 3, 64, 64]));
  }
  return { dir, model, calib, cleanup };
}

function run(job: Job, o: { signal?: AbortSignal; onProgress?: (p: PipelineProgress) => void; script?: string } = {}) {
  return runJobInWorker(job, { workerScript: o.script ?? SOURCE, signal: o.signal, onProgress: o.onProgress });
}

describe('job worker', () => {
  it('maps job settings onto the CLI options', () => {
    assert.deepEqual(cliValues({ mode: 'dynamic', perChannel: false, samples: 8, calib: 'c', evalFraction: 0.3 }), {
      mode: 'dynamic',
      'per-tensor': true,
      samples: '8',
      calib: 'c',
      'eval-fraction': '0.3',
    });
    // The setting resolves as the flag does: over a target preset's choice, under a recipe's.
    assert.equal(resolveConfig(cliValues({ activationQdq: 'none', target: 'npu' })).activationQdq, 'none');
    assert.equal(resolveConfig(cliValues({ target: 'npu' })).activationQdq, 'every-layer');
  });

  it('quantizes in a worker thread with progress streamed back', { timeout: 120_000 }, async () => {
    const w = setup();
    try {
      const output = path.join(w.dir, 'cnn.quant.onnx');
      const phases = new Set<string>();
      const result = await run({ kind: 'quantize', input: w.model, output, settings: { calib: w.calib }, latencyRuns: 3 }, { onProgress: (p) => phases.add(p.phase) });
      assert.equal(result.kind, 'quantize');
      if (result.kind !== 'quantize') return;
      const r = result.report;
      assert.equal(r.quantizedNodes, 12);
      assert.equal(r.calibration?.synthetic, false);
      assert.ok(r.eval.outputs[0]!.sqnrDb > 20, `SQNR ${r.eval.outputs[0]!.sqnrDb}`);
      assert.ok(r.sizeBytes.ratio > 3, `ratio ${r.sizeBytes.ratio}`);
      for (const p of ['calibrate', 'quantize', 'check', 'save', 'evaluate']) assert.ok(phases.has(p), `phase ${p} reported (${[...phases].join(', ')})`);
      assert.ok(OnnxModel.load(output).proto.graph!.node.length > 0);
    } finally {
      w.cleanup();
    }
  });

  it('a failure names the file and keeps its error class', { timeout: 60_000 }, async () => {
    const w = setup();
    try {
      await assert.rejects(run({ kind: 'quantize', input: w.model, output: w.model, settings: {} }), (err: Error) => /cnn\.onnx/.test(err.message) && err.name !== 'AbortError');
      const missing = path.join(w.dir, 'missing.onnx');
      await assert.rejects(run({ kind: 'quantize', input: missing, output: path.join(w.dir, 'o.onnx'), settings: {} }), (err: Error) => err.name === 'OnnxFormatError' && err.message.includes(missing));
    } finally {
      w.cleanup();
    }
  });

  it('cancelling midway ends the worker and leaves nothing behind', { timeout: 180_000 }, async () => {
    const w = setup();
    try {
      const output = path.join(w.dir, 'cnn.quant.onnx');
      // Abort at the first event of each phase in turn: before the save and after it.
      for (const phase of ['calibrate', 'check', 'evaluate'] as const) {
        const controller = new AbortController();
        const seen: string[] = [];
        await assert.rejects(
          run(
            { kind: 'quantize', input: w.model, output, settings: { calib: w.calib }, latencyRuns: 50 },
            {
              signal: controller.signal,
              onProgress: (p) => {
                seen.push(p.phase);
                if (p.phase === phase) controller.abort();
              },
            },
          ),
          (err: Error) => err.name === 'AbortError',
        );
        assert.ok(seen.includes(phase));
        const left = fs.readdirSync(w.dir).filter((f) => f !== 'cnn.onnx' && f !== 'calib');
        assert.deepEqual(left, [], `nothing left after cancelling in ${phase}`);
      }
    } finally {
      w.cleanup();
    }
  });

  it('suggests bit widths and writes the recipe next to the model', { timeout: 180_000 }, async () => {
    const w = setup();
    try {
      const recipe = path.join(w.dir, 'cnn.recipe.json');
      const result = await run({ kind: 'analyze', input: w.model, settings: { calib: w.calib }, sensitivity: 'local', suggest: true, writeRecipe: recipe });
      assert.equal(result.kind, 'analyze');
      if (result.kind !== 'analyze') return;
      assert.equal(result.recipeWritten, recipe);
      assert.ok(result.report.suggestion);
      const written = JSON.parse(fs.readFileSync(recipe, 'utf8')) as Record<string, unknown>;
      assert.equal(written.version, 1);
      assert.equal(written.model, 'cnn.onnx');
    } finally {
      w.cleanup();
    }
  });

  it('compares a float model with its quantized version (the bundle, when built)', { timeout: 120_000 }, async () => {
    const w = setup();
    try {
      const output = path.join(w.dir, 'cnn.quant.onnx');
      const script = fs.existsSync(BUNDLE) ? BUNDLE : SOURCE;
      await run({ kind: 'quantize', input: w.model, output, settings: { calib: w.calib }, latencyRuns: 0 }, { script });
      const result = await run({ kind: 'compare', floatModel: w.model, quantModel: output, settings: { calib: w.calib }, latencyRuns: 3 }, { script });
      assert.equal(result.kind, 'compare');
      if (result.kind !== 'compare') return;
      assert.ok(result.report.comparison.outputs[0]!.sqnrDb > 20);
      assert.ok(result.report.comparison.latencyMs);
      await assert.rejects(run({ kind: 'compare', floatModel: w.model, quantModel: w.model, settings: {} }, { script }), /float model itself/);
    } finally {
      w.cleanup();
    }
  });

  it('Analyze Model\'s job: weights only, said in a log message, when synthetic inputs cannot be made', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir();
    try {
      // A symbolic feature dim: synthetic data would have to guess its size, so it refuses.
      const b = new ModelBuilder({ opset: 17, seed: 2 });
      const y = b.matMul(b.input('x', DataType.FLOAT, [1, 'features']), 8, 4, { name: 'mm' });
      b.output(y, DataType.FLOAT);
      const model = path.join(dir, 'symbolic.onnx');
      saveModel(b.build(), model);
      const job: Job = { kind: 'analyze', input: model, settings: { samples: 2 }, sensitivity: 'local', suggest: false };
      await assert.rejects(run(job), (err: Error) => err.name === 'SampleDataError');
      const logs: string[] = [];
      const result = await runJobInWorker({ ...job, weightsOnlyFallback: true }, { workerScript: SOURCE, onLog: (m) => logs.push(m) });
      assert.equal(result.kind, 'analyze');
      if (result.kind !== 'analyze') return;
      assert.ok(result.report.layers.some((l) => l.name === 'mm' && l.weight !== null), 'weight statistics');
      assert.ok(result.report.layers.every((l) => l.sensitivity.localSqnrDb === null), 'no sensitivity without data');
      assert.match(logs.join('\n'), /analysis without activations: .*features/);
    } finally {
      cleanup();
    }
  });
});

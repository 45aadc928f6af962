/**
 * The accuracy-aware loop (quantize --target-sqnr / --metric) on a model the test builds: the loop
 * must raise layers worst first, reach the target, never keep a raise that hurts, write the recipe
 * next to the output (which reproduces the model), and the written model must measure in
 * onnxruntime what the report says; a user metric module drives it from the CLI; it cancels.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { parseRecipeText } from '../../src/quant/recipe';
import { syntheticSource } from '../../src/runtime/data';
import type { SampleSource } from '../../src/runtime/samples';
import { quantizeModel } from '../../src/runtime/quantize-model';
import { runQuantize } from '../../src/cli/quantize';
import { tempDir } from '../helpers/ort';
import type * as ort from 'onnxruntime-node';

/**
 * Eight 3×3 convs with ReLU; conv3's input gets one channel scaled ×300 (an activation outlier
 * channel) so that 8-bit activations lose enough for the loop to have work.
 */
function buildModel(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 11 });
  let x = b.input('x', DataType.FLOAT, [1, 8, 12, 12]);
  for (let i = 0; i < 8; i++) {
    if (i === 3) {
      const gain = new Float32Array(8).fill(1);
      gain[0] = 300;
      x = b.node('Mul', [x, b.initializer('outlier_gain', DataType.FLOAT, [1, 8, 1, 1], gain)], {}, { name: 'outlier' });
    }
    x = b.relu(b.conv(x, 8, 8, 3, { name: `conv${i}` }));
  }
  b.output(x, DataType.FLOAT, [1, 8, 12, 12]);
  saveModel(b.build(), file);
}

/** Runs `body` with the test model written to a fresh folder, removed afterwards. */
async function withModel(body: (dir: string, file: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    const file = path.join(dir, 'm.onnx');
    buildModel(file);
    await body(dir, file);
  } finally {
    cleanup();
  }
}

/** Synthetic calibration (8 samples) and evaluation (4) sets for the model in `file`. */
function syntheticSets(file: string): { calib: SampleSource; evalSource: SampleSource } {
  const model = OnnxModel.load(file);
  const sets = { calib: syntheticSource(model, { count: 8, seed: 1 }), evalSource: syntheticSource(model, { count: 4, seed: 2 }) };
  model.close();
  return sets;
}

describe('accuracy-aware loop', () => {
  it('raises the layer that hurts, reaches the SQNR target, writes the recipe, and the model measures as reported', async () => {
    await withModel(async (dir, file) => {
    const { calib, evalSource } = syntheticSets(file);
    // Learned rounding off: the loop's own measurements are then exactly the written model's.
    // 8-bit everywhere to start from (no 16-bit stem): the outlier layer is then the worst.
    const settings = { ...DEFAULT_CONFIG, adaround: false, activationTypeAuto: false };
    const plain = await quantizeModel({ input: file, output: path.join(dir, 'plain.onnx'), config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
    const start = plain.eval.outputs[0]!.sqnrDb;
    const target = start + 6;

    const out = path.join(dir, 'loop.onnx');
    const r = await quantizeModel({ input: file, output: out, config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0, accuracyTarget: { kind: 'sqnr', minDb: target } });
    const loop = r.accuracyLoop!;
    assert.ok(loop.met, `target ${target.toFixed(1)} dB not met: ${JSON.stringify(loop.steps.map((s) => [s.layer, s.precision, s.metric]))}`);
    assert.equal(loop.stopReason, 'target met');
    assert.ok(Math.abs(loop.steps[0]!.metric - start) < 0.5, `the loop starts where plain quantization is (${loop.steps[0]!.metric} vs ${start})`);
    // Layers are raised worst first: the gains the ranking measured fall from step to step (the
    // first few steps come from one ranking).
    const kept = loop.steps.filter((s) => s.layer && s.kept);
    const gains = loop.steps.slice(1, 4).map((s) => s.gainDb!);
    for (let i = 1; i < gains.length; i++) assert.ok(gains[i]! <= gains[i - 1]! + 1e-9, `gains ${gains.join(', ')}`);
    assert.ok(gains[0]! > 0);
    for (const s of kept) assert.ok(r.settings.nodes[s.layer!], `${s.layer} is in the final settings`);
    // Kept steps never make the target quantity worse.
    let best = loop.steps[0]!.metric;
    for (const s of loop.steps.slice(1)) {
      if (s.kept) {
        assert.ok(s.metric >= best);
        best = s.metric;
      }
    }
    // What onnxruntime measures on the written model is what the loop reached.
    const written = Math.min(...r.eval.outputs.map((o) => o.sqnrDb));
    assert.ok(written >= target - 0.01, `written model: ${written} dB`);
    assert.ok(Math.abs(written - loop.steps.filter((s) => s.kept !== false).at(-1)!.metric) < 0.01);

    // The recipe next to the output reproduces the model with plain `quantize --recipe`.
    assert.equal(loop.recipe, path.join(dir, 'loop.recipe.json'));
    const recipe = parseRecipeText(fs.readFileSync(loop.recipe!, 'utf8'), loop.recipe!);
    const again = await quantizeModel({ input: file, output: path.join(dir, 'again.onnx'), config: { ...DEFAULT_CONFIG, ...recipe.settings, nodes: recipe.settings.nodes ?? {} }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
    assert.ok(Math.abs(Math.min(...again.eval.outputs.map((o) => o.sqnrDb)) - written) < 0.01);
    });
  });

  it('float activations (--activation-qdq none): a layer\'s only rung is float weights, and there is no all-16-bit step', async () => {
    await withModel(async (dir, file) => {
      const { calib, evalSource } = syntheticSets(file);
      const settings = { ...DEFAULT_CONFIG, adaround: false, activationQdq: 'none' as const };
      const plain = await quantizeModel({ input: file, output: path.join(dir, 'plain.onnx'), config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
      const target = plain.eval.outputs[0]!.sqnrDb + 3;
      const r = await quantizeModel({ input: file, output: path.join(dir, 'loop.onnx'), config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0, accuracyTarget: { kind: 'sqnr', minDb: target }, loopSteps: 4 });
      const steps = r.accuracyLoop!.steps.slice(1);
      assert.ok(steps.length > 0);
      assert.deepEqual(
        steps.filter((s) => s.precision !== 'float' || s.opType === 'activationType').map((s) => [s.layer, s.precision]),
        [],
      );
      assert.ok(steps.filter((s) => s.kept).every((s) => r.settings.nodes[s.layer!]?.exclude));
    });
  });

  it('noise spread over many layers: every layer to 16-bit activations in one step before raising layers one at a time', async () => {
    const { dir, cleanup } = tempDir();
    try {
      // Twelve alike 3×3 conv + ReLU layers: each adds about the same noise, none dominates.
      const b = new ModelBuilder({ opset: 17, seed: 5 });
      let x = b.input('x', DataType.FLOAT, [1, 8, 10, 10]);
      for (let i = 0; i < 12; i++) x = b.relu(b.conv(x, 8, 8, 3, { name: `conv${i}` }));
      b.output(x, DataType.FLOAT, [1, 8, 10, 10]);
      const file = path.join(dir, 'spread.onnx');
      saveModel(b.build(), file);
      const { calib, evalSource } = syntheticSets(file);
      const settings = { ...DEFAULT_CONFIG, adaround: false };
      const plain = await quantizeModel({ input: file, output: path.join(dir, 'plain.onnx'), config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
      // 12 dB missing, and no single layer is worth a quarter of that.
      const target = plain.eval.outputs[0]!.sqnrDb + 12;
      const r = await quantizeModel({ input: file, output: path.join(dir, 'loop.onnx'), config: settings, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0, loopSteps: 3, accuracyTarget: { kind: 'sqnr', minDb: target } });
      const loop = r.accuracyLoop!;
      const trail = JSON.stringify(loop.steps.map((st) => [st.layer, st.precision, st.kept, st.metric]));
      const first = loop.steps[1]!;
      assert.match(first.layer!, /^all \d+ 8-bit layers$/, trail);
      assert.equal(first.precision, 'int16');
      assert.ok(first.kept && first.metric > loop.steps[0]!.metric, trail);
      assert.equal(r.settings.activationType, 'uint16');
      // Then layer by layer from there (to float: 16-bit is taken).
      assert.ok(loop.steps.slice(2).every((st) => st.precision === 'float' && !/^all /.test(st.layer!)), trail);
      const recipe = parseRecipeText(fs.readFileSync(loop.recipe!, 'utf8'), loop.recipe!);
      assert.equal(recipe.settings.activationType, 'uint16', 'the recipe reproduces the model');
    } finally {
      cleanup();
    }
  });

  it('a user metric module drives the loop from the CLI; bad modules and option mixes are clear errors', async () => {
    await withModel(async (dir, file) => {
    // Cosine similarity of the outputs: a user's metric, higher is better.
    const metric = path.join(dir, 'cosine.js');
    fs.writeFileSync(
      metric,
      `exports.score = (f, q) => { const a = Object.values(f)[0].data, b = Object.values(q)[0].data; let d = 0, x = 0, y = 0;
       for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; x += a[i] * a[i]; y += b[i] * b[i]; } return d / Math.sqrt(x * y); };
       exports.target = 0.99999;\n`,
    );
    const lines: string[] = [];
    const io = { out: (s: string) => lines.push(s), err: () => undefined };
    const r = await runQuantize([file, '-o', path.join(dir, 'q.onnx'), '--metric', metric, '--loop-steps', '6', '--adaround', '--latency-runs', '0'], io);
    const loop = r.accuracyLoop!;
    assert.match(loop.target, /cosine\.js ≥ 0\.99999/);
    assert.ok(loop.steps.length >= 2 && loop.steps.length <= 7, `${loop.steps.length} steps`);
    assert.ok(loop.steps.slice(1).every((s) => s.metric <= 1 && s.metric > 0.9));
    assert.match(lines.join('\n'), /accuracy loop, target cosine\.js ≥ 0\.99999/);
    // Learned rounding runs after the loop, on the chosen precisions, so
    // the recipe still reproduces the written model.
    assert.ok(r.refinements.some((f) => f.name.toLowerCase().includes('round')), r.refinements.map((f) => f.name).join(', '));
    const again = await runQuantize([file, '-o', path.join(dir, 'again.onnx'), '--recipe', loop.recipe!, '--latency-runs', '0'], io);
    assert.deepEqual(again.eval.outputs.map((o) => o.sqnrDb), r.eval.outputs.map((o) => o.sqnrDb));

    const bad = path.join(dir, 'bad.js');
    fs.writeFileSync(bad, 'exports.nope = 1;\n');
    await assert.rejects(runQuantize([file, '-o', path.join(dir, 'q2.onnx'), '--metric', bad], io), /must export a function score/);
    await assert.rejects(runQuantize([file, '-o', path.join(dir, 'q2.onnx'), '--metric', metric, '--target-sqnr', '30'], io), /exclude each other/);
    await assert.rejects(runQuantize([file, '-o', path.join(dir, 'q2.onnx'), '--target-sqnr', '30', '--mode', 'dynamic'], io), /needs --mode static/);
    assert.ok(!fs.existsSync(path.join(dir, 'q2.onnx')));
    });
  });

  it('cancels promptly mid-loop and leaves no output or recipe', async () => {
    await withModel(async (dir, file) => {
    const model = OnnxModel.load(file);
    const calib = syntheticSource(model, { count: 8, seed: 1 });
    model.close();
    const controller = new AbortController();
    const out = path.join(dir, 'q.onnx');
    await assert.rejects(
      quantizeModel({
        input: file,
        output: out,
        config: { ...DEFAULT_CONFIG },
        calib,
        eval: calib,
        evalNote: 'test',
        latencyRuns: 0,
        accuracyTarget: { kind: 'sqnr', minDb: 200 },
        signal: controller.signal,
        onProgress: (p) => {
          if (p.message?.startsWith('ranking layers: 3/')) controller.abort();
        },
      }),
      (err: Error) => err.name === 'AbortError',
    );
    assert.deepEqual(fs.readdirSync(dir).sort(), ['m.onnx']);
    });
  });
  it('keeps learned rounding only if the target is no worse with it (else writes the loop\'s nearest-rounding model)', async () => {
    await withModel(async (dir, file) => {
      const { calib, evalSource } = syntheticSets(file);
      // A metric that rewards error: learned rounding, which lowers the error, makes it worse.
      const errorScore = (f: Record<string, ort.Tensor>, q: Record<string, ort.Tensor>) => {
        const a = Object.values(f)[0]!.data as Float32Array;
        const b = Object.values(q)[0]!.data as Float32Array;
        let e = 0;
        for (let i = 0; i < a.length; i++) e += Math.abs(a[i]! - b[i]!);
        return e / a.length;
      };
      const target = { kind: 'metric' as const, name: 'error', score: errorScore, min: 0 };
      const run = (name: string, adaround: boolean) =>
        quantizeModel({ input: file, output: path.join(dir, name), config: { ...DEFAULT_CONFIG, adaround }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0, accuracyTarget: target });
      const nearest = await run('nearest.onnx', false);
      const r = await run('refined.onnx', true);
      const ar = r.refinements.find((f) => f.name === 'learned rounding')!;
      assert.match(ar.summary, /^not used: with it the loop's target measured/);
      assert.equal(r.settings.adaround, false, 'the recipe does not ask for what was not used');
      assert.deepEqual(fs.readFileSync(path.join(dir, 'refined.onnx')), fs.readFileSync(path.join(dir, 'nearest.onnx')));
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'refined.recipe.json'), 'utf8')).adaround, false);
      assert.equal(nearest.accuracyLoop!.steps.length, r.accuracyLoop!.steps.length);
    });
  });
});

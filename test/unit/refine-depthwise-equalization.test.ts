/**
 * Depthwise equalization: the scales against hand-computed values; the float function unchanged in
 * onnxruntime with X/s folded into a Conv, a BatchNormalization or an affine block's constants;
 * inputs from other producers left alone; the calibration probes that give a pending affine
 * fold's original X; and on a model whose depthwise conv input has a few wide channels, static
 * int8 SQNR improves with it (it is on by default).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { channelSpread, equalizationScales, equalizeDepthwise, findDepthwiseGroups } from '../../src/quant/refine/equalize-depthwise';
import { applyEdits, ConstReader } from '../../src/quant/refine/weights';
import { syntheticSource } from '../../src/runtime/data';
import { calibrateStatic, prepareStatic, quantizeModel, weightReader } from '../../src/runtime/quantize-model';
import { equalizeDepthwiseInputs, withPendingEqualizations } from '../../src/runtime/refine/equalize-depthwise';
import { analyzeModel } from '../../src/analysis/analyze';
import { floatTensor, runModel, tempDir } from '../helpers/ort';

const C = 8;

/**
 * x [1, 4, 12, 12] → producer → depthwise 3×3 Conv (C channels) → 1×1 Conv → output. The producer
 * (a Conv, a Conv → BatchNormalization, a Conv → Relu, or a Conv → HardSwish → affine) makes channels 2 and 5 about 30× wider
 * than the rest; the depthwise filters weigh them down by as much.
 */
function wideChannelModel(producer: 'conv' | 'bn' | 'relu' | 'affine') {
  const b = new ModelBuilder({ opset: 17, seed: 5 });
  const x = b.input('x', DataType.FLOAT, [1, 4, 12, 12]);
  const wide = (c: number) => (c === 2 || c === 5 ? 30 : 1);
  const w0 = b.rng.normals(C * 4, 0.5).map((v, i) => v * (producer === 'bn' ? 1 : wide(Math.floor(i / 4))));
  let h = b.node('Conv', [x, b.initializer('w0', DataType.FLOAT, [C, 4, 1, 1], w0), b.initializer('b0', DataType.FLOAT, [C], b.rng.normals(C, 0.1))], {}, { name: 'pw0' });
  if (producer === 'bn') {
    const f = (vals: number[]) => Float32Array.from(vals);
    h = b.node('BatchNormalization', [
      h,
      b.initializer('bn_scale', DataType.FLOAT, [C], f(Array.from({ length: C }, (_, c) => wide(c)))),
      b.initializer('bn_bias', DataType.FLOAT, [C], b.rng.normals(C, 0.2)),
      b.initializer('bn_mean', DataType.FLOAT, [C], new Float32Array(C)),
      b.initializer('bn_var', DataType.FLOAT, [C], new Float32Array(C).fill(1)),
    ], {}, { name: 'bn' });
  }
  if (producer === 'relu') h = b.relu(h);
  if (producer === 'affine') {
    // PP-LCNetV3's learnable affine block after HardSwish: scalar a · h + scalar b (a Constant node and an initializer).
    const a = b.constant('lab_scale', DataType.FLOAT, [1], new Float32Array([0.8]));
    h = b.node('Add', [b.node('Mul', [a, b.node('HardSwish', [h])], {}, { name: 'lab_mul' }), b.initializer('lab_bias', DataType.FLOAT, [1], new Float32Array([0.3]))], {}, { name: 'lab_add' });
  }
  // The depthwise filters weigh the wide channels down (as a trained network's often do): its
  // output channels are alike, so the narrow input channels carry as much as the wide ones.
  const wdw = b.rng.normals(C * 9, 0.4).map((v, i) => v / wide(Math.floor(i / 9)));
  const dw = b.node('Conv', [h, b.initializer('wdw', DataType.FLOAT, [C, 1, 3, 3], wdw), b.initializer('bdw', DataType.FLOAT, [C], b.rng.normals(C, 0.05))], { group: C, pads: [1, 1, 1, 1] }, { name: 'dw' });
  b.output(b.conv(dw, C, 6, 1, { name: 'pw1' }), DataType.FLOAT);
  return b.build();
}

async function floatRun(m: ReturnType<typeof wideChannelModel>): Promise<Float32Array> {
  const feeds = { x: floatTensor([1, 4, 12, 12], (i) => Math.sin(i * 0.37) * 1.5) };
  return Object.values(await runModel(encodeModel(m), feeds))[0]!.data as Float32Array;
}

describe('depthwise equalization', () => {
  it('computes s_c = (absMax_c / widest)^α, floored at 2⁻¹⁰, and the spread', () => {
    assert.deepEqual(Array.from(equalizationScales(new Float32Array([8, 2, 0]), 1)), [1, 0.25, 2 ** -10]);
    assert.deepEqual(Array.from(equalizationScales(new Float32Array([8, 2, 0]), 0.5)), [1, 0.5, 2 ** -10]);
    assert.equal(channelSpread(new Float32Array([1, 2, 40])), 20);
  });

  const into = { conv: /Conv "pw0"/, bn: /BatchNormalization "bn"/, affine: /Mul "lab_mul" and the constant of Add "lab_add"/ };
  for (const producer of ['conv', 'bn', 'affine'] as const) {
    it(`keeps the float function with X/s folded into ${producer === 'conv' ? 'the producing Conv' : producer === 'bn' ? 'a BatchNormalization' : 'the constants of an affine block (Mul, Add)'}`, async () => {
      const m = wideChannelModel(producer);
      const consts = new ConstReader(m.graph!, (t) => tensorToFloat32(t));
      const groups = findDepthwiseGroups(m.graph!, consts, () => false);
      assert.deepEqual(groups.map((g) => g.layers.map((l) => l.node.name)), [['dw']]);
      const s = equalizationScales(Float32Array.from({ length: C }, (_, c) => (c === 2 || c === 5 ? 30 : 1)), 1);
      const eq = equalizeDepthwise(m.graph!, consts, groups[0]!, s);
      assert.ok(eq);
      assert.match(eq.where, into[producer]);
      const out = applyEdits(m, eq.edits);
      assert.ok(out.graph!.node.filter((n) => n.opType !== 'Constant').length <= m.graph!.node.length, 'no node added');
      const a = await floatRun(m);
      const c = await floatRun(out);
      const scale = Math.max(...a.map(Math.abs));
      const err = Math.max(...a.map((v, i) => Math.abs(v - c[i]!)));
      assert.ok(err / scale <= 1e-5, `relative change ${err / scale}`);
    });
  }

  it('leaves an input alone when its producer cannot take X/s (a Relu)', () => {
    const m = wideChannelModel('relu');
    const consts = new ConstReader(m.graph!, (t) => tensorToFloat32(t));
    const groups = findDepthwiseGroups(m.graph!, consts, () => false);
    assert.equal(groups.length, 1);
    assert.equal(equalizeDepthwise(m.graph!, consts, groups[0]!, new Float32Array(C).fill(0.5)), undefined);
  });

  for (const producer of ['conv', 'affine'] as const)
  it(`improves static int8 SQNR when the depthwise input has wide channels (on by default): ${producer === 'conv' ? 'Conv producer' : 'affine block, kept because it measures better'}`, async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'wide.onnx');
      saveModel(wideChannelModel(producer), file);
      const model = OnnxModel.load(file);
      const run = (extra: object) =>
        quantizeModel({
          input: file,
          output: path.join(dir, 'q.onnx'),
          // 8-bit activations throughout: pw0 reads the model input, so by default it (and the
          // depthwise input it writes) would get 16 bits, and nothing would be left to equalize.
          config: { ...DEFAULT_CONFIG, activationTypeAuto: false, ...extra },
          calib: syntheticSource(model, { count: 16, seed: 1 }),
          eval: syntheticSource(model, { count: 8, seed: 2 }),
          evalNote: 'synthetic',
          latencyRuns: 0,
        });
      const off = await run({ depthwiseEqualization: false });
      const on = await run({});
      model.close();
      const db = (r: typeof on) => r.eval.outputs[0]!.sqnrDb;
      const report = on.refinements.filter((r) => r.name === 'depthwise-equalization').find((r) => r.layers.length);
      assert.deepEqual(report?.layers, ['dw'], on.refinements.map((r) => r.summary).join('\n'));
      assert.match(report!.summary, producer === 'conv' ? /folded into Conv "pw0"/ : /1 of 1 affine-block fold\(s\) kept \(worst output SQNR on 4 calibration samples .* dB\).*constant of Mul "lab_mul"/);
      assert.ok(db(on) > db(off) + 3, `SQNR ${db(off).toFixed(1)} → ${db(on).toFixed(1)} dB (${report!.summary})`);
    } finally {
      cleanup();
    }
  });
  it('pending affine folds: one calibration pass also yields the original X (a probe X/s · s)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'wide.onnx');
      saveModel(wideChannelModel('affine'), file);
      const model = OnnxModel.load(file);
      const calib = syntheticSource(model, { count: 8, seed: 1 });
      const config = { ...DEFAULT_CONFIG };
      const plan = await prepareStatic(model, config, calib);
      const eq = await equalizeDepthwiseInputs(plan, { model, config, readWeight: weightReader(model), calib });
      assert.equal(eq.pending.length, 1);
      assert.equal(eq.plan, plan, 'affine folds are not applied before they are measured');
      const x = eq.pending[0]!.x;
      const withProbes = withPendingEqualizations(eq.plan, eq.pending);
      const probe = withProbes.probes.get(x)!;
      const plain = (await calibrateStatic(model, plan, config, calib)).stats.get(x)!;
      const both = (await calibrateStatic(model, withProbes.plan, config, calib)).stats;
      model.close();
      const original = both.get(probe)!;
      // Equal up to float rounding of X/s · s, relative to the range.
      const rel = (a: number, b: number) => Math.abs(a - b) / (plain.max - plain.min);
      assert.ok(rel(original.min, plain.min) < 1e-6 && rel(original.max, plain.max) < 1e-6, `probe [${original.min}, ${original.max}] vs X [${plain.min}, ${plain.max}]`);
      assert.ok(both.has(x), 'the equalized X is calibrated too');
    } finally {
      cleanup();
    }
  });

  it('analysis measures the equalized model, as quantize builds it', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'wide.onnx');
      saveModel(wideChannelModel('conv'), file);
      const model = OnnxModel.load(file);
      const calib = syntheticSource(model, { count: 16, seed: 1 });
      const evalSource = syntheticSource(model, { count: 8, seed: 2 });
      model.close();
      const report = await analyzeModel({ model: file, calib, eval: evalSource, sensitivity: 'global', workers: 1, suggest: false });
      const q = await quantizeModel({ input: file, output: path.join(dir, 'q.onnx'), config: { ...DEFAULT_CONFIG, adaround: false, activationTypeAuto: false }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
      assert.ok(Math.abs(report.global!.allQuantizedSqnrDb - q.eval.outputs[0]!.sqnrDb) < 0.01, `analysis ${report.global!.allQuantizedSqnrDb} vs quantize ${q.eval.outputs[0]!.sqnrDb}`);
      assert.ok(report.notes.some((n) => /depthwise equalization, as quantize does it/.test(n)), report.notes.join('\n'));
    } finally {
      cleanup();
    }
  });
});

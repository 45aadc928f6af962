/**
 * Findings: every code, on models built to trigger it, with the node it names; and the table of
 * codes (stable: the README documents it and the extension's Problems tab shows it).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { analyzeModel } from '../../src/analysis/analyze';
import { FINDING_CODES, findingCodesMarkdown, type Finding } from '../../src/analysis/findings';
import type { AnalysisReport } from '../../src/analysis/report';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { stridedCount } from '../../src/runtime/calibrate';
import { syntheticSource } from '../../src/runtime/data';
import { tempDir } from '../helpers/ort';

function codes(r: AnalysisReport, code: string): Finding[] {
  return r.findings.filter((f) => f.code === code);
}

/** Conv weights with a per-element edit. */
function convWeights(rng: Rng, out: number, inC: number, k: number, edit: (v: Float32Array) => void = () => undefined): Float32Array {
  const v = rng.normals(out * inC * k * k, Math.sqrt(2 / (inC * k * k)));
  edit(v);
  return v;
}

describe('findings', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  it('the table of codes: OQ001…OQ012, each with an id, a severity, a title and when it is reported', () => {
    const all = Object.keys(FINDING_CODES);
    assert.deepEqual(all, Array.from({ length: 12 }, (_, i) => `OQ${String(i + 1).padStart(3, '0')}`));
    const ids = new Set<string>();
    for (const c of Object.values(FINDING_CODES)) {
      assert.ok(['error', 'warning', 'info'].includes(c.severity));
      assert.ok(c.id && c.title && c.when.length > 20);
      assert.ok(!ids.has(c.id), `duplicate id ${c.id}`);
      ids.add(c.id);
    }
    const md = findingCodesMarkdown();
    for (const code of all) assert.ok(md.includes(`\`${code}\``));
  });

  it('weights only: NaN/Inf (OQ001), denormals (OQ002), already quantized (OQ003), per-channel (OQ004), float ops (OQ007), old opset (OQ008), shapes (OQ009)', async () => {
    const rng = new Rng(2);
    const b = new ModelBuilder({ opset: 11, seed: 2 });
    let x = b.input('x', DataType.FLOAT, ['N', 4, 8, 8]);
    const z = b.input('z', DataType.FLOAT); // no shape at all
    const conv = (name: string, w: Float32Array) => {
      const wn = b.initializer(`${name}_w`, DataType.FLOAT, [4, 4, 3, 3], w);
      return b.relu(b.node('Conv', [x, wn], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { name }));
    };
    x = conv('conv_nan', convWeights(rng, 4, 4, 3, (v) => (v[5] = NaN)));
    x = conv('conv_denormal', convWeights(rng, 4, 4, 3, (v) => (v[7] = 1e-40)));
    x = conv('conv_spread', convWeights(rng, 4, 4, 3, (v) => {
      for (let i = 0; i < 36; i++) v[i] = v[i]! * 50; // output channel 0
    }));
    const flat = b.node('Flatten', [x]);
    const q = b.initializer('wq', DataType.INT8, [256, 8], Int8Array.from({ length: 2048 }, (_, i) => (i % 15) - 7));
    const sc = b.initializer('wq_scale', DataType.FLOAT, [], new Float32Array([0.01]));
    const dq = b.node('DequantizeLinear', [q, sc], {}, { name: 'dq_weight' });
    const h = b.node('MatMul', [flat, dq], {}, { name: 'mm_quantized' });
    b.output(b.node('Softmax', [h], { axis: 1 }, { name: 'softmax' }), DataType.FLOAT);
    // An LSTM: a layer the static transform does not quantize.
    const seq = b.node('Unsqueeze', [h], { axes: [0] });
    const W = b.initializer('lstm_W', DataType.FLOAT, [1, 16, 8], rng.normals(128, 0.2));
    const R = b.initializer('lstm_R', DataType.FLOAT, [1, 16, 4], rng.normals(64, 0.2));
    const [, yh] = b.nodeOutputs('LSTM', [seq, W, R], { hidden_size: 4 }, { outputs: 2, name: 'lstm' });
    b.output(yh!, DataType.FLOAT);
    b.output(b.node('Identity', [z]), DataType.FLOAT);
    const file = path.join(tmp.dir, 'weights.onnx');
    saveModel(b.build(), file);

    const r = await analyzeModel({ model: file, sensitivity: 'none' });
    const nan = codes(r, 'OQ001');
    assert.equal(nan.length, 1);
    assert.equal(nan[0]!.node, 'conv_nan');
    assert.equal(nan[0]!.severity, 'error');
    assert.match(nan[0]!.message, /1 NaN/);
    assert.equal(r.layers.find((l) => l.name === 'conv_nan')!.weight!.nonFinite.nan, 1);
    assert.deepEqual(codes(r, 'OQ002').map((f) => f.node), ['conv_denormal']);
    const quantized = codes(r, 'OQ003');
    assert.equal(quantized.length, 1);
    assert.equal(quantized[0]!.node, 'dq_weight');
    assert.equal(quantized[0]!.severity, 'warning');
    const spread = codes(r, 'OQ004');
    assert.deepEqual(spread.map((f) => f.node), ['conv_spread']);
    assert.equal(spread[0]!.severity, 'info', 'per-channel is on by default');
    assert.ok(codes(r, 'OQ007').some((f) => f.node === 'softmax' && f.message.includes('Softmax')));
    assert.ok(codes(r, 'OQ007').some((f) => f.node === 'lstm' && /LSTM/.test(f.message)));
    const opset = codes(r, 'OQ008');
    assert.equal(opset.length, 1);
    assert.match(opset[0]!.message, /opset 11 is below 13/);
    const shapes = codes(r, 'OQ009');
    assert.ok(shapes.some((f) => f.severity === 'warning' && f.message.includes('"z" has no declared shape')));
    assert.ok(shapes.some((f) => f.severity === 'info' && f.message.includes('"N"')));
    // The LSTM's W and R are analysed too.
    const lstm = r.layers.find((l) => l.name === 'lstm')!;
    assert.deepEqual(lstm.weight!.dims, [1, 16, 8]);
    assert.deepEqual(lstm.recurrentWeight!.dims, [1, 16, 4]);
    // Errors sort first.
    assert.equal(r.findings[0]!.severity, 'error');

    const perTensor = await analyzeModel({ model: file, sensitivity: 'none', config: { ...DEFAULT_CONFIG, perChannel: false } });
    assert.equal(codes(perTensor, 'OQ004')[0]!.severity, 'warning');
  });

  it('with data: activation outliers (OQ005), a dominant layer (OQ006), synthetic data (OQ010), dead channels (OQ011)', async () => {
    const rng = new Rng(4);
    const b = new ModelBuilder({ opset: 17, seed: 4 });
    const x = b.input('x', DataType.FLOAT, [1, 8, 40, 40]);
    // One element of every sample is pushed to ~500: 0.008% of the values span 99% of the range.
    const spike = new Float32Array(8 * 40 * 40);
    spike[1234] = 500;
    let h = b.node('Add', [x, b.initializer('spike', DataType.FLOAT, [1, 8, 40, 40], spike)], {}, { name: 'add_spike' });
    const conv = (name: string, w: Float32Array, bias: Float32Array) => {
      const wn = b.initializer(`${name}_w`, DataType.FLOAT, [8, 8, 3, 3], w);
      const bn = b.initializer(`${name}_b`, DataType.FLOAT, [8], bias);
      h = b.relu(b.node('Conv', [h, wn, bn], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { name }));
    };
    conv('conv_outliers', convWeights(rng, 8, 8, 3), new Float32Array(8).fill(0.1));
    conv('conv_dead', convWeights(rng, 8, 8, 3, (v) => v.fill(0, 0, 2 * 72)), Float32Array.from([0, 0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]));
    conv('conv_plain', convWeights(rng, 8, 8, 3), new Float32Array(8).fill(0.1));
    const out = b.initializer('head_w', DataType.FLOAT, [4, 8, 1, 1], rng.normals(32, 0.5));
    b.output(b.node('Conv', [h, out], { kernel_shape: [1, 1] }, { name: 'head' }), DataType.FLOAT, [1, 4, 40, 40]);
    const file = path.join(tmp.dir, 'acts.onnx');
    saveModel(b.build(), file);
    const m = OnnxModel.load(file);

    const r = await analyzeModel({
      model: file,
      calib: syntheticSource(m, { count: 4, seed: 1 }),
      eval: syntheticSource(m, { count: 2, seed: 2 }),
      sensitivity: 'global',
      workers: 2,
      suggest: false,
      // 'every-layer': each conv's input quantization is charged to that conv. (By default,
      // keeping conv_dead in float would also leave conv_outliers' input unquantized, since
      // conv_outliers could no longer fuse into an integer kernel: both would dominate.)
      config: { ...DEFAULT_CONFIG, method: 'minmax', activationQdq: 'every-layer' },
    });
    const outliers = codes(r, 'OQ005');
    assert.deepEqual(outliers.map((f) => f.node), ['conv_outliers']);
    assert.equal(outliers[0]!.severity, 'warning', 'minmax calibration');
    const input = r.layers.find((l) => l.name === 'conv_outliers')!.activation!.input!;
    assert.ok(input.max > 400 && input.percentiles['p99.99']! < 10, JSON.stringify(input.percentiles));
    assert.ok(input.beyondP9999.rangeShare > 0.9);
    // 12,800 values a sample, over the default --histogram-values: a strided subset of each is binned.
    const step = Math.ceil((8 * 40 * 40) / DEFAULT_CONFIG.histogramValues);
    const binned = [0, 1, 2, 3].reduce((a, i) => a + stridedCount(8 * 40 * 40, step, i), 0);
    assert.equal(input.histogram.counts.reduce((a, c) => a + c, 0), binned, 'activation histogram sums to the values binned');

    const dominant = codes(r, 'OQ006');
    assert.equal(dominant.length, 1);
    assert.equal(dominant[0]!.node, r.layers.find((l) => l.sensitivity.rank === 1)!.name);
    assert.equal(dominant[0]!.node, 'conv_outliers', 'its input quantization, with a step of ~2, dominates');

    assert.equal(codes(r, 'OQ010').length, 1);
    const dead = codes(r, 'OQ011');
    assert.deepEqual(dead.map((f) => f.node), ['conv_dead']);
    assert.deepEqual(r.layers.find((l) => l.name === 'conv_dead')!.activation!.output!.deadChannels, [0, 1]);
    assert.match(dead[0]!.message, /2 of 8 output channel/);
  });

  it('NaN/Inf activations (OQ012)', async () => {
    const b = new ModelBuilder({ opset: 17, seed: 6 });
    const x = b.input('x', DataType.FLOAT, [1, 4, 8, 8]);
    const logged = b.node('Log', [b.relu(x)]); // log(0) = −∞ wherever the ReLU clipped
    b.output(b.conv(logged, 4, 4, 3, { name: 'conv_after_log' }), DataType.FLOAT, [1, 4, 8, 8]);
    const file = path.join(tmp.dir, 'log.onnx');
    saveModel(b.build(), file);
    const m = OnnxModel.load(file);
    const r = await analyzeModel({ model: file, calib: syntheticSource(m, { count: 2, seed: 1 }), sensitivity: 'none' });
    const f = codes(r, 'OQ012');
    assert.ok(f.length >= 1);
    assert.equal(f[0]!.node, 'conv_after_log');
    assert.equal(f[0]!.severity, 'error');
    assert.ok(r.layers[0]!.activation!.input!.nonFinite.negInf > 0);
  });
});

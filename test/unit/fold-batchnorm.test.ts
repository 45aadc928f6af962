/**
 * BatchNormalization folding: folded models must compute what the originals compute, in
 * onnxruntime, for Conv, grouped ConvTranspose and Gemm (both transB), with weights in initializers,
 * Constant nodes and If branches; and on a real PaddleOCR classifier.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel, walkGraphs } from '../../src/onnx/model';
import { ModelProto } from '../../src/onnx/proto';
import { foldBatchNorm } from '../../src/quant/graph/fold-batchnorm';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { floatTensor, REAL_MODELS, realModelFeeds, runModel, type Feeds } from '../helpers/ort';

/** BatchNormalization with random statistics (variance well away from 0, as trained nets have). */
function batchNorm(g: GraphBuilder, x: string, channels: number, eps = 1e-5): string {
  const gamma = g.weight('bn_gamma', [channels], g.rng.normals(channels, 0.3, 1));
  const beta = g.weight('bn_beta', [channels], g.rng.normals(channels, 0.2));
  const mean = g.weight('bn_mean', [channels], g.rng.normals(channels, 0.5));
  const variance = g.weight('bn_var', [channels], Float32Array.from(g.rng.normals(channels, 0.5), (v) => 0.2 + v * v));
  return g.node('BatchNormalization', [x, gamma, beta, mean, variance], { epsilon: eps });
}

function countOps(model: ModelProto, op: string): number {
  return [...walkGraphs(model.graph!)].reduce((n, g) => n + g.node.filter((x) => x.opType === op).length, 0);
}

/** max |a − b| over max |a|: the error relative to the output's scale. */
function relError(a: ort.Tensor, b: ort.Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  assert.deepEqual(b.dims, a.dims);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    err = Math.max(err, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(x[i]!));
  }
  return err / scale;
}

async function compare(original: ModelProto, folded: ModelProto, feeds: Feeds, tol: number): Promise<number> {
  const a = await runModel(encodeModel(original), feeds);
  const b = await runModel(encodeModel(folded), feeds);
  let worst = 0;
  for (const name of Object.keys(a)) {
    const e = relError(a[name]!, b[name]!);
    worst = Math.max(worst, e);
    assert.ok(e <= tol, `${name}: relative error ${e} > ${tol}`);
  }
  return worst;
}

describe('foldBatchNorm', () => {
  it('folds Conv→BN→Relu and matches the original in onnxruntime', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 3 });
    const x = b.input('x', DataType.FLOAT, [2, 3, 10, 10]);
    const y = b.relu(batchNorm(b, b.conv(x, 3, 8, 3), 8));
    b.output(y, DataType.FLOAT);
    const model = b.build();
    const before = Buffer.from(encodeModel(model));
    const r = foldBatchNorm(model);
    assert.equal(r.quantized.length, 1);
    assert.equal(r.skipped.length, 0);
    assert.match(r.quantized[0]!.detail, /folded into Conv/);
    assert.equal(countOps(r.model, 'BatchNormalization'), 0);
    assert.equal(r.model.graph!.initializer.length, 2, 'only the folded weight and bias remain');
    await compare(model, r.model, { x: floatTensor([2, 3, 10, 10], (i) => Math.sin(i * 0.3)) }, 1e-5);
    assert.ok(before.equals(Buffer.from(encodeModel(model))), 'the input model is unchanged');
  });

  it('folds grouped ConvTranspose, Gemm (transB 0/1, beta) and weights held in Constant nodes', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 5 });
    b.weightPlacement = 'constant';
    const x = b.input('x', DataType.FLOAT, [1, 4, 6, 6]);
    // ConvTranspose with group 2: weight [C_in=4, C_out/group=3, 2, 2] → 6 output channels.
    const wt = b.weight('ct_w', [4, 3, 2, 2], b.rng.normals(48, 0.4));
    const bt = b.weight('ct_b', [6], b.rng.normals(6, 0.1));
    const ct = b.node('ConvTranspose', [x, wt, bt], { group: 2, strides: [2, 2], kernel_shape: [2, 2] });
    const y1 = batchNorm(b, ct, 6);
    const flat = b.node('Flatten', [b.node('GlobalAveragePool', [y1])]);
    const g1 = b.gemm(flat, 6, 5, { transB: false });
    const y2 = batchNorm(b, g1, 5);
    const w2 = b.weight('g2_w', [4, 5], b.rng.normals(20, 0.5));
    const c2 = b.weight('g2_c', [4], b.rng.normals(4, 0.5));
    const g2 = b.node('Gemm', [y2, w2, c2], { transB: 1, alpha: 0.75, beta: 1.5 });
    b.output(batchNorm(b, g2, 4), DataType.FLOAT);
    const model = b.build();
    const r = foldBatchNorm(model);
    assert.deepEqual(r.quantized.map((q) => q.detail.split(' ')[2]), ['ConvTranspose', 'Gemm', 'Gemm']);
    assert.equal(countOps(r.model, 'BatchNormalization'), 0);
    await compare(model, r.model, { x: floatTensor([1, 4, 6, 6], (i) => Math.cos(i * 0.7)) }, 1e-5);
  });

  it('folds inside If branches and explains every BatchNormalization it leaves', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 7 });
    const x = b.input('x', DataType.FLOAT, [1, 2, 5, 5]);
    const cond = b.input('cond', DataType.BOOL, []);
    const shared = b.conv(x, 2, 4, 3);
    const branch = (name: string) =>
      b.subgraph(name, (g) => {
        const c = g.conv(x, 2, 4, 3);
        const out = g.relu(batchNorm(g, c, 4));
        g.output(out, DataType.FLOAT);
      });
    const [ifOut] = b.nodeOutputs('If', [cond], { then_branch: branch('then'), else_branch: branch('else') });
    // Not foldable: input from Relu; Conv output read twice.
    const afterRelu = batchNorm(b, b.relu(ifOut!), 4);
    const twice = batchNorm(b, shared, 4);
    const sum = b.node('Add', [b.node('Add', [afterRelu, twice]), shared]);
    b.output(sum, DataType.FLOAT);
    const model = b.build();
    const r = foldBatchNorm(model);
    assert.equal(r.quantized.length, 2);
    assert.equal(r.skipped.length, 2);
    assert.ok(r.skipped.some((s) => /comes from Relu/.test(s.reason)));
    assert.ok(r.skipped.some((s) => /also read elsewhere/.test(s.reason)));
    assert.equal(countOps(r.model, 'BatchNormalization'), 2);
    for (const c of [true, false]) {
      await compare(model, r.model, { x: floatTensor([1, 2, 5, 5], (i) => Math.sin(i)), cond: new ort.Tensor('bool', [c], []) }, 1e-5);
    }
  });

  it('leaves excluded nodes alone', () => {
    const b = new ModelBuilder({ opset: 13 });
    const x = b.input('x', DataType.FLOAT, [1, 2, 4, 4]);
    b.output(batchNorm(b, b.conv(x, 2, 2, 1), 2), DataType.FLOAT);
    const r = foldBatchNorm(b.build(), { ...DEFAULT_CONFIG, exclude: ['BatchNormalization'] });
    assert.equal(r.quantized.length, 0);
    assert.match(r.skipped[0]!.reason, /excluded/);
  });

  it('real model: PaddleOCR angle classifier (35 BatchNormalization) folds and still agrees', async () => {
    const model = OnnxModel.load(REAL_MODELS.ocrCls);
    const r = foldBatchNorm(model);
    const total = countOps(model.proto, 'BatchNormalization');
    assert.equal(total, 35);
    assert.equal(r.quantized.length + r.skipped.length, total);
    assert.equal(countOps(r.model, 'BatchNormalization'), r.skipped.length);
    assert.equal(r.quantized.length, 35, 'every BatchNormalization follows a Conv it can fold into');
    const feeds = realModelFeeds('ocrCls');
    const worst = await compare(model.proto, r.model, feeds, 1e-5);
    const reasons = [...new Set(r.skipped.map((s) => s.reason))];
    console.log(`ocrCls: folded ${r.quantized.length}/${total} BatchNormalization; max relative output error ${worst.toExponential(2)}; kept: ${reasons.join('; ') || 'none'}`);
  });
});

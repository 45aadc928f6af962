/**
 * Cross-layer equalization: the float model computes the same function in onnxruntime (Relu,
 * PRelu, LeakyRelu, depthwise and grouped Convs, chains), ReLU6 pairs are left alone, a hand-checked
 * pair comes out with equal ranges, and per-tensor int8 gets better on a model with unbalanced channels.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { ModelProto, TensorProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { equalizeCrossLayer } from '../../src/quant/refine/cle';
import { syntheticSource } from '../../src/runtime/data';
import { quantizeModel } from '../../src/runtime/quantize-model';
import { floatTensor, runModel, tempDir } from '../helpers/ort';

const read = (t: TensorProto) => tensorToFloat32(t);

/** max |a − b| / max |a| over every output. */
async function floatChange(a: ModelProto, b: ModelProto, dims: number[]): Promise<number> {
  const feeds = { x: floatTensor(dims, (i) => Math.sin(i * 0.37) + 0.3 * Math.cos(i * 0.05)) };
  const ya = await runModel(encodeModel(a), feeds);
  const yb = await runModel(encodeModel(b), feeds);
  let err = 0;
  let scale = 0;
  for (const k of Object.keys(ya)) {
    const p = ya[k]!.data as Float32Array;
    const q = yb[k]!.data as Float32Array;
    for (let i = 0; i < p.length; i++) {
      err = Math.max(err, Math.abs(p[i]! - q[i]!));
      scale = Math.max(scale, Math.abs(p[i]!));
    }
  }
  return err / scale;
}

/** Scales Conv `conv`'s weight output channels by f[o] (and its bias), or its input channels by 1/f[c]. */
function skew(m: ModelProto, conv: string, f: number[], axis: 'out' | 'in'): void {
  const g = m.graph!;
  const node = g.node.find((n) => n.name === conv)!;
  const t = g.initializer.find((x) => x.name === node.input[1])!;
  const v = tensorToFloat32(t);
  const [o, c] = t.dims.map(Number) as [number, number];
  const k = v.length / (o * c);
  for (let i = 0; i < v.length; i++) {
    const oi = Math.floor(i / (c * k));
    const ci = Math.floor(i / k) % c;
    v[i] = axis === 'out' ? v[i]! * f[oi]! : v[i]! / f[ci]!;
  }
  t.rawData = new Uint8Array(v.buffer);
  t.floatData = [];
  const bias = axis === 'out' && node.input[2] ? g.initializer.find((x) => x.name === node.input[2])! : undefined;
  if (bias) {
    bias.rawData = new Uint8Array(Float32Array.from(read(bias), (v, i) => v * f[i]!).buffer);
    bias.floatData = [];
  }
}

describe('cross-layer equalization', () => {
  it('keeps the float function of Conv→Relu/PRelu/LeakyRelu→Conv chains with depthwise and grouped Convs', async () => {
    const b = new ModelBuilder({ opset: 17, seed: 7 });
    const x = b.input('x', DataType.FLOAT, [2, 4, 12, 12]);
    let h = b.relu(b.conv(x, 4, 8, 3, { name: 'c1' }));
    h = b.conv(h, 8, 16, 3, { group: 8, name: 'dw' }); // depthwise with channel multiplier 2
    const slope = b.weight('slope', [16, 1, 1], Float32Array.from({ length: 16 }, (_, i) => 0.05 * i));
    h = b.node('PRelu', [h, slope]);
    h = b.conv(h, 16, 8, 1, { group: 2, name: 'grouped', bias: false });
    h = b.node('LeakyRelu', [h], { alpha: 0.1 });
    h = b.conv(h, 8, 8, 3, { name: 'c4' });
    const clipMin = b.initializer('zero', DataType.FLOAT, [], new Float32Array([0]));
    const clipMax = b.initializer('six', DataType.FLOAT, [], new Float32Array([6]));
    h = b.node('Clip', [h, clipMin, clipMax], {}, { name: 'relu6' });
    h = b.conv(h, 8, 4, 1, { name: 'c5' });
    b.output(h, DataType.FLOAT);
    const m = b.build();
    for (const [name, axis, f] of [
      ['c1', 'out', [0.01, 5, 1, 0.2, 3, 0.05, 1, 8]],
      ['dw', 'in', [0.01, 5, 1, 0.2, 3, 0.05, 1, 8]],
    ] as const) skew(m, name, [...f], axis);

    const r = equalizeCrossLayer(m, read);
    assert.deepEqual(
      r.pairs.map((p) => `${p.first}>${p.second}`),
      ['c1>dw', 'dw>grouped', 'grouped>c4'],
    );
    assert.ok(r.skipped.some((s) => s.name === 'relu6' && /ReLU6/.test(s.reason)), JSON.stringify(r.skipped));
    assert.ok(r.spread.after < r.spread.before, `${r.spread.before} → ${r.spread.after}`);
    const change = await floatChange(m, r.model, [2, 4, 12, 12]);
    assert.ok(change <= 1e-5, `float output changed by ${change} (relative)`);
  });

  it('equalizes a hand-checked pair to √(r1·r2) on both sides and scales the first bias', () => {
    const b = new ModelBuilder({ opset: 17 });
    const x = b.input('x', DataType.FLOAT, [1, 1, 2, 2]);
    const w1 = b.initializer('w1', DataType.FLOAT, [2, 1, 1, 1], new Float32Array([4, -1]));
    const b1 = b.initializer('b1', DataType.FLOAT, [2], new Float32Array([2, 3]));
    const w2 = b.initializer('w2', DataType.FLOAT, [1, 2, 1, 1], new Float32Array([1, -4]));
    const h = b.node('Relu', [b.node('Conv', [x, w1, b1], {}, { name: 'a' })]);
    b.output(b.node('Conv', [h, w2], {}, { name: 'b' }), DataType.FLOAT);
    const r = equalizeCrossLayer(b.build(), read);
    const g = r.model.graph!;
    const values = (node: string, i: number) => Array.from(read(g.initializer.find((t) => t.name === g.node.find((n) => n.name === node)!.input[i])!));
    // s = √(r1/r2) = [√(4/1), √(1/4)] = [2, 0.5]: W1/s = [2, −2], b1/s = [1, 6], W2·s = [2, −2].
    assert.deepEqual(values('a', 1), [2, -2]);
    assert.deepEqual(values('a', 2), [1, 6]);
    assert.deepEqual(values('b', 1), [2, -2]);
    // The replaced weights are gone from the model.
    assert.ok(!g.initializer.some((t) => t.name === 'w1' || t.name === 'w2' || t.name === 'b1'));
  });

  it('improves per-tensor int8 on a model with unbalanced channels', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder({ opset: 17, seed: 11 });
      const x = b.input('x', DataType.FLOAT, [1, 4, 16, 16]);
      let h = b.relu(b.conv(x, 4, 8, 3, { name: 'c1' }));
      h = b.relu(b.conv(h, 8, 8, 3, { name: 'c2' }));
      b.output(b.conv(h, 8, 4, 1, { name: 'c3' }), DataType.FLOAT);
      const m = b.build();
      const f = [0.02, 6, 1, 0.1, 3, 0.05, 1.5, 10];
      skew(m, 'c1', f, 'out');
      skew(m, 'c2', f, 'in');
      const file = path.join(dir, 'skewed.onnx');
      saveModel(m, file);
      const model = OnnxModel.load(file);
      const sqnr = async (cle: boolean) => {
        const r = await quantizeModel({
          input: file,
          output: path.join(dir, `q-${cle}.onnx`),
          config: { ...DEFAULT_CONFIG, perChannel: false, crossLayerEqualization: cle },
          calib: syntheticSource(model, { count: 8, seed: 1 }),
          eval: syntheticSource(model, { count: 4, seed: 2 }),
          evalNote: 'synthetic',
          latencyRuns: 0,
        });
        if (cle) assert.equal(r.refinements[0]?.name, 'cross-layer equalization');
        return r.eval.outputs[0]!.sqnrDb;
      };
      const without = await sqnr(false);
      const withCle = await sqnr(true);
      model.close();
      assert.ok(withCle > without + 3, `per-tensor SQNR ${without.toFixed(1)} dB → ${withCle.toFixed(1)} dB with CLE`);
    } finally {
      cleanup();
    }
  });
});

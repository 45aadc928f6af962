/**
 * Kernel-sum-preserving weight rounding: hand-computed kernels, the bounds it promises on random
 * weights, and onnxruntime running a quantized high-pass depthwise conv on a constant input.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { quantizeStaticQdq } from '../../src/quant/graph/qdq';
import { preserveKernelSums, quantizeTensor, roundHalfToEven } from '../../src/quant/quantize';
import { runModel, tempDir } from '../helpers/ort';
import { quantizeBuilt } from '../helpers/quantize';

const int8 = (xs: number[]) => Int8Array.from(xs);

describe('preserveKernelSums', () => {
  it('moves the fewest weights, those nearest a tie, so a kernel keeps its rounded sum', () => {
    // One kernel of 4 (shape [1, 1, 2, 2]), scale 1: nearest rounding gives sum 0, the floats sum to 1.6 → 2.
    const x = Float32Array.from([0.4, 0.3, 0.45, 0.45]);
    const q = int8([0, 0, 0, 0]);
    assert.equal(preserveKernelSums(x, q, [1, 1, 2, 2], [1], [0], undefined, 'int8'), 2);
    assert.deepEqual([...q], [0, 0, 1, 1]);
    // Sum already right (2.6 − 2.6 + 0.3 − 0.2 = 0.1 → 0): nothing moves.
    const y = int8([3, -3, 0, 0]);
    assert.equal(preserveKernelSums(Float32Array.from([2.6, -2.6, 0.3, -0.2]), y, [1, 1, 2, 2], [1], [0], undefined, 'int8'), 0);
    assert.deepEqual([...y], [3, -3, 0, 0]);
    // Downwards: −0.45·3 − 1 = −2.35 → −2; nearest gives −1: one −0.45 goes to −1.
    const z = int8([0, 0, 0, -1]);
    preserveKernelSums(Float32Array.from([-0.45, -0.4, -0.45, -1]), z, [1, 1, 2, 2], [1], [0], undefined, 'int8');
    assert.deepEqual([...z], [-1, 0, 0, -1]);
  });

  it('uses each channel\'s scale and zero point along axis 0 (Conv) and axis 1 (ConvTranspose); 1-element kernels and rank-2 weights are left alone', () => {
    // [2 out, 1 in, 2]: channel 0 scale 0.5, channel 1 scale 2 with zero point 10 (uint8).
    const x = Float32Array.from([0.2, 0.2, 1.2, 1.2]);
    const q = Uint8Array.from([0, 0, 11, 11]); // x/s = 0.4, 0.4 | 0.6, 0.6 → nearest 0, 0 | 1, 1 (+10)
    preserveKernelSums(x, q, [2, 1, 2], [0.5, 2], [0, 10], 0, 'uint8');
    assert.deepEqual([...q], [1, 0, 10, 11]); // 0.8 → 1 and 1.2 → 1 (ties: the first weight moves)
    // Axis 1: shape [1 in, 2 out, 2]; the same values, channels along dim 1.
    const r = Uint8Array.from([0, 0, 11, 11]);
    preserveKernelSums(x, r, [1, 2, 2], [0.5, 2], [0, 10], 1, 'uint8');
    assert.deepEqual([...r], [1, 0, 10, 11]);
    assert.equal(preserveKernelSums(x, Int8Array.from([0, 0, 1, 1]), [2, 2, 1], [1], [0], undefined, 'int8'), 0, 'kernel of 1');
    assert.equal(preserveKernelSums(x, Int8Array.from([0, 0, 1, 1]), [2, 2], [1], [0], undefined, 'int8'), 0, 'rank 2');
  });

  it('never leaves the integer range', () => {
    const q = int8([127, 127]);
    preserveKernelSums(Float32Array.from([127.4, 127.4]), q, [1, 1, 2], [1], [0], undefined, 'int8');
    assert.deepEqual([...q], [127, 127]);
  });

  it('random weights: each kernel\'s dequantized sum within half a step of the float sum, each weight within one step', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const dims = [8, 4, 3, 3];
    const x = Float32Array.from({ length: 8 * 4 * 9 }, () => rand() * (rand() > 0.8 ? 4 : 0.5));
    const s = 4 / 127;
    const q = quantizeTensor(x, { scale: s, zeroPoint: 0, type: 'int8' });
    const before = Array.from({ length: 32 }, (_, k) => Math.abs(q.slice(k * 9, k * 9 + 9).reduce((a, b) => a + b, 0) * s - x.slice(k * 9, k * 9 + 9).reduce((a, b) => a + b, 0)));
    const moved = preserveKernelSums(x, q, dims, [s], [0], undefined, 'int8');
    assert.ok(moved > 0);
    for (let k = 0; k < 32; k++) {
      const t = x.slice(k * 9, k * 9 + 9).reduce((a, b) => a + b / s, 0);
      assert.equal(q.slice(k * 9, k * 9 + 9).reduce((a, b) => a + b, 0), roundHalfToEven(t), `kernel ${k}`);
    }
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(q[i]! - x[i]! / s) < 1, `weight ${i}`);
    assert.ok(Math.max(...before) > s, 'nearest rounding alone had kernels off by more than a step');
  });
});

describe('kernel sums in the Q/DQ transform, run by onnxruntime', () => {
  // A depthwise 3×3 high-pass filter (weights up to 6, summing to 0.003, like PP-OCRv4's
  // recognizer's first depthwise conv) on a constant input: the float output is 0.003·c.
  const w = [0.4358, -2.0786, 0.4113, -1.9142, -3.9152, -1.6215, 1.4852, 5.9753, 1.2247];
  function model() {
    const b = new ModelBuilder({ opset: 13 });
    b.input('x', DataType.FLOAT, [1, 1, 6, 6]);
    b.initializer('w', DataType.FLOAT, [1, 1, 3, 3], Float32Array.from(w));
    b.node('Conv', ['x', 'w'], { kernel_shape: [3, 3] }, { outputs: ['y'], name: 'dw' });
    b.output('y', DataType.FLOAT, [1, 1, 4, 4]);
    return b.build();
  }
  const ranges = (t: string) => (t === 'x' ? { min: 0, max: 26 } : t === 'y' ? { min: -2, max: 2 } : undefined);

  for (const keep of [true, false]) {
    it(`${keep ? 'kept' : 'nearest rounding (kernelSumRounding: false)'}: output on a constant input of 26`, async () => {
      const r = quantizeStaticQdq(model(), { config: { ...DEFAULT_CONFIG, kernelSumRounding: keep }, ranges, readWeight: (t) => tensorToFloat32(t), domain: '' });
      const wq = r.model.graph!.initializer.find((t) => t.name.startsWith('w_quantized'));
      assert.ok(wq, 'weight quantized');
      const ints = [...(tensorToFloat32(wq) as Float32Array)];
      const s = 5.9753 / 127;
      const sum = ints.reduce((a, b) => a + b, 0);
      const exact = w.reduce((a, b) => a + b, 0) / s;
      if (keep) assert.equal(sum, roundHalfToEven(exact));
      else assert.notEqual(sum, roundHalfToEven(exact), 'nearest rounding alone misses the sum here');
      const out = (await runModel(encodeModel(r.model), { x: new ort.Tensor('float32', new Float32Array(36).fill(26), [1, 1, 6, 6]) }))['y']!.data as Float32Array;
      const floatOut = w.reduce((a, b) => a + b, 0) * 26;
      const err = Math.max(...[...out].map((v) => Math.abs(v - floatOut)));
      if (keep) assert.ok(err <= (s / 2) * 26 + 1e-4, `error ${err} > half a step times the input`);
      else assert.ok(err > (s / 2) * 26, `error ${err}`);
    });
  }
});

describe('kernel sums with learned rounding, end to end', () => {
  it('learned rounding starts from the kept sums and every layer it re-rounds is stored as chosen; onnxruntime runs the result', async () => {
    const tmp = tempDir();
    try {
      const b = new ModelBuilder({ opset: 13, seed: 5 });
      let x = b.input('x', DataType.FLOAT, [1, 4, 12, 12]);
      for (let i = 0; i < 3; i++) x = b.relu(b.conv(x, 4, 4, 3, { name: `conv${i}` }));
      b.output(x, DataType.FLOAT, [1, 4, 12, 12]);
      const { report: r } = await quantizeBuilt(b.build(), tmp.dir, 'chain', { ...DEFAULT_CONFIG, kernelSumRounding: true });
      const ar = r.refinements.find((f) => f.name === 'learned rounding')!;
      assert.match(ar.summary, /re-rounded/);
      assert.doesNotMatch(ar.summary, /would not store/);
      assert.ok(r.eval.outputs[0]!.sqnrDb > 20, `SQNR ${r.eval.outputs[0]!.sqnrDb}`);
    } finally {
      tmp.cleanup();
    }
  });
});

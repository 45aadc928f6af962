/**
 * Calibration against independent references: a builder model whose values are exact in float32
 * (so JS double arithmetic gives the same numbers), non-finite counts classified in JS, minmax
 * (in-graph reductions) cross-checked against the histogram path (tensors scanned in JS), real
 * published models, cancellation, external data and memory that does not grow with samples.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { makeTensor } from '../../src/onnx/tensor-data';
import { HistogramObserver, percentileRange } from '../../src/quant';
import { float32ToFp16Bits, fp16BitsToNumber } from '../../src/quant/fp16';
import { calibrate, calibrationWorkers, chooseRange, gridSubset, observeStrided, stridedCount, TensorObserver, withSampledOutputs, type CalibrationResult, type TensorStats } from '../../src/runtime/calibrate';
import { liveSessionWorkerCount, WorkerSessions } from '../../src/runtime/worker-sessions';
import { activationRanges } from '../../src/runtime/quantize-model';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import type { Sample, SampleSource } from '../../src/runtime/samples';
import { floatTensor, REAL_MODELS, realModelFeeds, tempDir } from '../helpers/ort';

function sourceOf(samples: Sample[], synthetic = false): SampleSource {
  return {
    count: samples.length,
    synthetic,
    description: `${samples.length} in-memory samples`,
    async *samples() {
      yield* samples;
    },
  };
}

// x [2, 4] · W [4, 3] = h; y = Relu(h); s = Shape(y) (int64). Values are multiples of 1/32 with
// small magnitudes, so every product and sum is exact in float32 and in JS doubles alike.
const W = [1, -2, 3, -1, 0.5, 2, -3, 1, -0.5, 2, -1, 0.25].map((v) => v / 2);
function buildMatMulModel() {
  const b = new ModelBuilder({ opset: 17 });
  b.input('x', DataType.FLOAT, [2, 4]);
  b.initializer('W', DataType.FLOAT, [4, 3], new Float32Array(W));
  b.node('MatMul', ['x', 'W'], {}, { outputs: ['h'], name: 'mm' });
  b.node('Relu', ['h'], {}, { outputs: ['y'], name: 'relu' });
  b.node('Shape', ['y'], {}, { outputs: ['s'], name: 'shape' });
  b.output('y', DataType.FLOAT, [2, 3]);
  b.output('s', DataType.INT64, [2]);
  return b.build();
}
const xValues = (k: number) => Float32Array.from({ length: 8 }, (_, i) => (((i * 7 + k * 3) % 9) - 4) / 4);
const matmulSamples = (n: number) => Array.from({ length: n }, (_, k) => ({ x: new ort.Tensor('float32', xValues(k), [2, 4]) }));

/** h = x·W in double precision. */
function hValues(x: Float32Array): number[] {
  const h: number[] = [];
  for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += x[r * 4 + k]! * W[k * 3 + c]!;
    h.push(s);
  }
  return h;
}

/** Reference stats: finite min/max and non-finite counts of the given values. */
function reference(values: number[]) {
  let min = Infinity;
  let max = -Infinity;
  const nonFinite = { nan: 0, posInf: 0, negInf: 0 };
  for (const v of values) {
    if (Number.isNaN(v)) nonFinite.nan++;
    else if (v === Infinity) nonFinite.posInf++;
    else if (v === -Infinity) nonFinite.negInf++;
    else {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  return { min, max, nonFinite };
}

function stats(r: CalibrationResult, name: string): TensorStats {
  const s = r.tensors.get(name);
  assert.ok(s, `no stats for ${name}; unobserved: ${JSON.stringify(r.unobserved)}`);
  return s;
}

describe('calibrate: builder model with exact references', () => {
  const model = OnnxModel.fromProto(buildMatMulModel(), 'matmul.onnx');
  const samples = matmulSamples(6);
  const hAll = samples.flatMap((s) => hValues(s.x.data as Float32Array));
  const xAll = samples.flatMap((s) => [...(s.x.data as Float32Array)]);

  for (const method of ['minmax', 'entropy'] as const) {
    it(`${method}: min/max of input, intermediate and Relu output equal the double-precision reference`, async () => {
      const progress: number[] = [];
      const r = await calibrate(model, ['x', 'h', 'y'], sourceOf(samples, true), {
        method,
        threads: 1,
        onProgress: (p) => {
          if (p.phase === 'calibrate') progress.push(p.done);
          assert.equal(p.total, 6);
        },
      });
      assert.deepEqual(r.unobserved, []);
      assert.equal(r.samples, 6);
      assert.equal(r.synthetic, true);
      assert.deepEqual(progress, [1, 2, 3, 4, 5, 6]);
      assert.ok(r.peakRssBytes > 0 && r.seconds > 0);
      const h = reference(hAll);
      const x = reference(xAll);
      assert.deepEqual([stats(r, 'h').min, stats(r, 'h').max], [h.min, h.max]);
      assert.deepEqual([stats(r, 'x').min, stats(r, 'x').max], [x.min, x.max]);
      assert.deepEqual([stats(r, 'y').min, stats(r, 'y').max], [Math.max(0, h.min), Math.max(0, h.max)]);
      for (const name of ['x', 'h', 'y']) {
        assert.equal(stats(r, name).samples, 6);
        assert.deepEqual(stats(r, name).nonFinite, { nan: 0, posInf: 0, negInf: 0 });
      }
      if (method === 'minmax') assert.equal(stats(r, 'h').histogram, undefined);
      else {
        // Every element of every sample is in the histogram exactly once.
        const hist = stats(r, 'h').histogram!;
        assert.equal(hist.total, hAll.length);
        assert.equal(hist.counts.reduce((a, b) => a + b, 0), hAll.length);
        assert.equal(stats(r, 'x').histogram!.total, xAll.length);
      }
    });

    it(`${method}: NaN and ±Inf are skipped and counted exactly; the range stays finite`, async () => {
      const bad = xValues(1);
      bad[0] = NaN; // row 0 of h becomes NaN
      bad[5] = Infinity; // row 1 of h becomes ±Inf (NaN where W is 0)
      const withBad = [...matmulSamples(2), { x: new ort.Tensor('float32', bad, [2, 4]) }];
      const r = await calibrate(model, ['x', 'h'], sourceOf(withBad), { method, threads: 1 });
      const h = reference(withBad.flatMap((s) => hValues(s.x.data as Float32Array)));
      const x = reference(withBad.flatMap((s) => [...(s.x.data as Float32Array)]));
      assert.ok(h.nonFinite.nan > 0 && h.nonFinite.posInf + h.nonFinite.negInf > 0, 'the reference must exercise NaN and Inf');
      assert.deepEqual(stats(r, 'h').nonFinite, h.nonFinite);
      assert.deepEqual([stats(r, 'h').min, stats(r, 'h').max], [h.min, h.max]);
      assert.deepEqual(stats(r, 'x').nonFinite, x.nonFinite);
      assert.deepEqual([stats(r, 'x').min, stats(r, 'x').max], [x.min, x.max]);
    });
  }

  for (const [opset, shape] of [[17, [1, 1000]], [17, ['n', 1000]], [9, [1, 1000]]] as const) {
    it(`histogramValues (opset ${opset}, input shape [${shape.join(', ')}]): a large tensor's histogram bins the strided subset, its min/max stay exact; graph inputs are sampled the same way in JS; small tensors are whole`, async () => {
      // x [1, 1000] → Relu → h (1000 values: sampled at 100, step 10) → ReduceMean → m (1 value: whole).
      const b = new ModelBuilder({ opset });
      b.input('x', DataType.FLOAT, [...shape]);
      b.node('Relu', ['x'], {}, { outputs: ['h'], name: 'relu' });
      b.node('ReduceMean', ['h'], { axes: [1], keepdims: 1 }, { outputs: ['m'], name: 'mean' });
      b.output('m', DataType.FLOAT, [shape[0], 1]);
      const model = OnnxModel.fromProto(b.build(), 'sampled.onnx');
      const xs = Array.from({ length: 5 }, (_, k) => Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 0.37 + k) * (1 + ((i * 13 + k) % 7))));
      const r = await calibrate(model, ['x', 'h', 'm'], sourceOf(xs.map((x) => ({ x: new ort.Tensor('float32', x, [1, 1000]) }))), { method: 'mse', threads: 1, histogramValues: 100 });
      // Reference: the same subsets, picked in JS (start = 7919·k mod 10, then every 10th value).
      const ref = new HistogramObserver();
      let min = Infinity;
      let max = -Infinity;
      for (const [k, x] of xs.entries()) {
        const h = x.map((v) => Math.max(0, v));
        for (const v of h) {
          min = Math.min(min, v);
          max = Math.max(max, v);
        }
        ref.extendRange(Math.min(...h), Math.max(...h));
        ref.update(h.filter((_, i) => i % 10 === (7919 * k) % 10));
      }
      const hs = stats(r, 'h');
      assert.deepEqual([hs.min, hs.max], [min, max], 'exact extremes');
      assert.equal(hs.histogram!.total, 500, '100 values per sample');
      assert.deepEqual([...hs.histogram!.counts], [...ref.histogram().counts]);
      const xs_ = stats(r, 'x');
      assert.equal(xs_.histogram!.total, 500, 'graph inputs: the same 100 values per sample');
      assert.deepEqual([xs_.min, xs_.max], [Math.min(...xs.map((x) => Math.min(...x))), Math.max(...xs.map((x) => Math.max(...x)))], 'graph inputs: exact extremes');
      // m has static size 1 when the shape is fixed (returned whole); with a symbolic dim it goes
      // through the subset path with step 1, which is the whole tensor too.
      assert.equal(stats(r, 'm').histogram!.total, 5);
    });
  }

  it('histogramValues with float16 and float32 tensors side by side: each gets its own subset and exact extremes', async () => {
    // x [1, 1000] → Relu → h (float32); Cast → h16 (float16) → Neg → n16; each sampled at 100 (step 10).
    const b = new ModelBuilder({ opset: 17 });
    b.input('x', DataType.FLOAT, [1, 1000]);
    b.node('Relu', ['x'], {}, { outputs: ['h'], name: 'relu' });
    b.node('Cast', ['h'], { to: DataType.FLOAT16 }, { outputs: ['h16'], name: 'cast' });
    b.node('Neg', ['h16'], {}, { outputs: ['n16'], name: 'neg' });
    b.output('n16', DataType.FLOAT16, [1, 1000]);
    const model = OnnxModel.fromProto(b.build(), 'fp16.onnx');
    const xs = Array.from({ length: 4 }, (_, k) => Float32Array.from({ length: 1000 }, (_, i) => Math.cos(i * 0.21 + k) * (2 + ((i * 11 + k) % 5))));
    const r = await calibrate(model, ['h', 'h16', 'n16'], sourceOf(xs.map((x) => ({ x: new ort.Tensor('float32', x, [1, 1000]) }))), { method: 'mse', threads: 1, histogramValues: 100 });
    const toHalf = (v: number) => fp16BitsToNumber(float32ToFp16Bits(v));
    const refs = { h: (v: number) => Math.max(0, v), h16: (v: number) => toHalf(Math.max(0, v)), n16: (v: number) => -toHalf(Math.max(0, v)) };
    for (const [name, f] of Object.entries(refs)) {
      const ref = new HistogramObserver();
      for (const [k, x] of xs.entries()) {
        const vals = Array.from(x, f);
        ref.extendRange(Math.min(...vals), Math.max(...vals));
        ref.update(Float32Array.from(vals.filter((_, i) => i % 10 === (7919 * k) % 10)));
      }
      const st = stats(r, name);
      const h = ref.histogram();
      assert.deepEqual([st.min, st.max], [h.min, h.max], `${name}: exact extremes`);
      assert.equal(st.histogram!.total, 400, `${name}: 100 values per sample`);
      assert.deepEqual([...st.histogram!.counts], [...h.counts], name);
    }
  });

  it('histogramValues: a Relu output of static shape [N, C, H, W] is sampled on a grid (every channel, every s-th row and column), with its exact max', async () => {
    // x [1, 4, 10, 10] → Relu → h (400 values; limit 100: stride 2, 4·5·5 = 100 values a sample);
    // Neg → n (not a Relu: the flat strided subset with exact min and max).
    const b = new ModelBuilder({ opset: 17 });
    b.input('x', DataType.FLOAT, [1, 4, 10, 10]);
    b.node('Relu', ['x'], {}, { outputs: ['h'], name: 'relu' });
    b.node('Neg', ['h'], {}, { outputs: ['n'], name: 'neg' });
    b.output('n', DataType.FLOAT, [1, 4, 10, 10]);
    const proto = b.build();
    assert.deepEqual(
      [gridSubset([1, 4, 10, 10], 100), gridSubset([1, 4, 10, 10], 99), gridSubset([1, 4, 10, 10], 16), gridSubset([1, 4, 10, 10], 3), gridSubset([4, 10], 100)],
      [{ stride: 2, size: 100 }, { stride: 3, size: 64 }, { stride: 5, size: 16 }, undefined, undefined],
    );
    const dims = [1, 4, 10, 10];
    const sampled = withSampledOutputs(proto, new Map([['h', { type: 'float32', size: 400, dims }], ['n', { type: 'float32', size: 400, dims }]]), 100)!;
    assert.deepEqual(sampled.outputs.flatMap((o) => o.segments.map((sg) => sg.kind)), ['grid', 'strided']);
    // Relu6 (Clip with min 0, here a Constant node) cannot be negative either; Clip from −1 can.
    const clips = new ModelBuilder({ opset: 17 });
    clips.input('x', DataType.FLOAT, [1, 4, 10, 10]);
    clips.node('Constant', [], { value: makeTensor('zero', DataType.FLOAT, [], [0]) }, { outputs: ['zero'], name: 'zero' });
    clips.initializer('six', DataType.FLOAT, [], new Float32Array([6]));
    clips.initializer('minus1', DataType.FLOAT, [], new Float32Array([-1]));
    clips.node('Clip', ['x', 'zero', 'six'], {}, { outputs: ['r6'], name: 'relu6' });
    clips.node('Clip', ['x', 'minus1', 'six'], {}, { outputs: ['c'], name: 'clip' });
    clips.node('Add', ['r6', 'c'], {}, { outputs: ['y'], name: 'add' });
    clips.output('y', DataType.FLOAT, [1, 4, 10, 10]);
    const clipped = withSampledOutputs(clips.build(), new Map(['r6', 'c'].map((n) => [n, { type: 'float32', size: 400, dims }])), 100)!;
    assert.deepEqual(clipped.outputs.flatMap((o) => o.segments.map((sg) => sg.kind)), ['grid', 'strided']);

    const xs = Array.from({ length: 4 }, (_, k) => Float32Array.from({ length: 400 }, (_, i) => Math.sin(i * 0.29 + k) * (1 + ((i * 7 + k) % 9))));
    const r = await calibrate(OnnxModel.fromProto(proto, 'grid.onnx'), ['h', 'n'], sourceOf(xs.map((x) => ({ x: new ort.Tensor('float32', x, [1, 4, 10, 10]) }))), { method: 'mse', threads: 1, histogramValues: 100 });
    const ref = new HistogramObserver();
    let max = -Infinity;
    for (const x of xs) {
      const h = Array.from(x, (v) => Math.max(0, v));
      // NCHW index (c·10 + y)·10 + x: rows and columns 0, 2, …, 8 of each channel.
      const subset = Float32Array.from(h.filter((_, i) => Math.floor(i / 10) % 2 === 0 && (i % 10) % 2 === 0));
      assert.equal(subset.length, 100);
      max = Math.max(max, ...h);
      ref.extendRange(Math.min(...subset), Math.max(...h));
      ref.update(subset);
    }
    const hs = stats(r, 'h');
    const want = ref.histogram();
    assert.equal(hs.max, max, 'exact max');
    assert.equal(hs.min, 0, 'the min is the subset\'s: 0, as for every Relu output with a zero in it');
    assert.equal(hs.histogram!.total, 400, '100 values per sample');
    assert.deepEqual([...hs.histogram!.counts], [...want.counts]);
    assert.deepEqual([stats(r, 'n').min, stats(r, 'n').max + 0], [-max, 0], 'the Neg output keeps its exact extremes (max −0)');
  });

  it('histogramValues: every tensor comes back in one output per float type; a size that is no multiple of the step gives subsets whose length follows the phase', async () => {
    // x [1, 1005] → Relu → h (static 1005: step ⌈1005/100⌉ = 11, 91 or 92 values by phase);
    // Sigmoid → g (dynamic length via Slice of x's shape); Neg → n (static, 5 values: whole).
    const b = new ModelBuilder({ opset: 17 });
    b.input('x', DataType.FLOAT, [1, 1005]);
    b.input('k', DataType.INT64, [1]);
    b.initializer('zero', DataType.INT64, [1], new BigInt64Array([0n]));
    b.initializer('axis', DataType.INT64, [1], new BigInt64Array([1n]));
    b.initializer('five', DataType.INT64, [1], new BigInt64Array([5n]));
    b.node('Relu', ['x'], {}, { outputs: ['h'], name: 'relu' });
    b.node('Slice', ['x', 'zero', 'k', 'axis'], {}, { outputs: ['xs'], name: 'head' });
    b.node('Sigmoid', ['xs'], {}, { outputs: ['g'], name: 'sigmoid' });
    b.node('Slice', ['x', 'zero', 'five', 'axis'], {}, { outputs: ['x5'], name: 'five' });
    b.node('Neg', ['x5'], {}, { outputs: ['n'], name: 'neg' });
    b.output('g', DataType.FLOAT, [1, 'm']);
    b.output('n', DataType.FLOAT, [1, 5]);
    b.output('h', DataType.FLOAT, [1, 1005]);
    const proto = b.build();
    const sampled = withSampledOutputs(proto, new Map([['h', { type: 'float32', size: 1005 }], ['g', { type: 'float32' }], ['n', { type: 'float32', size: 5 }]]), 100)!;
    assert.deepEqual(sampled.outputs.map((o) => o.segments.map((sg) => sg.kind)), [['strided', 'dynamic', 'whole']], 'one float32 output for all three');
    assert.ok(sampled.counts, 'the dynamic tensor\'s step and length come back as int64');
    // start = 7919·i mod 11: i = 0 → 0 (positions 0…1001: 92 values), i = 1 → 10 (10…1000: 91), i = 2 → 9 (9…999: 91).
    assert.deepEqual([0, 1, 2].map((i) => stridedCount(1005, 11, i)), [92, 91, 91]);

    const model = OnnxModel.fromProto(proto, 'odd.onnx');
    const lengths = [1005, 700, 400, 1005, 250];
    const xs = lengths.map((_, i) => Float32Array.from({ length: 1005 }, (_, j) => Math.sin(j * 0.11 + i) * (1 + (j % 5))));
    const samples = xs.map((x, i) => ({ x: new ort.Tensor('float32', x, [1, 1005]), k: new ort.Tensor('int64', BigInt64Array.of(BigInt(lengths[i]!)), [1]) }));
    // x, a graph input, is observed in JS the same way: exact extremes and the same strided subset.
    const r = await calibrate(model, ['h', 'g', 'n', 'x'], sourceOf(samples), { method: 'mse', threads: 1, histogramValues: 100 });
    const refs = { h: new HistogramObserver(), g: new HistogramObserver(), n: new HistogramObserver(), x: new HistogramObserver() };
    for (const [i, x] of xs.entries()) {
      refs.x.extendRange(Math.min(...x), Math.max(...x));
      refs.x.update(x.filter((_, j) => j % 11 === (7919 * i) % 11));
      const h = Array.from(x, (v) => Math.max(0, v));
      refs.h.extendRange(Math.min(...h), Math.max(...h));
      refs.h.update(Float32Array.from(h.filter((_, j) => j % 11 === (7919 * i) % 11)));
      const g = Array.from(x.subarray(0, lengths[i]), (v) => 1 / (1 + Math.exp(-v)));
      const step = Math.ceil(g.length / 100);
      const gf = Float32Array.from(g);
      refs.g.extendRange(Math.min(...gf), Math.max(...gf));
      refs.g.update(gf.filter((_, j) => j % step === (7919 * i) % step));
      refs.n.update(Float32Array.from(x.subarray(0, 5), (v) => -v));
    }
    for (const [name, ref] of Object.entries(refs)) {
      const want = ref.histogram();
      const got = stats(r, name).histogram!;
      assert.equal(got.total, want.total, `${name}: values binned`);
      if (name === 'g') {
        // onnxruntime's Sigmoid may differ from Math.exp's in the last bits: the counts are checked above.
        assert.ok(Math.abs(got.min - want.min) < 1e-6 && Math.abs(got.max - want.max) < 1e-6, 'g: extremes');
        continue;
      }
      assert.deepEqual([got.min, got.max], [want.min, want.max], `${name}: exact extremes`);
      assert.deepEqual([...got.counts], [...want.counts], name);
    }
  });

  it('observeStrided: a graph input\'s extremes skip NaN/Inf, which are counted from the subset; a small one is binned whole', () => {
    const values = Float32Array.from({ length: 50 }, (_, j) => j - 20);
    values[3] = NaN; // in the subset of sample 0 (step 3, start 0)
    values[4] = Infinity; // not in it
    values[49] = -1000; // the minimum, not in the subset
    const obs = new TensorObserver('mse', undefined);
    observeStrided(obs, values, 20, 0);
    const st = obs.stats()!;
    assert.deepEqual([st.min, st.max], [-1000, 28]);
    assert.deepEqual(st.nonFinite, { nan: 1, posInf: 0, negInf: 0 });
    assert.equal(st.histogram!.total, 16, '17 values at positions 0, 3, …, 48, one of them NaN');
    const small = new TensorObserver('mse', undefined);
    observeStrided(small, Float32Array.of(1, 2, 3), 20, 5);
    assert.equal(small.stats()!.histogram!.total, 3);
  });

  it('minmax: tensors of rank 4, 2 and 0 (reductions grouped by rank) give the histogram path\'s ranges and counts, NaN / ±Inf included', async () => {
    // x [1, 2, 2, 2] → Relu → r4; Reshape → r2 [2, 4]; ReduceMean → m (a scalar); Add → z [2, 4].
    const b = new ModelBuilder({ opset: 17 });
    b.input('x', DataType.FLOAT, [1, 2, 2, 2]);
    b.initializer('shape', DataType.INT64, [2], new BigInt64Array([2n, 4n]));
    b.node('Relu', ['x'], {}, { outputs: ['r4'], name: 'relu' });
    b.node('Mul', ['r4', 'r4'], {}, { outputs: ['sq'], name: 'square' });
    b.node('Reshape', ['sq', 'shape'], {}, { outputs: ['r2'], name: 'reshape' });
    b.node('ReduceMean', ['r2'], { keepdims: 0 }, { outputs: ['m'], name: 'mean' });
    b.node('Add', ['r2', 'm'], {}, { outputs: ['z'], name: 'add' });
    b.output('z', DataType.FLOAT, [2, 4]);
    const ranked = OnnxModel.fromProto(b.build(), 'ranked.onnx');
    const values = (k: number) => Float32Array.from({ length: 8 }, (_, i) => (((i * 5 + k * 3) % 11) - 5) / 4);
    const bad = values(3);
    bad[2] = NaN;
    bad[6] = Infinity;
    const feeds = [0, 1, 2].map((k) => ({ x: new ort.Tensor('float32', values(k), [1, 2, 2, 2]) }));
    for (const set of [feeds, [...feeds, { x: new ort.Tensor('float32', bad, [1, 2, 2, 2]) }]]) {
      const names = ['x', 'r4', 'sq', 'r2', 'm', 'z'];
      const mm = await calibrate(ranked, names, sourceOf(set), { method: 'minmax', threads: 1 });
      const hist = await calibrate(ranked, names, sourceOf(set), { method: 'entropy', threads: 1 });
      assert.deepEqual(mm.unobserved, hist.unobserved);
      for (const name of names) {
        if (!hist.tensors.has(name)) continue;
        const [a, h] = [stats(mm, name), stats(hist, name)];
        assert.deepEqual([a.min, a.max, a.nonFinite, a.samples], [h.min, h.max, h.nonFinite, h.samples], `${name} (${set.length} samples)`);
      }
      assert.equal(mm.tensors.size, hist.tensors.size);
      assert.ok(mm.tensors.has('m') && mm.tensors.has('r4') && mm.tensors.has('r2'));
      const nonFinite = (name: string) => Object.values(stats(mm, name).nonFinite).reduce((x, y) => x + y, 0);
      if (set.length > feeds.length) assert.ok(nonFinite('sq') > 0 && nonFinite('z') > 0 && nonFinite('m') > 0, 'the bad sample must reach the intermediate tensors');
    }
  });

  it('reports what it cannot calibrate, with reasons, and does not touch the loaded model', async () => {
    const outputsBefore = model.proto.graph!.output.length;
    const nodesBefore = model.proto.graph!.node.length;
    const r = await calibrate(model, ['h', 'W', 's', 'nope', 'h'], sourceOf(samples.slice(0, 2)), { method: 'minmax', threads: 1 });
    assert.deepEqual([...r.tensors.keys()], ['h']);
    const reasons = new Map(r.unobserved.map((u) => [u.name, u.reason]));
    assert.deepEqual([...reasons.keys()].sort(), ['W', 'nope', 's']);
    assert.match(reasons.get('W')!, /initializer/);
    assert.match(reasons.get('s')!, /has type int64; only float tensors/);
    assert.match(reasons.get('nope')!, /no tensor of this name/);
    assert.equal(model.proto.graph!.output.length, outputsBefore);
    assert.equal(model.proto.graph!.node.length, nodesBefore);
  });

  it('rejects an empty sample source', async () => {
    await assert.rejects(calibrate(model, ['h'], sourceOf([]), { method: 'minmax', threads: 1 }), /has no samples/);
  });

  it('names the model and the sample when onnxruntime cannot run a sample', async () => {
    const wrong = [{ x: new ort.Tensor('float32', new Float32Array(6), [2, 3]) }];
    await assert.rejects(calibrate(model, ['h'], sourceOf(wrong), { method: 'minmax', threads: 1 }), (err: Error) => {
      assert.equal(err.name, 'ModelRunError');
      assert.match(err.message, /^matmul\.onnx: onnxruntime failed to run the model on calibration sample 1: /);
      return true;
    });
  });

  it('reads weights from external data next to the model file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'external.onnx');
      const saved = saveModel(buildMatMulModel(), file, { externalData: 'always', externalThreshold: 16 });
      assert.ok(saved.externalDataFile && saved.externalBytes >= 48);
      const r = await calibrate(OnnxModel.load(file), ['h'], sourceOf(samples), { method: 'minmax', threads: 1 });
      const h = reference(hAll);
      assert.deepEqual([stats(r, 'h').min, stats(r, 'h').max], [h.min, h.max]);
    } finally {
      cleanup();
    }
  });
});

describe('calibrate: cancellation', () => {
  const model = OnnxModel.fromProto(buildMatMulModel(), 'matmul.onnx');

  it('stops between samples with an AbortError, and calibrates again afterwards', async () => {
    for (const method of ['minmax', 'mse'] as const) {
      const controller = new AbortController();
      let last = 0;
      const run = calibrate(model, ['h'], sourceOf(matmulSamples(50)), {
        method,
        threads: 1,
        signal: controller.signal,
        onProgress: (p) => {
          last = p.done;
          if (p.done === 3) controller.abort();
        },
      });
      await assert.rejects(run, (err: Error) => err.name === 'AbortError');
      assert.equal(last, 3);
      const again = await calibrate(model, ['h'], sourceOf(matmulSamples(4)), { method, threads: 1 });
      assert.equal(again.samples, 4);
    }
  });

  it('aborts promptly while the sample source is stuck', async () => {
    let closed = false;
    const stuck: SampleSource = {
      count: 10,
      synthetic: false,
      description: 'a source that stops answering',
      async *samples() {
        try {
          yield matmulSamples(1)[0]!;
          await new Promise(() => undefined); // never settles, and ignores the signal
        } finally {
          closed = true;
        }
      },
    };
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(calibrate(model, ['h'], stuck, { method: 'minmax', threads: 1, signal: controller.signal }), { name: 'AbortError' });
    assert.ok(Date.now() - started < 2000, 'the abort must not wait for the source');
    assert.equal(closed, false); // the generator is still suspended inside its await, as expected
  });

  it('rejects at once when the signal is already aborted', async () => {
    await assert.rejects(
      calibrate(model, ['h'], sourceOf(matmulSamples(2)), { method: 'minmax', signal: AbortSignal.abort() }),
      { name: 'AbortError' },
    );
  });
});

describe('calibrate: samples in worker threads', () => {
  const cls = OnnxModel.load(REAL_MODELS.ocrCls);
  const convs = cls.graph.proto.node.filter((n) => n.opType === 'Conv').map((n) => n.output[0]!);
  const base = realModelFeeds('ocrCls').x;
  const clsSamples = Array.from({ length: 7 }, (_, k) => ({ x: floatTensor(base.dims as number[], (i) => (base.data as Float32Array)[i]! * (1 + 0.2 * k) - 0.03 * k) }));

  /** Everything calibration reports per tensor, histograms included. */
  function summary(r: CalibrationResult) {
    return [...r.tensors].map(([name, s]) => ({ name, min: s.min, max: s.max, nonFinite: s.nonFinite, samples: s.samples, counts: s.histogram ? [...s.histogram.counts] : undefined, lo: s.histogram?.lo, hi: s.histogram?.hi }));
  }

  for (const [method, histogramValues] of [['minmax', undefined], ['mse', 4096], ['entropy', 0]] as const) {
    it(`${method}${histogramValues !== undefined ? `, histogramValues ${histogramValues}` : ''}: two workers give exactly the statistics of one session, reported in sample order`, async () => {
      const progress: number[] = [];
      const one = await calibrate(cls, convs, sourceOf(clsSamples), { method, histogramValues, threads: 2, workers: 1, bins: 512 });
      const two = await calibrate(cls, convs, sourceOf(clsSamples), { method, histogramValues, threads: 2, workers: 2, bins: 512, onProgress: (p) => p.phase === 'calibrate' && progress.push(p.done) });
      assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(two.samples, 7);
      assert.deepEqual(two.unobserved, one.unobserved);
      assert.equal(two.tensors.size, convs.length);
      assert.deepEqual(summary(two), summary(one));
      assert.equal(liveSessionWorkerCount(), 0, 'the workers are gone when calibrate returns');
    });
  }

  it('minmax with NaN / ±Inf in a sample: the fallback path gives the reference counts with workers too', async () => {
    const model = OnnxModel.fromProto(buildMatMulModel(), 'matmul.onnx');
    const bad = xValues(1);
    bad[0] = NaN;
    bad[5] = Infinity;
    const set = [...matmulSamples(3), { x: new ort.Tensor('float32', bad, [2, 4]) }, ...matmulSamples(2)];
    const r = await calibrate(model, ['x', 'h'], sourceOf(set), { method: 'minmax', threads: 2, workers: 2 });
    const h = reference(set.flatMap((s) => hValues(s.x.data as Float32Array)));
    assert.deepEqual(stats(r, 'h').nonFinite, h.nonFinite);
    assert.deepEqual([stats(r, 'h').min, stats(r, 'h').max], [h.min, h.max]);
  });

  it('a sample onnxruntime cannot run fails with the model and sample named, and no worker is left', async () => {
    const model = OnnxModel.fromProto(buildMatMulModel(), 'matmul.onnx');
    const set = [...matmulSamples(4), { x: new ort.Tensor('float32', new Float32Array(6), [2, 3]) }, ...matmulSamples(3)];
    for (const method of ['minmax', 'mse'] as const) {
      await assert.rejects(calibrate(model, ['h'], sourceOf(set), { method, threads: 2, workers: 2 }), (err: Error) => {
        assert.equal(err.name, 'ModelRunError');
        assert.match(err.message, /^matmul\.onnx: onnxruntime failed to run the model on calibration sample 5: /);
        return true;
      });
      assert.equal(liveSessionWorkerCount(), 0);
    }
  });

  it('cancel mid-run: AbortError, no worker left, and the next calibration works', async () => {
    const controller = new AbortController();
    let last = 0;
    const run = calibrate(cls, convs, sourceOf([...clsSamples, ...clsSamples]), {
      method: 'mse',
      histogramValues: 4096,
      threads: 2,
      workers: 2,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase !== 'calibrate') return;
        last = p.done;
        if (p.done === 3) controller.abort();
      },
    });
    await assert.rejects(run, { name: 'AbortError' });
    assert.ok(last >= 3 && last < 14, `stopped after ${last} samples`);
    assert.equal(liveSessionWorkerCount(), 0);
    const again = await calibrate(cls, convs.slice(0, 3), sourceOf(clsSamples.slice(0, 3)), { method: 'minmax', threads: 2, workers: 2 });
    assert.equal(again.samples, 3);
  });

  it('worker sessions: a model onnxruntime refuses is a ModelLoadError naming it, and no worker is left', async () => {
    await assert.rejects(WorkerSessions.create(new Uint8Array([8, 1, 18, 3, 1, 2]), { workers: 2, threadsPerWorker: 1, name: 'broken.onnx' }), (err: Error) => {
      assert.equal(err.name, 'ModelLoadError');
      assert.match(err.message, /^broken\.onnx: onnxruntime cannot load the model: /);
      return true;
    });
    assert.equal(liveSessionWorkerCount(), 0);
  });

  /** Runs `test` with two worker sessions and one in-process session of the MatMul model, then releases both; returns the pool. */
  async function withMatMulSessions(test: (pool: WorkerSessions, session: ort.InferenceSession) => Promise<void>): Promise<WorkerSessions> {
    const bytes = encodeModel(buildMatMulModel());
    const pool = await WorkerSessions.create(bytes, { workers: 2, threadsPerWorker: 1, name: 'matmul.onnx' });
    const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    try {
      await test(pool, session);
    } finally {
      await pool.release();
      await session.release();
    }
    return pool;
  }

  it('worker sessions: runs spread over the workers give what one in-process session gives; after release a run is refused, not left hanging', async () => {
    const released = await withMatMulSessions(async (pool, session) => {
      const feeds = matmulSamples(6);
      const [viaPool, here] = await Promise.all([Promise.all(feeds.map((f, i) => pool.run(f, ['y', 's'], `sample ${i + 1}`))), Promise.all(feeds.map((f) => session.run(f)))]);
      for (const [i, r] of viaPool.entries()) {
        assert.deepEqual([...(r.y!.data as Float32Array)], [...(here[i]!.y!.data as Float32Array)]);
        assert.deepEqual(r.s!.data, here[i]!.s!.data);
        assert.equal(r.s!.type, 'int64');
      }
    });
    assert.equal(liveSessionWorkerCount(), 0);
    await assert.rejects(released.run(matmulSamples(1)[0]!, ['y'], 'sample 1'), { name: 'ModelRunError', message: 'matmul.onnx: onnxruntime failed to run the model on sample 1: every session worker has stopped' });
  });

  it('worker sessions with a shared slot: feeds and outputs pass through it while they fit, the rest in buffers of their own, with the same values', async () => {
    await withMatMulSessions(async (pool, session) => {
      const feeds = matmulSamples(5);
      const here = await Promise.all(feeds.map((f) => session.run(f)));
      // y: 6 float32 (24 bytes), then s: 2 int64 at byte 24; x: 8 float32 (32 bytes).
      const roomy = new SharedArrayBuffer(64);
      for (const [i, f] of feeds.entries()) {
        // One slot, reused run after run: each run's outputs are read before the next.
        const r = await pool.run(f, ['y', 's'], `sample ${i + 1}`, roomy);
        assert.equal((r.y!.data as Float32Array).buffer, roomy);
        assert.equal((r.s!.data as BigInt64Array).buffer, roomy);
        assert.equal((r.s!.data as BigInt64Array).byteOffset, 24);
        assert.deepEqual([...(r.y!.data as Float32Array)], [...(here[i]!.y!.data as Float32Array)]);
        assert.deepEqual([...(r.s!.data as BigInt64Array)], [...(here[i]!.s!.data as BigInt64Array)]);
        assert.deepEqual([...r.y!.dims], [2, 3]);
      }
      // Room for the feed and y but not s: s comes back in its own buffer.
      const tight = new SharedArrayBuffer(32);
      const r = await pool.run(feeds[0]!, ['y', 's'], 'sample 1', tight);
      assert.equal((r.y!.data as Float32Array).buffer, tight);
      assert.notEqual((r.s!.data as BigInt64Array).buffer, tight);
      assert.deepEqual([...(r.s!.data as BigInt64Array)], [...(here[0]!.s!.data as BigInt64Array)]);
      // Room for nothing: the feed goes and the outputs come back as without a slot.
      const tiny = new SharedArrayBuffer(8);
      const t = await pool.run(feeds[1]!, ['y'], 'sample 2', tiny);
      assert.notEqual((t.y!.data as Float32Array).buffer, tiny);
      assert.deepEqual([...(t.y!.data as Float32Array)], [...(here[1]!.y!.data as Float32Array)]);
    });
    assert.equal(liveSessionWorkerCount(), 0);
  });

  it('calibrationWorkers: one per thread up to 4; one for few samples, models over 256 MB or little free memory', () => {
    const GB = 2 ** 30;
    assert.equal(calibrationWorkers(2, 10e6, 64, 16 * GB), 2);
    assert.equal(calibrationWorkers(16, 10e6, 64, 16 * GB), 4);
    assert.equal(calibrationWorkers(1, 10e6, 64, 16 * GB), 1);
    assert.equal(calibrationWorkers(8, 10e6, 15, 16 * GB), 1, 'too few samples to repay the start');
    assert.equal(calibrationWorkers(8, 300 * 2 ** 20, 64, 16 * GB), 1, 'too large to copy');
    assert.equal(calibrationWorkers(8, 10e6, 64, 2.5 * GB), 2, 'free memory for two sessions');
    assert.equal(calibrationWorkers(8, 10e6, 64, 0.5 * GB), 1);
  });
});

describe('chooseRange', () => {
  const hist = { counts: new Float64Array([1, 0, 0, 8, 1]), lo: -2, hi: 3, total: 10, min: -2, max: 3, symmetric: false, nanCount: 0, posInfCount: 0, negInfCount: 0 };
  const s: TensorStats = { min: -2, max: 3, histogram: hist, nonFinite: { nan: 0, posInf: 0, negInf: 0 }, samples: 1 };

  it('minmax is the observed range, widened to ±absmax when symmetric', () => {
    assert.deepEqual(chooseRange(s, 'minmax', 'uint8'), { min: -2, max: 3 });
    assert.deepEqual(chooseRange(s, 'minmax', 'int8', { symmetric: true }), { min: -3, max: 3 });
  });

  it('histogram methods use the src/quant choosers with the given percentile and symmetry', () => {
    assert.deepEqual(chooseRange(s, 'percentile', 'uint8', { percentile: 90 }), percentileRange(hist, 90, { symmetric: false }));
    assert.deepEqual(chooseRange(s, 'percentile', 'int8', { percentile: 90, symmetric: true }), percentileRange(hist, 90, { symmetric: true }));
    const e = chooseRange(s, 'entropy', 'uint8');
    const m = chooseRange(s, 'mse', 'uint8');
    for (const r of [e, m]) assert.ok(r.min >= -2 && r.max <= 3 && r.min < r.max);
  });

  it('activationRanges: a model input keeps its observed range; the same values inside the model get the method\'s (MSE clips a sparse tail)', async () => {
    const b = new ModelBuilder({ opset: 13 });
    b.input('x', DataType.FLOAT, [1, 250000]);
    b.node('Relu', ['x'], {}, { outputs: ['h'], name: 'relu' });
    b.output('h', DataType.FLOAT, [1, 250000]);
    const model = OnnxModel.fromProto(b.build(), 'tail.onnx');
    // A light page with a few dark pixels: values in [0, 1), and one 4 per sample.
    const samples = [0, 1, 2, 3].map((k) => ({ x: floatTensor([1, 250000], (i) => (i === 1000 * k + 17 ? 4 : ((i * 37 + k) % 1000) / 1000)) }));
    const r = await calibrate(model, ['x', 'h'], sourceOf(samples), { method: 'mse', threads: 1, histogramValues: 0 });
    assert.equal(stats(r, 'x').graphInput, true);
    assert.equal(stats(r, 'h').graphInput, undefined);
    const choose = activationRanges(r.tensors, { ...DEFAULT_CONFIG, method: 'mse' });
    assert.deepEqual(choose('x', 'uint8', false), { min: 0, max: 4 });
    const h = choose('h', 'uint8', false)!;
    assert.ok(h.max < 3.5, `MSE range of h: [${h.min}, ${h.max}]`);
  });

  it('refuses a histogram method on minmax statistics', () => {
    assert.throws(() => chooseRange({ ...s, histogram: undefined }, 'entropy', 'uint8'), /needs a histogram/);
  });
});

describe('calibrate: published models', () => {
  it('ocrCls: every Conv output is observed; in-graph minmax equals the JS-scanned histogram range', async () => {
    const model = OnnxModel.load(REAL_MODELS.ocrCls);
    const convs = model.graph.proto.node.filter((n) => n.opType === 'Conv').map((n) => n.output[0]!);
    assert.ok(convs.length >= 50);
    const base = realModelFeeds('ocrCls').x;
    const samples = Array.from({ length: 4 }, (_, k) => ({ x: floatTensor(base.dims as number[], (i) => (base.data as Float32Array)[i]! * (1 + 0.3 * k) + 0.05 * k) }));
    const mm = await calibrate(model, convs, sourceOf(samples), { method: 'minmax' });
    const hist = await calibrate(model, convs, sourceOf(samples), { method: 'percentile', bins: 512 });
    assert.deepEqual(mm.unobserved, []);
    assert.deepEqual(hist.unobserved, []);
    assert.equal(mm.tensors.size, convs.length);
    for (const name of convs) {
      const a = stats(mm, name);
      const b = stats(hist, name);
      // Two differently optimized graphs: kernels may sum in another order, so allow float noise.
      const tol = 1e-4 * Math.max(1, Math.abs(b.min), Math.abs(b.max));
      assert.ok(Math.abs(a.min - b.min) <= tol && Math.abs(a.max - b.max) <= tol, `${name}: [${a.min}, ${a.max}] vs [${b.min}, ${b.max}]`);
      assert.ok(b.min < b.max);
      assert.equal(b.histogram!.counts.reduce((x, y) => x + y, 0), b.histogram!.total);
    }
  });

  it('ocrCls: peak memory does not grow with the number of samples', async () => {
    const model = OnnxModel.load(REAL_MODELS.ocrCls);
    const names = model.graph.proto.node.filter((n) => n.opType !== 'Constant').flatMap((n) => n.output);
    const feeds = realModelFeeds('ocrCls');
    const repeat = (n: number): SampleSource => ({
      count: n,
      synthetic: true,
      description: `${n} copies`,
      async *samples() {
        for (let i = 0; i < n; i++) yield feeds;
      },
    });
    // The histogram path moves every activation (~13 MB a sample) into JS: the one that could grow.
    // Two workers throughout (the default from 16 samples on), so the runs differ only in sample count.
    // Warm-up: code, arenas, and a full pipeline (two samples in flight per worker).
    await calibrate(model, names, repeat(8), { method: 'entropy', bins: 256, workers: 2 });
    // The process's own peak (the kernel's maxRSS, monotonic): calibrate's peakRssBytes is read at
    // most every 50 ms, so a longer run would sample more of its peaks than a shorter one.
    const maxRss = () => process.resourceUsage().maxRSS * 1024;
    await calibrate(model, names, repeat(16), { method: 'entropy', bins: 256, workers: 2 });
    const after16 = maxRss();
    const r64 = await calibrate(model, names, repeat(64), { method: 'entropy', bins: 256, workers: 2 });
    assert.equal(r64.samples, 64);
    assert.ok(r64.peakRssBytes > 0 && r64.peakRssBytes <= maxRss());
    const growth = maxRss() - after16;
    // Keeping activations, as the Python tool does, would add 48 × 13 MB ≈ 620 MB here. With workers
    // the peak moves by 25–50 MB with garbage-collection timing (each sample's ~13 MB of outputs
    // arrive as transferred buffers, four samples in flight).
    assert.ok(growth < 128 * 2 ** 20, `peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MB from 16 to 64 samples`);
  });

  it('silero VAD: tensors inside If branches are unobserved with the reason; main-graph floats are observed', async () => {
    const model = OnnxModel.load(REAL_MODELS.vad);
    const mainNames = new Set(model.graph.proto.node.flatMap((n) => n.output));
    const nested = model.graphs().slice(1).flatMap((g) => g.proto.node.flatMap((n) => n.output)).filter((n) => !mainNames.has(n));
    assert.ok(nested.length > 0);
    const main = [...mainNames].filter((n) => n && !n.startsWith('onnx::') && model.graph.proto.node.find((x) => x.output.includes(n))!.opType !== 'Constant');
    const r = await calibrate(model, [...main, ...nested], sourceOf([realModelFeeds('vad'), realModelFeeds('vad')]), { method: 'minmax' });
    const reasons = new Map(r.unobserved.map((u) => [u.name, u.reason]));
    for (const name of nested) assert.match(reasons.get(name) ?? '', /is inside the (then|else)_branch subgraph of If node "[^"]+"; onnxruntime can only return tensors of the main graph/, name);
    for (const name of main) {
      if (reasons.has(name)) assert.match(reasons.get(name)!, /only float tensors|no finite value/, name);
      else assert.ok(r.tensors.has(name), name);
    }
    assert.ok(r.tensors.size > 20, `only ${r.tensors.size} tensors observed`);
    assert.ok(r.tensors.has('output') || r.tensors.size > 0);
  });
});

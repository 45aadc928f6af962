/**
 * Weight statistics against an independent double-precision reference written here from the
 * definitions (sorting for the percentile, explicit per-element quantization with round half to
 * even), for both engines (WebAssembly SIMD and JavaScript), every layout, unaligned raw bytes and
 * tensors read in place from a model loaded into kernel memory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { saveModel } from '../../src/onnx/save';
import { loadModelForAnalysis } from '../../src/analysis/load';
import { WEIGHT_HISTOGRAM_BINS, weightLayout, type WeightLayout, weightStats, weightStatsOfBytes, type WeightStats } from '../../src/analysis/weight-stats';
import { heapOf } from '../../src/analysis/weight-kernels';
import { tempDir } from '../helpers/ort';

/** Round half to even, in doubles. */
function rne(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Scale/zero point from [lo, hi] ∪ {0}, as src/quant/params.ts defines them (float32 scale, degenerate → 1). */
function params(lo: number, hi: number, qmin: number, qmax: number, symmetric: boolean): { s: number; z: number } {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  if (symmetric) {
    const m = Math.max(-a, b);
    const signed = qmin < 0;
    let s = Math.fround((2 * m) / (qmax - (signed ? -qmax : qmin)));
    const z = signed ? 0 : rne((qmin + qmax) / 2);
    if (!(s >= 1.1754943508222875e-38)) s = 1;
    return { s, z };
  }
  let s = Math.fround((b - a) / (qmax - qmin));
  let z = 0;
  if (s >= 1.1754943508222875e-38) z = Math.min(qmax, Math.max(qmin, rne(qmin - a / s)));
  else s = 1;
  return { s, z };
}

function quantErr(v: number, p: { s: number; z: number }, qmin: number, qmax: number): number {
  const q = Math.min(qmax, Math.max(qmin, rne(v / p.s) + p.z));
  const d = v - (q - p.z) * p.s;
  return d * d;
}

interface Ref {
  min: number;
  max: number;
  mean: number;
  std: number;
  chMin: number[];
  chMax: number[];
  hist: number[];
  absP999: number;
  sqnr: { int8: number; int8PerChannel: number; int4: number };
}

/**
 * The reference: the tensor viewed as a plain multi-dimensional array with an explicit channel
 * axis and an explicit reduction axis for blocks of 32 (no layout tricks).
 */
function reference(x: Float32Array, dims: number[], channelAxis: number, kAxis: number, symmetric: boolean): Ref {
  const n = x.length;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const coord = (i: number, axis: number) => Math.floor(i / strides[axis]!) % dims[axis]!;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  const C = channelAxis < 0 ? 1 : dims[channelAxis]!;
  const chMin = new Array<number>(C).fill(Infinity);
  const chMax = new Array<number>(C).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    sumSq += v * v;
    const c = channelAxis < 0 ? 0 : coord(i, channelAxis);
    chMin[c] = Math.min(chMin[c]!, v);
    chMax[c] = Math.max(chMax[c]!, v);
  }
  const mean = sum / n;
  let varSum = 0;
  for (let i = 0; i < n; i++) varSum += (x[i]! - mean) ** 2;
  const hist = new Array<number>(WEIGHT_HISTOGRAM_BINS).fill(0);
  for (let i = 0; i < n; i++) hist[Math.min(WEIGHT_HISTOGRAM_BINS - 1, Math.floor(((x[i]! - min) / (max - min)) * WEIGHT_HISTOGRAM_BINS))]!++;
  const abs = Array.from(x, Math.abs).sort((a, b) => a - b);
  const h = (n - 1) * 0.999;
  const lo = Math.floor(h);
  const absP999 = abs[lo]! + (h - lo) * (abs[Math.min(n - 1, lo + 1)]! - abs[lo]!);
  const pt = params(min, max, -128, 127, symmetric);
  const pc = chMin.map((m, c) => params(m, chMax[c]!, -128, 127, symmetric));
  // Blocks: key = all coordinates but kAxis, plus floor(k / 32).
  const blocks = new Map<string, { lo: number; hi: number }>();
  const blockKey = (i: number) => dims.map((_, a) => (a === kAxis ? Math.floor(coord(i, a) / 32) : coord(i, a))).join(',');
  for (let i = 0; i < n; i++) {
    const key = blockKey(i);
    const b = blocks.get(key) ?? { lo: 0, hi: 0 };
    b.lo = Math.min(b.lo, x[i]!);
    b.hi = Math.max(b.hi, x[i]!);
    blocks.set(key, b);
  }
  const pb = new Map([...blocks].map(([k, b]) => [k, params(b.lo, b.hi, -8, 7, symmetric)]));
  let eT = 0;
  let eC = 0;
  let eB = 0;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    eT += quantErr(v, pt, -128, 127);
    eC += quantErr(v, pc[channelAxis < 0 ? 0 : coord(i, channelAxis)]!, -128, 127);
    eB += quantErr(v, pb.get(blockKey(i))!, -8, 7);
  }
  const db = (e: number) => 10 * Math.log10(sumSq / e);
  return { min, max, mean, std: Math.sqrt(varSum / n), chMin, chMax, hist, absP999, sqnr: { int8: db(eT), int8PerChannel: db(eC), int4: db(eB) } };
}

function check(s: WeightStats, r: Ref, what: string): void {
  assert.equal(s.min, r.min, `${what}: min`);
  assert.equal(s.max, r.max, `${what}: max`);
  assert.equal(s.absMax, Math.max(-r.min, r.max), `${what}: absMax`);
  // Float32 partial sums (the SIMD engine) carry float32 rounding: ~1e-8 of the spread.
  assert.ok(Math.abs(s.mean - r.mean) <= 1e-7 * r.std + 1e-15, `${what}: mean ${s.mean} vs ${r.mean}`);
  assert.ok(Math.abs(s.std - r.std) <= 1e-6 * r.std, `${what}: std ${s.std} vs ${r.std}`);
  assert.deepEqual(Array.from(s.perChannel.min), r.chMin, `${what}: per-channel min`);
  assert.deepEqual(Array.from(s.perChannel.max), r.chMax, `${what}: per-channel max`);
  const total = s.histogram.counts.reduce((a, b) => a + b, 0);
  assert.equal(total, s.elements, `${what}: histogram sums to the element count`);
  assert.equal(s.histogram.counts.length, WEIGHT_HISTOGRAM_BINS);
  assert.equal(s.histogram.min, r.min);
  assert.equal(s.histogram.max, r.max);
  // Values on a bin edge may land on either side with float32 vs float64 arithmetic: a few at most.
  const moved = s.histogram.counts.reduce((a, c, i) => a + Math.abs(c - r.hist[i]!), 0);
  assert.ok(moved <= Math.max(4, s.elements * 1e-4), `${what}: histogram differs by ${moved} counts`);
  assert.equal(s.absP999, r.absP999, `${what}: 99.9th percentile of |w|`);
  assert.ok(Math.abs(s.outlierScore - s.absMax / r.absP999) < 1e-12, `${what}: outlier score`);
  for (const k of ['int8', 'int8PerChannel', 'int4'] as const) {
    assert.ok(Math.abs(s.sqnrDb[k] - r.sqnr[k]) < 1e-3, `${what}: SQNR ${k} ${s.sqnrDb[k]} vs ${r.sqnr[k]}`);
  }
  const ranges = r.chMin.map((m, c) => r.chMax[c]! - m).sort((a, b) => a - b);
  const mid = ranges.length >> 1;
  const med = ranges.length % 2 ? ranges[mid]! : (ranges[mid - 1]! + ranges[mid]!) / 2;
  assert.ok(Math.abs(s.channelRangeSpread - ranges[ranges.length - 1]! / med) < 1e-9, `${what}: channel range spread`);
}

/** Weights with per-channel scales that differ and a few outliers. */
function weights(n: number, seed: number, channels: (i: number) => number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * 0.02 * (1 + (channels(i) % 5)) + (rng.next() < 0.0005 ? 0.3 : 0);
  return x;
}

const CASES: { name: string; op: string; dims: number[]; transB?: boolean; channelAxis: number; kAxis: number }[] = [
  { name: 'Conv', op: 'Conv', dims: [24, 16, 3, 3], channelAxis: 0, kAxis: -1 },
  { name: 'Conv 1×1 (K not a multiple of 32)', op: 'Conv', dims: [10, 7, 1, 1], channelAxis: 0, kAxis: -1 },
  { name: 'depthwise Conv', op: 'Conv', dims: [32, 1, 3, 3], channelAxis: 0, kAxis: -1 },
  { name: 'ConvTranspose', op: 'ConvTranspose', dims: [12, 8, 3, 3], channelAxis: 1, kAxis: 0 },
  { name: 'Gemm transB', op: 'Gemm', dims: [30, 70], transB: true, channelAxis: 0, kAxis: 1 },
  { name: 'Gemm', op: 'Gemm', dims: [70, 30], channelAxis: 1, kAxis: 0 },
  { name: 'MatMul', op: 'MatMul', dims: [100, 38], channelAxis: 1, kAxis: 0 },
  { name: 'batched MatMul', op: 'MatMul', dims: [3, 40, 12], channelAxis: 2, kAxis: 1 },
  { name: 'LSTM W', op: 'LSTM', dims: [2, 32, 20], channelAxis: -2, kAxis: 2 },
];

/** The reference for a case: Conv blocks run along the flattened C·kH·kW; LSTM channels are D·4H. */
function refFor(x: Float32Array, c: (typeof CASES)[number], symmetric: boolean): Ref {
  if (c.op === 'Conv') return reference(x, [c.dims[0]!, x.length / c.dims[0]!], 0, 1, symmetric);
  if (c.op === 'LSTM') return reference(x, [c.dims[0]! * c.dims[1]!, c.dims[2]!], 0, 1, symmetric);
  return reference(x, c.dims, c.channelAxis, c.kAxis, symmetric);
}

function layoutFor(c: (typeof CASES)[number]): WeightLayout {
  return weightLayout(c.op, c.dims, { transB: c.transB });
}

describe('weight statistics', () => {
  for (const c of CASES) {
    it(`${c.name}: both engines against the double-precision reference`, () => {
      const n = c.dims.reduce((a, b) => a * b, 1);
      const x = weights(n, n + c.dims.length, (i) => i % 7);
      const r = refFor(x, c, true);
      check(weightStats(x, layoutFor(c)), r, `${c.name} (auto)`);
      check(weightStats(x, layoutFor(c), { engine: 'js' }), r, `${c.name} (js)`);
    });
  }

  it('asymmetric weights (JavaScript engine) against the reference', () => {
    const c = CASES[0]!;
    const n = c.dims.reduce((a, b) => a * b, 1);
    const x = weights(n, 9, (i) => i % 3);
    for (let i = 0; i < n; i++) x[i] = x[i]! + 0.01; // off-centre, so zero points matter
    check(weightStats(x, layoutFor(c), { symmetric: false }), refFor(x, c, false), 'asymmetric');
  });

  it('large tensors: the sampled percentile threshold and the SIMD loops agree with the reference', () => {
    const dims = [64, 576];
    const x = weights(64 * 576, 3, (i) => Math.floor(i / 576));
    check(weightStats(x, weightLayout('Gemm', dims, { transB: true })), reference(x, dims, 0, 1, true), 'Gemm 64×576');
    const mm = [576, 64];
    const y = weights(576 * 64, 4, (i) => i % 64);
    check(weightStats(y, weightLayout('MatMul', mm)), reference(y, mm, 1, 0, true), 'MatMul 576×64');
  });

  it('heavy ties at the 99.9th percentile fall back to the exact selection', () => {
    // Already-quantized-looking weights: 16 distinct values.
    const dims = [40, 400];
    const rng = new Rng(7);
    const x = Float32Array.from({ length: 16000 }, () => (Math.floor(rng.next() * 16) - 8) / 64);
    check(weightStats(x, weightLayout('Gemm', dims, { transB: true })), reference(x, dims, 0, 1, true), 'ties');
  });

  it('NaN, ±Inf, denormals and zeros are counted and left out of the statistics', () => {
    const x = weights(24 * 16 * 9, 5, (i) => i % 4);
    const clean = Float32Array.from(x);
    x[3] = NaN;
    x[100] = Infinity;
    x[101] = -Infinity;
    x[200] = 1e-40; // denormal
    x[201] = 0;
    x[202] = -0;
    const s = weightStats(x, weightLayout('Conv', [24, 16, 3, 3]));
    assert.deepEqual(s.nonFinite, { nan: 1, posInf: 1, negInf: 1 });
    assert.equal(s.denormals, 1);
    assert.equal(s.zeros, 2);
    assert.equal(s.histogram.counts.reduce((a, b) => a + b, 0), x.length - 3, 'the histogram holds the finite values');
    const finite = clean.filter((_, i) => ![3, 100, 101, 200, 201, 202].includes(i));
    assert.ok(s.min <= Math.min(...finite) && s.max >= Math.max(...finite));
    for (const k of ['int8', 'int8PerChannel', 'int4'] as const) assert.ok(Number.isFinite(s.sqnrDb[k]) && s.sqnrDb[k] > 10, `${k}: ${s.sqnrDb[k]}`);
    // Denormals and zeros on the fast path too.
    const y = weights(4096, 6, (i) => i % 4);
    y[10] = 1e-41;
    y[11] = 0;
    const f = weightStats(y, weightLayout('MatMul', [64, 64]));
    assert.equal(f.denormals, 1);
    assert.equal(f.zeros, 1);
  });

  it('an all-zero tensor: exact quantization, no outliers, spread 1', () => {
    const s = weightStats(new Float32Array(64), weightLayout('MatMul', [8, 8]));
    assert.equal(s.sqnrDb.int8, Infinity);
    assert.equal(s.outlierScore, 1);
    assert.equal(s.channelRangeSpread, 1);
    assert.equal(s.zeros, 64);
    assert.equal(s.histogram.counts.reduce((a, b) => a + b, 0), 64);
  });

  it('raw bytes at any alignment give the same statistics as the array', () => {
    const x = weights(24 * 16 * 9, 8, (i) => i % 6);
    const layout = weightLayout('Conv', [24, 16, 3, 3]);
    const a = weightStats(x, layout);
    const bytes = new Uint8Array(x.byteLength + 3);
    bytes.set(new Uint8Array(x.buffer), 3);
    const b = weightStatsOfBytes(bytes.subarray(3), layout);
    assert.deepEqual({ ...b, perChannel: null }, { ...a, perChannel: null });
    assert.deepEqual(Array.from(b.perChannel.max), Array.from(a.perChannel.max));
  });

  it('a model loaded into kernel memory is read in place, with the same results', () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder({ opset: 17, seed: 4 });
      let h = b.input('x', DataType.FLOAT, [1, 8, 8, 8]);
      h = b.conv(h, 8, 16, 3);
      b.output(b.matMul(b.node('Flatten', [h]), 16 * 64, 10), DataType.FLOAT, [1, 10]);
      const file = path.join(dir, 'm.onnx');
      saveModel(b.build(), file);
      const model = loadModelForAnalysis(file);
      assert.ok(heapOf(model.buffer.buffer), 'the file bytes live in a kernel heap');
      for (const w of model.weights()) {
        if (w.tensor.dims.length < 2) continue;
        const raw = model.rawBytes(w.tensor)!;
        assert.equal(raw.buffer, model.buffer.buffer);
        const op = w.tensor.dims.length === 4 ? 'Conv' : 'MatMul';
        const layout = weightLayout(op, w.tensor.dims);
        const inPlace = weightStatsOfBytes(raw, layout);
        const copy = Float32Array.from(new Float32Array(new Uint8Array(raw).buffer));
        const ref = op === 'Conv' ? reference(copy, [w.tensor.dims[0]!, copy.length / w.tensor.dims[0]!], 0, 1, true) : reference(copy, w.tensor.dims, 1, 0, true);
        check(inPlace, ref, `${w.name} in place`);
      }
    } finally {
      cleanup();
    }
  });
});

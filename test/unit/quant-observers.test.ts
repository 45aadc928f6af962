/**
 * Calibration observers and range choosers. References: hand-computed moving averages, naive
 * per-channel scans, direct re-binning of all data in the final grid, sorted-array (float64)
 * quantiles, reconstruction MSE measured on the actual data, and straightforward sequential
 * reimplementations of scanBatch and of the two-pass HistogramObserver (the optimized one-pass code
 * must give bit-identical results). The WebAssembly kernels that large batches take are checked
 * against the same references and against the JavaScript loops (useObserverKernels(false)).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  computeQParams,
  dequantize,
  entropyRange,
  foldAbs,
  HistogramObserver,
  MinMaxObserver,
  MovingAverageMinMaxObserver,
  mseRange,
  PerChannelMinMaxObserver,
  percentileRange,
  QuantizationError,
  quantizeTensor,
  type FloatRange,
  type Histogram,
  type QuantType,
} from '../../src/quant';
import { float32Ceil, float32Floor } from '../../src/quant/histogram';
import { emptyScan, scanBatch, type BatchScan } from '../../src/quant/observers';
import { observerKernels, useObserverKernels, WASM_MIN_VALUES } from '../../src/quant/wasm/observer-kernels';

const f32 = (xs: number[]) => new Float32Array(xs);

/** Deterministic PRNG (mulberry32) and Box–Muller gaussians. */
function rng(seed: number) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => {
    let u = 0;
    while (u === 0) u = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, gauss };
}

function gaussianBatches(seed: number, batches: number, size: number, mean = 0): Float32Array[] {
  const { gauss } = rng(seed);
  const out: Float32Array[] = [];
  for (let b = 0; b < batches; b++) {
    const x = new Float32Array(size);
    for (let i = 0; i < size; i++) x[i] = mean + gauss();
    out.push(x);
  }
  return out;
}

function concat(batches: Float32Array[]): Float32Array {
  const out = new Float32Array(batches.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of batches) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

function sumCounts(h: Histogram): number {
  let s = 0;
  for (const c of h.counts) s += c;
  return s;
}

/** Mean squared error of quantize → dequantize with the parameters derived from `range`. */
function reconstructionMse(data: Float32Array, range: FloatRange, type: QuantType, symmetric: boolean): number {
  const p = computeQParams(range.min, range.max, type, { symmetric });
  const y = dequantize(quantizeTensor(data, p), p);
  let s = 0;
  for (let i = 0; i < data.length; i++) s += (y[i]! - data[i]!) ** 2;
  return s / data.length;
}

describe('MinMaxObserver', () => {
  it('tracks the running range and skips / counts NaN and ±Inf', () => {
    const o = new MinMaxObserver();
    assert.equal(o.hasData, false);
    assert.throws(() => o.range(), QuantizationError);
    o.update(f32([1, 2, 3]));
    o.update(f32([-1, NaN, 5]));
    o.update(f32([Infinity, -Infinity, 0]));
    o.update(f32([NaN, NaN])); // no finite value: does not count as a batch
    assert.deepEqual(o.range(), { min: -1, max: 5 });
    assert.deepEqual(o.nonFinite, { nan: 3, posInf: 1, negInf: 1 });
    assert.equal(o.batchCount, 3);
  });
});

describe('MovingAverageMinMaxObserver', () => {
  it('averages per-batch extremes with constant c', () => {
    const o = new MovingAverageMinMaxObserver(0.5);
    o.update(f32([0, 1])); // first batch sets the range: [0, 1]
    assert.deepEqual(o.range(), { min: 0, max: 1 });
    o.update(f32([-1, 3])); // min = 0 + 0.5·(−1 − 0) = −0.5; max = 1 + 0.5·(3 − 1) = 2
    assert.deepEqual(o.range(), { min: -0.5, max: 2 });
    o.update(f32([-2, 2])); // min = −0.5 + 0.5·(−2 + 0.5) = −1.25; max = 2 + 0.5·0 = 2
    assert.deepEqual(o.range(), { min: -1.25, max: 2 });
  });
  it('defaults to c = 0.01', () => {
    const o = new MovingAverageMinMaxObserver();
    o.update(f32([0, 1]));
    o.update(f32([-1, 3])); // min = 0 + 0.01·(−1) = −0.01; max = 1 + 0.01·2 = 1.02
    const r = o.range();
    assert.ok(Math.abs(r.min - -0.01) < 1e-15);
    assert.ok(Math.abs(r.max - 1.02) < 1e-15);
    assert.throws(() => new MovingAverageMinMaxObserver(0), QuantizationError);
  });
});

describe('PerChannelMinMaxObserver', () => {
  it('matches a naive per-channel scan, across batches with different batch sizes', () => {
    const o = new PerChannelMinMaxObserver({ shape: [2, 3, 4], axis: 1 });
    const { uniform } = rng(3);
    const ref = { mins: [Infinity, Infinity, Infinity], maxs: [-Infinity, -Infinity, -Infinity] };
    for (const n of [2, 1, 5]) {
      const shape = [n, 3, 4];
      const x = new Float32Array(n * 12);
      for (let i = 0; i < x.length; i++) x[i] = (uniform() - 0.5) * 20;
      x[0] = NaN; // skipped and counted
      o.update(x, shape);
      for (let i = 1; i < x.length; i++) {
        const c = Math.floor(i / 4) % 3; // stride of axis 1 is 4
        ref.mins[c] = Math.min(ref.mins[c]!, x[i]!);
        ref.maxs[c] = Math.max(ref.maxs[c]!, x[i]!);
      }
    }
    const r = o.ranges();
    assert.deepEqual(Array.from(r.mins), ref.mins);
    assert.deepEqual(Array.from(r.maxs), ref.maxs);
    assert.equal(o.nonFinite.nan, 3);
    assert.throws(() => o.update(new Float32Array(8), [1, 2, 4]), /2 channels on axis 1, observer expects 3/);
  });
});

describe('HistogramObserver', () => {
  it('preserves the integer total exactly over many range-growing batches', () => {
    for (const symmetric of [false, true]) {
      const o = new HistogramObserver({ symmetric });
      const { uniform, gauss } = rng(11);
      let finite = 0;
      let nan = 0;
      for (let b = 0; b < 300; b++) {
        // Spread and offset drift so the range keeps growing in both directions.
        const spread = 0.01 * 1.04 ** b;
        const offset = b % 2 === 0 ? b * 0.05 : -b * 0.03;
        const x = new Float32Array(500 + (b % 7) * 100);
        for (let i = 0; i < x.length; i++) x[i] = offset + spread * gauss();
        if (b % 13 === 0) {
          x[0] = NaN;
          nan++;
        }
        finite += x.length - (b % 13 === 0 ? 1 : 0);
        if (uniform() < 0.1) o.update(new Float32Array(0)); // empty batches are harmless
        o.update(x);
      }
      const h = o.histogram();
      assert.ok(o.growthCount > 5, `expected many growths, got ${o.growthCount}`);
      assert.equal(h.total, finite);
      assert.equal(sumCounts(h), finite);
      assert.equal(h.nanCount, nan);
      for (const c of h.counts) assert.ok(Number.isInteger(c) && c >= 0);
      assert.equal(h.counts.length, 2048);
      assert.ok(h.lo <= h.min && h.hi >= h.max);
    }
  });

  it('re-binning is exact: counts equal binning all the data directly in the final grid', () => {
    for (const symmetric of [false, true]) {
      const o = new HistogramObserver({ bins: 512, symmetric });
      const { gauss } = rng(5);
      const all: Float32Array[] = [];
      for (let b = 0; b < 40; b++) {
        const x = new Float32Array(2000);
        for (let i = 0; i < x.length; i++) x[i] = 0.3 * b + (1 + b * 0.2) * gauss();
        o.update(x);
        all.push(x);
      }
      const h = o.histogram();
      const direct = new Float64Array(512);
      const w = (h.hi - h.lo) / 512;
      for (const x of all) for (const v of x) direct[Math.min(511, Math.max(0, Math.floor((v - h.lo) / w)))]!++;
      let diff = 0;
      for (let k = 0; k < 512; k++) diff += Math.abs(direct[k]! - h.counts[k]!);
      // Only float rounding of values sitting exactly on a bin edge could differ.
      assert.ok(diff <= 2, `symmetric=${symmetric}: ${diff} counts differ`);
    }
  });

  it('keeps the range below 2x the observed span', () => {
    const o = new HistogramObserver();
    for (const x of gaussianBatches(9, 50, 1000, 1)) o.update(x);
    o.update(f32([30]));
    o.update(f32([-25]));
    const h = o.histogram();
    const w = (h.hi - h.lo) / h.counts.length;
    assert.ok(h.hi - h.lo < 2 * (h.max - h.min) + w, `range ${h.hi - h.lo} vs span ${h.max - h.min}`);
  });

  it('memory does not grow with the number of batches', () => {
    const o = new HistogramObserver();
    const batches = gaussianBatches(1, 10, 1000);
    for (const b of batches) o.update(b);
    const bytes = o.stateBytes;
    const len = o.histogram().counts.length;
    for (let r = 0; r < 100; r++) for (const b of batches) o.update(b.map((v) => v * (1 + r / 10)));
    assert.equal(o.stateBytes, bytes);
    assert.equal(o.stateBytes, 2 * 2048 * 8);
    assert.equal(o.histogram().counts.length, len);
    assert.equal(o.histogram().total, 1010 * 1000);
  });

  it('counts NaN / +Inf / −Inf separately and never bins them', () => {
    const o = new HistogramObserver({ bins: 16 });
    o.update(f32([NaN, Infinity, -Infinity, -Infinity, 1, 2, 3]));
    const h = o.histogram();
    assert.equal(h.total, 3);
    assert.equal(sumCounts(h), 3);
    assert.deepEqual([h.nanCount, h.posInfCount, h.negInfCount], [1, 1, 2]);
    assert.deepEqual([h.min, h.max], [1, 3]);
    assert.throws(() => new HistogramObserver().histogram(), /not seen any finite value/);
    assert.throws(() => new HistogramObserver({ bins: 15, symmetric: true }), /even bin count/);
  });

  it('handles a constant first batch, then growth', () => {
    const o = new HistogramObserver();
    o.update(new Float32Array(1000).fill(5));
    o.update(f32([0, 2.5, 10]));
    const h = o.histogram();
    assert.equal(h.total, 1003);
    assert.equal(sumCounts(h), 1003);
    const r = percentileRange(h, 99);
    assert.ok(r.min >= 0 && r.max <= 10);
    // Symmetric: all zeros first (tiny initial range), then a huge growth factor.
    const s = new HistogramObserver({ symmetric: true });
    s.update(new Float32Array(500));
    s.update(f32([-3, 3, 0.5]));
    const hs = s.histogram();
    assert.equal(sumCounts(hs), 503);
    assert.ok(hs.hi >= 3 && hs.hi < 6);
    // The 500 zeros sit in the bin starting at 0 (index bins/2).
    assert.equal(hs.counts[1024], 500);
  });

  it('all-zero data gives a zero range and a usable scale', () => {
    for (const symmetric of [false, true]) {
      const o = new HistogramObserver({ symmetric });
      o.update(new Float32Array(100));
      const h = o.histogram();
      for (const r of [percentileRange(h, 99.9), entropyRange(h, 'int8'), mseRange(h, 'uint8')]) {
        assert.deepEqual([r.min + 0, r.max + 0], [0, 0]);
        assert.equal(computeQParams(r.min, r.max, 'uint8').scale, 1);
      }
    }
  });
});

describe('range choosers', () => {
  // 200k N(0, 1) samples in 20 batches.
  const batches = gaussianBatches(42, 20, 10_000);
  const data = concat(batches);
  const sorted = Array.from(data).sort((a, b) => a - b);
  const absSorted = Array.from(data, Math.abs).sort((a, b) => a - b);
  const N = data.length;
  const build = (symmetric: boolean) => {
    const o = new HistogramObserver({ symmetric });
    for (const b of batches) o.update(b);
    return o.histogram();
  };

  it('percentile matches a sorted-array reference within one bin width (asymmetric)', () => {
    const h = build(false);
    const w = (h.hi - h.lo) / h.counts.length;
    for (const pct of [99.99, 99.9, 99, 90]) {
      const p = pct / 100;
      const r = percentileRange(h, pct);
      const refLo = sorted[Math.floor((1 - p) * N)]!;
      const refHi = sorted[Math.ceil(p * N) - 1]!;
      assert.ok(Math.abs(r.min - refLo) <= w, `pct ${pct} low: ${r.min} vs ${refLo} (w ${w})`);
      assert.ok(Math.abs(r.max - refHi) <= w, `pct ${pct} high: ${r.max} vs ${refHi} (w ${w})`);
    }
    assert.deepEqual(percentileRange(h, 100), { min: sorted[0], max: sorted[N - 1] });
    assert.throws(() => percentileRange(h, 0), /percentile must be in \(0, 100\]/);
  });

  it('percentile matches a sorted |x| reference within one bin width (symmetric)', () => {
    for (const h of [build(true), build(false)]) {
      const w = (h.hi - h.lo) / h.counts.length;
      for (const pct of [99.99, 99.9, 99]) {
        const r = percentileRange(h, pct, { symmetric: true });
        const ref = absSorted[Math.ceil((pct / 100) * N) - 1]!;
        assert.equal(r.min, -r.max);
        assert.ok(Math.abs(r.max - ref) <= w, `pct ${pct}: ${r.max} vs ${ref} (w ${w})`);
      }
    }
  });

  it('foldAbs preserves the total mass', () => {
    for (const h of [build(true), build(false)]) {
      const abs = foldAbs(h);
      let s = 0;
      for (const c of abs.counts) s += c;
      assert.ok(Math.abs(s - h.total) < 1e-6 * h.total);
    }
  });

  // Gaussian + rare far outliers: 1M N(0,1) samples with 4 outliers in [-40, 40].
  const outlierBatches = gaussianBatches(7, 50, 20_000);
  outlierBatches[3]![17] = 37;
  outlierBatches[11]![5] = -31;
  outlierBatches[29]![999] = 40;
  outlierBatches[40]![0] = -35;
  const outlierData = concat(outlierBatches);

  for (const [type, symmetric] of [
    ['int8', true],
    ['uint8', false],
  ] as const) {
    it(`entropy and MSE ranges beat min-max on gaussian + outliers (${type}, symmetric=${symmetric})`, () => {
      const o = new HistogramObserver({ symmetric });
      for (const b of outlierBatches) o.update(b);
      const h = o.histogram();
      const minmax = { min: h.min, max: h.max };
      assert.deepEqual(minmax, { min: -35, max: 40 });
      const ent = entropyRange(h, type);
      const mse = mseRange(h, type);
      const errMinMax = reconstructionMse(outlierData, minmax, type, symmetric);
      for (const [name, r] of [
        ['entropy', ent],
        ['mse', mse],
      ] as const) {
        const err = reconstructionMse(outlierData, r, type, symmetric);
        assert.ok(r.max - r.min < minmax.max - minmax.min, `${name} range [${r.min}, ${r.max}] is not tighter`);
        assert.ok(r.min <= -2.5 && r.max >= 2.5, `${name} range [${r.min}, ${r.max}] clips the gaussian body`);
        assert.ok(err < errMinMax, `${name} MSE ${err} ≥ min-max MSE ${errMinMax}`);
      }
      // MSE optimizes exactly this objective, so it should also beat entropy.
      assert.ok(reconstructionMse(outlierData, mse, type, symmetric) <= reconstructionMse(outlierData, ent, type, symmetric));
    });
  }

  it('entropy returns the full range when the type has more levels than the histogram has bins', () => {
    const h = build(true);
    const r = entropyRange(h, 'int16');
    const amax = Math.max(-h.min, h.max);
    assert.deepEqual(r, { min: -amax, max: amax });
  });

  it('mseRange takes at most a few ms on 2048 bins', () => {
    const h = build(false);
    const hs = build(true);
    mseRange(h, 'uint8'); // warm up the JIT
    mseRange(hs, 'int8');
    const times: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      mseRange(h, 'uint8');
      mseRange(hs, 'int8');
      times.push((performance.now() - t0) / 2);
    }
    times.sort((a, b) => a - b);
    assert.ok(times[4]! < 5, `median ${times[4]} ms`);
  });

  it('choosers reject an empty histogram', () => {
    const empty: Histogram = {
      counts: new Float64Array(8),
      lo: 0,
      hi: 1,
      total: 0,
      min: 0,
      max: 0,
      symmetric: false,
      nanCount: 0,
      posInfCount: 0,
      negInfCount: 0,
    };
    assert.throws(() => percentileRange(empty, 99), /histogram is empty/);
    assert.throws(() => entropyRange(empty, 'int8'), /histogram is empty/);
    assert.throws(() => mseRange(empty, 'int8'), /histogram is empty/);
  });
});

/** scanBatch as a plain sequential loop: the specification the fast version must match bit for bit. */
function referenceScan(batch: Float32Array): BatchScan {
  const s: BatchScan = { min: Infinity, max: -Infinity, finite: 0, nan: 0, posInf: 0, negInf: 0 };
  for (const v of batch) {
    if (Number.isNaN(v)) s.nan++;
    else if (v === Infinity) s.posInf++;
    else if (v === -Infinity) s.negInf++;
    else {
      s.finite++;
      if (v < s.min) s.min = v;
      if (v > s.max) s.max = v;
    }
  }
  return s;
}

/**
 * The two-pass HistogramObserver (scan the batch, grow the grid if needed, then bin), written as
 * directly as possible: the optimized observer must produce the same snapshot after every batch.
 */
class ReferenceHistogram {
  counts: Float64Array;
  lo = 0;
  hi = 0;
  initialized = false;
  total = 0;
  min = Infinity;
  max = -Infinity;
  nan = 0;
  posInf = 0;
  negInf = 0;
  growths = 0;

  constructor(
    readonly bins: number,
    readonly symmetric: boolean,
  ) {
    this.counts = new Float64Array(bins);
  }

  update(batch: Float32Array): void {
    const s = referenceScan(batch);
    this.nan += s.nan;
    this.posInf += s.posInf;
    this.negInf += s.negInf;
    if (s.finite === 0) return;
    if (s.min < this.min) this.min = s.min;
    if (s.max > this.max) this.max = s.max;
    if (!this.initialized) {
      const mag = Math.max(Math.abs(s.min), Math.abs(s.max));
      const minHalf = Math.max(mag * 2 ** -20, 1e-30);
      if (this.symmetric) [this.lo, this.hi] = [-Math.max(mag, minHalf), Math.max(mag, minHalf)];
      else if (s.max - s.min < 2 * minHalf) [this.lo, this.hi] = [(s.min + s.max) / 2 - minHalf, (s.min + s.max) / 2 + minHalf];
      else [this.lo, this.hi] = [s.min, s.max];
      this.initialized = true;
    } else if (s.min < this.lo || s.max > this.hi) {
      const n = this.bins;
      const w = (this.hi - this.lo) / n;
      let k: number;
      let j: number;
      if (this.symmetric) {
        k = Math.max(2, Math.ceil(Math.max(-this.min, this.max) / this.hi));
        j = ((k - 1) * n) / 2;
        this.lo = -k * this.hi;
        this.hi = -this.lo;
      } else {
        j = Math.ceil((this.lo - this.min) / w);
        const newLo = this.lo - j * w;
        k = Math.max(1, Math.ceil((this.max - newLo) / (n * w)));
        if (newLo + n * k * w < this.max) k++;
        this.lo = newLo;
        this.hi = newLo + n * k * w;
      }
      const dst = new Float64Array(n);
      for (let i = 0; i < n; i++) dst[Math.min(n - 1, Math.max(0, Math.floor((j + i) / k)))]! += this.counts[i]!;
      this.counts = dst;
      this.growths++;
    }
    const perUnit = this.bins / (this.hi - this.lo);
    for (const v of batch) {
      if (!Number.isFinite(v)) continue;
      this.counts[Math.min(this.bins - 1, Math.max(0, ((v - this.lo) * perUnit) | 0))]!++;
    }
    this.total += s.finite;
  }
}

function assertSameScan(actual: BatchScan, expected: BatchScan, what: string): void {
  for (const key of ['min', 'max', 'finite', 'nan', 'posInf', 'negInf'] as const) {
    assert.ok(Object.is(actual[key], expected[key]), `${what}: ${key} is ${actual[key]}, expected ${expected[key]}`);
  }
}

function assertSameHistogram(o: HistogramObserver, ref: ReferenceHistogram, what: string): void {
  assert.equal(o.growthCount, ref.growths, `${what}: growth count`);
  if (!ref.initialized) {
    assert.throws(() => o.histogram(), /not seen any finite value/);
    return;
  }
  const h = o.histogram();
  const expected = {
    lo: ref.lo,
    hi: ref.hi,
    total: ref.total,
    min: ref.min,
    max: ref.max,
    nanCount: ref.nan,
    posInfCount: ref.posInf,
    negInfCount: ref.negInf,
  };
  for (const [key, value] of Object.entries(expected)) {
    assert.ok(Object.is(h[key as keyof typeof expected], value), `${what}: ${key} is ${h[key as keyof typeof expected]}, expected ${value}`);
  }
  for (let i = 0; i < ref.bins; i++) {
    if (h.counts[i] !== ref.counts[i]) assert.fail(`${what}: bin ${i} holds ${h.counts[i]}, expected ${ref.counts[i]}`);
  }
}

/**
 * Random batches for the equivalence tests: drifting and widening gaussians (so the grid keeps
 * growing), lengths around the fast paths' boundaries (groups of four, 16K scan blocks, the 64K
 * snapshot threshold), NaN / ±Inf, +0 and −0 mixed in, constant and all-NaN batches, and single
 * outliers anywhere (including the last position).
 */
function mixedBatches(seed: number, count: number): Float32Array[] {
  const { uniform, gauss } = rng(seed);
  const lengths = [0, 1, 2, 3, 4, 5, 7, 8, 9, 1023, 16_383, 16_384, 16_385, 65_535, 65_536, 70_001, 4 * 16_384 + 3];
  const specials = [NaN, Infinity, -Infinity, 0, -0];
  const out: Float32Array[] = [];
  for (let b = 0; b < count; b++) {
    const n = uniform() < 0.4 ? lengths[Math.floor(uniform() * lengths.length)]! : Math.floor(uniform() ** 3 * 20_000);
    const x = new Float32Array(n);
    const scale = 0.01 * 1.05 ** b * (uniform() < 0.1 ? 10 : 1);
    const offset = (uniform() - 0.5) * b * 0.05;
    const constant = uniform() < 0.05;
    for (let i = 0; i < n; i++) x[i] = constant ? offset : offset + scale * gauss();
    const r = uniform();
    if (r < 0.2) for (let i = 0; i < n; i++) x[i] = Math.max(x[i]!, 0) || (uniform() < 0.5 ? 0 : -0); // ReLU-like, both zeros
    else if (r < 0.3) for (let i = 0; i < n; i++) x[i] = Math.min(x[i]!, 0) || (uniform() < 0.5 ? 0 : -0);
    const k = uniform() < 0.4 ? Math.floor(uniform() * 6) : 0;
    for (let j = 0; j < k && n > 0; j++) x[Math.floor(uniform() * n)] = specials[Math.floor(uniform() * specials.length)]!;
    if (uniform() < 0.15 && n > 0) x[uniform() < 0.3 ? n - 1 : Math.floor(uniform() * n)] = offset + (uniform() - 0.5) * scale * 40;
    if (uniform() < 0.05) x.fill(NaN);
    out.push(x);
  }
  return out;
}

describe('fast observer paths equal the straightforward ones', () => {
  it('scanBatch: same min, max (including which zero) and non-finite counts as a sequential loop', () => {
    const scan = emptyScan();
    for (const x of mixedBatches(21, 150)) assertSameScan(scanBatch(x, scan), referenceScan(x), `length ${x.length}`);
    // The sequential loop keeps the first of equal extremes, which shows only for +0 / −0.
    for (const x of zeroPairs()) assertSameScan(scanBatch(x, scan), referenceScan(x), show(x));
  });

  it('MinMaxObserver: same range and counts as the sequential loop', () => {
    const o = new MinMaxObserver();
    let ref = { min: Infinity, max: -Infinity, nan: 0, posInf: 0, negInf: 0 };
    for (const x of mixedBatches(22, 100)) {
      o.update(x);
      const s = referenceScan(x);
      ref = {
        min: s.min < ref.min ? s.min : ref.min,
        max: s.max > ref.max ? s.max : ref.max,
        nan: ref.nan + s.nan,
        posInf: ref.posInf + s.posInf,
        negInf: ref.negInf + s.negInf,
      };
      if (o.hasData) {
        const r = o.range();
        assert.ok(Object.is(r.min, ref.min) && Object.is(r.max, ref.max), `range [${r.min}, ${r.max}] vs [${ref.min}, ${ref.max}]`);
      }
      assert.deepEqual(o.nonFinite, { nan: ref.nan, posInf: ref.posInf, negInf: ref.negInf });
    }
  });

  it('HistogramObserver: one-pass update gives the two-pass snapshot after every batch', () => {
    for (const [bins, symmetric, seed] of [
      [2048, false, 31],
      [2048, true, 32],
      [16, false, 33],
      [2, true, 34],
    ] as const) {
      const o = new HistogramObserver({ bins, symmetric });
      const ref = new ReferenceHistogram(bins, symmetric);
      mixedBatches(seed, 120).forEach((x, b) => {
        o.update(x);
        ref.update(x);
        assertSameHistogram(o, ref, `bins=${bins} symmetric=${symmetric} batch ${b} (length ${x.length})`);
      });
      assert.ok(ref.growths > 3, `bins=${bins} symmetric=${symmetric}: only ${ref.growths} growths`);
    }
  });

  it('HistogramObserver: growth found late in a batch (small and snapshot-sized) is undone exactly', () => {
    for (const n of [1001, 100_003]) {
      const [base, next] = gaussianBatches(41, 2, n);
      next![n - 1] = 50; // visited last by the one-pass loop (tail / last group of four)
      next![n >> 2] = NaN;
      const o = new HistogramObserver();
      const ref = new ReferenceHistogram(2048, false);
      for (const x of [base!, next!]) {
        o.update(x);
        ref.update(x);
        assertSameHistogram(o, ref, `length ${n}`);
      }
      assert.equal(o.growthCount, 1);
    }
  });

  it('HistogramObserver: a new zero extreme is the batch\'s first zero, as the sequential scan reports it', () => {
    // Symmetric grid [-2, 2] from the first batch (of the second's sign, so the zeros are a new
    // extreme); the second lies inside it, so it takes the one-pass path, whose interleaved
    // streams do not visit values in batch order.
    for (const second of zeroPairs()) {
      const o = new HistogramObserver({ bins: 8, symmetric: true });
      const ref = new ReferenceHistogram(8, true);
      const sign = second.find((v) => v !== 0)!;
      for (const x of [f32([sign, 2 * sign]), second]) {
        o.update(x);
        ref.update(x);
      }
      assertSameHistogram(o, ref, show(second));
      assert.equal(o.growthCount, 0);
    }
  });
});

/**
 * Short batches of ±1 holding one +0 and one −0, at every pair of positions and in both orders:
 * the zeros are the minimum (or maximum), and the first one in batch order must be reported.
 * Lengths 8, 9 and 11 cover four equal streams and a tail of one and three values.
 */
function zeroPairs(): Float32Array[] {
  const out: Float32Array[] = [];
  for (const n of [8, 9, 11]) {
    for (let p = 0; p < n; p++) {
      for (let r = p + 1; r < n; r++) {
        for (const fill of [1, -1]) {
          for (const [first, second] of [
            [0, -0],
            [-0, 0],
          ] as const) {
            const x = new Float32Array(n).fill(fill);
            x[p] = first;
            x[r] = second;
            out.push(x);
          }
        }
      }
    }
  }
  return out;
}

const show = (x: Float32Array) => `[${Array.from(x, (v) => (Object.is(v, -0) ? '-0' : String(v))).join(', ')}]`;

/** Runs `fn` with the observers' WebAssembly kernels on or off, restoring the setting. */
function withKernels<T>(on: boolean, fn: () => T): T {
  const was = useObserverKernels(on);
  try {
    return fn();
  } finally {
    useObserverKernels(was);
  }
}

/** The float32 `steps` ulps from x (a float32) away from zero (negative steps: towards it). */
function ulps(x: number, steps: number): number {
  const f = new Float32Array([x]);
  const u = new Int32Array(f.buffer);
  u[0]! += steps;
  return f[0]!;
}

/**
 * Kernel-sized batches (≥ WASM_MIN_VALUES), with lengths around the kernel's groups of four, its
 * 64K-value chunks and the 16K scan blocks, and everything mixedBatches puts in.
 */
function kernelBatches(seed: number, count: number): Float32Array[] {
  const { uniform } = rng(seed);
  const lengths = [WASM_MIN_VALUES, WASM_MIN_VALUES + 1, WASM_MIN_VALUES + 3, 65_535, 65_536, 65_537, 65_539, 2 * 65_536 + 2, 200_003];
  return mixedBatches(seed, count).map((x, b) => {
    const n = lengths[Math.floor(uniform() * lengths.length)]!;
    const out = new Float32Array(n);
    if (x.length === 0) return out.fill(b % 2 ? 0 : -0);
    for (let i = 0; i < n; i++) out[i] = x[i % x.length]!;
    return out;
  });
}

describe('observer WebAssembly kernels', () => {
  it('are available on this Node (WebAssembly SIMD), so the tests below exercise them', () => {
    assert.ok(observerKernels(), 'observer kernels did not compile');
  });

  it('scanBatch and MinMaxObserver: same results as the sequential loop on kernel-sized batches', () => {
    const scan = emptyScan();
    const o = new MinMaxObserver();
    for (const x of kernelBatches(51, 60)) {
      assertSameScan(scanBatch(x, scan), referenceScan(x), `length ${x.length}`);
      o.update(x);
    }
    const js = withKernels(false, () => {
      const j = new MinMaxObserver();
      for (const x of kernelBatches(51, 60)) j.update(x);
      return j;
    });
    assert.deepEqual(o.nonFinite, js.nonFinite);
    assert.ok(Object.is(o.range().min, js.range().min) && Object.is(o.range().max, js.range().max));
  });

  it('scanBatch: a zero extreme is the batch\'s first zero, in kernel-sized batches too', () => {
    const scan = emptyScan();
    for (const pair of zeroPairs()) {
      // The pair's values repeated: the kernel's lanes see the zeros in another order than the batch.
      const x = new Float32Array(WASM_MIN_VALUES + pair.length + 1).fill(pair.find((v) => v !== 0)!);
      x.set(pair, WASM_MIN_VALUES - 3);
      assertSameScan(scanBatch(x, scan), referenceScan(x), show(pair));
    }
  });

  it('HistogramObserver: kernel path, JavaScript path and the two-pass reference agree after every batch', () => {
    for (const [bins, symmetric, seed] of [
      [2048, false, 61],
      [2048, true, 62],
      [16, false, 63],
      [2, true, 64],
    ] as const) {
      const batches = kernelBatches(seed, 40);
      const o = new HistogramObserver({ bins, symmetric });
      const js = new HistogramObserver({ bins, symmetric });
      const ref = new ReferenceHistogram(bins, symmetric);
      batches.forEach((x, b) => {
        o.update(x);
        withKernels(false, () => js.update(x));
        ref.update(x);
        const what = `bins=${bins} symmetric=${symmetric} batch ${b} (length ${x.length})`;
        assertSameHistogram(o, ref, what);
        assertSameHistogram(js, ref, `${what}, JavaScript`);
      });
      assert.ok(ref.growths > 3, `bins=${bins} symmetric=${symmetric}: only ${ref.growths} growths`);
    }
  });

  it('float32Ceil / float32Floor: the float32 bounds the kernel compares with decide as the float64 ones', () => {
    // The kernel tests float32 values against float32 bounds; HistogramObserver passes it the
    // smallest float32 ≥ the float64 lower bound and the largest ≤ the upper one.
    const { uniform } = rng(72);
    for (let t = 0; t < 20_000; t++) {
      const x = (uniform() - 0.5) * 10 ** Math.floor(uniform() * 12 - 6) * (t % 7 === 0 ? 1e-36 : 1);
      const c = float32Ceil(x);
      const f = float32Floor(x);
      assert.equal(Math.fround(c), c);
      assert.equal(Math.fround(f), f);
      for (const v of [ulps(Math.fround(x), -2), ulps(Math.fround(x), -1), Math.fround(x), ulps(Math.fround(x), 1), ulps(Math.fround(x), 2)]) {
        assert.equal(v >= c, v >= x, `x=${x} v=${v} ceil=${c}`);
        assert.equal(v <= f, v <= x, `x=${x} v=${v} floor=${f}`);
      }
    }
    for (const x of [0, -0, 2 ** -149, -(2 ** -149), 2 ** -150, -(2 ** -150), 3.5e38, -3.5e38]) {
      for (const v of [0, 2 ** -149, -(2 ** -149), 3.4028234663852886e38, -3.4028234663852886e38]) {
        assert.equal(v >= float32Ceil(x), v >= x, `x=${x} v=${v}`);
        assert.equal(v <= float32Floor(x), v <= x, `x=${x} v=${v}`);
      }
    }
  });

  it('HistogramObserver: values a few ulps inside and outside grid edges that are not float32 values', () => {
    // A constant first batch makes the grid c ± c·2⁻²⁰ (float64, not float32); values around its
    // edges must be binned, or grow the grid, as the float64 reference decides.
    const { uniform } = rng(71);
    let grown = 0;
    for (let trial = 0; trial < 60; trial++) {
      const c = Math.fround((uniform() + 0.1) * 10 ** Math.floor(uniform() * 8 - 4)) * (trial % 2 ? -1 : 1);
      const half = Math.abs(c) * 2 ** -20;
      const edges = [Math.fround(c - half), Math.fround(c + half)];
      const inside = trial % 3 !== 0; // two thirds of the trials stay (mostly) within the grid
      const x = new Float32Array(WASM_MIN_VALUES + 17);
      for (let i = 0; i < x.length; i++) {
        const e = edges[i % 2]!;
        const towardsCenter = (i % 2 === 0) === e > 0 ? 1 : -1; // the ulps direction from e towards c
        // Rounding c ± half to float32 may land just outside the grid: inside means ≥ 1 ulp in.
        x[i] = ulps(e, inside ? towardsCenter * (1 + Math.floor(uniform() * 4)) : Math.floor(uniform() * 5) - 2);
      }
      const o = new HistogramObserver({ bins: 64 });
      const ref = new ReferenceHistogram(64, false);
      for (const b of [new Float32Array(10).fill(c), x]) {
        o.update(b);
        ref.update(b);
      }
      assertSameHistogram(o, ref, `c=${c} trial ${trial}`);
      grown += ref.growths;
    }
    assert.ok(grown > 5 && grown < 55, `${grown} of 60 trials grew: the edges were not exercised from both sides`);
  });

  it('HistogramObserver: a new zero extreme is the batch\'s first zero, in kernel-sized batches too', () => {
    for (const pair of zeroPairs()) {
      const sign = pair.find((v) => v !== 0)!;
      const second = new Float32Array(WASM_MIN_VALUES + pair.length).fill(sign);
      second.set(pair, 5);
      const o = new HistogramObserver({ bins: 8, symmetric: true });
      const ref = new ReferenceHistogram(8, true);
      for (const x of [f32([sign, 2 * sign]), second]) {
        o.update(x);
        ref.update(x);
      }
      assertSameHistogram(o, ref, show(pair));
      assert.equal(o.growthCount, 0);
    }
  });
});

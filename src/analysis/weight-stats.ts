/**
 * Statistics of one weight tensor in two passes over its float32 values:
 *
 *   pass 1  min, max, sum, sum of squares, per-channel min/max, zeros and denormals; NaN/±Inf
 *           show up as non-finite sums and only then are classified, in a slower pass;
 *   pass 2  the reported histogram over [min, max], the quantization error of int8 per-tensor,
 *           int8 per-channel and int4 blockwise weights (blocks along the reduction axis, each
 *           block's scale from the block itself, read while it is in cache), and every |w| above a
 *           threshold placed, from a strided sample, just below the 99.9th percentile, so that
 *           percentile comes out exact from a few sorted values.
 *
 * Two engines compute the same numbers: WebAssembly SIMD kernels (weight-kernels.ts, the fast path
 * for the default symmetric settings: about ten times the JavaScript loops' speed) and the
 * JavaScript loops below, for everything else (asymmetric weights, NaN/Inf, unusual layouts).
 * State is a few arrays per channel; the tensor is never copied (the WebAssembly engine streams it
 * through a fixed-size window of its memory).
 *
 * Quantization follows src/quant (params.ts): the range is widened to include 0; symmetric signed
 * types use s = absmax / qmax and zero point 0; asymmetric ones s = (hi − lo) / (qmax − qmin) and a
 * rounded, clamped zero point; scales are float32; a degenerate range gets s = 1. The error is
 * w − s·(q − z) in float64, q = clamp(roundHalfToEven(w / s) + z). The quotient is taken as a
 * product with 1/s, which differs from the float32 division of QuantizeLinear only on exact ties:
 * it does not move an SQNR by a measurable amount. SQNR = 10·log10(Σw² / Σerr²), +Infinity when
 * the quantization is exact.
 *
 * Non-finite weights (NaN, ±Inf) are counted and left out of every statistic.
 */
import { MIN_NORMAL_FLOAT32 } from '../quant/params';
import { ROUND_MAGIC, roundHalfToEven } from '../quant/round';
import { quantRange, QuantType } from '../quant/types';
import { ensureMemory, HIST_AREA_BYTES, HIST_BINS, heapOf, type KernelHeap, type Kernels, weightKernels } from './weight-kernels';

// Module-level copies: imported bindings may compile to getters, too slow for the hot loops.
const MIN_NORMAL = MIN_NORMAL_FLOAT32;
const MAGIC = ROUND_MAGIC;

/** The reported histogram's bin count. */
export const WEIGHT_HISTOGRAM_BINS = 128;
if (WEIGHT_HISTOGRAM_BINS !== HIST_BINS) throw new Error('weight-stats: the kernels count exactly HIST_BINS bins');
/** Bins of the internal |w| histogram that locates the 99.9th percentile. */
const ABS_BINS = 4096;
/** Percentile of |w| the outlier score divides by. */
export const OUTLIER_PERCENTILE = 99.9;
/** The same as a fraction, written exactly as 0.999 (99.9 / 100 rounds to 0.9990000000000001). */
const OUTLIER_QUANTILE = 0.999;

/** A row-major tensor viewed as [outer, channels, inner] around its output-channel axis. */
export interface ChannelLayout {
  outer: number;
  channels: number;
  inner: number;
}

/** A row-major tensor viewed as [outer, k, inner]; blocks of `blockSize` run along k (the reduction axis). */
export interface BlockLayout {
  outer: number;
  k: number;
  inner: number;
  blockSize: number;
}

export interface WeightLayout {
  channel: ChannelLayout;
  block: BlockLayout;
  /** The tensor axis of the output channels (for reports); -1 when the tensor is viewed as one channel. */
  channelAxis: number;
}

export interface WeightStatsOptions {
  /** Symmetric weight quantization (zero point 0), as the default config. Default true. */
  symmetric?: boolean;
  /** Integer type for the per-tensor and per-channel SQNR, default int8. */
  type?: 'int8' | 'uint8';
  /** Integer type for the blockwise SQNR, default int4. */
  blockType?: 'int4' | 'uint4';
}

export interface Histogram1D {
  /** Left edge of the first bin and right edge of the last; bins are equal-width. */
  min: number;
  max: number;
  counts: number[];
}

export interface WeightStats {
  elements: number;
  /** Finite values only. */
  min: number;
  max: number;
  absMax: number;
  mean: number;
  /** Population standard deviation. */
  std: number;
  zeros: number;
  /** Non-zero values below the smallest normal float32 (slow on many CPUs, lost by fp16). */
  denormals: number;
  nonFinite: { nan: number; posInf: number; negInf: number };
  perChannel: { axis: number; min: Float32Array; max: Float32Array };
  /** Histogram of the finite values over [min, max]; counts sum to the finite element count. */
  histogram: Histogram1D;
  /** The 99.9th percentile of |w| (linear interpolation between order statistics, as numpy). */
  absP999: number;
  /** absMax / absP999: how far the largest weight sits beyond the bulk (1 = no outlier). */
  outlierScore: number;
  /** Largest channel range (max − min) over the median channel range. */
  channelRangeSpread: number;
  /** Quantization SQNR of the tensor itself. */
  sqnrDb: { int8: number; int8PerChannel: number; int4: number };
}

function product(dims: readonly number[], from: number, to: number): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= dims[i]!;
  return n;
}

/**
 * How a layer's weight is split into output channels and reduction blocks.
 * Conv [M, C/g, k…] → channels axis 0, blocks along C/g·k…; ConvTranspose [C, M/g, k…] → channels
 * axis 1, blocks along C; Gemm B [K, N] (or [N, K] with transB) → channels N, blocks along K; MatMul
 * B [..., K, N] → channels N (last axis), blocks along K; LSTM/GRU/RNN W or R [D, G·H, I] →
 * channels D·G·H, blocks along I. Anything else is one channel with blocks over the flat tensor.
 */
export function weightLayout(opType: string, dims: readonly number[], options: { transB?: boolean; blockSize?: number } = {}): WeightLayout {
  const blockSize = options.blockSize ?? 32;
  const n = product(dims, 0, dims.length);
  const r = dims.length;
  const flat: WeightLayout = { channel: { outer: 1, channels: 1, inner: n }, block: { outer: 1, k: n, inner: 1, blockSize }, channelAxis: -1 };
  if (n === 0) return flat;
  switch (opType) {
    case 'Conv':
      if (r < 2) return flat;
      return { channel: { outer: 1, channels: dims[0]!, inner: n / dims[0]! }, block: { outer: dims[0]!, k: n / dims[0]!, inner: 1, blockSize }, channelAxis: 0 };
    case 'ConvTranspose':
      if (r < 2) return flat;
      return {
        channel: { outer: dims[0]!, channels: dims[1]!, inner: product(dims, 2, r) },
        block: { outer: 1, k: dims[0]!, inner: n / dims[0]!, blockSize },
        channelAxis: 1,
      };
    case 'Gemm':
      if (r !== 2) return flat;
      return options.transB
        ? { channel: { outer: 1, channels: dims[0]!, inner: dims[1]! }, block: { outer: dims[0]!, k: dims[1]!, inner: 1, blockSize }, channelAxis: 0 }
        : { channel: { outer: dims[0]!, channels: dims[1]!, inner: 1 }, block: { outer: 1, k: dims[0]!, inner: dims[1]!, blockSize }, channelAxis: 1 };
    case 'MatMul':
      if (r < 2) return flat;
      return {
        channel: { outer: n / dims[r - 1]!, channels: dims[r - 1]!, inner: 1 },
        block: { outer: product(dims, 0, r - 2), k: dims[r - 2]!, inner: dims[r - 1]!, blockSize },
        channelAxis: r - 1,
      };
    case 'LSTM':
    case 'GRU':
    case 'RNN':
      if (r !== 3) return flat;
      return {
        channel: { outer: 1, channels: dims[0]! * dims[1]!, inner: dims[2]! },
        block: { outer: dims[0]! * dims[1]!, k: dims[2]!, inner: 1, blockSize },
        channelAxis: 1,
      };
    default:
      return flat;
  }
}

/** Scale and zero point as src/quant/params.ts computes them (float32 scale, degenerate → 1). */
function qparams(min: number, max: number, qmin: number, qmax: number, signed: boolean, symmetric: boolean, out: { s: number; z: number }): void {
  const lo = min < 0 ? min : 0;
  const hi = max > 0 ? max : 0;
  let s: number;
  let z = 0;
  if (symmetric) {
    const a = -lo > hi ? -lo : hi;
    s = Math.fround((2 * a) / (qmax - (signed ? -qmax : qmin)));
    if (!signed) z = roundHalfToEven((qmin + qmax) / 2);
  } else {
    s = Math.fround((hi - lo) / (qmax - qmin));
    if (s >= MIN_NORMAL && s !== Infinity) {
      const zz = qmin - lo / s;
      z = Math.min(qmax, Math.max(qmin, zz + MAGIC - MAGIC));
    }
  }
  if (!(s >= MIN_NORMAL)) {
    s = 1;
    if (!(symmetric && !signed)) z = 0;
  }
  out.s = s;
  out.z = z;
}

function sqnr(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  return 10 * Math.log10(signal / noise);
}

interface Pass1 {
  sum: number;
  sumSq: number;
  zeros: number;
  denormals: number;
}

/** Pass 1 without non-finite handling: NaN/Inf show up as a non-finite sum. */
function pass1(x: Float32Array, L: ChannelLayout, chMin: Float64Array, chMax: Float64Array): Pass1 {
  let sum = 0;
  let sumSq = 0;
  let small = 0;
  let zeros = 0;
  let idx = 0;
  const { outer, channels, inner } = L;
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++, idx++) {
        const v = x[idx]!;
        if (v < chMin[c]!) chMin[c] = v;
        if (v > chMax[c]!) chMax[c] = v;
        sum += v;
        sumSq += v * v;
        if ((v < 0 ? -v : v) < MIN_NORMAL) {
          small++;
          if (v === 0) zeros++;
        }
      }
    }
  } else {
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        let lo = chMin[c]!;
        let hi = chMax[c]!;
        let s = 0;
        let s2 = 0;
        for (const end = idx + inner; idx < end; idx++) {
          const v = x[idx]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
          s += v;
          s2 += v * v;
          if ((v < 0 ? -v : v) < MIN_NORMAL) {
            small++;
            if (v === 0) zeros++;
          }
        }
        chMin[c] = lo;
        chMax[c] = hi;
        sum += s;
        sumSq += s2;
      }
    }
  }
  return { sum, sumSq, zeros, denormals: small - zeros };
}

/** Pass 1 for tensors holding NaN/±Inf: the same statistics over finite values, plus the counts. */
function pass1Slow(x: Float32Array, L: ChannelLayout, chMin: Float64Array, chMax: Float64Array, bad: { nan: number; posInf: number; negInf: number }): Pass1 {
  chMin.fill(Infinity);
  chMax.fill(-Infinity);
  let sum = 0;
  let sumSq = 0;
  let zeros = 0;
  let denormals = 0;
  let idx = 0;
  for (let o = 0; o < L.outer; o++) {
    for (let c = 0; c < L.channels; c++) {
      for (let i = 0; i < L.inner; i++, idx++) {
        const v = x[idx]!;
        if (v !== v) {
          bad.nan++;
          continue;
        }
        if (v === Infinity) {
          bad.posInf++;
          continue;
        }
        if (v === -Infinity) {
          bad.negInf++;
          continue;
        }
        if (v < chMin[c]!) chMin[c] = v;
        if (v > chMax[c]!) chMax[c] = v;
        sum += v;
        sumSq += v * v;
        if (v === 0) zeros++;
        else if (Math.abs(v) < MIN_NORMAL) denormals++;
      }
    }
  }
  return { sum, sumSq, zeros, denormals };
}

/**
 * Pass 2: histograms and the int8 per-tensor / per-channel errors. Non-finite values (only when
 * `finiteOnly`) are skipped.
 */
function pass2(
  x: Float32Array,
  L: ChannelLayout,
  hist: Float64Array,
  histLo: number,
  histScale: number,
  t: { s: number; z: number; qmin: number; qmax: number },
  chS: Float64Array,
  chZ: Float64Array,
  finiteOnly: boolean,
): { errT: number; errC: number } {
  const hLast = hist.length - 1;
  const sT = t.s;
  const invT = 1 / sT;
  const zT = t.z;
  const loT = t.qmin - zT;
  const hiT = t.qmax - zT;
  const { outer, channels, inner } = L;
  let errT = 0;
  let errC = 0;
  let idx = 0;
  // Clamping in the zero-point-relative domain: q − z ∈ [qmin − z, qmax − z].
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const sC = chS[c]!;
      const invC = 1 / sC;
      const zC = chZ[c]!;
      const loC = t.qmin - zC;
      const hiC = t.qmax - zC;
      let eT = 0;
      let eC = 0;
      for (const end = idx + inner; idx < end; idx++) {
        const v = x[idx]!;
        if (finiteOnly && v - v !== 0) continue;
        let b = ((v - histLo) * histScale) | 0;
        if (b > hLast) b = hLast;
        hist[b]!++;
        let q = v * invT + MAGIC - MAGIC;
        q = q < loT ? loT : q > hiT ? hiT : q;
        const dT = v - q * sT;
        eT += dT * dT;
        let r = v * invC + MAGIC - MAGIC;
        r = r < loC ? loC : r > hiC ? hiC : r;
        const dC = v - r * sC;
        eC += dC * dC;
      }
      errT += eT;
      errC += eC;
    }
  }
  return { errT, errC };
}

/** Pass 3: blockwise quantization error, each block's parameters from the block's own range. */
function blockError(x: Float32Array, B: BlockLayout, type: QuantType, symmetric: boolean, finiteOnly: boolean): number {
  const { qmin, qmax, signed } = quantRange(type);
  const { outer, k, inner, blockSize } = B;
  const p = { s: 1, z: 0 };
  let err = 0;
  const bMin = new Float64Array(inner);
  const bMax = new Float64Array(inner);
  const bS = new Float64Array(inner);
  const bInv = new Float64Array(inner);
  const bLo = new Float64Array(inner);
  const bHi = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * k * inner;
    for (let k0 = 0; k0 < k; k0 += blockSize) {
      const k1 = k0 + blockSize < k ? k0 + blockSize : k;
      const start = base + k0 * inner;
      const end = base + k1 * inner;
      if (inner === 1) {
        let lo = 0;
        let hi = 0;
        for (let i = start; i < end; i++) {
          const v = x[i]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        if (finiteOnly && (lo === -Infinity || hi === Infinity)) {
          lo = 0;
          hi = 0;
          for (let i = start; i < end; i++) {
            const v = x[i]!;
            if (v - v !== 0) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
          }
        }
        qparams(lo, hi, qmin, qmax, signed, symmetric, p);
        const s = p.s;
        const inv = 1 / s;
        const qlo = qmin - p.z;
        const qhi = qmax - p.z;
        let e = 0;
        for (let i = start; i < end; i++) {
          const v = x[i]!;
          if (finiteOnly && v - v !== 0) continue;
          let q = v * inv + MAGIC - MAGIC;
          q = q < qlo ? qlo : q > qhi ? qhi : q;
          const d = v - q * s;
          e += d * d;
        }
        err += e;
      } else {
        bMin.fill(0);
        bMax.fill(0);
        for (let row = start; row < end; row += inner) {
          for (let j = 0; j < inner; j++) {
            const v = x[row + j]!;
            if (finiteOnly && v - v !== 0) continue;
            if (v < bMin[j]!) bMin[j] = v;
            if (v > bMax[j]!) bMax[j] = v;
          }
        }
        for (let j = 0; j < inner; j++) {
          qparams(bMin[j]!, bMax[j]!, qmin, qmax, signed, symmetric, p);
          bS[j] = p.s;
          bInv[j] = 1 / p.s;
          bLo[j] = qmin - p.z;
          bHi[j] = qmax - p.z;
        }
        let e = 0;
        for (let row = start; row < end; row += inner) {
          for (let j = 0; j < inner; j++) {
            const v = x[row + j]!;
            if (finiteOnly && v - v !== 0) continue;
            let q = v * bInv[j]! + MAGIC - MAGIC;
            const lo = bLo[j]!;
            const hi = bHi[j]!;
            q = q < lo ? lo : q > hi ? hi : q;
            const d = v - q * bS[j]!;
            e += d * d;
          }
        }
        err += e;
      }
    }
  }
  return err;
}

/** Rank positions of numpy's linear-interpolation percentile over `count` sorted values. */
function ranks(count: number, pct: number): { h: number; r0: number; r1: number } {
  const h = (count - 1) * (pct === OUTLIER_PERCENTILE ? OUTLIER_QUANTILE : pct / 100);
  const r0 = Math.floor(h);
  return { h, r0, r1: Math.min(count - 1, r0 + 1) };
}

/**
 * Exact percentile `pct` of |x| over the finite values (numpy's linear interpolation): a histogram
 * of |x| over [0, absMax] locates the target ranks, then only the values of those bins are sorted.
 */
function absPercentileJs(x: Float32Array, absMax: number, count: number, pct: number, finiteOnly: boolean): number {
  if (count === 0 || absMax === 0) return 0;
  const absHist = new Float64Array(ABS_BINS);
  const absScale = ABS_BINS / absMax;
  const last = ABS_BINS - 1;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (finiteOnly && v - v !== 0) continue;
    let b = ((v < 0 ? -v : v) * absScale) | 0;
    if (b > last) b = last;
    absHist[b]!++;
  }
  const { h, r0, r1 } = ranks(count, pct);
  let cum = 0;
  let b0 = -1;
  let b1 = -1;
  let before0 = 0;
  for (let b = 0; b < ABS_BINS; b++) {
    const c = absHist[b]!;
    if (b0 < 0 && cum + c > r0) {
      b0 = b;
      before0 = cum;
    }
    if (cum + c > r1) {
      b1 = b;
      break;
    }
    cum += c;
  }
  let n = 0;
  for (let b = b0; b <= b1; b++) n += absHist[b]!;
  const picked = new Float64Array(n);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (finiteOnly && v - v !== 0) continue;
    const a = v < 0 ? -v : v;
    let b = (a * absScale) | 0;
    if (b > last) b = last;
    if (b >= b0 && b <= b1 && m < n) picked[m++] = a;
  }
  const sorted = picked.subarray(0, m).sort();
  const v0 = sorted[r0 - before0]!;
  const v1 = sorted[Math.min(m - 1, r1 - before0)]!;
  return v0 + (h - r0) * (v1 - v0);
}

/** The k-th smallest value (0-based) of `a`, reordering `a` (quickselect, expected linear time). */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/** numpy's linear-interpolation percentile from the values at ranks r0 and r1 = r0 + 1 of `a` (reordered). */
function interpolate(a: Float64Array, k0: number, k1: number, frac: number): number {
  const v0 = select(a, k0);
  if (k1 === k0 || frac === 0) return v0;
  // After select, everything past k0 is ≥ v0: the next order statistic is their minimum.
  let v1 = Infinity;
  for (let i = k0 + 1; i < a.length; i++) if (a[i]! < v1) v1 = a[i]!;
  return v0 + frac * (v1 - v0);
}

function median(xs: ArrayLike<number>): number {
  if (xs.length === 0) return 0;
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** What both engines compute; weightStats derives the rest. */
interface RawStats {
  finite: number;
  sum: number;
  sumSq: number;
  zeros: number;
  denormals: number;
  nonFinite: { nan: number; posInf: number; negInf: number };
  chMin: ArrayLike<number>;
  chMax: ArrayLike<number>;
  min: number;
  max: number;
  histCounts: ArrayLike<number>;
  absP999: number;
  errT: number;
  errC: number;
  errB: number;
}

/** The global range from per-channel ranges; empty channels get [0, 0]. */
function foldChannels(chMin: Float64Array | Float32Array, chMax: Float64Array | Float32Array, finite: number): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let c = 0; c < chMin.length; c++) {
    if (chMin[c]! < min) min = chMin[c]!;
    if (chMax[c]! > max) max = chMax[c]!;
    if (chMin[c]! > chMax[c]!) chMin[c] = chMax[c] = 0;
  }
  return finite === 0 ? { min: 0, max: 0 } : { min, max };
}

/** The JavaScript engine: any layout, any symmetry, NaN/Inf tolerated. */
function statsJs(x: Float32Array, layout: WeightLayout, type: QuantType, blockType: QuantType, symmetric: boolean): RawStats {
  const L = layout.channel;
  const chMin = new Float64Array(L.channels).fill(Infinity);
  const chMax = new Float64Array(L.channels).fill(-Infinity);
  const nonFinite = { nan: 0, posInf: 0, negInf: 0 };
  let p1 = pass1(x, L, chMin, chMax);
  let finiteOnly = false;
  if (!Number.isFinite(p1.sum) || !Number.isFinite(p1.sumSq)) {
    p1 = pass1Slow(x, L, chMin, chMax, nonFinite);
    finiteOnly = nonFinite.nan + nonFinite.posInf + nonFinite.negInf > 0;
  }
  const finite = x.length - nonFinite.nan - nonFinite.posInf - nonFinite.negInf;
  const { min, max } = foldChannels(chMin, chMax, finite);
  const absMax = Math.max(Math.abs(min), Math.abs(max));
  const r = quantRange(type);
  const p = { s: 1, z: 0 };
  qparams(min, max, r.qmin, r.qmax, r.signed, symmetric, p);
  const tensorParams = { s: p.s, z: p.z, qmin: r.qmin, qmax: r.qmax };
  const chS = new Float64Array(L.channels);
  const chZ = new Float64Array(L.channels);
  for (let c = 0; c < L.channels; c++) {
    qparams(chMin[c]!, chMax[c]!, r.qmin, r.qmax, r.signed, symmetric, p);
    chS[c] = p.s;
    chZ[c] = p.z;
  }
  const hist = new Float64Array(WEIGHT_HISTOGRAM_BINS);
  const span = max - min;
  const histScale = span > 0 ? WEIGHT_HISTOGRAM_BINS / span : 0;
  const { errT, errC } = pass2(x, L, hist, min, histScale, tensorParams, chS, chZ, finiteOnly);
  const errB = blockError(x, layout.block, blockType, symmetric, finiteOnly);
  const absP999 = absPercentileJs(x, absMax, finite, OUTLIER_PERCENTILE, finiteOnly);
  return { finite, ...p1, nonFinite, chMin, chMax, min, max, histCounts: hist, absP999, errT, errC, errB };
}

/** Elements copied into WebAssembly memory at a time (when the data is not there already). */
const CHUNK_ELEMENTS = 4 << 20;
/** Below this many elements the JavaScript engine runs (the kernels' fixed costs would dominate). */
const SMALL_TENSOR = 1024;
/** Elements sampled to place the percentile threshold. */
const SAMPLE = 8192;

/** Float32 weight values wherever they are: a Float32Array, or raw little-endian bytes of any alignment. */
interface Source {
  n: number;
  get(i: number): number;
  /** All values as a Float32Array (a view when aligned, else a copy), for the JavaScript engine. */
  array(): Float32Array;
  /** Copies elements [a, b) to byte offset `dst` of `u8`. */
  copyTo(u8: Uint8Array, dst: number, a: number, b: number): void;
  /** Set when the bytes live in a kernel heap: read in place at byte offset `ptr`. */
  heap?: KernelHeap;
  ptr: number;
}

function arraySource(x: Float32Array): Source {
  return {
    n: x.length,
    get: (i) => x[i]!,
    array: () => x,
    copyTo: (u8, dst, a, b) => u8.set(new Uint8Array(x.buffer, x.byteOffset + 4 * a, 4 * (b - a)), dst),
    heap: heapOf(x.buffer),
    ptr: x.byteOffset,
  };
}

function bytesSource(bytes: Uint8Array): Source {
  if (bytes.byteLength % 4 !== 0) throw new RangeError(`float32 data of ${bytes.byteLength} bytes is not a whole number of values`);
  const n = bytes.byteLength / 4;
  if (bytes.byteOffset % 4 === 0) return arraySource(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    n,
    get: (i) => dv.getFloat32(4 * i, true),
    array: () => {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    },
    copyTo: (u8, dst, a, b) => u8.set(bytes.subarray(4 * a, 4 * b), dst),
    heap: heapOf(bytes.buffer),
    ptr: bytes.byteOffset,
  };
}

/**
 * The WebAssembly engine: symmetric signed types, "span" layouts (each channel one contiguous run:
 * Conv, Gemm with transB, LSTM/GRU/RNN, flat tensors) and "column" layouts (channels are the last
 * axis: MatMul, Gemm without transB). Data in a kernel heap is read in place; other data is copied
 * into the kernels' memory one chunk at a time. Undefined when it does not apply (the JS engine
 * runs then).
 */
function statsWasm(src: Source, layout: WeightLayout, type: QuantType, blockType: QuantType, symmetric: boolean): RawStats | undefined {
  if (!symmetric) return undefined;
  const r = quantRange(type);
  const rb = quantRange(blockType);
  if (!r.signed || !rb.signed) return undefined;
  const L = layout.channel;
  const B = layout.block;
  const spanLayout = L.outer === 1 && B.inner === 1 && B.outer === L.channels && B.k === L.inner;
  const colLayout = !spanLayout && L.inner === 1 && B.inner === L.channels && B.outer * B.k === L.outer;
  const n = src.n;
  if ((!spanLayout && !colLayout) || n === 0) return undefined;

  const channels = L.channels;
  // Units: a channel's run (span layout) or a row of `channels` values (column layout).
  const unit = spanLayout ? L.inner : channels;
  const units = n / unit;
  const bs = B.blockSize;
  const cap = Math.ceil(n * 0.012) + 64;
  const align = (v: number) => (v + 15) & ~15;
  const scratchLen = colLayout ? align(4 * channels) : 0;
  // Scratch layout (bytes from BASE): out | ch min | ch max | ch 1/s | ch s | 3 column arrays | histogram | collected | [data].
  const layoutFrom = (BASE: number) => {
    const OUT = BASE;
    const MIN = BASE + 64;
    const MAX = align(MIN + 4 * channels);
    const INV = align(MAX + 4 * channels);
    const S = align(INV + 4 * channels);
    const SCR = align(S + 4 * channels);
    const HIST = align(SCR + 3 * scratchLen);
    const COL = align(HIST + HIST_AREA_BYTES);
    const DATA = align(COL + 4 * cap);
    return { OUT, MIN, MAX, INV, S, SCR, HIST, COL, DATA };
  };
  let k: Kernels;
  let at: ReturnType<typeof layoutFrom>;
  let chunks: [number, number][];
  let inPlace = false;
  if (src.heap && layoutFrom(src.heap.scratch).DATA <= src.heap.end) {
    k = src.heap.kernels;
    at = layoutFrom(src.heap.scratch);
    inPlace = true;
    chunks = spanLayout ? [[0, units]] : Array.from({ length: B.outer }, (_, o): [number, number] => [o * B.k, (o + 1) * B.k]);
  } else {
    const dk = weightKernels();
    if (!dk) return undefined;
    k = dk;
    at = layoutFrom(0);
    // Column layout: chunks hold whole blocks of rows, inside one outer batch.
    const step = colLayout ? bs : 1;
    const perChunk = Math.max(step, Math.floor(CHUNK_ELEMENTS / unit / step) * step);
    chunks = [];
    if (spanLayout) {
      for (let u = 0; u < units; u += perChunk) chunks.push([u, Math.min(units, u + perChunk)]);
    } else {
      for (let o = 0; o < B.outer; o++) for (let u = 0; u < B.k; u += perChunk) chunks.push([o * B.k + u, o * B.k + Math.min(B.k, u + perChunk)]);
    }
    ensureMemory(k, at.DATA + 4 * Math.max(...chunks.map(([a, b]) => (b - a) * unit)) + 64);
  }
  const { OUT, MIN, MAX, INV, S, SCR, HIST, COL, DATA } = at;
  const buf = k.memory.buffer;
  const f32 = new Float32Array(buf);
  const f64 = new Float64Array(buf);
  const i32 = new Int32Array(buf);
  const u8 = new Uint8Array(buf);
  /** Byte address of the chunk's first value, copying it in first when needed. */
  const load = (a: number, b: number): number => {
    if (inPlace) return src.ptr + 4 * a * unit;
    src.copyTo(u8, DATA, a * unit, b * unit);
    return DATA;
  };

  // Pass 1: ranges and sums.
  f32.fill(Infinity, MIN >> 2, (MIN >> 2) + channels);
  f32.fill(-Infinity, MAX >> 2, (MAX >> 2) + channels);
  let sum = 0;
  let sumSq = 0;
  let small = 0;
  for (const [a, b] of chunks) {
    const p = load(a, b);
    if (spanLayout) k.stats_spans(p, b - a, unit, MIN + 4 * a, MAX + 4 * a, OUT);
    else k.stats_cols(p, b - a, channels, MIN, MAX, OUT);
    sum += f64[OUT >> 3]!;
    sumSq += f64[(OUT >> 3) + 1]!;
    small += i32[(OUT >> 2) + 4]!;
  }
  if (!Number.isFinite(sum) || !Number.isFinite(sumSq)) return undefined; // NaN/Inf: the JS engine counts them
  // Values below the smallest normal are rare (pruned weights): only then are zeros told apart.
  let zeros = 0;
  if (small > 0) for (let i = 0; i < n; i++) if (src.get(i) === 0) zeros++;
  const chMin = Float32Array.from(f32.subarray(MIN >> 2, (MIN >> 2) + channels));
  const chMax = Float32Array.from(f32.subarray(MAX >> 2, (MAX >> 2) + channels));
  const { min, max } = foldChannels(chMin, chMax, n);
  const absMax = Math.max(Math.abs(min), Math.abs(max));

  // Parameters.
  const p = { s: 1, z: 0 };
  qparams(min, max, r.qmin, r.qmax, true, true, p);
  const sT = p.s;
  for (let c = 0; c < channels; c++) {
    qparams(chMin[c]!, chMax[c]!, r.qmin, r.qmax, true, true, p);
    f32[(S >> 2) + c] = p.s;
    f32[(INV >> 2) + c] = 1 / p.s;
  }
  const span = max - min;
  const histScale = span > 0 ? Math.fround(WEIGHT_HISTOGRAM_BINS / span) : 0;
  // Percentile threshold from a strided sample: about 0.4% of |x| lies above it (0.1% is needed).
  const { h, r0, r1 } = ranks(n, OUTLIER_PERCENTILE);
  let absP999 = NaN;
  let threshold = Infinity;
  if (n <= SAMPLE) {
    const all = new Float64Array(n);
    for (let i = 0; i < n; i++) all[i] = Math.abs(src.get(i));
    absP999 = interpolate(all, r0, r1, h - r0);
  } else {
    const sample = new Float64Array(SAMPLE);
    const step = n / SAMPLE;
    for (let i = 0; i < SAMPLE; i++) sample[i] = Math.abs(src.get(Math.floor(i * step)));
    threshold = Math.fround(select(sample, Math.floor(SAMPLE * (1 - 4 * (1 - OUTLIER_QUANTILE)))));
    if (!(threshold > 0)) threshold = Infinity;
  }

  // Pass 2: errors, histogram, collection, in one streaming pass.
  i32.fill(0, HIST >> 2, (HIST >> 2) + HIST_AREA_BYTES / 4);
  let errT = 0;
  let errC = 0;
  let errB = 0;
  let collected = 0;
  const last = WEIGHT_HISTOGRAM_BINS - 1;
  for (const [a, b] of chunks) {
    const ptr = chunks.length > 1 || inPlace ? load(a, b) : DATA;
    const col = COL + 4 * Math.min(collected, cap);
    const room = Math.max(0, cap - collected);
    if (spanLayout) {
      k.pass2_spans(ptr, b - a, unit, INV + 4 * a, S + 4 * a, 1 / sT, sT, bs, rb.qmax, min, histScale, last, HIST, threshold, col, room, OUT);
    } else {
      k.pass2_cols(ptr, b - a, channels, INV, S, 1 / sT, sT, bs, rb.qmax, min, histScale, last, HIST, threshold, col, room, SCR, SCR + scratchLen, SCR + 2 * scratchLen, OUT);
    }
    errT += f64[OUT >> 3]!;
    errC += f64[(OUT >> 3) + 1]!;
    errB += f64[(OUT >> 3) + 2]!;
    collected += i32[(OUT >> 2) + 6]!;
  }
  // The pair tables' rows and columns are the histograms of the pairs' first and second values.
  const histCounts = new Float64Array(WEIGHT_HISTOGRAM_BINS);
  const bins = HIST_BINS; // a local: imported bindings can be getters
  const B2 = bins * bins;
  for (let t = 0; t < 2; t++) {
    const base = (HIST >> 2) + t * B2;
    for (let a = 0; a < bins; a++) {
      for (let b = 0; b < bins; b++) {
        const cnt = i32[base + a * bins + b]!;
        if (cnt === 0) continue;
        histCounts[a]! += cnt;
        histCounts[b]! += cnt;
      }
    }
  }
  for (let bin = 0; bin < WEIGHT_HISTOGRAM_BINS; bin++) histCounts[bin]! += i32[(HIST >> 2) + 2 * B2 + bin]!;
  if (Number.isNaN(absP999)) {
    // The collected values are every |x| ≥ threshold: exact when they reach down to rank r0.
    const need = n - r0;
    if (collected >= need && collected <= cap) {
      const top = Float64Array.from(f32.subarray(COL >> 2, (COL >> 2) + collected));
      const base = n - collected;
      absP999 = interpolate(top, r0 - base, r1 - base, h - r0);
    } else {
      absP999 = absPercentileJs(src.array(), absMax, n, OUTLIER_PERCENTILE, false);
    }
  }
  return {
    finite: n,
    sum,
    sumSq,
    zeros,
    denormals: small - zeros,
    nonFinite: { nan: 0, posInf: 0, negInf: 0 },
    chMin,
    chMax,
    min,
    max,
    histCounts,
    absP999,
    errT,
    errC,
    errB,
  };
}

export type WeightStatsEngine = 'auto' | 'js';

export type WeightStatsCallOptions = WeightStatsOptions & { engine?: WeightStatsEngine };

/** Statistics of one float32 weight tensor viewed through `layout`. */
export function weightStats(x: Float32Array, layout: WeightLayout, options: WeightStatsCallOptions = {}): WeightStats {
  return compute(arraySource(x), layout, options);
}

/**
 * weightStats over raw little-endian float32 bytes of any alignment (a tensor's raw_data as a view of
 * the model file): no aligned copy is made, and bytes in a kernel heap (loadModelBytes) are read in place.
 */
export function weightStatsOfBytes(bytes: Uint8Array, layout: WeightLayout, options: WeightStatsCallOptions = {}): WeightStats {
  return compute(bytesSource(bytes), layout, options);
}

function compute(src: Source, layout: WeightLayout, options: WeightStatsCallOptions): WeightStats {
  const symmetric = options.symmetric ?? true;
  const type = options.type ?? 'int8';
  const blockType = options.blockType ?? 'int4';
  const L = layout.channel;
  if (L.outer * L.channels * L.inner !== src.n) {
    throw new RangeError(`weight layout [${L.outer}, ${L.channels}, ${L.inner}] does not match ${src.n} elements`);
  }
  const B = layout.block;
  if (B.outer * B.k * B.inner !== src.n) throw new RangeError(`block layout [${B.outer}, ${B.k}, ${B.inner}] does not match ${src.n} elements`);
  // Tiny tensors (biases, depthwise kernels) cost less in JavaScript than the kernels' setup.
  const wasm = options.engine !== 'js' && src.n >= SMALL_TENSOR;
  const raw = (wasm ? statsWasm(src, layout, type, blockType, symmetric) : undefined) ?? statsJs(src.array(), layout, type, blockType, symmetric);

  const { finite, min, max } = raw;
  const absMax = Math.max(Math.abs(min), Math.abs(max));
  const mean = finite ? raw.sum / finite : 0;
  const variance = finite ? Math.max(0, raw.sumSq / finite - mean * mean) : 0;
  const ranges = new Float64Array(L.channels);
  let maxRange = 0;
  for (let c = 0; c < L.channels; c++) {
    ranges[c] = raw.chMax[c]! - raw.chMin[c]!;
    if (ranges[c]! > maxRange) maxRange = ranges[c]!;
  }
  const medianRange = median(ranges);
  return {
    elements: src.n,
    min,
    max,
    absMax,
    mean,
    std: Math.sqrt(variance),
    zeros: raw.zeros,
    denormals: raw.denormals,
    nonFinite: raw.nonFinite,
    perChannel: { axis: layout.channelAxis, min: Float32Array.from(raw.chMin), max: Float32Array.from(raw.chMax) },
    histogram: { min, max, counts: Array.from(raw.histCounts) },
    absP999: raw.absP999,
    outlierScore: raw.absP999 > 0 ? absMax / raw.absP999 : absMax > 0 ? Infinity : 1,
    channelRangeSpread: medianRange > 0 ? maxRange / medianRange : maxRange > 0 ? Infinity : 1,
    sqnrDb: { int8: sqnr(raw.sumSq, raw.errT), int8PerChannel: sqnr(raw.sumSq, raw.errC), int4: sqnr(raw.sumSq, raw.errB) },
  };
}

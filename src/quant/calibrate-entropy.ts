/**
 * Entropy (KL-divergence) calibration, the method of TensorRT's INT8 calibrator and onnxruntime's
 * "Entropy" calibration: pick the clipping threshold whose quantized distribution loses the least
 * information relative to the observed one.
 *
 * For each candidate window of histogram bins:
 *   P = the window's counts, with all mass outside the window added to its edge bins (clipping);
 *   Q = the window's counts (without the outliers) merged into `levels` equal groups — what the
 *       quantizer can distinguish — and each group's mass spread evenly back over the bins where P
 *       is non-zero;
 *   score = KL(P‖Q) after normalizing both; Q's empty bins are smoothed with a small epsilon so the
 *   divergence stays finite (P's zero bins contribute nothing and need no smoothing).
 * The window with the smallest KL wins.
 *
 * Candidate windows:
 * - symmetric: the |x| histogram (foldAbs) windows [0, i) for i = levels..bins, levels = 2^(bits−1)
 *   (128 for int8); result ±i·w.
 * - asymmetric: windows grown outward from the bin edge nearest 0 (one bin each side per step,
 *   stopping at the histogram ends, as onnxruntime does), levels = 2^bits (256 for uint8).
 * When the histogram has no more bins than levels, quantization is finer than the histogram and
 * the full observed range is returned.
 */
import { absMax, checkHistogram, foldAbs, RangeChooserOptions } from './calibrate-range';
import { Histogram } from './histogram';
import { FloatRange, QuantType, quantRange } from './types';

/** Smoothing epsilon (onnxruntime's default). */
const SMOOTHING_EPS = 1e-4;

/** Scratch buffers reused across candidate windows (allocated once per call). */
interface KlScratch {
  prefix: Float64Array;
  q: Float64Array;
}

/**
 * KL(P‖Q) of window [start, end) of `counts`; `prefix[k]` = sum of counts[0..k).
 * Returns Infinity when the window holds no mass.
 */
function windowKl(counts: Float64Array, start: number, end: number, levels: number, s: KlScratch): number {
  const { prefix, q } = s;
  const len = end - start;
  const total = prefix[counts.length]!;
  const inner = prefix[end]! - prefix[start]!;
  if (!(inner > 0)) return Infinity;
  const leftOut = prefix[start]!;
  const rightOut = total - prefix[end]!;

  // P > 0 at bin k of the window: its own count, or the clipped mass folded into an edge bin.
  const leftEdge = leftOut > 0;
  const rightEdge = rightOut > 0;
  const last = len - 1;

  // Expanded Q (unnormalized) into q[0..len): each group's mass spread evenly over its bins with P > 0.
  for (let g = 0; g < levels; g++) {
    const gs = Math.floor((g * len) / levels);
    const ge = Math.floor(((g + 1) * len) / levels);
    let mass = 0;
    let nonZero = 0;
    for (let k = gs; k < ge; k++) {
      const c = counts[start + k]!;
      mass += c;
      if (c > 0 || (k === 0 && leftEdge) || (k === last && rightEdge)) nonZero++;
    }
    const v = nonZero > 0 ? mass / nonZero : 0;
    for (let k = gs; k < ge; k++) {
      const pPositive = counts[start + k]! > 0 || (k === 0 && leftEdge) || (k === last && rightEdge);
      q[k] = pPositive ? v : 0;
    }
  }

  // Smoothing of Q: empty bins get eps, the others give up the same total in proportion to their count.
  let zeros = 0;
  let minNonZero = Infinity;
  for (let k = 0; k < len; k++) {
    const v = q[k]! / inner;
    if (v === 0) zeros++;
    else if (v < minNonZero) minNonZero = v;
  }
  const nonZeros = len - zeros;
  let eps = SMOOTHING_EPS;
  if (zeros > 0 && nonZeros > 0) eps = Math.min(eps, (0.5 * minNonZero * nonZeros) / zeros);
  const take = nonZeros > 0 ? (eps * zeros) / nonZeros : 0;

  let kl = 0;
  for (let k = 0; k < len; k++) {
    let p = counts[start + k]!;
    if (k === 0) p += leftOut;
    if (k === last) p += rightOut;
    if (p === 0) continue;
    p /= total;
    const qv = q[k]! / inner;
    const qs = qv === 0 ? eps : qv - take;
    kl += p * Math.log(p / qs);
  }
  return kl;
}

function makeScratch(counts: Float64Array): KlScratch {
  const n = counts.length;
  const prefix = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) prefix[k + 1] = prefix[k]! + counts[k]!;
  return { prefix, q: new Float64Array(n) };
}

/** Clipping range minimizing KL divergence between the observed and the quantized distribution. */
export function entropyRange(h: Histogram, type: QuantType, options: RangeChooserOptions = {}): FloatRange {
  checkHistogram(h, 'entropyRange');
  const { bits } = quantRange(type);
  const symmetric = options.symmetric ?? h.symmetric;

  if (symmetric) {
    const levels = 2 ** (bits - 1);
    const abs = foldAbs(h);
    const n = abs.counts.length;
    const amax = absMax(h);
    if (n <= levels) return { min: -amax, max: amax };
    const s = makeScratch(abs.counts);
    let best = n;
    let bestKl = Infinity;
    for (let i = levels; i <= n; i++) {
      const kl = windowKl(abs.counts, 0, i, levels, s);
      if (kl < bestKl) {
        bestKl = kl;
        best = i;
      }
    }
    const t = Math.min(amax, best * abs.width);
    return { min: -t, max: t };
  }

  const levels = 2 ** bits;
  const n = h.counts.length;
  if (n <= levels) return { min: h.min, max: h.max };
  const w = (h.hi - h.lo) / n;
  const zero = Math.min(n, Math.max(0, Math.round(-h.lo / w)));
  const s = makeScratch(h.counts);
  let bestStart = 0;
  let bestEnd = n;
  let bestKl = Infinity;
  for (let step = 1; ; step++) {
    const start = Math.max(0, zero - step);
    const end = Math.min(n, zero + step);
    if (end - start >= levels) {
      const kl = windowKl(h.counts, start, end, levels, s);
      if (kl < bestKl) {
        bestKl = kl;
        bestStart = start;
        bestEnd = end;
      }
    }
    if (start === 0 && end === n) break;
  }
  const lo = h.lo + bestStart * w;
  const hi = h.lo + bestEnd * w;
  return { min: Math.min(Math.max(lo, h.min), h.max), max: Math.max(Math.min(hi, h.max), h.min) };
}

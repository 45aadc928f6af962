/**
 * Percentile range chooser plus the histogram helpers shared by all choosers.
 *
 * Every chooser returns a FloatRange inside the exact observed [min, max] (for symmetric results,
 * inside ±max(|min|, |max|)), so clipping never invents values that were not seen.
 */
import { QuantizationError } from './errors';
import { Histogram } from './histogram';
import { FloatRange } from './types';

export interface RangeChooserOptions {
  /** Choose a range symmetric around 0; defaults to the histogram's own `symmetric` flag. */
  symmetric?: boolean;
}

export function checkHistogram(h: Histogram, where: string): void {
  if (!(h.total > 0)) throw new QuantizationError(`${where}: histogram is empty (no finite values were observed)`);
  if (!(h.hi > h.lo) || h.counts.length === 0) {
    throw new QuantizationError(`${where}: histogram range [${h.lo}, ${h.hi}] is invalid`);
  }
}

/** Largest observed magnitude. */
export function absMax(h: Histogram): number {
  return Math.max(Math.abs(h.min), Math.abs(h.max));
}

/** Histogram of |x| starting at 0 with the source bin width. */
export interface AbsHistogram {
  counts: Float64Array;
  width: number;
}

/**
 * Folds a signed histogram into a histogram of |x| with the same bin width. Each source bin's mass
 * is spread uniformly over its |x| interval (a bin straddling 0 is split in proportion). When 0 is
 * a bin edge (symmetric histograms) every source bin lands in exactly one target bin; positions are
 * snapped to the bin grid so float noise does not leak slivers of mass into neighbours.
 */
export function foldAbs(h: Histogram): AbsHistogram {
  const n = h.counts.length;
  const w = (h.hi - h.lo) / n;
  const size = Math.max(1, Math.ceil(Math.max(-h.lo, h.hi) / w - 1e-9));
  const dst = new Float64Array(size);
  for (let k = 0; k < n; k++) {
    const c = h.counts[k]!;
    if (c === 0) continue;
    const e0 = (h.lo + k * w) / w; // edges in units of w
    const e1 = e0 + 1;
    if (e0 >= 0) spread(dst, e0, e1, c);
    else if (e1 <= 0) spread(dst, -e1, -e0, c);
    else {
      spread(dst, 0, -e0, c * -e0);
      spread(dst, 0, e1, c * e1);
    }
  }
  return { counts: dst, width: w };
}

/** Adds `mass` spread uniformly over [a, b] (in bin units) into dst. */
function spread(dst: Float64Array, a: number, b: number, mass: number): void {
  const snap = (x: number) => {
    const r = Math.round(x);
    return Math.abs(x - r) < 1e-7 ? r : x;
  };
  a = snap(a);
  b = snap(b);
  const last = dst.length - 1;
  if (!(b > a)) {
    dst[Math.min(last, Math.max(0, Math.floor(a)))]! += mass;
    return;
  }
  const k0 = Math.max(0, Math.floor(a));
  const k1 = Math.min(last, Math.ceil(b) - 1);
  const density = mass / (b - a);
  for (let k = k0; k <= k1; k++) {
    const overlap = Math.min(b, k + 1) - Math.max(a, k);
    if (overlap > 0) dst[k]! += density * overlap;
  }
}

/**
 * Value below which a fraction `q` of the mass lies, interpolating linearly inside the bin
 * (values assumed uniform within a bin). `lo` is the left edge of bin 0.
 */
export function histogramQuantile(counts: Float64Array, lo: number, width: number, q: number): number {
  let total = 0;
  for (let k = 0; k < counts.length; k++) total += counts[k]!;
  const target = q * total;
  let cum = 0;
  for (let k = 0; k < counts.length; k++) {
    const c = counts[k]!;
    if (c > 0 && cum + c >= target) return lo + (k + Math.max(0, target - cum) / c) * width;
    cum += c;
  }
  return lo + counts.length * width;
}

/**
 * Percentile calibration (as onnxruntime's "Percentile" method):
 * - asymmetric: [quantile(1 − p), quantile(p)] with p = pct/100, i.e. (100 − pct)% clipped on each side;
 * - symmetric: ±quantile_p(|x|), i.e. (100 − pct)% of the magnitudes clipped in total.
 */
export function percentileRange(h: Histogram, pct: number, options: RangeChooserOptions = {}): FloatRange {
  checkHistogram(h, 'percentileRange');
  if (!(pct > 0 && pct <= 100)) throw new QuantizationError(`percentileRange: percentile must be in (0, 100], got ${pct}`);
  const p = pct / 100;
  const symmetric = options.symmetric ?? h.symmetric;
  if (symmetric) {
    const abs = foldAbs(h);
    const t = Math.min(absMax(h), histogramQuantile(abs.counts, 0, abs.width, p));
    return { min: -t, max: t };
  }
  const w = (h.hi - h.lo) / h.counts.length;
  const lower = histogramQuantile(h.counts, h.lo, w, 1 - p);
  const upper = histogramQuantile(h.counts, h.lo, w, p);
  return {
    min: Math.min(Math.max(lower, h.min), h.max),
    max: Math.max(Math.min(upper, h.max), h.min),
  };
}

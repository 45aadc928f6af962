/**
 * MSE calibration: choose the clipping range that minimizes the expected squared quantization
 * error over the histogram, trading clipping error (values beyond the range) against rounding error
 * (step size grows with the range).
 *
 * Error model for a candidate [a, b] (after computing the real scale / zero point for it, so the
 * representable ends lo_r = s·(qmin − z), hi_r = s·(qmax − z) include zero-point rounding):
 *   - bin with center x < lo_r:  count · ((x − lo_r)² + w²/12)   (clipped; w²/12 = spread inside the bin)
 *   - bin with center x > hi_r:  count · ((x − hi_r)² + w²/12)
 *   - otherwise:                 count · s²/12                    (uniform rounding error)
 * With prefix sums of count, count·x and count·x² each candidate costs O(1), so we can afford a
 * dense grid: 2·bins candidates per coordinate, then a 64-point refinement around the best one
 * (coarse-to-fine). Asymmetric ranges are found by coordinate descent on (a, b). A 2048-bin
 * histogram takes well under a millisecond.
 */
import { absMax, checkHistogram, RangeChooserOptions } from './calibrate-range';
import { Histogram } from './histogram';
import { computeQParamsInto, ScaleZeroPoint } from './params';
import { FloatRange, QuantRange, QuantType, quantRange } from './types';

const REFINE_POINTS = 64;
const MAX_SWEEPS = 16;

/** Precomputed prefix sums over bin centers. */
class MseModel {
  private readonly c: Float64Array;
  private readonly s1: Float64Array;
  private readonly s2: Float64Array;
  private readonly n: number;
  private readonly lo: number;
  private readonly w: number;
  private readonly binVar: number;
  private readonly qp: ScaleZeroPoint = { scale: 0, zeroPoint: 0 };

  constructor(
    h: Histogram,
    private readonly range: QuantRange,
    private readonly symmetric: boolean,
  ) {
    const n = h.counts.length;
    this.n = n;
    this.lo = h.lo;
    this.w = (h.hi - h.lo) / n;
    this.binVar = (this.w * this.w) / 12;
    this.c = new Float64Array(n + 1);
    this.s1 = new Float64Array(n + 1);
    this.s2 = new Float64Array(n + 1);
    for (let k = 0; k < n; k++) {
      const cnt = h.counts[k]!;
      const x = h.lo + (k + 0.5) * this.w;
      this.c[k + 1] = this.c[k]! + cnt;
      this.s1[k + 1] = this.s1[k]! + cnt * x;
      this.s2[k + 1] = this.s2[k]! + cnt * x * x;
    }
  }

  /** Expected total squared error when quantizing with the parameters derived from [a, b] (a ≤ 0 ≤ b). */
  error(a: number, b: number): number {
    const qp = this.qp;
    computeQParamsInto(a, b, this.range, this.symmetric, qp, 'mseRange');
    const s = qp.scale;
    const loR = s * (this.range.qmin - qp.zeroPoint);
    const hiR = s * (this.range.qmax - qp.zeroPoint);
    const { n, lo, w, c, s1, s2 } = this;
    // Bins with center < loR are k < (loR − lo)/w − 0.5; bins with center > hiR start after (hiR − lo)/w − 0.5.
    const kLow = clampIndex(Math.ceil((loR - lo) / w - 0.5), n);
    const kHigh = Math.max(kLow, clampIndex(Math.floor((hiR - lo) / w - 0.5) + 1, n));
    const cLow = c[kLow]!;
    const cHigh = c[n]! - c[kHigh]!;
    const low = s2[kLow]! - 2 * loR * s1[kLow]! + loR * loR * cLow;
    const high = s2[n]! - s2[kHigh]! - 2 * hiR * (s1[n]! - s1[kHigh]!) + hiR * hiR * cHigh;
    const inside = c[kHigh]! - cLow;
    // max(0, ·) guards the expanded squares against cancellation noise.
    return Math.max(0, low) + Math.max(0, high) + (cLow + cHigh) * this.binVar + (inside * s * s) / 12;
  }
}

function clampIndex(k: number, n: number): number {
  return k < 0 ? 0 : k > n ? n : k;
}

/** Best x on a uniform grid over [from, to] (inclusive) for f, with `points` intervals. */
function gridSearch(f: (x: number) => number, from: number, to: number, points: number): number {
  let best = to;
  let bestErr = f(to);
  const step = (to - from) / points;
  for (let i = 0; i < points; i++) {
    const x = from + i * step;
    const e = f(x);
    if (e < bestErr) {
      bestErr = e;
      best = x;
    }
  }
  return best;
}

/** Dense grid, then a finer grid over the two neighbouring cells. */
function coarseToFine(f: (x: number) => number, from: number, to: number, points: number): number {
  const step = (to - from) / points;
  const x = gridSearch(f, from, to, points);
  const lo = Math.max(from, x - step);
  const hi = Math.min(to, x + step);
  return hi > lo ? gridSearch(f, lo, hi, REFINE_POINTS) : x;
}

/** Clipping range minimizing the expected quantization MSE for `type`. */
export function mseRange(h: Histogram, type: QuantType, options: RangeChooserOptions = {}): FloatRange {
  checkHistogram(h, 'mseRange');
  const symmetric = options.symmetric ?? h.symmetric;
  const model = new MseModel(h, quantRange(type), symmetric);
  const points = 2 * h.counts.length;

  if (symmetric) {
    const amax = absMax(h);
    if (amax === 0) return { min: 0, max: 0 };
    // Start one grid step above 0: a zero threshold is the degenerate range, not a real candidate.
    const t = coarseToFine((x) => model.error(-x, x), amax / points, amax, points);
    return { min: -t, max: t };
  }

  // Search space: a in [min(lo, 0), 0], b in [0, max(hi, 0)], starting from the full range.
  const aFull = Math.min(h.min, 0);
  const bFull = Math.max(h.max, 0);
  if (aFull === 0 && bFull === 0) return { min: 0, max: 0 };
  let a = aFull;
  let b = bFull;
  let err = model.error(a, b);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    if (bFull > 0) b = coarseToFine((x) => model.error(a, x), 0, bFull, points);
    if (aFull < 0) a = -coarseToFine((x) => model.error(-x, b), 0, -aFull, points);
    const e = model.error(a, b);
    if (!(e < err)) break;
    err = e;
  }
  return { min: a, max: b };
}

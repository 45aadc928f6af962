/**
 * Streaming fixed-size histogram for calibration (input to percentile / entropy / MSE range choosers).
 *
 * Memory: two Float64Arrays of `bins` entries, allocated once; nothing grows with the batch count.
 *
 * Growing the range: when a batch falls outside [lo, hi] the bin width is multiplied by an INTEGER
 * factor k ≥ 1 and the grid is re-anchored on an old bin edge (new lo = old lo − j·oldWidth, j an
 * integer, possibly negative). Every new bin is then the exact union of k consecutive old bins, so
 * re-binning adds whole old counts into new bins: no proportional splitting, no rounding, and the
 * integer total is preserved exactly (counts are integers stored in float64, exact up to 2^53).
 * The new grid only has to cover the data actually seen ([min, max] of all values, not the old
 * range, whose outer bins may be empty), and k is the smallest factor that does; k = 1 is a pure
 * shift. Hence the range stays below 2× the observed span (plus one bin) however many times it
 * grows — no compounding.
 *
 * Symmetric mode keeps [-a, a] with an even bin count, so 0 is always a bin edge; growth is
 * a → k·a with k = ceil(absmax / a) (re-anchored with j = (k−1)·bins/2), again < 2× the need.
 *
 * Non-finite values: NaN, +Inf and −Inf are counted separately and never binned (same policy as the
 * min/max observers); the counts are reported on the snapshot so callers can warn.
 */
import { QuantizationError } from './errors';
import { BatchScan, emptyScan, scanBatch } from './observers';

/** Immutable snapshot consumed by the range choosers. Bin k covers [lo + k·w, lo + (k+1)·w), w = (hi − lo) / bins. */
export interface Histogram {
  /** Integer counts stored as float64. */
  counts: Float64Array;
  lo: number;
  hi: number;
  /** Sum of counts (finite values observed). */
  total: number;
  /** Exact smallest / largest finite value observed (choosers never return a range beyond these). */
  min: number;
  max: number;
  /** True when built in symmetric mode (range [-a, a], 0 on a bin edge); default for the choosers. */
  symmetric: boolean;
  nanCount: number;
  posInfCount: number;
  negInfCount: number;
}

export interface HistogramOptions {
  /** Bin count, default 2048 (must be even in symmetric mode). */
  bins?: number;
  /** Keep the range symmetric around 0 (for symmetric quantization), default false. */
  symmetric?: boolean;
}

export const DEFAULT_HISTOGRAM_BINS = 2048;

/** Floor for the initial bin range when the first data is (nearly) constant; see initRange. */
const MIN_INITIAL_HALF_WIDTH = 1e-30;
const RELATIVE_INITIAL_HALF_WIDTH = 2 ** -20;

export class HistogramObserver {
  readonly bins: number;
  readonly symmetric: boolean;
  private counts: Float64Array;
  /** Spare buffer for re-binning, swapped with `counts` (allocated once). */
  private spare: Float64Array;
  private lo = 0;
  private hi = 0;
  private initialized = false;
  private total = 0;
  private min = Infinity;
  private max = -Infinity;
  private nan = 0;
  private posInf = 0;
  private negInf = 0;
  private growths = 0;
  private readonly scan: BatchScan = emptyScan();

  constructor(options: HistogramOptions = {}) {
    const bins = options.bins ?? DEFAULT_HISTOGRAM_BINS;
    this.symmetric = options.symmetric === true;
    if (!Number.isInteger(bins) || bins < 2) throw new QuantizationError(`histogram bins must be an integer ≥ 2, got ${bins}`);
    if (this.symmetric && bins % 2 !== 0) {
      throw new QuantizationError(`symmetric histogram needs an even bin count (0 must be a bin edge), got ${bins}`);
    }
    this.bins = bins;
    this.counts = new Float64Array(bins);
    this.spare = new Float64Array(bins);
  }

  /** Bytes held by the observer's arrays: constant for the observer's lifetime. */
  get stateBytes(): number {
    return this.counts.byteLength + this.spare.byteLength;
  }

  /** How many times the range has been widened (for diagnostics / tests). */
  get growthCount(): number {
    return this.growths;
  }

  update(batch: Float32Array): void {
    const s = scanBatch(batch, this.scan);
    this.nan += s.nan;
    this.posInf += s.posInf;
    this.negInf += s.negInf;
    if (s.finite === 0) return;
    if (s.min < this.min) this.min = s.min;
    if (s.max > this.max) this.max = s.max;
    if (!this.initialized) this.initRange(s.min, s.max);
    else if (s.min < this.lo || s.max > this.hi) this.grow();
    this.addValues(batch);
    this.total += s.finite;
  }

  /** Snapshot (copies the counts). Throws when no finite value has been observed. */
  histogram(): Histogram {
    if (!this.initialized) throw new QuantizationError('histogram observer has not seen any finite value');
    return {
      counts: this.counts.slice(),
      lo: this.lo,
      hi: this.hi,
      total: this.total,
      min: this.min,
      max: this.max,
      symmetric: this.symmetric,
      nanCount: this.nan,
      posInfCount: this.posInf,
      negInfCount: this.negInf,
    };
  }

  /**
   * First range = the first batch's extent (or [-absmax, absmax]). A (nearly) constant first batch
   * gets a tiny non-zero width around its value so bin widths stay positive; later growth
   * re-bins it, and choosers clamp to the exact observed min/max anyway.
   */
  private initRange(bmin: number, bmax: number): void {
    const mag = Math.max(Math.abs(bmin), Math.abs(bmax));
    const minHalf = Math.max(mag * RELATIVE_INITIAL_HALF_WIDTH, MIN_INITIAL_HALF_WIDTH);
    if (this.symmetric) {
      const a = Math.max(mag, minHalf);
      this.lo = -a;
      this.hi = a;
    } else if (bmax - bmin < 2 * minHalf) {
      const c = (bmin + bmax) / 2;
      this.lo = c - minHalf;
      this.hi = c + minHalf;
    } else {
      this.lo = bmin;
      this.hi = bmax;
    }
    this.initialized = true;
  }

  /**
   * Re-grids so that [this.min, this.max] (already including the new batch) is covered, with
   * new width = k·old width and new lo on an old bin edge, then re-bins the existing counts.
   */
  private grow(): void {
    const n = this.bins;
    const w = (this.hi - this.lo) / n;
    let k: number;
    let j: number; // old-bin widths between new lo and old lo (new lo = old lo − j·w)
    if (this.symmetric) {
      const need = Math.max(-this.min, this.max);
      k = Math.max(2, Math.ceil(need / this.hi));
      j = ((k - 1) * n) / 2;
      this.lo = -k * this.hi;
      this.hi = -this.lo;
    } else {
      // New lo = left edge of the old bin that holds the data minimum (or further left for new data).
      j = Math.ceil((this.lo - this.min) / w);
      const newLo = this.lo - j * w;
      k = Math.max(1, Math.ceil((this.max - newLo) / (n * w)));
      // Float rounding must not leave the maximum outside: widen by one more factor if needed.
      if (newLo + n * k * w < this.max) k++;
      this.lo = newLo;
      this.hi = newLo + n * k * w;
    }
    this.rebin(j, k);
    this.growths++;
  }

  /** Old bin i goes to new bin floor((j + i) / k), walked with a counter instead of dividing. */
  private rebin(j: number, k: number): void {
    const n = this.bins;
    const src = this.counts;
    const dst = this.spare;
    dst.fill(0);
    let idx = Math.floor(j / k);
    let rem = j - idx * k;
    if (!(rem >= 0 && rem < k)) rem = 0; // only for astronomically large j/k where doubles lose integers
    const last = n - 1;
    for (let i = 0; i < n; i++) {
      const c = src[i]!;
      // Non-empty bins always land inside [0, n); the clamps only guard float drift so no count is ever dropped.
      if (c !== 0) dst[idx < 0 ? 0 : idx > last ? last : idx]! += c;
      if (++rem >= k) {
        rem = 0;
        idx++;
      }
    }
    this.counts = dst;
    this.spare = src;
  }

  private addValues(batch: Float32Array): void {
    const counts = this.counts;
    const n = this.bins;
    const lo = this.lo;
    const perUnit = n / (this.hi - this.lo);
    const last = n - 1;
    for (let i = 0; i < batch.length; i++) {
      const v = batch[i]!;
      if (v - v !== 0) continue; // NaN / ±Inf counted in update()
      // v ≥ lo after growth, so truncation equals floor; the clamps absorb rounding at the edges.
      let b = ((v - lo) * perUnit) | 0;
      if (b > last) b = last;
      else if (b < 0) b = 0;
      counts[b]!++;
    }
  }
}

/**
 * Streaming fixed-size histogram for calibration (input to percentile / entropy / MSE range choosers).
 *
 * Memory: two Float64Arrays of `bins` entries, allocated once; nothing grows with the batch count.
 *
 * Counts are float64, not Uint32: a float64 holds every integer up to 2^53 exactly, so no count can
 * overflow or round in practice, whereas one Uint32 bin wraps after 2^32 ≈ 4.3e9 values (a few
 * hundred 10M-element ReLU batches put that many zeros in one bin) and Float32 is exact only up
 * to 2^24 ≈ 1.7e7 (a single large batch). Incrementing a Uint32 bin measured no faster than a
 * float64 one (the loop is bound by loads, compares and the bin computation), and the snapshot
 * handed to the choosers is float64 anyway, so float64 costs nothing and needs no overflow flush.
 *
 * One pass per batch in the common case: values are binned straight into the current grid while
 * the exact min/max and the NaN/±Inf counts are gathered. Only when a finite value falls outside
 * [lo, hi] is that batch's binning undone (its increments reverted, or for large batches the counts
 * restored from a copy: exact either way) and the batch handled by the two-pass path (scan for the
 * range, grow, bin), so the result is identical to always scanning first. Growth costs that batch
 * the wasted part of the one pass; it is rare once the first batches have set the range.
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
import { BatchScan, emptyScan, firstZero, scanBatch } from './observers';
import { binScratch, KERNEL_CHUNK_VALUES, loadChunk, observerKernels, ObserverKernels, WASM_MIN_VALUES } from './wasm/observer-kernels';

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

/**
 * Largest batch the kernel path takes: its i32 scratch counts cannot overflow below 2^31 values
 * (larger batches take the JavaScript loop).
 */
const MAX_KERNEL_BATCH = 2 ** 31 - 1;

/** Smallest float32 ≥ x (x finite): for float32 v, v ≥ x ⇔ v ≥ float32Ceil(x). Exported for tests. */
export function float32Ceil(x: number): number {
  const f = Math.fround(x);
  return f >= x ? f : nextFloat32(f, 1);
}

/** Largest float32 ≤ x (x finite): for float32 v, v ≤ x ⇔ v ≤ float32Floor(x). Exported for tests. */
export function float32Floor(x: number): number {
  const f = Math.fround(x);
  return f <= x ? f : nextFloat32(f, -1);
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** The float32 next to f (a float32, finite) towards +∞ (dir 1) or −∞ (dir −1). */
function nextFloat32(f: number, dir: 1 | -1): number {
  if (f === 0) return dir * 2 ** -149;
  f32Bits[0] = f;
  // Away from zero: the bit pattern grows; towards zero: it shrinks.
  u32Bits[0]! += (f > 0) === (dir > 0) ? 1 : -1;
  return f32Bits[0]!;
}

/** From this batch size on, HistogramObserver.binInRange snapshots the counts rather than undoing its increments. */
const SNAPSHOT_MIN_VALUES = 1 << 16;

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
    if (!this.initialized || !this.binInRange(batch)) this.updateScanned(batch);
  }

  /**
   * Records a tensor's exact extremes without counting any value: for a batch that is a subset of
   * a tensor whose min and max were found elsewhere (calibration's strided subsets), so the range
   * stays exact while the counts estimate the distribution. A non-finite extreme is counted as one
   * non-finite value (the tensor had at least one).
   */
  extendRange(min: number, max: number): void {
    for (const v of [min, max]) {
      if (v === v && v - v === 0) continue;
      if (v !== v) this.nan++;
      else if (v > 0) this.posInf++;
      else this.negInf++;
    }
    const lo = Number.isFinite(min) ? min : Number.isFinite(max) ? max : undefined;
    const hi = Number.isFinite(max) ? max : lo;
    if (lo === undefined || hi === undefined || lo > hi) return;
    if (lo < this.min) this.min = lo;
    if (hi > this.max) this.max = hi;
    if (!this.initialized) this.initRange(this.min, this.max);
    else if (this.min < this.lo || this.max > this.hi) this.grow();
  }

  /**
   * Two passes: scanBatch for the batch's range and non-finite counts, then (after initializing or
   * growing the grid) binning. Used for the first batch and for batches that need the grid to grow.
   */
  private updateScanned(batch: Float32Array): void {
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

  /**
   * One pass: bins every finite value into the current grid, tracking min/max and non-finite
   * counts. Returns false, with the observer's state exactly as before the call, as soon as a
   * finite value lies outside [lo, hi] (the grid must grow: the caller takes the two-pass path).
   *
   * Four interleaved streams (quarters of the batch) as in scanBatch; a group of four holding a
   * NaN, ±Inf or out-of-range value is handled value by value. The bin of a value is computed
   * exactly as addValues does, so the counts equal the two-pass path's.
   */
  private binInRange(batch: Float32Array): boolean {
    if (batch.length >= WASM_MIN_VALUES && batch.length <= MAX_KERNEL_BATCH) {
      const k = observerKernels();
      if (k) return this.binInRangeWasm(k, batch);
    }
    const counts = this.counts;
    const lo = this.lo;
    const hi = this.hi;
    const perUnit = this.bins / (this.hi - this.lo);
    const last = this.bins - 1;
    const n = batch.length;
    const q = n >> 2;
    // Large batches keep a copy of the counts to restore if the grid must grow (a 16 KB copy next to
    // megabytes of binning); small ones undo their increments instead, which costs less than the copy.
    const snapshot = n >= SNAPSHOT_MIN_VALUES;
    if (snapshot) this.spare.set(counts);
    const oldMin = this.min;
    const oldMax = this.max;
    let mn = oldMin;
    let mx = oldMax;
    let nan = 0;
    let posInf = 0;
    let negInf = 0;
    let i = 0; // groups done: batch[i], batch[q + i], batch[2q + i], batch[3q + i] for each i below
    while (i < q) {
      // A value in [fastLo, fastHi] is in the grid and moves no extreme: one test per bound, false
      // for NaN and ±Inf too. ([min, max] lies within [lo, hi] up to float rounding of the grid
      // edges; intersecting keeps the grid test exact even then.)
      const fastLo = mn > lo ? mn : lo;
      const fastHi = mx < hi ? mx : hi;
      for (let j = q + i, k = 2 * q + i, l = 3 * q + i; i < q; i++, j++, k++, l++) {
        const a = batch[i]!;
        const b = batch[j]!;
        const c = batch[k]!;
        const d = batch[l]!;
        if (!(a >= fastLo && a <= fastHi && b >= fastLo && b <= fastHi && c >= fastLo && c <= fastHi && d >= fastLo && d <= fastHi)) break;
        // v ≥ lo, so truncation equals floor and the index is ≥ 0; the clamp absorbs v = hi and rounding.
        let ba = ((a - lo) * perUnit) | 0;
        let bb = ((b - lo) * perUnit) | 0;
        let bc = ((c - lo) * perUnit) | 0;
        let bd = ((d - lo) * perUnit) | 0;
        if (ba > last) ba = last;
        if (bb > last) bb = last;
        if (bc > last) bc = last;
        if (bd > last) bd = last;
        counts[ba]!++;
        counts[bb]!++;
        counts[bc]!++;
        counts[bd]!++;
      }
      if (i === q) break;
      // This group has a new extreme, a non-finite or an out-of-range value. Out of range: undo,
      // before binning any of the group.
      for (let s = 0; s < 4; s++) {
        const v = batch[i + s * q]!;
        if (v - v === 0 && !(v >= lo && v <= hi)) {
          if (snapshot) counts.set(this.spare);
          else this.unbin(batch, i, 4 * q);
          return false;
        }
      }
      for (let s = 0; s < 4; s++) {
        const v = batch[i + s * q]!;
        if (v - v !== 0) {
          if (v !== v) nan++;
          else if (v > 0) posInf++;
          else negInf++;
          continue;
        }
        let bv = ((v - lo) * perUnit) | 0;
        if (bv > last) bv = last;
        counts[bv]!++;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      i++;
    }
    for (let t = 4 * q; t < n; t++) {
      const v = batch[t]!;
      if (v - v !== 0) {
        if (v !== v) nan++;
        else if (v > 0) posInf++;
        else negInf++;
        continue;
      }
      if (!(v >= lo && v <= hi)) {
        if (snapshot) counts.set(this.spare);
        else this.unbin(batch, q, t);
        return false;
      }
      let bv = ((v - lo) * perUnit) | 0;
      if (bv > last) bv = last;
      counts[bv]!++;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    this.commitBinned(batch, mn, mx, oldMin, oldMax, nan, posInf, negInf);
    return true;
  }

  /**
   * Records what binInRange saw in a batch: its extremes and non-finite counts. Values were not
   * visited in batch order: a new extreme of 0 must be the batch's first zero (+0 or −0), as
   * scanBatch reports it. Existing extremes only move on strictly smaller / larger.
   */
  private commitBinned(batch: Float32Array, mn: number, mx: number, oldMin: number, oldMax: number, nan: number, posInf: number, negInf: number): void {
    if (mn < oldMin && mn === 0) mn = batch[firstZero(batch)]!;
    if (mx > oldMax && mx === 0) mx = batch[firstZero(batch)]!;
    this.min = mn;
    this.max = mx;
    this.nan += nan;
    this.posInf += posInf;
    this.negInf += negInf;
    this.total += batch.length - nan - posInf - negInf;
  }

  /**
   * binInRange on the WebAssembly kernel: the batch is copied in chunk by chunk and the kernel bins
   * every group of four values that lies within [fastLo, fastHi] into four i32 scratch count
   * arrays; the groups it stops at (a NaN, ±Inf, new extreme or out-of-grid value) are handled
   * here value by value, as binInRange's slow path does. The observer's state changes only at the
   * end (scratch merged into the counts), so a value outside the grid just clears the scratch.
   * Same counts, extremes and non-finite counts as binInRange: the bin formula is the same float64
   * computation, and [fastLo, fastHi] is passed as the float32 interval holding the same float32
   * values (float32Ceil / float32Floor), so the kernel's float32 comparisons decide as the float64
   * ones do.
   */
  private binInRangeWasm(k: ObserverKernels, batch: Float32Array): boolean {
    const bins = this.bins;
    const scratch = binScratch(k, bins);
    const stride = 4 * bins;
    const i32 = k.i32;
    const s0 = scratch >> 2;
    const lo = this.lo;
    const hi = this.hi;
    const perUnit = bins / (this.hi - this.lo);
    const last = bins - 1;
    const n = batch.length;
    const oldMin = this.min;
    const oldMax = this.max;
    let mn = oldMin;
    let mx = oldMax;
    let nan = 0;
    let posInf = 0;
    let negInf = 0;
    let ok = true;
    chunks: for (let chunk = 0; chunk < n; chunk += KERNEL_CHUNK_VALUES) {
      const len = Math.min(KERNEL_CHUNK_VALUES, n - chunk);
      const p = loadChunk(k, batch, chunk, len);
      const n4 = len & ~3;
      let i = 0;
      for (;;) {
        if (i < n4) {
          const fastLo = float32Ceil(mn > lo ? mn : lo);
          const fastHi = float32Floor(mx < hi ? mx : hi);
          i += k.bin(p + 4 * i, n4 - i, lo, perUnit, fastLo, fastHi, last, scratch, stride);
        }
        // The group the kernel stopped at, or the chunk's last < 4 values.
        const end = i < n4 ? i + 4 : len;
        if (i >= end) break;
        for (let t = chunk + i; t < chunk + end; t++) {
          const v = batch[t]!;
          if (v - v !== 0) {
            if (v !== v) nan++;
            else if (v > 0) posInf++;
            else negInf++;
            continue;
          }
          if (!(v >= lo && v <= hi)) {
            ok = false;
            break chunks;
          }
          let bv = ((v - lo) * perUnit) | 0;
          if (bv > last) bv = last;
          i32[s0 + bv]!++;
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        i = end;
      }
    }
    if (!ok) {
      i32.fill(0, s0, s0 + 4 * bins);
      return false;
    }
    mergeScratch(i32, s0, bins, this.counts);
    this.commitBinned(batch, mn, mx, oldMin, oldMax, nan, posInf, negInf);
    return true;
  }

  /**
   * Undoes binInRange's increments: the finite values of the first `groups` groups of four
   * (batch[s·q + i], i < groups) and of the tail batch[4q, tailEnd). All of them were in range and
   * are re-binned by the same formula, so each decrement hits the bin that was incremented.
   */
  private unbin(batch: Float32Array, groups: number, tailEnd: number): void {
    const counts = this.counts;
    const lo = this.lo;
    const perUnit = this.bins / (this.hi - this.lo);
    const last = this.bins - 1;
    const q = batch.length >> 2;
    const undo = (from: number, to: number): void => {
      for (let t = from; t < to; t++) {
        const v = batch[t]!;
        if (v - v !== 0) continue;
        let bv = ((v - lo) * perUnit) | 0;
        if (bv > last) bv = last;
        counts[bv]!--;
      }
    };
    for (let s = 0; s < 4; s++) undo(s * q, s * q + groups);
    undo(4 * q, tailEnd);
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

  /**
   * Bins every finite value of the batch; the grid already covers them (after initRange / grow).
   * Same bin formula as binInRange, in four interleaved streams (counting is order-free).
   */
  private addValues(batch: Float32Array): void {
    if (batch.length >= WASM_MIN_VALUES && batch.length <= MAX_KERNEL_BATCH) {
      const k = observerKernels();
      if (k) return this.addValuesWasm(k, batch);
    }
    const counts = this.counts;
    const n = this.bins;
    const lo = this.lo;
    const perUnit = n / (this.hi - this.lo);
    const last = n - 1;
    const len = batch.length;
    const q = len >> 2;
    for (let i = 0, j = q, k = 2 * q, l = 3 * q; i < q; i++, j++, k++, l++) {
      const a = batch[i]!;
      const b = batch[j]!;
      const c = batch[k]!;
      const d = batch[l]!;
      if (a - a + (b - b) + (c - c) + (d - d) !== 0) {
        // NaN / ±Inf among the four (counted by the caller): value by value.
        addValue(counts, a, lo, perUnit, last);
        addValue(counts, b, lo, perUnit, last);
        addValue(counts, c, lo, perUnit, last);
        addValue(counts, d, lo, perUnit, last);
        continue;
      }
      // v ≥ lo after growth, so truncation equals floor; the clamps absorb rounding at the edges.
      let ba = ((a - lo) * perUnit) | 0;
      let bb = ((b - lo) * perUnit) | 0;
      let bc = ((c - lo) * perUnit) | 0;
      let bd = ((d - lo) * perUnit) | 0;
      if (ba > last) ba = last;
      else if (ba < 0) ba = 0;
      if (bb > last) bb = last;
      else if (bb < 0) bb = 0;
      if (bc > last) bc = last;
      else if (bc < 0) bc = 0;
      if (bd > last) bd = last;
      else if (bd < 0) bd = 0;
      counts[ba]!++;
      counts[bb]!++;
      counts[bc]!++;
      counts[bd]!++;
    }
    for (let t = 4 * q; t < len; t++) addValue(counts, batch[t]!, lo, perUnit, last);
  }

  /**
   * addValues on the kernel: groups of four within [lo, hi] go through the kernel, the others
   * (NaN, ±Inf, or a value just outside the grid's float edges) through addValue, into the same
   * i32 scratch, merged into the counts at the end. The grid is fixed here (no extreme to track),
   * so the kernel runs over [lo, hi] throughout; same counts as addValues.
   */
  private addValuesWasm(k: ObserverKernels, batch: Float32Array): void {
    const bins = this.bins;
    const scratch = binScratch(k, bins);
    const i32 = k.i32;
    const s0 = scratch >> 2;
    const lo = this.lo;
    const perUnit = bins / (this.hi - this.lo);
    const last = bins - 1;
    const fastLo = float32Ceil(lo);
    const fastHi = float32Floor(this.hi);
    const n = batch.length;
    for (let chunk = 0; chunk < n; chunk += KERNEL_CHUNK_VALUES) {
      const len = Math.min(KERNEL_CHUNK_VALUES, n - chunk);
      const p = loadChunk(k, batch, chunk, len);
      const n4 = len & ~3;
      let i = 0;
      for (;;) {
        if (i < n4) i += k.bin(p + 4 * i, n4 - i, lo, perUnit, fastLo, fastHi, last, scratch, 4 * bins);
        const end = i < n4 ? i + 4 : len;
        if (i >= end) break;
        for (let t = chunk + i; t < chunk + end; t++) {
          const v = batch[t]!;
          if (v - v !== 0) continue;
          let b = ((v - lo) * perUnit) | 0;
          if (b > last) b = last;
          else if (b < 0) b = 0;
          i32[s0 + b]!++;
        }
        i = end;
      }
    }
    mergeScratch(i32, s0, bins, this.counts);
  }
}

/** counts[b] += the four i32 scratch counts of bin b (lanes `bins` apart from s0); clears the scratch. */
function mergeScratch(i32: Int32Array, s0: number, bins: number, counts: Float64Array): void {
  for (let b = 0, s1 = s0 + bins, s2 = s1 + bins, s3 = s2 + bins; b < bins; b++) {
    const c = i32[s0 + b]! + i32[s1 + b]! + i32[s2 + b]! + i32[s3 + b]!;
    if (c !== 0) counts[b]! += c;
  }
  i32.fill(0, s0, s0 + 4 * bins);
}

/** addValues for one value: skips NaN / ±Inf. */
function addValue(counts: Float64Array, v: number, lo: number, perUnit: number, last: number): void {
  if (v - v !== 0) return;
  let b = ((v - lo) * perUnit) | 0;
  if (b > last) b = last;
  else if (b < 0) b = 0;
  counts[b]!++;
}

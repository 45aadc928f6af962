/**
 * Streaming min/max calibration observers. State is a handful of numbers (or one pair of arrays per
 * channel), so memory does not grow with the number of batches.
 *
 * Non-finite values: NaN and ±Infinity are skipped and counted (see `nonFinite`), never folded
 * into the range. ±Inf shows up legitimately in calibration data (e.g. attention masks filled with
 * -inf) and saturating it to qmin/qmax is the right quantized behaviour; a range of ±Inf would make
 * every scale infinite. Callers should surface non-zero counts as a warning.
 */
import { QuantizationError } from './errors';
import { splitAtAxis } from './shape';
import { FloatRange } from './types';
import { KERNEL_CHUNK_VALUES, loadChunk, observerKernels, ObserverKernels, WASM_MIN_VALUES } from './wasm/observer-kernels';

/** How many non-finite values an observer skipped. */
export interface NonFiniteCounts {
  nan: number;
  posInf: number;
  negInf: number;
}

/** Result of one pass over a batch. Reused across calls (observers are single-threaded). */
export interface BatchScan {
  min: number;
  max: number;
  finite: number;
  nan: number;
  posInf: number;
  negInf: number;
}

/**
 * Values per block of scanBatch. A block holding NaN or ±Inf is re-scanned by the exact loop, so
 * a rare non-finite value costs one block, not the batch; 16K floats (64 KB) also keep the block
 * in L2 for that second look.
 */
const SCAN_BLOCK = 1 << 14;

/** Per-block result of the scan loops (module scratch: observers are single-threaded). */
const block = { min: Infinity, max: -Infinity };

/**
 * One pass: finite min/max plus non-finite counts. min=+Inf / max=-Inf when no finite value was seen.
 *
 * Exactly the result of the plain sequential loop (`if (v < min) min = v`, skipping non-finite
 * values), including which zero is reported when both +0 and −0 occur: the first in batch order.
 *
 * Speed: each block is first scanned assuming every value is finite, as four interleaved streams
 * (consecutive quarters of the block) with their own min/max and two running sums. Independent
 * accumulators and four sequential memory streams make it about twice as fast as the
 * one-accumulator loop on large batches. A finite float32 sum cannot overflow float64 (|v| < 2^128,
 * so about 2^896 values would be needed), hence a non-finite sum means the block holds NaN or
 * ±Inf; that block is then scanned again by the exact loop, which classifies them.
 *
 * Order: each stream (and the tail, which continues the last stream) keeps the first of equal
 * values, and streams, then blocks, merge in batch order keeping the earlier on ties, so the
 * kept value is the sequential loop's (this only shows for +0 / −0).
 */
export function scanBatch(batch: Float32Array, out: BatchScan): BatchScan {
  const n = batch.length;
  if (n >= WASM_MIN_VALUES) {
    const k = observerKernels();
    if (k) return scanBatchWasm(k, batch, out);
  }
  let min = Infinity;
  let max = -Infinity;
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  for (let start = 0; start < n; start += SCAN_BLOCK) {
    const end = start + SCAN_BLOCK < n ? start + SCAN_BLOCK : n;
    // A few values (e.g. the [min, max] pairs of in-graph reductions) go straight to the exact
    // loop: the fast one's setup and merging would cost more than it saves.
    if (n < 16 || !scanBlockFinite(batch, start, end)) {
      const c = scanBlockExact(batch, start, end);
      nan += c.nan;
      posInf += c.posInf;
      negInf += c.negInf;
    }
    // Blocks merge in order, keeping the earlier value on ties.
    if (block.min < min) min = block.min;
    if (block.max > max) max = block.max;
  }
  return fillScan(out, n, min, max, nan, posInf, negInf);
}

/** Writes a batch's scan into `out`. */
function fillScan(out: BatchScan, n: number, min: number, max: number, nan: number, posInf: number, negInf: number): BatchScan {
  out.min = min;
  out.max = max;
  out.nan = nan;
  out.posInf = posInf;
  out.negInf = negInf;
  out.finite = n - nan - posInf - negInf;
  return out;
}

/**
 * Fast path of scanBatch over batch[start, end): min/max into `block`, assuming all values are
 * finite. Returns false (block contents then meaningless) when some value is NaN or ±Inf.
 */
function scanBlockFinite(batch: Float32Array, start: number, end: number): boolean {
  const q = (end - start) >> 2;
  let mn0 = Infinity;
  let mx0 = -Infinity;
  let mn1 = Infinity;
  let mx1 = -Infinity;
  let mn2 = Infinity;
  let mx2 = -Infinity;
  let mn3 = Infinity;
  let mx3 = -Infinity;
  let s0 = 0;
  let s1 = 0;
  for (let i = start, j = start + q, k = start + 2 * q, l = start + 3 * q, e = start + q; i < e; i++, j++, k++, l++) {
    const a = batch[i]!;
    const b = batch[j]!;
    const c = batch[k]!;
    const d = batch[l]!;
    s0 += a + b;
    s1 += c + d;
    if (a < mn0) mn0 = a;
    if (a > mx0) mx0 = a;
    if (b < mn1) mn1 = b;
    if (b > mx1) mx1 = b;
    if (c < mn2) mn2 = c;
    if (c > mx2) mx2 = c;
    if (d < mn3) mn3 = d;
    if (d > mx3) mx3 = d;
  }
  // The tail continues the last stream (batch order within a stream is what keeps the first zero).
  for (let i = start + 4 * q; i < end; i++) {
    const v = batch[i]!;
    s1 += v;
    if (v < mn3) mn3 = v;
    if (v > mx3) mx3 = v;
  }
  const s = s0 + s1; // NaN or ±Inf iff some value was NaN or ±Inf (see scanBatch)
  if (s - s !== 0) return false;
  // Merge in stream order; on ties the earlier stream's value stays.
  if (mn1 < mn0) mn0 = mn1;
  if (mn3 < mn2) mn2 = mn3;
  block.min = mn2 < mn0 ? mn2 : mn0;
  if (mx1 > mx0) mx0 = mx1;
  if (mx3 > mx2) mx2 = mx3;
  block.max = mx2 > mx0 ? mx2 : mx0;
  return true;
}

const blockCounts: NonFiniteCounts = { nan: 0, posInf: 0, negInf: 0 };

/** Exact sequential loop over batch[start, end): min/max into `block`, non-finite counts returned (scratch). */
function scanBlockExact(batch: Float32Array, start: number, end: number): NonFiniteCounts {
  let min = Infinity;
  let max = -Infinity;
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  for (let i = start; i < end; i++) {
    const v = batch[i]!;
    if (v - v !== 0) {
      if (v !== v) nan++;
      else if (v > 0) posInf++;
      else negInf++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  block.min = min;
  block.max = max;
  blockCounts.nan = nan;
  blockCounts.posInf = posInf;
  blockCounts.negInf = negInf;
  return blockCounts;
}

/** Index of the first +0 or −0 in the batch (−1 when none). */
export function firstZero(batch: Float32Array): number {
  for (let i = 0; i < batch.length; i++) if (batch[i] === 0) return i;
  return -1;
}

export function emptyScan(): BatchScan {
  return { min: Infinity, max: -Infinity, finite: 0, nan: 0, posInf: 0, negInf: 0 };
}

/** Shared bookkeeping of the per-tensor observers. */
abstract class RangeObserverBase {
  protected lo = Infinity;
  protected hi = -Infinity;
  protected batches = 0;
  private readonly counts: NonFiniteCounts = { nan: 0, posInf: 0, negInf: 0 };
  private readonly scan: BatchScan = emptyScan();

  /** Feeds one batch of activations (any shape, flattened). */
  update(batch: Float32Array): void {
    const s = scanBatch(batch, this.scan);
    this.counts.nan += s.nan;
    this.counts.posInf += s.posInf;
    this.counts.negInf += s.negInf;
    if (s.finite === 0) return; // nothing to learn; do not let an all-NaN batch move the range
    this.merge(s.min, s.max);
    this.batches++;
  }

  protected abstract merge(batchMin: number, batchMax: number): void;

  /** True once at least one finite value has been observed. */
  get hasData(): boolean {
    return this.batches > 0;
  }

  /** Number of batches that contributed (had at least one finite value). */
  get batchCount(): number {
    return this.batches;
  }

  get nonFinite(): NonFiniteCounts {
    return { ...this.counts };
  }

  /** Observed range. Throws QuantizationError when no finite value has been seen yet. */
  range(): FloatRange {
    if (this.batches === 0) throw new QuantizationError('observer has not seen any finite value; cannot compute a range');
    return { min: this.lo, max: this.hi };
  }
}

/** Running min / max over all batches (onnxruntime's MinMax calibration without averaging). */
export class MinMaxObserver extends RangeObserverBase {
  protected override merge(batchMin: number, batchMax: number): void {
    if (batchMin < this.lo) this.lo = batchMin;
    if (batchMax > this.hi) this.hi = batchMax;
  }
}

/**
 * Exponential moving average of per-batch min / max: after the first batch,
 * min ← min + c·(batchMin − min) (same for max). Damps one-off outlier batches.
 */
export class MovingAverageMinMaxObserver extends RangeObserverBase {
  readonly averagingConstant: number;

  constructor(averagingConstant = 0.01) {
    super();
    if (!(averagingConstant > 0 && averagingConstant <= 1)) {
      throw new QuantizationError(`averaging constant must be in (0, 1], got ${averagingConstant}`);
    }
    this.averagingConstant = averagingConstant;
  }

  protected override merge(batchMin: number, batchMax: number): void {
    if (this.batches === 0) {
      this.lo = batchMin;
      this.hi = batchMax;
      return;
    }
    const c = this.averagingConstant;
    this.lo += c * (batchMin - this.lo);
    this.hi += c * (batchMax - this.hi);
  }
}

export interface PerChannelObserverOptions {
  /** Shape of the batches; only shape[axis] must stay the same between batches. */
  shape: readonly number[];
  /** Channel axis (negative counts from the back). */
  axis: number;
}

/** Running min / max per index of `axis` (for per-channel activation or weight quantization). */
export class PerChannelMinMaxObserver {
  readonly channels: number;
  private readonly axis: number;
  private readonly shape: readonly number[];
  private readonly mins: Float64Array;
  private readonly maxs: Float64Array;
  private readonly counts: NonFiniteCounts = { nan: 0, posInf: 0, negInf: 0 };
  private batches = 0;

  constructor(options: PerChannelObserverOptions) {
    const split = splitAtAxis(options.shape, options.axis, options.shape.reduce((a, b) => a * b, 1));
    this.axis = split.axis;
    this.shape = options.shape.slice();
    this.channels = split.channels;
    this.mins = new Float64Array(this.channels).fill(Infinity);
    this.maxs = new Float64Array(this.channels).fill(-Infinity);
  }

  /** Feeds one batch; `shape` defaults to the constructor shape (other dims, e.g. batch size, may differ). */
  update(batch: Float32Array, shape: readonly number[] = this.shape): void {
    if (shape.length !== this.shape.length) {
      throw new QuantizationError(`batch rank ${shape.length} differs from observer rank ${this.shape.length}`);
    }
    const { outer, channels, inner } = splitAtAxis(shape, this.axis, batch.length);
    if (channels !== this.channels) {
      throw new QuantizationError(`batch has ${channels} channels on axis ${this.axis}, observer expects ${this.channels}`);
    }
    const mins = this.mins;
    const maxs = this.maxs;
    let idx = 0;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        let lo = mins[c]!;
        let hi = maxs[c]!;
        for (const end = idx + inner; idx < end; idx++) {
          const v = batch[idx]!;
          if (v - v !== 0) {
            if (v !== v) this.counts.nan++;
            else if (v > 0) this.counts.posInf++;
            else this.counts.negInf++;
            continue;
          }
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        mins[c] = lo;
        maxs[c] = hi;
      }
    }
    this.batches++;
  }

  get nonFinite(): NonFiniteCounts {
    return { ...this.counts };
  }

  /**
   * Per-channel ranges. Channels that never saw a finite value report [0, 0] (→ scale 1 downstream).
   * Throws when no batch has been fed at all.
   */
  ranges(): { mins: Float32Array; maxs: Float32Array } {
    if (this.batches === 0) throw new QuantizationError('per-channel observer has not seen any batch');
    const mins = new Float32Array(this.channels);
    const maxs = new Float32Array(this.channels);
    for (let c = 0; c < this.channels; c++) {
      const lo = this.mins[c]!;
      const hi = this.maxs[c]!;
      if (lo <= hi) {
        mins[c] = lo;
        maxs[c] = hi;
      }
    }
    return { mins, maxs };
  }
}

/**
 * scanBatch on the kernels: blocks of SCAN_BLOCK values as in the JavaScript version, each scanned
 * by the kernel (plus its last < 4 values in JavaScript) and, when it holds NaN or ±Inf, again by
 * scanBlockExact. Same result as the JavaScript scanBatch: blocks merge in order keeping the
 * earlier value on ties, and a zero extreme is the batch's first zero (see scanBatch).
 */
function scanBatchWasm(k: ObserverKernels, batch: Float32Array, out: BatchScan): BatchScan {
  const n = batch.length;
  let min = Infinity;
  let max = -Infinity;
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  for (let chunk = 0; chunk < n; chunk += KERNEL_CHUNK_VALUES) {
    const len = Math.min(KERNEL_CHUNK_VALUES, n - chunk);
    const p = loadChunk(k, batch, chunk, len);
    for (let off = 0; off < len; off += SCAN_BLOCK) {
      const blockLen = Math.min(SCAN_BLOCK, len - off);
      const n4 = blockLen & ~3;
      const start = chunk + off;
      const end = start + blockLen;
      let finite = k.scan(p + 4 * off, n4, 0) === 1;
      let bmin = k.f32[0]!;
      let bmax = k.f32[1]!;
      for (let t = start + n4; finite && t < end; t++) {
        const v = batch[t]!;
        if (v - v !== 0) finite = false;
        else {
          if (v < bmin) bmin = v;
          if (v > bmax) bmax = v;
        }
      }
      if (!finite) {
        const c = scanBlockExact(batch, start, end);
        nan += c.nan;
        posInf += c.posInf;
        negInf += c.negInf;
        bmin = block.min;
        bmax = block.max;
      }
      if (bmin < min) min = bmin;
      if (bmax > max) max = bmax;
    }
  }
  // Lanes are not visited in batch order: a zero extreme is the batch's first zero, as in scanBatch.
  if (min === 0 || max === 0) {
    const z = batch[firstZero(batch)]!;
    if (min === 0) min = z;
    if (max === 0) max = z;
  }
  return fillScan(out, n, min, max, nan, posInf, negInf);
}

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

/** One pass: finite min/max plus non-finite counts. min=+Inf / max=-Inf when no finite value was seen. */
export function scanBatch(batch: Float32Array, out: BatchScan): BatchScan {
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  for (let i = 0; i < batch.length; i++) {
    const v = batch[i]!;
    if (v - v !== 0) {
      nonFinite++; // classified below only when present, keeping this loop tight
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  out.nan = 0;
  out.posInf = 0;
  out.negInf = 0;
  if (nonFinite > 0) {
    for (let i = 0; i < batch.length; i++) {
      const v = batch[i]!;
      if (v !== v) out.nan++;
      else if (v === Infinity) out.posInf++;
      else if (v === -Infinity) out.negInf++;
    }
  }
  out.min = min;
  out.max = max;
  out.finite = batch.length - nonFinite;
  return out;
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

/**
 * Activation statistics of a layer's input and output, from calibration (src/runtime/calibrate.ts
 * run with a histogram method, so each tensor comes with an exact min/max and a 2048-bin histogram)
 * and from the channel pass of sensitivity-local.ts (per-channel peaks, for dead channels).
 *
 * Percentiles are those of the calibration histogram (src/quant histogramQuantile: the value where
 * the cumulative count reaches p%, linear inside a bin): within one bin width (1/2048 of the
 * observed range) of the smallest value with at least p% of the values at or below it.
 */
import { histogramQuantile, type Histogram } from '../quant';
import type { TensorStats } from '../runtime/calibrate';
import type { Histogram1D } from './weight-stats';

/** Bins of the reported activation histogram (the calibration histogram regrouped). */
export const ACTIVATION_HISTOGRAM_BINS = 64;
/** The percentiles reported, in percent. */
export const ACTIVATION_PERCENTILES = [0.01, 1, 50, 99, 99.99] as const;

export interface ChannelUsage {
  /** Axis of the channels in the tensor (1 for NCHW conv tensors, the last axis otherwise). */
  axis: number;
  channels: number;
  /** Channels that were exactly zero in every sample. */
  dead: number[];
}

export interface ActivationStats {
  min: number;
  max: number;
  /** Keyed "p0.01", "p1", "p50", "p99", "p99.99" (the 0.01th … 99.99th percentile). */
  percentiles: Record<string, number>;
  histogram: Histogram1D;
  /**
   * The tail beyond the 0.01th and 99.99th percentiles: `valueShare` is the share of values outside
   * [p0.01, p99.99]; `rangeShare` the share of [min, max] that lies outside it — the part of a
   * min/max quantization grid spent on 0.02% of the values.
   */
  beyondP9999: { valueShare: number; rangeShare: number };
  nonFinite: { nan: number; posInf: number; negInf: number };
  samples: number;
  channels?: ChannelUsage;
}

/** Sums groups of adjacent bins: `bins` must divide the histogram's bin count, or bins are split proportionally. */
function regroup(h: Histogram, bins: number): Histogram1D {
  const src = h.counts;
  const n = src.length;
  const out = new Float64Array(bins);
  if (n % bins === 0) {
    const k = n / bins;
    for (let i = 0; i < n; i++) out[Math.floor(i / k)]! += src[i]!;
  } else {
    for (let i = 0; i < n; i++) {
      const a = (i * bins) / n;
      const b = ((i + 1) * bins) / n;
      const c = src[i]!;
      if (c === 0) continue;
      for (let j = Math.floor(a); j < Math.min(bins, Math.ceil(b)); j++) out[j]! += (c * (Math.min(b, j + 1) - Math.max(a, j))) / (b - a);
    }
  }
  return { min: h.lo, max: h.hi, counts: Array.from(out) };
}

/** Share of the histogram's mass below `lo` and above `hi` (uniform within a bin). */
function massOutside(h: Histogram, lo: number, hi: number): number {
  const n = h.counts.length;
  const w = (h.hi - h.lo) / n;
  let out = 0;
  for (let k = 0; k < n; k++) {
    const c = h.counts[k]!;
    if (c === 0) continue;
    const a = h.lo + k * w;
    const b = a + w;
    if (a < lo) out += (c * (Math.min(b, lo) - a)) / w;
    if (b > hi) out += (c * (b - Math.max(a, hi))) / w;
  }
  return h.total > 0 ? out / h.total : 0;
}

/** The reported statistics of one activation tensor. */
export function activationStats(stats: TensorStats, channels?: ChannelUsage): ActivationStats {
  const h = stats.histogram;
  const percentiles: Record<string, number> = {};
  let histogram: Histogram1D = { min: stats.min, max: stats.max, counts: [] };
  let valueShare = 0;
  let rangeShare = 0;
  if (h) {
    const w = (h.hi - h.lo) / h.counts.length;
    for (const p of ACTIVATION_PERCENTILES) {
      const q = histogramQuantile(h.counts, h.lo, w, p / 100);
      percentiles[`p${p}`] = Math.min(stats.max, Math.max(stats.min, q));
    }
    histogram = regroup(h, ACTIVATION_HISTOGRAM_BINS);
    const lo = percentiles['p0.01']!;
    const hi = percentiles['p99.99']!;
    valueShare = massOutside(h, lo, hi);
    const span = stats.max - stats.min;
    rangeShare = span > 0 ? Math.max(0, (span - (hi - lo)) / span) : 0;
  }
  return {
    min: stats.min,
    max: stats.max,
    percentiles,
    histogram,
    beyondP9999: { valueShare, rangeShare },
    nonFinite: { ...stats.nonFinite },
    samples: stats.samples,
    channels,
  };
}

/** Running per-channel peak |x| of a tensor over samples, for dead-channel detection. */
export class ChannelPeaks {
  private peaks: Float64Array | undefined;
  axis = -1;

  /** `axis` for a tensor of these dims: 1 for rank ≥ 3 (NCHW), else the last axis. */
  static channelAxis(dims: readonly number[]): number {
    return dims.length >= 3 ? 1 : dims.length - 1;
  }

  update(data: Float32Array, dims: readonly number[]): void {
    if (dims.length === 0) return;
    const axis = ChannelPeaks.channelAxis(dims);
    const channels = dims[axis]!;
    if (!this.peaks || this.axis !== axis || this.peaks.length !== channels) {
      if (this.peaks) return; // shape changed between samples: keep the first interpretation
      this.peaks = new Float64Array(channels);
      this.axis = axis;
    }
    let inner = 1;
    for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
    const outer = data.length / (channels * inner);
    const peaks = this.peaks;
    let idx = 0;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        let m = peaks[c]!;
        for (const end = idx + inner; idx < end; idx++) {
          const v = data[idx]!;
          const a = v < 0 ? -v : v;
          if (a > m) m = a;
          else if (a !== a) m = Infinity; // NaN: not dead
        }
        peaks[c] = m;
      }
    }
  }

  usage(): ChannelUsage | undefined {
    if (!this.peaks) return undefined;
    const dead: number[] = [];
    for (let c = 0; c < this.peaks.length; c++) if (this.peaks[c] === 0) dead.push(c);
    return { axis: this.axis, channels: this.peaks.length, dead };
  }
}

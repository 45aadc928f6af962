/**
 * Scale / zero-point selection from a float range (affine scheme, see types.ts).
 *
 * Choices (they match onnxruntime's quantization tool unless noted):
 * - The range is first widened to contain 0, so real 0 (padding, ReLU zeros, masked values) is
 *   exactly representable by q = zeroPoint.
 * - Asymmetric: s = (max − min) / (qmax − qmin), z = roundHalfToEven(qmin − min / s), clamped.
 * - Symmetric, signed types: the range is restricted to ±qmax (−127..127 for int8) so that
 *   s = absmax / 127 and −absmax / +absmax are both exact; z = 0.
 * - Symmetric, unsigned types: z = midpoint rounded half-to-even (128 for uint8, 8 for uint4,
 *   32768 for uint16) and s = absmax / ((qmax − qmin) / 2) = absmax / 127.5 for uint8 (onnxruntime's
 *   convention; +absmax saturates half a step short, which is within rounding error).
 * - Scales are rounded to float32 (Math.fround) BEFORE the zero point is derived, because the
 *   model stores a float32 scale and the runtime divides by that exact value.
 * - Degenerate range (all-zero tensor, or a width below the smallest normal float32): scale = 1 and
 *   zero point 0 (the midpoint for symmetric unsigned). onnxruntime does the same. A tiny scale would
 *   be harmful: bias scale = sIn·sW underflows to 0 and any later non-zero value saturates.
 * - NaN / ±Infinity in the range, or min > max, throw QuantizationError naming the bad value.
 */
import { QuantizationError } from './errors';
import { INT32_MAX, INT32_MIN, roundHalfToEven } from './round';
import {
  FloatRange,
  PerChannelQuantParams,
  QParamOptions,
  QuantParams,
  QuantRange,
  QuantType,
  quantRange,
} from './types';

/** Smallest normal float32. Scales below it (including 0) are treated as a degenerate range. */
export const MIN_NORMAL_FLOAT32 = 1.1754943508222875e-38;
/** Scale used for degenerate (zero-width) ranges. */
export const DEGENERATE_SCALE = 1;

/** Output slot of computeQParamsInto, reused by hot loops (per channel, range searches) instead of allocating. */
export interface ScaleZeroPoint {
  scale: number;
  zeroPoint: number;
}

function describe(v: number): string {
  return Number.isNaN(v) ? 'NaN' : String(v);
}

function checkRange(min: number, max: number, where: string): void {
  // `v - v !== 0` is true exactly for NaN and ±Infinity.
  if (min - min !== 0) throw new QuantizationError(`${where}: min is ${describe(min)}; the range must be finite`);
  if (max - max !== 0) throw new QuantizationError(`${where}: max is ${describe(max)}; the range must be finite`);
  if (min > max) throw new QuantizationError(`${where}: min (${min}) is greater than max (${max})`);
}

/**
 * Allocation-free core of computeQParams: writes scale / zero point for [min, max] into `out`.
 * `where` prefixes error messages.
 */
export function computeQParamsInto(
  min: number,
  max: number,
  r: QuantRange,
  symmetric: boolean,
  out: ScaleZeroPoint,
  where = 'computeQParams',
): void {
  checkRange(min, max, where);
  const { qmin, qmax, signed } = r;
  // Widen to include 0 so that real zero is exactly representable.
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  let scale: number;
  let zeroPoint: number;
  if (symmetric) {
    const absmax = Math.max(-lo, hi);
    const qlo = signed ? -qmax : qmin; // signed: drop −128 so ±absmax are symmetric
    scale = Math.fround((2 * absmax) / (qmax - qlo));
    zeroPoint = signed ? 0 : roundHalfToEven((qmin + qmax) / 2);
  } else {
    scale = Math.fround((hi - lo) / (qmax - qmin));
    zeroPoint = 0; // set below once the scale is known to be usable
    if (scale >= MIN_NORMAL_FLOAT32 && scale !== Infinity) {
      zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfToEven(qmin - lo / scale)));
    }
  }
  if (scale === Infinity) {
    throw new QuantizationError(`${where}: range [${min}, ${max}] is too wide for a float32 scale`);
  }
  if (!(scale >= MIN_NORMAL_FLOAT32)) {
    scale = DEGENERATE_SCALE;
    zeroPoint = symmetric && !signed ? zeroPoint : 0;
  }
  out.scale = scale;
  out.zeroPoint = zeroPoint;
}

/** Per-tensor scale / zero point for values in [min, max]. */
export function computeQParams<T extends QuantType>(
  min: number,
  max: number,
  type: T,
  options: QParamOptions = {},
): QuantParams<T> {
  const out: ScaleZeroPoint = { scale: 0, zeroPoint: 0 };
  computeQParamsInto(min, max, quantRange(type), options.symmetric === true, out, 'computeQParams');
  return { scale: out.scale, zeroPoint: out.zeroPoint, type };
}

/** Same as computeQParams, taking a FloatRange (what the observers / range choosers return). */
export function qparamsFromRange<T extends QuantType>(
  range: FloatRange,
  type: T,
  options: QParamOptions = {},
): QuantParams<T> {
  return computeQParams(range.min, range.max, type, options);
}

/** Per-axis scales / zero points; mins[c], maxs[c] is the range of channel c along `axis`. */
export function computePerChannelQParams<T extends QuantType>(
  mins: ArrayLike<number>,
  maxs: ArrayLike<number>,
  type: T,
  axis: number,
  options: QParamOptions = {},
): PerChannelQuantParams<T> {
  if (mins.length !== maxs.length) {
    throw new QuantizationError(`computePerChannelQParams: ${mins.length} mins but ${maxs.length} maxs`);
  }
  if (!Number.isInteger(axis) || axis < 0) {
    throw new QuantizationError(`computePerChannelQParams: axis must be a non-negative integer, got ${axis}`);
  }
  const n = mins.length;
  const scales = new Float32Array(n);
  const zeroPoints = new Int32Array(n);
  const r = quantRange(type);
  const sym = options.symmetric === true;
  const out: ScaleZeroPoint = { scale: 0, zeroPoint: 0 };
  for (let c = 0; c < n; c++) {
    computeQParamsInto(mins[c]!, maxs[c]!, r, sym, out, `computePerChannelQParams channel ${c}`);
    scales[c] = out.scale;
    zeroPoints[c] = out.zeroPoint;
  }
  return { scales, zeroPoints, axis, type };
}

/**
 * Exact min / max of a tensor (e.g. a weight initializer). Throws on NaN / ±Infinity, naming the
 * first offending index: weights with those values cannot be quantized meaningfully.
 * An empty tensor gives [0, 0].
 */
export function tensorMinMax(x: Float32Array, what = 'tensor'): FloatRange {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) throw new QuantizationError(`${what}[${i}] is ${describe(v)}; cannot quantize non-finite values`);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return x.length === 0 ? { min: 0, max: 0 } : { min, max };
}

/**
 * Scale of an int32 bias feeding a quantized Conv/MatMul/Gemm: the accumulator is in units of
 * sIn·sW, so the bias must be too (zero point 0). Rounded to float32 like any stored scale.
 */
export function computeBiasScale(sIn: number, sW: number): number {
  if (!(sIn > 0) || sIn === Infinity) throw new QuantizationError(`computeBiasScale: input scale is ${describe(sIn)}`);
  if (!(sW > 0) || sW === Infinity) throw new QuantizationError(`computeBiasScale: weight scale is ${describe(sW)}`);
  const s = Math.fround(sIn * sW);
  if (!(s >= MIN_NORMAL_FLOAT32) || s === Infinity) {
    throw new QuantizationError(`computeBiasScale: ${sIn} × ${sW} is not representable as a normal float32 scale`);
  }
  return s;
}

/** Per-output-channel bias scales sIn·sW[c]. */
export function computeBiasScales(sIn: number, sW: Float32Array): Float32Array {
  const out = new Float32Array(sW.length);
  for (let c = 0; c < sW.length; c++) out[c] = computeBiasScale(sIn, sW[c]!);
  return out;
}

/**
 * Quantizes a float bias to int32: q = clamp(roundHalfToEven(b / (sIn·sW)), int32).
 * `sW` is one weight scale, or one per output channel (then bias.length must equal sW.length).
 * Non-finite bias values throw (they indicate a broken model, not something to saturate).
 */
export function quantizeBias(bias: Float32Array, sIn: number, sW: number | Float32Array): Int32Array {
  const n = bias.length;
  const out = new Int32Array(n);
  const perChannel = typeof sW !== 'number';
  if (perChannel && sW.length !== n) {
    throw new QuantizationError(`quantizeBias: bias has ${n} values but ${sW.length} weight scales were given`);
  }
  let s = perChannel ? 0 : computeBiasScale(sIn, sW);
  for (let i = 0; i < n; i++) {
    if (perChannel) s = computeBiasScale(sIn, sW[i]!);
    const b = bias[i]!;
    if (b - b !== 0) throw new QuantizationError(`quantizeBias: bias[${i}] is ${describe(b)}`);
    const v = b / s;
    // Saturate before rounding; int32 bounds are integers so the order does not change the result.
    out[i] = v >= INT32_MAX ? INT32_MAX : v <= INT32_MIN ? INT32_MIN : roundHalfToEven(v);
  }
  return out;
}

/**
 * QuantizeLinear / DequantizeLinear over Float32Array, per tensor, per axis and blocked (opset 21).
 *
 * Arithmetic follows the ONNX reference bit for bit:
 *   q = clamp(roundHalfToEven(float32(x / scale)) + zeroPoint, qmin, qmax)
 *   x = float32((q − zeroPoint) · scale)
 * `float32(x / scale)` is computed as Math.fround of the double quotient, which equals the IEEE
 * float32 division (double carries more than 2·24+2 bits), so ties land exactly where the runtime's do.
 * NaN inputs quantize to the zero point (real 0); ±Inf saturate to qmin/qmax.
 *
 * Per-axis and blocked loops view the tensor as [outer, channels, inner] (see shape.ts): the
 * parameters change once per channel (or block) and the innermost loop is a plain span.
 */
import { QuantizationError } from './errors';
import { computeQParams } from './params';
import { ROUND_MAGIC, roundHalfToEven } from './round';
import { splitAtAxis } from './shape';
import {
  allocQuantArray,
  BlockwiseQuantParams,
  PerChannelQuantParams,
  QParamOptions,
  QuantArray,
  QuantArrayFor,
  QuantParams,
  QuantType,
  quantRange,
} from './types';

export { roundHalfToEven } from './round';
export { packInt4, unpackInt4 } from './int4';
export { quantizeFp16, fp16ToFloat32, float32ToFp16Bits, fp16BitsToNumber } from './fp16';

function checkScale(scale: number, zeroPoint: number, type: QuantType, where: string): void {
  if (!(scale > 0) || scale === Infinity) {
    throw new QuantizationError(`${where}: scale must be a positive finite number, got ${scale}`);
  }
  const { qmin, qmax } = quantRange(type);
  if (!Number.isInteger(zeroPoint) || zeroPoint < qmin || zeroPoint > qmax) {
    throw new QuantizationError(`${where}: zero point ${zeroPoint} is not an integer in [${qmin}, ${qmax}] (${type})`);
  }
}

/** Core loop: quantize x[from, to) with one scale / zero point into out[from, to). */
function quantizeSpan(
  x: Float32Array,
  out: QuantArray,
  from: number,
  to: number,
  scale: number,
  zp: number,
  qmin: number,
  qmax: number,
): void {
  // Clamp in the unscaled domain first: the bounds are integers, so clamp-then-round equals
  // round-then-clamp, and the clamped value is small enough for the ROUND_MAGIC trick.
  const lo = qmin - zp;
  const hi = qmax - zp;
  for (let i = from; i < to; i++) {
    let v = Math.fround(x[i]! / scale);
    v = v >= lo ? (v <= hi ? v : hi) : v < lo ? lo : 0; // the final `: 0` is only reached for NaN -> zero point
    out[i] = v + ROUND_MAGIC - ROUND_MAGIC + zp;
  }
}

/** Core loop: out[i] = (q[i] − zp) · scale for i in [from, to). */
function dequantizeSpan(
  q: ArrayLike<number>,
  out: Float32Array,
  from: number,
  to: number,
  scale: number,
  zp: number,
): void {
  // (q − zp) is an exact integer, so the double product rounded once by the store is the float32 product.
  for (let i = from; i < to; i++) out[i] = (q[i]! - zp) * scale;
}

/** Per-tensor QuantizeLinear. int4/uint4 results are unpacked (one value per element; see packInt4). */
export function quantizeTensor<T extends QuantType>(x: Float32Array, p: QuantParams<T>): QuantArrayFor<T> {
  checkScale(p.scale, p.zeroPoint, p.type, 'quantizeTensor');
  const { qmin, qmax } = quantRange(p.type);
  const out = allocQuantArray(p.type, x.length);
  quantizeSpan(x, out, 0, x.length, p.scale, p.zeroPoint, qmin, qmax);
  return out;
}

/** Per-tensor DequantizeLinear. Accepts any integer array (also Int32Array for int32 biases with zeroPoint 0). */
export function dequantize(q: ArrayLike<number>, p: { scale: number; zeroPoint: number }): Float32Array {
  const out = new Float32Array(q.length);
  dequantizeSpan(q, out, 0, q.length, p.scale, p.zeroPoint);
  return out;
}

/** Per-axis QuantizeLinear: channel c of `p.axis` uses scales[c] / zeroPoints[c]. */
export function quantizePerChannel<T extends QuantType>(
  x: Float32Array,
  shape: readonly number[],
  p: PerChannelQuantParams<T>,
): QuantArrayFor<T> {
  const { outer, channels, inner } = splitAtAxis(shape, p.axis, x.length);
  if (p.scales.length !== channels || p.zeroPoints.length !== channels) {
    throw new QuantizationError(
      `quantizePerChannel: axis ${p.axis} has ${channels} channels but ${p.scales.length} scales / ${p.zeroPoints.length} zero points were given`,
    );
  }
  for (let c = 0; c < channels; c++) checkScale(p.scales[c]!, p.zeroPoints[c]!, p.type, `quantizePerChannel channel ${c}`);
  const { qmin, qmax } = quantRange(p.type);
  const out = allocQuantArray(p.type, x.length);
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      quantizeSpan(x, out, idx, idx + inner, p.scales[c]!, p.zeroPoints[c]!, qmin, qmax);
      idx += inner;
    }
  }
  return out;
}

/** Per-axis DequantizeLinear. */
export function dequantizePerChannel(
  q: ArrayLike<number>,
  shape: readonly number[],
  p: PerChannelQuantParams,
): Float32Array {
  const { outer, channels, inner } = splitAtAxis(shape, p.axis, q.length);
  if (p.scales.length !== channels || p.zeroPoints.length !== channels) {
    throw new QuantizationError(`dequantizePerChannel: axis ${p.axis} has ${channels} channels but ${p.scales.length} scales were given`);
  }
  const out = new Float32Array(q.length);
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      dequantizeSpan(q, out, idx, idx + inner, p.scales[c]!, p.zeroPoints[c]!);
      idx += inner;
    }
  }
  return out;
}

/** Exact per-channel min / max along `axis` (throws on NaN / ±Inf, naming the flat index). */
export function channelMinMax(
  x: Float32Array,
  shape: readonly number[],
  axis: number,
): { mins: Float32Array; maxs: Float32Array } {
  const { outer, channels, inner } = splitAtAxis(shape, axis, x.length);
  const mins = new Float32Array(channels).fill(Infinity);
  const maxs = new Float32Array(channels).fill(-Infinity);
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      let lo = mins[c]!;
      let hi = maxs[c]!;
      for (const end = idx + inner; idx < end; idx++) {
        const v = x[idx]!;
        if (v - v !== 0) throw new QuantizationError(`channelMinMax: element ${idx} is ${v}; cannot quantize non-finite values`);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      mins[c] = lo;
      maxs[c] = hi;
    }
  }
  // Channels with no elements (a zero-sized dim elsewhere) get the empty range [0, 0].
  for (let c = 0; c < channels; c++) if (mins[c]! > maxs[c]!) mins[c] = maxs[c] = 0;
  return { mins, maxs };
}

// ---------------------------------------------------------------------------------------------
// Blocked quantization (ONNX opset 21): along `axis`, every `blockSize` consecutive elements share
// one scale. Scale tensor shape = x shape with dim[axis] replaced by ceil(dim[axis] / blockSize);
// the last block may be partial. Scale for element (o, c, i) is scales[(o·nb + floor(c/B))·inner + i].
// ---------------------------------------------------------------------------------------------

function blockLayout(shape: readonly number[], axis: number, blockSize: number, length: number) {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new QuantizationError(`block size must be a positive integer, got ${blockSize}`);
  }
  const split = splitAtAxis(shape, axis, length);
  const blocks = Math.ceil(split.channels / blockSize);
  const scaleShape = shape.slice();
  scaleShape[split.axis] = blocks;
  return { ...split, blocks, scaleShape };
}

/**
 * Computes blocked scales / zero points from the data: each block's [min, max] (widened to include
 * 0) through computeQParams. Non-finite values throw. Typical use: int4 weights, axis = the
 * reduction (K) axis, blockSize 32 / 64 / 128.
 */
export function computeBlockwiseQParams<T extends QuantType>(
  x: Float32Array,
  shape: readonly number[],
  axis: number,
  blockSize: number,
  type: T,
  options: QParamOptions = {},
): BlockwiseQuantParams<T> {
  const { outer, channels, inner, blocks, scaleShape, axis: a } = blockLayout(shape, axis, blockSize, x.length);
  const nScales = outer * blocks * inner;
  // Starting at 0 both ways is the "include zero" widening for free.
  const mins = new Float64Array(nScales);
  const maxs = new Float64Array(nScales);
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0, b = 0, inBlock = 0; c < channels; c++) {
      const base = (o * blocks + b) * inner;
      for (let i = 0; i < inner; i++, idx++) {
        const v = x[idx]!;
        if (v - v !== 0) throw new QuantizationError(`computeBlockwiseQParams: element ${idx} is ${v}; cannot quantize non-finite values`);
        if (v < mins[base + i]!) mins[base + i] = v;
        if (v > maxs[base + i]!) maxs[base + i] = v;
      }
      if (++inBlock === blockSize) {
        inBlock = 0;
        b++;
      }
    }
  }
  const scales = new Float32Array(nScales);
  const zeroPoints = new Int32Array(nScales);
  for (let k = 0; k < nScales; k++) {
    const p = computeQParams(mins[k]!, maxs[k]!, type, options);
    scales[k] = p.scale;
    zeroPoints[k] = p.zeroPoint;
  }
  return { scales, zeroPoints, scaleShape, axis: a, blockSize, type };
}

function checkBlockParams(p: BlockwiseQuantParams, shape: readonly number[], length: number, where: string) {
  const layout = blockLayout(shape, p.axis, p.blockSize, length);
  const expected = layout.outer * layout.blocks * layout.inner;
  if (
    p.scales.length !== expected ||
    p.zeroPoints.length !== expected ||
    p.scaleShape.length !== layout.scaleShape.length ||
    p.scaleShape.some((d, i) => d !== layout.scaleShape[i])
  ) {
    throw new QuantizationError(
      `${where}: scales must have shape [${layout.scaleShape.join(', ')}] (${expected} values) for x shape [${shape.join(', ')}], axis ${p.axis}, block ${p.blockSize}`,
    );
  }
  return layout;
}

/** Blocked QuantizeLinear with given parameters. */
export function quantizeBlockwise<T extends QuantType>(
  x: Float32Array,
  shape: readonly number[],
  p: BlockwiseQuantParams<T>,
): QuantArrayFor<T> {
  const { outer, channels, inner, blocks } = checkBlockParams(p, shape, x.length, 'quantizeBlockwise');
  for (let k = 0; k < p.scales.length; k++) checkScale(p.scales[k]!, p.zeroPoints[k]!, p.type, `quantizeBlockwise scale ${k}`);
  const { qmin, qmax } = quantRange(p.type);
  const out = allocQuantArray(p.type, x.length);
  const { scales, zeroPoints, blockSize } = p;
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0, b = 0, inBlock = 0; c < channels; c++) {
      const base = (o * blocks + b) * inner;
      // The scale varies along the inner span (one parameter pair per inner index).
      for (let i = 0; i < inner; i++, idx++) {
        const zp = zeroPoints[base + i]!;
        const lo = qmin - zp;
        const hi = qmax - zp;
        let v = Math.fround(x[idx]! / scales[base + i]!);
        v = v >= lo ? (v <= hi ? v : hi) : v < lo ? lo : 0; // NaN -> zero point (see quantizeSpan)
        out[idx] = v + ROUND_MAGIC - ROUND_MAGIC + zp;
      }
      if (++inBlock === blockSize) {
        inBlock = 0;
        b++;
      }
    }
  }
  return out;
}

/** Blocked DequantizeLinear. */
export function dequantizeBlockwise(
  q: ArrayLike<number>,
  shape: readonly number[],
  p: BlockwiseQuantParams,
): Float32Array {
  const { outer, channels, inner, blocks } = checkBlockParams(p, shape, q.length, 'dequantizeBlockwise');
  const out = new Float32Array(q.length);
  const { scales, zeroPoints, blockSize } = p;
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0, b = 0, inBlock = 0; c < channels; c++) {
      const base = (o * blocks + b) * inner;
      for (let i = 0; i < inner; i++, idx++) out[idx] = (q[idx]! - zeroPoints[base + i]!) * scales[base + i]!;
      if (++inBlock === blockSize) {
        inBlock = 0;
        b++;
      }
    }
  }
  return out;
}

/**
 * Convolution weights: moves the fewest integers of each kernel (the `prod(shape[2:])` weights one
 * output channel applies to one input channel, which share a scale when the quantization axis is 0
 * or 1) one step, from nearest rounding to the other neighbour, so that the kernel's integers sum
 * to its float weights' sum rounded, i.e. its response to a constant input (its DC gain) stays
 * within half a step. Nearest rounding alone lets a kernel's errors add up to several steps, and a
 * high-pass depthwise filter (PP-OCRv4's recognizer: weights up to 6.7 summing to 0.003) then
 * passes a share of every locally constant input through. The weights moved are those whose
 * rounding was closest to a tie, so each moves by at most one step and its error stays under one.
 * `scales` / `zeroPoints` are per channel of `axis` (undefined: one of each for the tensor).
 * Returns how many integers moved.
 */
export function preserveKernelSums(x: Float32Array, q: QuantArray, shape: readonly number[], scales: ArrayLike<number>, zeroPoints: ArrayLike<number>, axis: number | undefined, type: QuantType): number {
  if (shape.length < 3) return 0;
  const kernel = shape.slice(2).reduce((a, b) => a * b, 1);
  const inner = shape[1]!;
  if (kernel < 2 || x.length !== q.length || x.length !== shape[0]! * inner * kernel) return 0;
  if (axis !== undefined && axis !== 0 && axis !== 1) return 0;
  const { qmin, qmax } = quantRange(type);
  const frac = new Float64Array(kernel);
  const order = Array.from({ length: kernel }, (_, i) => i);
  let moved = 0;
  for (let span = 0, start = 0; start < x.length; span++, start += kernel) {
    const c = axis === undefined ? 0 : axis === 0 ? Math.floor(span / inner) : span % inner;
    const s = scales[c]!;
    const z = zeroPoints[c]!;
    let target = 0;
    let sum = 0;
    for (let k = 0; k < kernel; k++) {
      const t = x[start + k]! / s;
      target += t;
      sum += q[start + k]! - z;
      // How far nearest rounding moved this weight down (positive) or up (negative).
      frac[k] = t - (q[start + k]! - z);
    }
    let need = roundHalfToEven(target) - sum;
    if (need === 0) continue;
    const dir = need > 0 ? 1 : -1;
    // Weights rounded down the most go up first (and the reverse); ties in kernel order.
    for (let k = 0; k < kernel; k++) order[k] = k;
    order.sort((a, b) => dir * (frac[b]! - frac[a]!) || a - b);
    for (const k of order) {
      if (need === 0) break;
      const v = q[start + k]! + dir;
      if (v < qmin || v > qmax || dir * frac[k]! <= 0) continue;
      q[start + k] = v;
      need -= dir;
      moved++;
    }
  }
  return moved;
}

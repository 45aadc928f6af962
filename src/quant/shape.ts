/** Shape helpers for per-axis / blocked loops: everything is reduced to (outer, channels, inner) strides. */
import { QuantizationError } from './errors';

/** Product of dims; throws on negative or non-integer dims (symbolic dims must be resolved by the caller). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (!Number.isInteger(d) || d < 0) {
      throw new QuantizationError(`shape [${shape.join(', ')}] has invalid dimension ${d} at index ${i}`);
    }
    n *= d;
  }
  return n;
}

/** Accepts ONNX-style negative axes in [-rank, rank-1] and returns the non-negative axis. */
export function normalizeAxis(axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new QuantizationError(`axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * Views a row-major tensor as [outer, channels, inner] around `axis`, so per-axis loops are three
 * nested counters with no per-element division/modulo.
 */
export interface AxisSplit {
  outer: number;
  channels: number;
  inner: number;
  axis: number;
}

export function splitAtAxis(shape: readonly number[], axis: number, length: number): AxisSplit {
  const a = normalizeAxis(axis, shape.length);
  const total = shapeSize(shape);
  if (total !== length) {
    throw new QuantizationError(`data has ${length} elements but shape [${shape.join(', ')}] needs ${total}`);
  }
  let outer = 1;
  for (let i = 0; i < a; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = a + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, channels: shape[a]!, inner, axis: a };
}

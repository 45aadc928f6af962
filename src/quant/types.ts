/**
 * Quantization types and parameter shapes shared by every module in src/quant.
 *
 * Conventions (affine scheme, same as ONNX QuantizeLinear / DequantizeLinear):
 *   q = clamp(roundHalfToEven(x / scale) + zeroPoint, qmin, qmax)
 *   x ≈ scale · (q − zeroPoint)
 */

/** Integer storage types this package can quantize to. 4-bit types are handled unpacked (one value per byte). */
export type QuantType = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int4' | 'uint4';

export const QUANT_TYPES: readonly QuantType[] = ['int8', 'uint8', 'int16', 'uint16', 'int4', 'uint4'];

export interface QuantRange {
  /** Smallest representable integer (saturation bound of QuantizeLinear). */
  qmin: number;
  /** Largest representable integer. */
  qmax: number;
  bits: 4 | 8 | 16;
  signed: boolean;
}

const RANGES: Readonly<Record<QuantType, Readonly<QuantRange>>> = {
  int8: { qmin: -128, qmax: 127, bits: 8, signed: true },
  uint8: { qmin: 0, qmax: 255, bits: 8, signed: false },
  int16: { qmin: -32768, qmax: 32767, bits: 16, signed: true },
  uint16: { qmin: 0, qmax: 65535, bits: 16, signed: false },
  int4: { qmin: -8, qmax: 7, bits: 4, signed: true },
  uint4: { qmin: 0, qmax: 15, bits: 4, signed: false },
};

/** Saturation range of a quantized type (the full range of the storage type, as in the ONNX spec). */
export function quantRange(type: QuantType): QuantRange {
  const r = RANGES[type];
  // Copy so callers cannot mutate the shared table.
  return { qmin: r.qmin, qmax: r.qmax, bits: r.bits, signed: r.signed };
}

/** Per-tensor parameters: one scale and zero point for the whole tensor. */
export interface QuantParams<T extends QuantType = QuantType> {
  /** Always a positive, finite float32 value (what gets stored in the model). */
  scale: number;
  /** Integer within [qmin, qmax] of `type`. */
  zeroPoint: number;
  type: T;
}

/** Per-axis parameters (ONNX per-axis quantization): one scale / zero point per index along `axis`. */
export interface PerChannelQuantParams<T extends QuantType = QuantType> {
  scales: Float32Array;
  zeroPoints: Int32Array;
  /** Non-negative axis into the tensor shape. */
  axis: number;
  type: T;
}

/**
 * Blocked parameters (ONNX opset 21 blocked quantization). For x of shape (D0..Di..Dn), axis=i and
 * block size B, scales/zeroPoints have shape `scaleShape` = (D0..ceil(Di/B)..Dn), stored row-major.
 */
export interface BlockwiseQuantParams<T extends QuantType = QuantType> {
  scales: Float32Array;
  zeroPoints: Int32Array;
  scaleShape: number[];
  axis: number;
  blockSize: number;
  type: T;
}

/** Typed array used to hold values of each quantized type (int4/uint4 are unpacked, one value per element). */
export interface QuantArrayMap {
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int4: Int8Array;
  uint4: Uint8Array;
}
export type QuantArrayFor<T extends QuantType> = QuantArrayMap[T];
export type QuantArray = Int8Array | Uint8Array | Int16Array | Uint16Array;

/** A closed float interval [min, max] chosen for quantization. */
export interface FloatRange {
  min: number;
  max: number;
}

/** Options shared by the scale / zero-point helpers. */
export interface QParamOptions {
  /**
   * Symmetric quantization around 0 (default false = asymmetric / affine).
   * Signed types then get zeroPoint 0, unsigned types the midpoint (128 for uint8).
   */
  symmetric?: boolean;
}

/** Allocate the typed array that stores `type` values. */
export function allocQuantArray<T extends QuantType>(type: T, length: number): QuantArrayFor<T> {
  switch (type) {
    case 'int8':
    case 'int4':
      return new Int8Array(length) as QuantArrayFor<T>;
    case 'uint8':
    case 'uint4':
      return new Uint8Array(length) as QuantArrayFor<T>;
    case 'int16':
      return new Int16Array(length) as QuantArrayFor<T>;
    case 'uint16':
      return new Uint16Array(length) as QuantArrayFor<T>;
    default:
      throw new Error(`unknown quant type ${String(type)}`);
  }
}

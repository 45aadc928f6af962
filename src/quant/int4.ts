/**
 * ONNX INT4 / UINT4 packing: two values per byte, element 2k in the LOW nibble and element 2k+1 in
 * the HIGH nibble; an odd element count leaves the last high nibble 0.
 */
import { QuantizationError } from './errors';

/**
 * Packs unpacked 4-bit values. The array type selects the element type: Int8Array = int4
 * (each value must be in [-8, 7]), Uint8Array = uint4 ([0, 15]). Out-of-range values throw
 * instead of silently wrapping.
 */
export function packInt4(values: Int8Array | Uint8Array): Uint8Array {
  const n = values.length;
  const lo = values instanceof Int8Array ? -8 : 0;
  const hi = lo + 15;
  const out = new Uint8Array((n + 1) >> 1);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v < lo || v > hi) {
      throw new QuantizationError(
        `packInt4: value ${v} at index ${i} does not fit ${lo < 0 ? 'int4 [-8, 7]' : 'uint4 [0, 15]'}`,
      );
    }
    // `& 0xf` keeps the two's-complement nibble of negative int4 values.
    out[i >> 1]! |= (v & 0xf) << ((i & 1) << 2);
  }
  return out;
}

/** Unpacks `count` 4-bit values; int4 nibbles are sign-extended. */
export function unpackInt4(packed: Uint8Array, count: number, type: 'int4'): Int8Array;
export function unpackInt4(packed: Uint8Array, count: number, type: 'uint4'): Uint8Array;
export function unpackInt4(packed: Uint8Array, count: number, type: 'int4' | 'uint4'): Int8Array | Uint8Array;
export function unpackInt4(packed: Uint8Array, count: number, type: 'int4' | 'uint4'): Int8Array | Uint8Array {
  if (!Number.isInteger(count) || count < 0 || (count + 1) >> 1 !== packed.length) {
    throw new QuantizationError(`unpackInt4: ${packed.length} bytes cannot hold exactly ${count} 4-bit values`);
  }
  if (type === 'int4') {
    const out = new Int8Array(count);
    for (let i = 0; i < count; i++) {
      const nib = (packed[i >> 1]! >> ((i & 1) << 2)) & 0xf;
      out[i] = (nib << 28) >> 28; // sign-extend bit 3
    }
    return out;
  }
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (packed[i >> 1]! >> ((i & 1) << 2)) & 0xf;
  return out;
}

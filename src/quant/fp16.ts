/**
 * float32 <-> IEEE 754 binary16 conversion (bit patterns in Uint16Array, as ONNX FLOAT16 tensors
 * store them). Rounding is round-to-nearest-even, like hardware casts and onnxruntime's
 * float16 conversion.
 */

// One shared scratch view for scalar conversions; bulk conversions view the input buffer directly.
const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

/** binary16 bits of one float32 bit pattern. */
function halfFromFloatBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN keeps its top payload bits and is forced quiet so it cannot become Inf.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Subnormal half (value = m · 2^-24) or zero. full·2^(exp-150) / 2^-24 = full >> (14 - e).
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal (float32 subnormals land here too)
    const full = mant | 0x800000;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1) !== 0)) m++; // m may reach 0x400 = smallest normal: still correct bits
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // Round to nearest even; a carry out of the mantissa bumps the exponent, and 0x7bff + 1 = Inf.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return h;
}

/** Converts one number to binary16 bits (via float32 first, as a float32 tensor would be). */
export function float32ToFp16Bits(x: number): number {
  scratchF[0] = x;
  return halfFromFloatBits(scratchU[0]!);
}

/** Value of binary16 bits as a number (exact: every half value is a float32/double). */
export function fp16BitsToNumber(h: number): number {
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 5.960464477539063e-8; // 2^-24, subnormal / zero
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25); // (1 + mant/1024) · 2^(exp-15)
}

/** Float32 tensor -> binary16 bit patterns (round to nearest even, overflow to ±Inf, NaN kept). */
export function quantizeFp16(x: Float32Array): Uint16Array {
  // Float32Array byteOffset is always 4-aligned, so the same memory can be read as raw bits.
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfFromFloatBits(bits[i]!);
  return out;
}

/** Binary16 bit patterns -> float32 values. */
export function fp16ToFloat32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = fp16BitsToNumber(h[i]!);
  return out;
}

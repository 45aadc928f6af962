/**
 * Round half to even ("banker's rounding"), the rounding ONNX QuantizeLinear and numpy.round use.
 *
 * Math.round is NOT suitable on its own: it rounds halves towards +Infinity
 * (Math.round(2.5) = 3, Math.round(-2.5) = -2). We let it do the work and fix exact ties:
 * after r = Math.round(x), x was a tie iff r − x === 0.5 (the subtraction is exact for
 * |x| < 2^52; above that every double is an integer and r === x). A tie that landed on an odd
 * integer moves down by one. Works for negatives (−1.5 → −2, −2.5 → −2) and returns ±0 for ±0.5.
 */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x);
  // `r % 2 !== 0` is true for odd negatives too (-1 % 2 === -1); NaN/±Inf fall through unchanged.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * 1.5·2^52. For |v| ≤ 2^51, (v + ROUND_MAGIC) − ROUND_MAGIC is v rounded half-to-even: the sum has
 * no fraction bits left, so IEEE addition (always round-to-nearest-even in JS) does the rounding.
 * Hot loops clamp v to the quantized range first and then use this instead of a function call.
 */
export const ROUND_MAGIC = 6755399441055744;

/** Largest / smallest int32, the saturation bounds for int32 bias quantization. */
export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

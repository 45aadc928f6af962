/**
 * Independent double-precision references for tests: deliberately not the product's own metric
 * code (src/quant/metrics.ts), so that a bug there cannot hide in the tests that use it.
 */

/** Signal-to-quantization-noise ratio of `test` against `ref`, in dB (Infinity when identical). */
export function sqnrDb(ref: ArrayLike<number>, test: ArrayLike<number>): number {
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < ref.length; i++) {
    signal += ref[i]! * ref[i]!;
    noise += (ref[i]! - test[i]!) ** 2;
  }
  return noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
}

/** Widens `range` to cover every value of `values`. */
export function widen(range: { min: number; max: number }, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x < range.min) range.min = x;
    if (x > range.max) range.max = x;
  }
}

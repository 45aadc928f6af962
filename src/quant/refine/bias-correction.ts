/**
 * Bias correction (Nagel et al. 2019, §4.2; empirical variant): quantizing a layer's weights (and
 * its input) shifts the mean of its outputs, E[ŷ − y] ≠ 0 per output channel, and the shift adds up
 * through the network. Measured on calibration data, the shift is removed by subtracting it from
 * the layer's float bias before quantization. This file holds the arithmetic; the measurement is
 * in src/runtime/refine/bias-correction.ts.
 */

/** Streaming per-channel mean of (quantized − float) outputs: memory is one value per channel. */
export class ChannelMeanDiff {
  private readonly sum: Float64Array;
  private count = 0;
  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
  }

  /**
   * Adds one output pair of shape `dims`, whose channels are on `axis` (elements before the axis
   * are batch/positions, after it spatial positions).
   */
  add(quant: Float32Array, float: Float32Array, dims: readonly number[], axis: number): void {
    if (quant.length !== float.length) throw new RangeError(`quantized and float outputs differ in size (${quant.length} vs ${float.length})`);
    const c = dims[axis];
    if (c !== this.channels) throw new RangeError(`output has ${c} channels on axis ${axis}, expected ${this.channels}`);
    let inner = 1;
    for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
    const outer = quant.length / (c * inner);
    let k = 0;
    for (let o = 0; o < outer; o++) {
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let i = 0; i < inner; i++, k++) s += quant[k]! - float[k]!;
        this.sum[ch] = this.sum[ch]! + s;
      }
    }
    this.count += outer * inner;
  }

  /** Per-channel mean difference so far (zeros before any data). */
  mean(): Float64Array {
    return this.sum.map((s) => (this.count ? s / this.count : 0));
  }
}

/**
 * The corrected bias: b − E[ŷ − y] / gain, where gain is how the op scales its bias (Gemm's beta;
 * 1 otherwise). A missing bias is zero.
 */
export function correctedBias(bias: Float32Array | undefined, meanDiff: ArrayLike<number>, gain = 1): Float32Array {
  const out = new Float32Array(meanDiff.length);
  for (let c = 0; c < out.length; c++) out[c] = (bias ? bias[bias.length === 1 ? 0 : c]! : 0) - meanDiff[c]! / gain;
  return out;
}

/** Axis of the output channels in a weighted op's result: 1 for Conv/ConvTranspose (NC…), last for Gemm/MatMul. */
export function resultChannelAxis(opType: string, rank: number): number {
  return opType === 'Conv' || opType === 'ConvTranspose' ? 1 : rank - 1;
}

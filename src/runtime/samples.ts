/**
 * A source of model inputs (calibration or evaluation samples). Every loader (npy/npz folders,
 * ONNX test-data sets, images, synthetic data) produces one; calibration and evaluation consume it
 * one sample at a time, so memory never depends on how many samples there are.
 */
import type { Tensor } from 'onnxruntime-node';

/** One model run's inputs, keyed by graph input name. */
export type Sample = Record<string, Tensor>;

export interface SampleSource {
  /** Number of samples the iterator yields. */
  readonly count: number;
  /** True when the values are generated, not the user's data: every report must say so. */
  readonly synthetic: boolean;
  /** Where the samples come from, for reports ("12 .npy files in calib/", "synthetic N(0,1)"). */
  readonly description: string;
  /** Yields samples in a fixed order; may be called more than once (each call starts over). */
  samples(signal?: AbortSignal): AsyncIterable<Sample>;
}

/** Thrown for data that does not fit the model (wrong shape, dtype, missing input); names the file. */
export class SampleDataError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'SampleDataError';
  }
}

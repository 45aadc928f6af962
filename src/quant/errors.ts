/**
 * Raised for inputs that cannot be quantized (NaN/Inf ranges, bad shapes, out-of-range values).
 * The message always says which argument was wrong and why, so callers can show it as is.
 */
export class QuantizationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantizationError';
  }
}

/**
 * Fidelity metrics between a reference output (float model) and a test output (quantized model),
 * one-shot and streaming. Pure math: no onnxruntime, no model code.
 *
 * Conventions:
 * - sums run in float64 whatever the input precision;
 * - a NaN in either array makes SQNR, cosine and max error NaN (a quantized model that produces
 *   NaN is broken, and the report must not hide it);
 * - top-1 picks the first index of the largest score in a row (numpy's argmax); NaN never wins.
 */

export type NumericArray = Float32Array | Float64Array;

/** The sums one pass over a pair of arrays yields; every metric derives from them. */
interface PairSums {
  refSq: number;
  testSq: number;
  errSq: number;
  dot: number;
  maxAbs: number;
}

function pairSums(ref: NumericArray, test: NumericArray): PairSums {
  if (ref.length !== test.length) throw new RangeError(`cannot compare arrays of ${ref.length} and ${test.length} elements`);
  let refSq = 0;
  let testSq = 0;
  let errSq = 0;
  let dot = 0;
  let maxAbs = 0;
  let nan = false;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const t = test[i]!;
    const e = r - t;
    refSq += r * r;
    testSq += t * t;
    errSq += e * e;
    dot += r * t;
    const a = Math.abs(e);
    if (a > maxAbs) maxAbs = a;
    else if (a !== a) nan = true; // NaN fails every comparison, so it needs its own flag
  }
  return { refSq, testSq, errSq, dot, maxAbs: nan ? NaN : maxAbs };
}

/**
 * 10·log10(Σref² / Σerr²). +Infinity when the arrays are identical (including both all-zero);
 * −Infinity when the reference is all zeros and the test is not (no signal, only noise).
 */
function sqnrFromSums(refSq: number, errSq: number): number {
  if (errSq === 0) return Infinity;
  return 10 * Math.log10(refSq / errSq);
}

/** Cosine similarity; 1 when both are all zeros (identical), 0 when exactly one is. */
function cosineFromSums(dot: number, refSq: number, testSq: number): number {
  if (refSq === 0 && testSq === 0) return 1;
  if (refSq === 0 || testSq === 0) return 0;
  // Rounding can push |cos| a hair past 1 for parallel vectors.
  return Math.max(-1, Math.min(1, dot / Math.sqrt(refSq * testSq)));
}

export function sqnrDb(ref: NumericArray, test: NumericArray): number {
  const s = pairSums(ref, test);
  return sqnrFromSums(s.refSq, s.errSq);
}

export function cosine(ref: NumericArray, test: NumericArray): number {
  const s = pairSums(ref, test);
  return cosineFromSums(s.dot, s.refSq, s.testSq);
}

export function maxAbsError(ref: NumericArray, test: NumericArray): number {
  return pairSums(ref, test).maxAbs;
}

/** Index of the first largest value of row [start, start + size); NaN never wins; −1 for an all-NaN row. */
function argmax(a: NumericArray, start: number, size: number): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let k = 0; k < size; k++) {
    const v = a[start + k]!;
    if (v > bestValue || (best < 0 && v === -Infinity)) {
      best = k;
      bestValue = v;
    }
  }
  return best;
}

/** Rows (over all leading dims) whose argmax over the last `classAxisSize` values agree. */
function countTop1(ref: NumericArray, test: NumericArray, classAxisSize: number): { agree: number; rows: number } {
  if (ref.length !== test.length) throw new RangeError(`cannot compare arrays of ${ref.length} and ${test.length} elements`);
  if (!Number.isInteger(classAxisSize) || classAxisSize < 1 || ref.length % classAxisSize !== 0) {
    throw new RangeError(`class axis size ${classAxisSize} does not divide ${ref.length} elements`);
  }
  const rows = ref.length / classAxisSize;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    const start = r * classAxisSize;
    const a = argmax(ref, start, classAxisSize);
    if (a >= 0 && a === argmax(test, start, classAxisSize)) agree++;
  }
  return { agree, rows };
}

/**
 * Fraction of rows whose top-1 class agrees. The class axis is the last one: rows are the
 * remaining elements (batch, or batch × time for sequence outputs). 1 for an empty input.
 */
export function top1Agreement(ref: NumericArray, test: NumericArray, classAxisSize: number): number {
  const { agree, rows } = countTop1(ref, test, classAxisSize);
  return rows === 0 ? 1 : agree / rows;
}

/** Tolerance on a row sum for "this row is a probability distribution". */
const PROBABILITY_SUM_TOLERANCE = 1e-3;

/**
 * Heuristic: is an output class scores, so that top-1 agreement means something?
 * - rank 2 `[N, C]` with C ≥ 2: yes (classifier logits or probabilities). An embedding of that
 *   shape passes too; its top-1 agreement is meaningless but harmless.
 * - rank 3 `[N, T, C]` with C ≥ 2: only when `values` are given and every row is a probability
 *   distribution (entries in [0, 1] summing to 1), e.g. a CTC text recognizer ending in Softmax.
 *   Without that evidence a rank-3 output is as likely a hidden or recurrent state.
 * - anything else (scalars, [N, 1], detection or segmentation maps): no.
 */
export function looksLikeClassScores(shape: readonly (number | string)[], values?: NumericArray): boolean {
  const classes = shape[shape.length - 1];
  if (typeof classes !== 'number' || classes < 2) return false;
  if (shape.length === 2) return true;
  if (shape.length !== 3 || !values || values.length === 0 || values.length % classes !== 0) return false;
  for (let start = 0; start < values.length; start += classes) {
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const v = values[start + k]!;
      if (!(v >= 0 && v <= 1)) return false;
      sum += v;
    }
    if (Math.abs(sum - 1) > PROBABILITY_SUM_TOLERANCE) return false;
  }
  return true;
}

export interface MetricSummary {
  /** Aggregate SQNR over every sample: 10·log10(ΣΣref² / ΣΣerr²), not a mean of per-sample dB. */
  sqnrDb: number;
  /** Mean of the per-sample cosine similarities (each sample weighs the same, whatever its size). */
  cosine: number;
  /** Smallest per-sample cosine: the worst sample. */
  minCosine: number;
  /** Largest |ref − test| over every element of every sample. */
  maxAbsError: number;
  /** Agreeing rows / all rows over every sample; only when a class axis size was given. */
  top1Agreement?: number;
  samples: number;
  elements: number;
}

/**
 * Streams metrics over samples with constant memory: only running sums are kept.
 * SQNR is aggregate (a sample with a large signal weighs more, like one long recording), which
 * is stabler than averaging dB values where one near-silent sample can swing the mean; cosine is
 * a per-sample mean, with the worst sample alongside.
 */
export class MetricAccumulator {
  private refSq = 0;
  private errSq = 0;
  private cosSum = 0;
  private cosMin = Infinity;
  private maxAbs = 0;
  private agree = 0;
  private rows = 0;
  private count = 0;
  private elementCount = 0;

  /** `classAxisSize`: when set, top-1 agreement over the last axis is accumulated too. */
  constructor(readonly classAxisSize?: number) {}

  add(ref: NumericArray, test: NumericArray): void {
    const s = pairSums(ref, test);
    if (this.classAxisSize !== undefined) {
      const t = countTop1(ref, test, this.classAxisSize);
      this.agree += t.agree;
      this.rows += t.rows;
    }
    this.refSq += s.refSq;
    this.errSq += s.errSq;
    const c = cosineFromSums(s.dot, s.refSq, s.testSq);
    this.cosSum += c;
    if (c < this.cosMin || c !== c) this.cosMin = c;
    if (s.maxAbs > this.maxAbs || s.maxAbs !== s.maxAbs) this.maxAbs = s.maxAbs;
    this.count++;
    this.elementCount += ref.length;
  }

  get samples(): number {
    return this.count;
  }

  result(): MetricSummary {
    if (this.count === 0) throw new RangeError('no samples were added to the metric accumulator');
    const out: MetricSummary = {
      sqnrDb: sqnrFromSums(this.refSq, this.errSq),
      cosine: this.cosSum / this.count,
      minCosine: this.cosMin,
      maxAbsError: this.maxAbs,
      samples: this.count,
      elements: this.elementCount,
    };
    if (this.classAxisSize !== undefined) out.top1Agreement = this.rows === 0 ? 1 : this.agree / this.rows;
    return out;
  }
}

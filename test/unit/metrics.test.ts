/** Fidelity metrics against hand-computed values. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cosine, looksLikeClassScores, maxAbsError, MetricAccumulator, sqnrDb, top1Agreement } from '../../src/quant/metrics';

const f32 = (xs: number[]) => new Float32Array(xs);
const f64 = (xs: number[]) => new Float64Array(xs);
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} is not within ${tol} of ${b}`);

describe('sqnrDb', () => {
  it('is 10·log10(signal energy / error energy)', () => {
    // Σref² = 25, Σerr² = 1 → 10·log10(25) = 13.979400086720377 dB
    close(sqnrDb(f32([3, 4]), f32([3, 3])), 13.979400086720377);
    // Σref² = 30, Σerr² = 4·0.01 → 10·log10(750) = 28.750612633917 dB
    close(sqnrDb(f64([1, 2, 3, 4]), f64([1.1, 1.9, 3.1, 3.9])), 28.750612633917, 1e-9);
    // An error as large as the signal is 0 dB.
    close(sqnrDb(f32([1, -1]), f32([0, 0])), 0);
  });

  it('is +Infinity for identical arrays (also all-zero), −Infinity for noise on an all-zero reference', () => {
    assert.equal(sqnrDb(f32([1, 2, 3]), f32([1, 2, 3])), Infinity);
    assert.equal(sqnrDb(f32([0, 0]), f32([0, 0])), Infinity);
    assert.equal(sqnrDb(f32([0, 0]), f32([0, 1e-3])), -Infinity);
  });

  it('propagates NaN and refuses arrays of different lengths', () => {
    assert.ok(Number.isNaN(sqnrDb(f32([1, 2]), f32([1, NaN]))));
    assert.throws(() => sqnrDb(f32([1, 2]), f32([1])), RangeError);
  });
});

describe('cosine and maxAbsError', () => {
  it('parallel, antiparallel and orthogonal vectors', () => {
    close(cosine(f32([1, 2, 3]), f32([2, 4, 6])), 1, 1e-12);
    close(cosine(f32([1, 2, 3]), f32([-1, -2, -3])), -1, 1e-12);
    assert.equal(cosine(f32([1, 0]), f32([0, 5])), 0);
    // [1, 1] · [1, 0] / (√2 · 1) = 1/√2
    close(cosine(f32([1, 1]), f32([1, 0])), Math.SQRT1_2, 1e-12);
  });

  it('all-zero vectors: 1 when both are zero, 0 when one is', () => {
    assert.equal(cosine(f32([0, 0]), f32([0, 0])), 1);
    assert.equal(cosine(f32([0, 0]), f32([1, 0])), 0);
  });

  it('maxAbsError is the largest element-wise difference', () => {
    close(maxAbsError(f32([1, -2, 3]), f32([1.5, -4, 3])), 2);
    assert.equal(maxAbsError(f32([1]), f32([1])), 0);
    assert.ok(Number.isNaN(maxAbsError(f32([1, 2]), f32([NaN, 2]))));
  });
});

describe('top1Agreement', () => {
  it('compares the argmax of each row over the last axis', () => {
    // 4 rows of 3 classes: rows 0, 1, 3 agree; row 2 flips from class 0 to class 2.
    const ref = f32([0.1, 0.7, 0.2, 5, 1, 2, 0.9, 0.05, 0.05, 0, 0, 1]);
    const test = f32([0.2, 0.6, 0.2, 4, 1, 2, 0.3, 0.1, 0.6, 0.1, 0, 0.9]);
    assert.equal(top1Agreement(ref, test, 3), 0.75);
    assert.equal(top1Agreement(ref, ref, 3), 1);
  });

  it('breaks ties on the first index (numpy argmax) and never picks NaN', () => {
    assert.equal(top1Agreement(f32([1, 1]), f32([1, 0.5]), 2), 1);
    assert.equal(top1Agreement(f32([1, 1]), f32([0.5, 1]), 2), 0);
    assert.equal(top1Agreement(f32([NaN, 1]), f32([0, 1]), 2), 1);
  });

  it('refuses a class axis that does not divide the length', () => {
    assert.throws(() => top1Agreement(f32([1, 2, 3]), f32([1, 2, 3]), 2), RangeError);
  });
});

describe('looksLikeClassScores', () => {
  it('rank-2 [N, C≥2] outputs are class scores', () => {
    assert.equal(looksLikeClassScores([1, 2]), true);
    assert.equal(looksLikeClassScores(['batch', 1000]), true);
    assert.equal(looksLikeClassScores([1, 1]), false);
    assert.equal(looksLikeClassScores([1, 'C']), false);
  });

  it('rank-3 outputs only when their rows are probability distributions', () => {
    const softmaxRows = f32([0.2, 0.8, 0.5, 0.5, 1, 0]);
    assert.equal(looksLikeClassScores([1, 3, 2], softmaxRows), true);
    assert.equal(looksLikeClassScores([1, 3, 2]), false);
    assert.equal(looksLikeClassScores([1, 3, 2], f32([0.2, 0.9, 0.5, 0.5, 1, 0])), false);
    assert.equal(looksLikeClassScores([2, 1, 3], f32([-1, 2, 0, 0.5, 0.2, 0.3])), false);
  });

  it('maps, scalars and single outputs are not', () => {
    assert.equal(looksLikeClassScores([1, 1, 64, 96]), false);
    assert.equal(looksLikeClassScores([]), false);
    assert.equal(looksLikeClassScores([5]), false);
  });
});

describe('MetricAccumulator', () => {
  it('aggregates SQNR over all samples, averages cosine per sample, keeps the worst cosine and the largest error', () => {
    const acc = new MetricAccumulator(2);
    // Sample 1: Σref² = 25, Σerr² = 1, cos = (9+12)/(5·√18), top-1 rows: [3,4]→1 vs [3,3]→0: disagree.
    acc.add(f32([3, 4]), f32([3, 3]));
    // Sample 2: Σref² = 4, Σerr² = 0, cos = 1, top-1: row [0, 2] → 1 vs 1: agree.
    acc.add(f32([0, 2]), f32([0, 2]));
    const r = acc.result();
    close(r.sqnrDb, 10 * Math.log10(29 / 1));
    const cos1 = 21 / (5 * Math.sqrt(18));
    close(r.cosine, (cos1 + 1) / 2, 1e-12);
    close(r.minCosine, cos1, 1e-12);
    assert.equal(r.maxAbsError, 1);
    assert.equal(r.top1Agreement, 0.5);
    assert.equal(r.samples, 2);
    assert.equal(r.elements, 4);
  });

  it('aggregate SQNR equals the one-shot SQNR of all samples concatenated', () => {
    const acc = new MetricAccumulator();
    const refs = [f64([1, -2, 3]), f64([0.5, 0.25]), f64([10])];
    const tests = [f64([1.1, -2, 2.9]), f64([0.5, 0.2]), f64([9.5])];
    refs.forEach((r, i) => acc.add(r, tests[i]!));
    const all = (xs: Float64Array[]) => f64(xs.flatMap((x) => [...x]));
    close(acc.result().sqnrDb, sqnrDb(all(refs), all(tests)), 1e-12);
    assert.equal(acc.result().top1Agreement, undefined);
  });

  it('Infinity for identical samples; NaN sticks; no samples is an error', () => {
    const same = new MetricAccumulator(3);
    same.add(f32([1, 2, 3]), f32([1, 2, 3]));
    assert.deepEqual(same.result(), { sqnrDb: Infinity, cosine: 1, minCosine: 1, maxAbsError: 0, top1Agreement: 1, samples: 1, elements: 3 });
    const nan = new MetricAccumulator();
    nan.add(f32([1, 2]), f32([1, NaN]));
    nan.add(f32([1, 2]), f32([1, 2]));
    const r = nan.result();
    assert.ok(Number.isNaN(r.sqnrDb) && Number.isNaN(r.maxAbsError) && Number.isNaN(r.minCosine));
    assert.throws(() => new MetricAccumulator().result(), /no samples/);
  });
});

/**
 * compareModels against references computed in JS: a classifier whose logits are exact in float32,
 * compared with itself and with a copy that has one weight changed; broken quantized models;
 * sizes with external data; cancellation; a published model against itself.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { saveModel } from '../../src/onnx/save';
import { compareModels } from '../../src/runtime/evaluate';
import { createSession, withSession } from '../../src/runtime/session';
import type { Sample, SampleSource } from '../../src/runtime/samples';
import { REAL_MODELS, realModelFeeds, tempDir } from '../helpers/ort';

function sourceOf(samples: Sample[]): SampleSource {
  return {
    count: samples.length,
    synthetic: false,
    description: `${samples.length} in-memory samples`,
    async *samples() {
      yield* samples;
    },
  };
}

const IN = 4;
const CLASSES = 5;
// Multiples of 1/8 with small magnitudes: logits are exact in float32, so JS doubles agree bit for bit.
const W = Array.from({ length: IN * CLASSES }, (_, i) => (((i * 5) % 11) - 5) / 8);
const PERTURBED_INDEX = 0 * CLASSES + 4; // W[0][4]
const DELTA = 1.5;

/** x [N, 4] · W → logits [N, 5] → Softmax → probs; `tail` adds a node after the Softmax. */
function classifier(weights: number[], opts: { tail?: 'reshape'; onlyLogits?: boolean } = {}): Uint8Array {
  const b = new ModelBuilder({ opset: 17 });
  b.input('x', DataType.FLOAT, ['N', IN]);
  b.initializer('W', DataType.FLOAT, [IN, CLASSES], new Float32Array(weights));
  b.node('MatMul', ['x', 'W'], {}, { outputs: ['logits'], name: 'mm' });
  b.output('logits', DataType.FLOAT, ['N', CLASSES]);
  if (!opts.onlyLogits) {
    if (opts.tail === 'reshape') {
      // Loads fine (N is symbolic) but cannot run: 2×5 values do not reshape to [7].
      b.initializer('bad_shape', DataType.INT64, [1], new BigInt64Array([7n]));
      const sm = b.node('Softmax', ['logits'], { axis: -1 });
      b.node('Reshape', [sm, 'bad_shape'], {}, { outputs: ['probs'] });
    } else b.node('Softmax', ['logits'], { axis: -1 }, { outputs: ['probs'] });
    b.output('probs', DataType.FLOAT);
  }
  return encodeModel(b.build());
}
const perturbed = W.map((w, i) => (i === PERTURBED_INDEX ? w + DELTA : w));

const xValues = (k: number) => Float32Array.from({ length: 2 * IN }, (_, i) => (((i * 3 + k * 5) % 7) - 3) / 2);
const samples = Array.from({ length: 5 }, (_, k) => ({ x: new ort.Tensor('float32', xValues(k), [2, IN]) }));

function logitsOf(x: Float32Array, w: number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / IN; r++) for (let c = 0; c < CLASSES; c++) {
    let s = 0;
    for (let k = 0; k < IN; k++) s += x[r * IN + k]! * w[k * CLASSES + c]!;
    out.push(s);
  }
  return out;
}
function softmaxRows(v: number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < v.length; r += CLASSES) {
    const row = v.slice(r, r + CLASSES);
    const m = Math.max(...row);
    const e = row.map((z) => Math.exp(z - m));
    const s = e.reduce((a, b) => a + b, 0);
    out.push(...e.map((z) => z / s));
  }
  return out;
}
function argmaxRows(v: number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < v.length; r += CLASSES) {
    const row = v.slice(r, r + CLASSES);
    out.push(row.indexOf(Math.max(...row)));
  }
  return out;
}
/** Aggregate SQNR over every sample, in double precision. */
function sqnrRef(refs: number[][], tests: number[][]): number {
  let s = 0;
  let e = 0;
  refs.forEach((r, i) => r.forEach((v, j) => ((s += v * v), (e += (v - tests[i]![j]!) ** 2))));
  return 10 * Math.log10(s / e);
}

describe('compareModels', () => {
  const floatBytes = classifier(W);

  it('a model against itself: SQNR +Infinity, cosine 1, no error, top-1 agreement 1', async () => {
    const phases = new Set<string>();
    const r = await compareModels(floatBytes, floatBytes, sourceOf(samples), { latencyRuns: 3, threads: 1, onProgress: (p) => phases.add(p.phase) });
    assert.equal(r.samples, 5);
    assert.deepEqual(r.outputs.map((o) => o.name), ['logits', 'probs']);
    for (const o of r.outputs) {
      assert.equal(o.sqnrDb, Infinity);
      assert.equal(o.cosine, 1);
      assert.equal(o.maxAbsError, 0);
      assert.equal(o.top1Agreement, 1);
    }
    assert.ok(r.latencyMs && r.latencyMs.float > 0 && r.latencyMs.quantized > 0);
    assert.deepEqual(r.sizeBytes, { float: floatBytes.length, quantized: floatBytes.length });
    assert.deepEqual([...phases], ['load', 'latency', 'evaluate']);
  });

  it('a copy with one weight changed: SQNR, max error and top-1 agreement match the JS reference', async () => {
    const r = await compareModels(floatBytes, classifier(perturbed), sourceOf(samples), { latencyRuns: 0, threads: 1 });
    assert.equal(r.latencyMs, undefined);
    const xs = samples.map((s) => s.x.data as Float32Array);
    const refLogits = xs.map((x) => logitsOf(x, W));
    const testLogits = xs.map((x) => logitsOf(x, perturbed));
    const logits = r.outputs.find((o) => o.name === 'logits')!;
    const probs = r.outputs.find((o) => o.name === 'probs')!;

    // Logits are exact in float32: the metrics must match to double rounding.
    assert.ok(Math.abs(logits.sqnrDb - sqnrRef(refLogits, testLogits)) < 1e-9, `${logits.sqnrDb} vs ${sqnrRef(refLogits, testLogits)}`);
    assert.ok(Number.isFinite(logits.sqnrDb) && logits.sqnrDb > 0);
    // Only W[0][4] changed: the error is |x[r][0]| · DELTA in class 4 of each row.
    const maxX0 = Math.max(...xs.flatMap((x) => [Math.abs(x[0]!), Math.abs(x[IN]!)]));
    assert.equal(logits.maxAbsError, maxX0 * DELTA);

    // Softmax is not exact in float32: compare with the double-precision reference to 0.01 dB.
    const probsRef = sqnrRef(refLogits.map(softmaxRows), testLogits.map(softmaxRows));
    assert.ok(Math.abs(probs.sqnrDb - probsRef) < 0.01, `${probs.sqnrDb} vs ${probsRef}`);

    let agree = 0;
    let rows = 0;
    refLogits.forEach((ref, i) => {
      const a = argmaxRows(ref);
      const b = argmaxRows(testLogits[i]!);
      a.forEach((c, j) => ((agree += c === b[j] ? 1 : 0), rows++));
    });
    assert.ok(agree > 0 && agree < rows, 'the perturbation must flip some rows but not all');
    assert.equal(logits.top1Agreement, agree / rows);
    assert.equal(probs.top1Agreement, agree / rows);
    assert.ok(logits.cosine < 1 && logits.cosine > 0.5 && logits.minCosine <= logits.cosine);
  });

  it('model files: sizes include external data', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const floatFile = path.join(dir, 'float.onnx');
      const quantFile = path.join(dir, 'quant.onnx');
      fs.writeFileSync(floatFile, floatBytes);
      const b = new ModelBuilder({ opset: 17 });
      b.input('x', DataType.FLOAT, ['N', IN]);
      b.initializer('W', DataType.FLOAT, [IN, CLASSES], new Float32Array(perturbed));
      b.node('MatMul', ['x', 'W'], {}, { outputs: ['logits'] });
      b.node('Softmax', ['logits'], { axis: -1 }, { outputs: ['probs'] });
      b.output('logits', DataType.FLOAT);
      b.output('probs', DataType.FLOAT);
      const saved = saveModel(b.build(), quantFile, { externalData: 'always', externalThreshold: 16 });
      const r = await compareModels(floatFile, quantFile, sourceOf(samples.slice(0, 2)), { latencyRuns: 1, threads: 1 });
      assert.equal(r.sizeBytes.float, floatBytes.length);
      assert.equal(r.sizeBytes.quantized, fs.statSync(quantFile).size + fs.statSync(saved.externalDataFile!).size);
      assert.ok(r.outputs.every((o) => Number.isFinite(o.sqnrDb)));
    } finally {
      cleanup();
    }
  });

  it('a quantized model onnxruntime cannot load is a failed quantization, named with onnxruntime’s text', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const broken = path.join(dir, 'broken.onnx');
      fs.writeFileSync(broken, Uint8Array.from([8, 7, 18, 3, 1, 2]));
      await assert.rejects(compareModels(floatBytes, broken, sourceOf(samples), { threads: 1 }), (err: Error) => {
        assert.equal(err.name, 'QuantizedModelError');
        assert.ok(err.message.startsWith(`${broken}: the quantized model is broken`), err.message);
        assert.match(err.message, /onnxruntime cannot load it: .*protobuf/i);
        return true;
      });
    } finally {
      cleanup();
    }
  });

  it('a quantized model that fails to run, or lacks an output, is a failed quantization too', async () => {
    await assert.rejects(compareModels(floatBytes, classifier(W, { tail: 'reshape' }), sourceOf(samples), { threads: 1 }), (err: Error) => {
      assert.equal(err.name, 'QuantizedModelError');
      assert.match(err.message, /^<quantized model>: the quantized model is broken .*failed to run it on the latency sample: .*reshape/i);
      return true;
    });
    await assert.rejects(compareModels(floatBytes, classifier(W, { onlyLogits: true }), sourceOf(samples), { threads: 1 }), /output\(s\) "probs" of the float model are missing/);
  });

  it('cancels with an AbortError between samples', async () => {
    const controller = new AbortController();
    const run = compareModels(floatBytes, floatBytes, sourceOf(samples), {
      latencyRuns: 0,
      threads: 1,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'evaluate' && p.done === 2) controller.abort();
      },
    });
    await assert.rejects(run, { name: 'AbortError' });
    const again = await compareModels(floatBytes, floatBytes, sourceOf(samples.slice(0, 1)), { latencyRuns: 0, threads: 1 });
    assert.equal(again.samples, 1);
  });

  it('ocrCls against itself: identical outputs, class scores recognized', async () => {
    const r = await compareModels(REAL_MODELS.ocrCls, REAL_MODELS.ocrCls, sourceOf([realModelFeeds('ocrCls')]), { latencyRuns: 2, threads: 1 });
    assert.equal(r.outputs.length, 1);
    assert.equal(r.outputs[0]!.sqnrDb, Infinity);
    assert.equal(r.outputs[0]!.top1Agreement, 1);
    assert.equal(r.sizeBytes.float, fs.statSync(REAL_MODELS.ocrCls).size);
  });
});

describe('runtime sessions', () => {
  it('a model onnxruntime cannot load fails with its text and the file name', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'garbage.onnx');
      fs.writeFileSync(file, 'not a model');
      await assert.rejects(createSession(file), (err: Error & { file?: string; ortMessage?: string }) => {
        assert.equal(err.name, 'ModelLoadError');
        assert.equal(err.file, file);
        assert.ok(err.ortMessage && err.message === `${file}: onnxruntime cannot load the model: ${err.ortMessage}`);
        return true;
      });
      await assert.rejects(createSession(new Uint8Array([1, 2, 3]), { name: 'bytes.onnx' }), /^ModelLoadError: bytes\.onnx: onnxruntime cannot load the model: .*protobuf/);
      await assert.rejects(createSession(file, { threads: 0 }), RangeError);
    } finally {
      cleanup();
    }
  });

  it('withSession hands over a working session and passes errors through', async () => {
    const bytes = classifier(W);
    const names = await withSession(bytes, { threads: 1, optimization: 'basic' }, async (s) => [...s.outputNames]);
    assert.deepEqual(names, ['logits', 'probs']);
    await assert.rejects(
      withSession(bytes, {}, async () => {
        throw new Error('inside');
      }),
      /inside/,
    );
  });
});

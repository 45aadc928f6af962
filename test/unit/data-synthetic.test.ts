/**
 * Synthetic samples: deterministic per seed and sample, N(0,1) floats, `fixed` and `ranges`,
 * symbolic dims from `dims` (batch-like names default to 1), and errors that say what to set.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { Sample, SampleDataError, SampleSource } from '../../src/runtime/samples';
import { syntheticSource } from '../../src/runtime/data/synthetic';
import { checkSample, modelInputSpecs } from '../../src/runtime/data/model-inputs';

function model(inputs: [string, DataType, (number | string)[]][]): OnnxModel {
  const b = new ModelBuilder();
  for (const [name, type, shape] of inputs) {
    b.input(name, type, shape);
    b.output(b.node('Identity', [name]), type);
  }
  return OnnxModel.fromProto(b.build(), 'model.onnx');
}

async function collect(source: SampleSource): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of source.samples()) out.push(s);
  return out;
}

const values = (s: Sample, name: string) => [...(s[name]!.data as Float32Array)];

function fails(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SampleDataError, String(e));
    assert.equal(e.message, message);
    return true;
  });
}

describe('synthetic samples', () => {
  const image = model([['x', DataType.FLOAT, ['batch', 3, 8, 8]]]);

  it('are deterministic per seed and sample index, and marked synthetic', async () => {
    const a = syntheticSource(image, { count: 3, seed: 7 });
    assert.equal(a.synthetic, true);
    assert.equal(a.count, 3);
    assert.equal(a.description, 'synthetic: 3 samples, seed 7; x [1,3,8,8] N(0,1)');
    const first = await collect(a);
    const again = await collect(a);
    const same = await collect(syntheticSource(image, { count: 5, seed: 7 }));
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(values(first[k]!, 'x'), values(again[k]!, 'x'));
      assert.deepEqual(values(first[k]!, 'x'), values(same[k]!, 'x'));
    }
    assert.notDeepEqual(values(first[0]!, 'x'), values(first[1]!, 'x'));
    const other = await collect(syntheticSource(image, { count: 1, seed: 8 }));
    assert.notDeepEqual(values(other[0]!, 'x'), values(first[0]!, 'x'));
    const specs = modelInputSpecs(image);
    for (const s of first) checkSample(s, specs, 'synthetic');
  });

  it('floats are N(0,1)', async () => {
    const [s] = await collect(syntheticSource(model([['v', DataType.FLOAT, [20000]]]), { count: 1 }));
    const v = values(s!, 'v');
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 0.03, `std ${std}`);
  });

  it('fixed values, ranges, masks, float16 and float64', async () => {
    const m = model([
      ['input_ids', DataType.INT64, [1, 'seq']],
      ['attention_mask', DataType.INT64, [1, 'seq']],
      ['token_type_ids', DataType.INT32, [1, 'seq']],
      ['sr', DataType.INT64, []],
      ['state', DataType.FLOAT, [2, 'batch_size', 4]],
      ['h', DataType.FLOAT16, [3]],
      ['d', DataType.DOUBLE, [2]],
      ['u', DataType.FLOAT, [1000]],
    ]);
    const source = syntheticSource(m, {
      count: 2,
      dims: { seq: 16 },
      fixed: { sr: [16000], state: [0] },
      ranges: { input_ids: [0, 30522], u: [0, 1] },
    });
    const [s] = await collect(source);
    assert.deepEqual(s!.input_ids!.dims, [1, 16]);
    const ids = [...(s!.input_ids!.data as BigInt64Array)];
    assert.ok(ids.every((v) => v >= 0n && v < 30522n));
    assert.ok(new Set(ids).size > 8);
    assert.deepEqual([...(s!.attention_mask!.data as BigInt64Array)], new Array(16).fill(1n));
    assert.deepEqual([...(s!.token_type_ids!.data as Int32Array)], new Array(16).fill(0));
    assert.deepEqual([...(s!.sr!.data as BigInt64Array)], [16000n]);
    assert.deepEqual(s!.sr!.dims, []);
    assert.deepEqual(s!.state!.dims, [2, 1, 4]);
    assert.ok(values(s!, 'state').every((v) => v === 0));
    assert.equal(s!.h!.type, 'float16');
    assert.equal(s!.d!.type, 'float64');
    const u = values(s!, 'u');
    assert.ok(u.every((v) => v >= 0 && v < 1) && Math.max(...u) > 0.9 && Math.min(...u) < 0.1);
    checkSample(s!, modelInputSpecs(m), 'synthetic');
    assert.match(source.description, /input_ids \[1,16\] integers 0…30521; attention_mask \[1,16\] ones \(mask\); .* sr \[\] all 16000; state \[2,1,4\] all 0/);
  });

  it('errors say which dim or values to set', () => {
    fails(
      () => syntheticSource(model([['input', DataType.FLOAT, ['batch', 'sequence']]]), { count: 1 }),
      'model.onnx: synthetic data: input "input" has shape ["batch","sequence"]; set the size of dim 1 "sequence" with dims: {"sequence": <size>}',
    );
    fails(
      () => syntheticSource(model([['x', DataType.FLOAT, [1, '?']]]), { count: 1 }),
      'model.onnx: synthetic data: input "x" has shape [1,"?"]; set the size of dim 1 with dims: {"x[1]": <size>}',
    );
    assert.deepEqual(syntheticSource(model([['x', DataType.FLOAT, [1, '?']]]), { count: 1, dims: { 'x[1]': 5 } }).description, 'synthetic: 1 sample, seed 0; x [1,5] N(0,1)');
    fails(
      () => syntheticSource(model([['sr', DataType.INT64, []]]), { count: 1 }),
      'model.onnx: synthetic data: input "sr" is int64: its values cannot be guessed; give them with fixed: {"sr": [...]} or a range with ranges: {"sr": [lo, hi]}',
    );
    fails(() => syntheticSource(model([['x', DataType.FLOAT, [3]]]), { count: 1, fixed: { x: [1, 2] } }), 'model.onnx: synthetic data: fixed: 2 values for "x", which has 3 elements (give 3, or 1 to fill)');
    fails(() => syntheticSource(model([['x', DataType.FLOAT, [3]]]), { count: 1, fixed: { y: [1] } }), 'model.onnx: synthetic data: fixed: "y" is not an input of the model');
    fails(() => syntheticSource(model([['x', DataType.FLOAT, [3]]]), { count: 0 }), 'model.onnx: synthetic data: count must be a positive integer, got 0');
  });
});

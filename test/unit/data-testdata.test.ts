/**
 * The ONNX test-data layout: test_data_set_<n>/input_<k>.pb TensorProto files written with our
 * encoder; inputs matched by tensor name or by order, and the samples run by onnxruntime-node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel, encodeTensor } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { makeTensor, TensorValuesInput } from '../../src/onnx/tensor-data';
import { SampleDataError } from '../../src/runtime/samples';
import { modelInputSpecs } from '../../src/runtime/data/model-inputs';
import { loadTestDataSet } from '../../src/runtime/data/onnx-testdata';
import { openSampleFolder } from '../../src/runtime/data/folder';
import { runModel, tempDir } from '../helpers/ort';

/** y = a + b (float32 [2, "n"]), and an int64 input passed through. */
function addModel(): OnnxModel {
  const b = new ModelBuilder({ opset: 17 });
  b.input('a', DataType.FLOAT, [2, 'n']);
  b.input('b', DataType.FLOAT, [2, 'n']);
  b.input('k', DataType.INT64, []);
  b.output(b.node('Add', ['a', 'b']), DataType.FLOAT);
  b.output(b.node('Identity', ['k']), DataType.INT64);
  return OnnxModel.fromProto(b.build(), 'add.onnx');
}

function writePb(dir: string, file: string, name: string, type: DataType, dims: number[], values: TensorValuesInput): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, file), encodeTensor(makeTensor(name, type, dims, values)));
}

describe('ONNX test data', () => {
  it('matches named tensors by name, whatever the file order', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const set = path.join(dir, 'test_data_set_0');
      writePb(set, 'input_0.pb', 'k', DataType.INT64, [], [7n]);
      writePb(set, 'input_1.pb', 'b', DataType.FLOAT, [2, 2], [10, 20, 30, 40]);
      writePb(set, 'input_2.pb', 'a', DataType.DOUBLE, [2, 2], [1, 2, 3, 4]); // float64 → float32
      writePb(set, 'output_0.pb', 'y', DataType.FLOAT, [2, 2], [11, 22, 33, 44]);
      const model = addModel();
      const sample = await loadTestDataSet(set, modelInputSpecs(model));
      assert.deepEqual(Object.keys(sample).sort(), ['a', 'b', 'k']);
      assert.equal(sample.a!.type, 'float32');
      assert.deepEqual([...(sample.a!.data as Float32Array)], [1, 2, 3, 4]);
      assert.deepEqual([...(sample.k!.data as BigInt64Array)], [7n]);
    } finally {
      cleanup();
    }
  });

  it('gives unnamed tensors the model inputs in numeric file order (input_10 after input_2)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder();
      const names = Array.from({ length: 11 }, (_, i) => b.input(`in${i}`, DataType.INT32, [1]));
      for (const n of names) b.output(b.node('Identity', [n]), DataType.INT32);
      const model = OnnxModel.fromProto(b.build(), 'many.onnx');
      const set = path.join(dir, 'test_data_set_0');
      for (let i = 0; i < 11; i++) writePb(set, `input_${i}.pb`, '', DataType.INT32, [1], [i * 100]);
      const sample = await loadTestDataSet(set, modelInputSpecs(model));
      for (let i = 0; i < 11; i++) assert.deepEqual([...(sample[`in${i}`]!.data as Int32Array)], [i * 100], `in${i}`);
      writePb(set, 'input_11.pb', '', DataType.INT32, [1], [0]);
      await assert.rejects(loadTestDataSet(set, modelInputSpecs(model)), /input_11\.pb: this unnamed tensor is input number 12, but the model has only 11/);
    } finally {
      cleanup();
    }
  });

  it('a folder of test-data sets feeds onnxruntime; errors name the file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      for (let s = 0; s < 3; s++) {
        const set = path.join(dir, `test_data_set_${s}`);
        writePb(set, 'input_0.pb', '', DataType.FLOAT, [2, 3], [1, 2, 3, 4, 5, 6].map((v) => v * (s + 1)));
        writePb(set, 'input_1.pb', '', DataType.FLOAT, [2, 3], [1, 1, 1, 1, 1, 1]);
        writePb(set, 'input_2.pb', '', DataType.INT64, [], [BigInt(s)]);
      }
      const model = addModel();
      const source = openSampleFolder(dir, model);
      assert.equal(source.layout, 'onnx-test-data');
      assert.equal(source.count, 3);
      assert.equal(source.description, `3 ONNX test-data sets in ${dir}`);
      const bytes = encodeModel(model.proto);
      let s = 0;
      for await (const feeds of source.samples()) {
        const out = await runModel(bytes, feeds);
        const values = Object.values(out).map((t) => [...(t.data as Float32Array | BigInt64Array)]);
        assert.deepEqual(values, [[1, 2, 3, 4, 5, 6].map((v) => v * (s + 1) + 1), [BigInt(s)]]);
        s++;
      }
      assert.equal(s, 3);

      // A tensor of the wrong shape: the error names the set and the input.
      writePb(path.join(dir, 'test_data_set_1'), 'input_1.pb', '', DataType.FLOAT, [3, 2], [1, 1, 1, 1, 1, 1]);
      await assert.rejects(
        (async () => {
          for await (const _ of openSampleFolder(dir, model).samples());
        })(),
        (e: unknown) => {
          assert.ok(e instanceof SampleDataError);
          assert.equal(e.message, `${path.join(dir, 'test_data_set_1')}: input "b" has shape [3,2] but the model expects [2,"n"]`);
          return true;
        },
      );
      // A corrupt file.
      fs.writeFileSync(path.join(dir, 'test_data_set_2', 'input_0.pb'), Buffer.from([0x0a, 0xff, 0xff]));
      const corrupt = path.join(dir, 'test_data_set_2', 'input_0.pb');
      await assert.rejects(loadTestDataSet(path.join(dir, 'test_data_set_2'), modelInputSpecs(model)), (e: unknown) => {
        assert.ok(e instanceof SampleDataError);
        assert.ok(e.message.startsWith(`${corrupt}: corrupt TensorProto`), e.message);
        return true;
      });
    } finally {
      cleanup();
    }
  });
});

/**
 * The ONNX test-data layout (onnx/backend/test/data, the ONNX model zoo):
 *   test_data_set_0/input_0.pb, input_1.pb, …, output_0.pb, …
 * Each input_<k>.pb is a serialized TensorProto. Its name field, when set, names the model input it
 * feeds; unnamed tensors take the model's inputs in order (the k-th file in numeric order feeds the
 * k-th input). Output files are expected results, not inputs, and are ignored here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { decodeTensor } from '../../onnx/decode';
import { dataTypeName } from '../../onnx/dtypes';
import { OnnxFormatError } from '../../onnx/errors';
import { tensorValues } from '../../onnx/tensor-data';
import { Sample, SampleDataError } from '../samples';
import { dataError, fitToInput, InputSpec, ortTypeOf, TensorData } from './model-inputs';
import { naturalCompare } from './natural-sort';

export const TEST_DATA_SET_PATTERN = /^test_data_set_\d+$/;
const INPUT_FILE = /^input_(\d+)\.pb$/;

/** The input_<k>.pb files of a test-data set folder, in numeric order of k. */
export function testDataInputFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw dataError(dir, `cannot read the folder: ${(err as Error).message}`);
  }
  return names
    .filter((n) => INPUT_FILE.test(n))
    .sort(naturalCompare)
    .map((n) => path.join(dir, n));
}

/** Reads one TensorProto file into its name and an onnxruntime tensor (fitted to `spec` if given). */
export async function readTensorProtoFile(file: string, specFor?: (name: string) => InputSpec | undefined): Promise<{ name: string; tensor: Tensor }> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw dataError(file, `cannot read: ${(err as Error).message}`);
  }
  try {
    const t = decodeTensor(buf, file);
    const dtype = ortTypeOf(t.dataType);
    if (!dtype) throw dataError(file, `tensor "${t.name}" has type ${dataTypeName(t.dataType)}, which onnxruntime-node cannot feed`);
    const values = tensorValues(t, undefined, file) as TensorData;
    return { name: t.name, tensor: fitToInput(dtype, values, t.dims, specFor?.(t.name)) };
  } catch (err) {
    if (err instanceof OnnxFormatError) throw new SampleDataError(err.message, file);
    throw err;
  }
}

/** Loads one test_data_set_* folder as a sample. */
export async function loadTestDataSet(dir: string, specs: readonly InputSpec[]): Promise<Sample> {
  const files = testDataInputFiles(dir);
  if (files.length === 0) throw dataError(dir, 'no input_<k>.pb files in this test-data set');
  const sample: Sample = {};
  for (let k = 0; k < files.length; k++) {
    const file = files[k]!;
    const { name, tensor } = await readTensorProtoFile(file, (n) => specs.find((s) => s.name === (n || specs[k]?.name)));
    const input = name || specs[k]?.name;
    if (input === undefined) {
      throw dataError(file, `this unnamed tensor is input number ${k + 1}, but the model has only ${specs.length} input(s)`);
    }
    if (sample[input]) throw dataError(file, `input "${input}" is given twice in ${dir}`);
    sample[input] = tensor;
  }
  return sample;
}

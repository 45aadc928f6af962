/**
 * What a model wants as input (name, element type, shape with symbolic dims), and the check that a
 * loaded sample fits it. Every loader runs `checkSample` on each sample it yields, so calibration
 * and evaluation never see data that onnxruntime would reject with a less helpful message.
 */
import { Tensor } from 'onnxruntime-node';
import { DataType, dataTypeName } from '../../onnx/dtypes';
import { Dim, valueTypeOf } from '../../onnx/graph';
import type { OnnxModel } from '../../onnx/model';
import { Sample, SampleDataError } from '../samples';

export type { Dim };

/** Element types onnxruntime-node tensors can hold, by their onnxruntime names. */
export type TensorType = Tensor.Type;
export type TensorData = Tensor.DataTypeMap[TensorType];

export interface InputSpec {
  readonly name: string;
  readonly elemType: DataType;
  /** The onnxruntime name of elemType ('float32', 'int64', …). */
  readonly dtype: TensorType;
  /** Undefined when the model does not declare the rank. Symbolic dims are strings ("?" unnamed). */
  readonly shape: readonly Dim[] | undefined;
}

const ORT_TYPES: Partial<Record<DataType, TensorType>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.DOUBLE]: 'float64',
  [DataType.FLOAT16]: 'float16',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.INT16]: 'int16',
  [DataType.UINT16]: 'uint16',
  [DataType.INT32]: 'int32',
  [DataType.UINT32]: 'uint32',
  [DataType.INT64]: 'int64',
  [DataType.UINT64]: 'uint64',
  [DataType.BOOL]: 'bool',
  [DataType.STRING]: 'string',
};

/** The onnxruntime tensor type of an ONNX element type; undefined for types it cannot feed (bfloat16, float8, …). */
export function ortTypeOf(elemType: number): TensorType | undefined {
  return ORT_TYPES[elemType as DataType];
}

export function isFloatType(t: TensorType): boolean {
  return t === 'float32' || t === 'float64' || t === 'float16';
}

/** `file: message` as a SampleDataError that remembers the file. */
export function dataError(file: string, message: string): SampleDataError {
  return new SampleDataError(`${file}: ${message}`, file);
}

/** The model's real graph inputs, in graph order. Throws SampleDataError for inputs no tensor can feed. */
export function modelInputSpecs(model: OnnxModel): InputSpec[] {
  const graph = model.graph.proto;
  // Before IR 4, initializers were also listed as graph inputs; those are not real inputs.
  const initializers = new Set(graph.initializer.map((t) => t.name));
  return graph.input
    .filter((v) => !initializers.has(v.name))
    .map((v) => {
      const t = valueTypeOf(v.type);
      if (t.kind !== 'tensor') throw dataError(model.file, `input "${v.name}" is a ${t.kind}, not a tensor; only tensor inputs can be fed`);
      const dtype = ortTypeOf(t.elemType);
      if (!dtype) throw dataError(model.file, `input "${v.name}" has type ${dataTypeName(t.elemType)}, which onnxruntime-node cannot feed`);
      return { name: v.name, elemType: t.elemType as DataType, dtype, shape: t.shape };
    });
}

/** `[1,3,"H",32]`: the notation of our error messages and of `inspect --json`. */
export function formatShape(shape: readonly Dim[]): string {
  return JSON.stringify(shape);
}

/**
 * Checks one sample against the model's inputs: every input present and no other, the right element
 * type and rank, fixed dims equal. A symbolic dim takes any size, but one name means one size within
 * a sample (e.g. "batch" in two inputs), as ONNX defines it; sizes may differ between samples.
 * Float inputs must be finite. `file` names the sample in errors: its file, or, for samples spread
 * over several files, a function giving the file of an input (or the sample's folder for inputs
 * it does not have).
 */
export function checkSample(sample: Sample, specs: readonly InputSpec[], file: string | ((input: string) => string)): void {
  const fileOf = typeof file === 'string' ? () => file : file;
  const known = new Set(specs.map((s) => s.name));
  const names = specs.map((s) => `"${s.name}"`).join(', ');
  for (const key of Object.keys(sample)) {
    if (!known.has(key)) throw dataError(fileOf(key), `"${key}" is not an input of the model (its inputs: ${names})`);
  }
  const bound = new Map<string, { size: number; input: string }>();
  for (const spec of specs) {
    const t = sample[spec.name];
    const at = fileOf(spec.name);
    if (!t) throw dataError(at, `input "${spec.name}" is missing (the model's inputs: ${names})`);
    if (t.type !== spec.dtype) {
      const hint = t.type === 'int32' && spec.dtype === 'int64' ? ' (in numpy: a.astype(np.int64))' : '';
      throw dataError(at, `input "${spec.name}" has type ${t.type} but the model expects ${spec.dtype}${hint}`);
    }
    checkShape(t.dims, spec, at, bound);
    if (isFloatType(t.type)) checkFinite(t, spec.name, at);
  }
}

function checkShape(dims: readonly number[], spec: InputSpec, file: string, bound: Map<string, { size: number; input: string }>): void {
  const want = spec.shape;
  if (!want) return;
  const mismatch = () => dataError(file, `input "${spec.name}" has shape ${formatShape(dims)} but the model expects ${formatShape(want)}`);
  if (dims.length !== want.length) throw mismatch();
  want.forEach((d, axis) => {
    const size = dims[axis]!;
    if (typeof d === 'number') {
      if (d >= 0 && size !== d) throw mismatch();
      return;
    }
    if (d === '?') return;
    const prev = bound.get(d);
    if (!prev) bound.set(d, { size, input: spec.name });
    else if (prev.size !== size) {
      throw dataError(
        file,
        `input "${spec.name}" has shape ${formatShape(dims)}, so dim "${d}" is ${size}, but it is ${prev.size} in input "${prev.input}" (the model expects ${formatShape(want)})`,
      );
    }
  });
}

function checkFinite(t: Tensor, input: string, file: string): void {
  const data = t.data;
  let bad = -1;
  if (t.type === 'float16') {
    // Exponent bits all ones: Inf or NaN.
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i]! & 0x7c00) === 0x7c00) {
        bad = i;
        break;
      }
    }
  } else {
    const values = data as Float32Array | Float64Array;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        bad = i;
        break;
      }
    }
  }
  if (bad >= 0) {
    const what = t.type === 'float16' ? 'a NaN or infinite value' : String((data as Float32Array)[bad]);
    throw dataError(file, `input "${input}" contains ${what} at element ${bad}; calibration needs finite values`);
  }
}

/** An onnxruntime tensor over `data` (not copied). */
export function makeOrtTensor(dtype: TensorType, data: TensorData, dims: readonly number[]): Tensor {
  return new Tensor(dtype, data, dims);
}

/**
 * Fits loaded values to an input: float64 data for a float32 input is converted (numpy's default
 * float type is float64, and float32 holds calibration data to well within its noise). Any other
 * type mismatch is left for `checkSample` to report.
 */
export function fitToInput(dtype: TensorType, data: TensorData, dims: readonly number[], spec: InputSpec | undefined): Tensor {
  if (spec?.dtype === 'float32' && dtype === 'float64') return makeOrtTensor('float32', Float32Array.from(data as Float64Array), dims);
  return makeOrtTensor(dtype, data, dims);
}

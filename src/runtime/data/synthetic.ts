/**
 * Generated inputs, for a first look at a model before the user has data. Every report must say
 * the numbers come from synthetic data (`synthetic: true`): ranges calibrated on them say little
 * about real inputs.
 *
 * Values, per input (the first rule that applies):
 * 1. `fixed[name]`: these values (one value fills the whole tensor);
 * 2. `ranges[name] = [lo, hi]`: uniform in [lo, hi) (integers: lo…hi−1);
 * 3. float inputs: N(0, 1), whatever the input is. Image inputs are often normalized to roughly
 *    that range; for [0, 1] pixels give `ranges: {x: [0, 1]}`;
 * 4. integer and bool inputs whose name says "mask": 1; "token_type"/"segment": 0;
 * 5. other integer, bool and string inputs: an error asking for `fixed` or `ranges`, since no
 *    guess is safe (token ids must stay below the vocabulary size, a sample rate must be one the
 *    model knows, …).
 * Symbolic dims take their size from `dims` (by dim name, or "<input>[<axis>]" for unnamed
 * dims); batch-like names (batch, batch_size, N, …) default to 1, others are an error that names
 * the dim to set. Sample k is the same on every run and every pass (seeded from seed and k).
 */
import type { Tensor } from 'onnxruntime-node';
import { Rng } from '../../onnx/builder';
import { float32ToFloat16Bits } from '../../onnx/float-formats';
import type { OnnxModel } from '../../onnx/model';
import { Sample, SampleDataError, SampleSource } from '../samples';
import { formatShape, InputSpec, isFloatType, makeOrtTensor, modelInputSpecs, TensorData, TensorType } from './model-inputs';

export interface SyntheticOptions {
  count: number;
  /** Default 0. */
  seed?: number;
  /** Uniform ranges [lo, hi) per input name. */
  ranges?: Record<string, readonly [number, number]>;
  /** Exact values per input name (C order), or one value to fill the tensor. */
  fixed?: Record<string, readonly number[]>;
  /** Sizes of symbolic dims: by dim name, or "<input>[<axis>]". */
  dims?: Record<string, number>;
}

const BATCH_LIKE = /^(n|b|bs)$|batch/i;

function fail(message: string): SampleDataError {
  return new SampleDataError(`synthetic data: ${message}`);
}

/** The concrete shape of an input, with every symbolic dim resolved. */
/** Largest synthetic input we generate (256M elements, 1 GB of float32): a model declaring more is hostile or wrong. */
const MAX_SYNTHETIC_ELEMENTS = 2 ** 28;

function resolveShape(spec: InputSpec, dims: Record<string, number>): number[] {
  if (!spec.shape) throw fail(`input "${spec.name}" has no declared shape; give its values with fixed: {"${spec.name}": [...]}`);
  const shape = resolveDims(spec, dims);
  const n = shape.reduce((a, b) => a * b, 1);
  if (!(n <= MAX_SYNTHETIC_ELEMENTS)) throw fail(`input "${spec.name}" would have shape [${shape.join(', ')}] (${n} elements), more than the ${MAX_SYNTHETIC_ELEMENTS} synthetic data allows; pass --calib data`);
  return shape;
}

function resolveDims(spec: InputSpec, dims: Record<string, number>): number[] {
  return spec.shape!.map((d, axis) => {
    if (typeof d === 'number' && d >= 0) return d;
    const key = `${spec.name}[${axis}]`;
    const size = dims[key] ?? (typeof d === 'string' && d !== '?' ? dims[d] : undefined);
    if (size !== undefined) {
      if (!Number.isSafeInteger(size) || size < 0) throw fail(`dims: size ${size} for ${key} is not a non-negative integer`);
      return size;
    }
    if (typeof d === 'string' && BATCH_LIKE.test(d)) return 1;
    const how = typeof d === 'string' && d !== '?' ? `dims: {"${d}": <size>}` : `dims: {"${key}": <size>}`;
    throw fail(`input "${spec.name}" has shape ${formatShape(spec.shape!)}; set the size of dim ${axis}${typeof d === 'string' && d !== '?' ? ` "${d}"` : ''} with ${how}`);
  });
}

type Fill = (rng: Rng) => TensorData;

/** Typed array of `type` from JS numbers (float16 as bits, int64 as bigint). */
function fromNumbers(type: TensorType, values: (i: number) => number, n: number): TensorData {
  switch (type) {
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float32ToFloat16Bits(values(i));
      return out;
    }
    case 'int64':
    case 'uint64': {
      const out = type === 'int64' ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(values(i)));
      return out;
    }
    case 'string':
    case 'int4':
    case 'uint4':
      throw fail(`cannot generate ${type} values`);
    default: {
      const make = {
        float32: Float32Array,
        float64: Float64Array,
        int8: Int8Array,
        uint8: Uint8Array,
        int16: Int16Array,
        uint16: Uint16Array,
        int32: Int32Array,
        uint32: Uint32Array,
        bool: Uint8Array,
      }[type];
      const out = new make(n);
      for (let i = 0; i < n; i++) out[i] = values(i);
      return out;
    }
  }
}

/** How to fill an input of `n` elements. */
function planFill(spec: InputSpec, options: SyntheticOptions, n: number): { fill: Fill; what: string } {
  const name = spec.name;
  const isFloat = isFloatType(spec.dtype);
  const fixed = options.fixed?.[name];
  if (fixed) {
    if (fixed.length !== 1 && fixed.length !== n) throw fail(`fixed: ${fixed.length} values for "${name}", which has ${n} elements (give ${n}, or 1 to fill)`);
    if (!fixed.every(Number.isFinite)) throw fail(`fixed: values for "${name}" must be finite numbers`);
    const values = fromNumbers(spec.dtype, (i) => fixed[fixed.length === 1 ? 0 : i]!, n);
    // A fresh copy per sample: consumers may keep or modify a sample's tensors.
    return { fill: () => values.slice(), what: fixed.length === 1 ? `all ${fixed[0]}` : 'fixed' };
  }
  const range = options.ranges?.[name];
  if (range) {
    const [lo, hi] = range;
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) throw fail(`ranges: [${lo}, ${hi}] for "${name}" is not a range`);
    if (isFloat) return { fill: (rng) => fromNumbers(spec.dtype, () => lo + (hi - lo) * rng.next(), n), what: `U[${lo}, ${hi})` };
    const span = Math.ceil(hi) - Math.ceil(lo);
    return { fill: (rng) => fromNumbers(spec.dtype, () => Math.ceil(lo) + Math.floor(rng.next() * span), n), what: `integers ${Math.ceil(lo)}…${Math.ceil(hi) - 1}` };
  }
  if (isFloat) return { fill: (rng) => fromNumbers(spec.dtype, () => rng.normal(), n), what: 'N(0,1)' };
  if (spec.dtype !== 'string' && /mask/i.test(name)) return { fill: () => fromNumbers(spec.dtype, () => 1, n), what: 'ones (mask)' };
  if (spec.dtype !== 'string' && /token_type|segment/i.test(name)) return { fill: () => fromNumbers(spec.dtype, () => 0, n), what: 'zeros' };
  throw fail(
    `input "${name}" is ${spec.dtype}: its values cannot be guessed; give them with fixed: {"${name}": [...]} or a range with ranges: {"${name}": [lo, hi]}`,
  );
}

/** A seed per (seed, sample) pair, so that sample k does not depend on how many came before. */
function sampleSeed(seed: number, k: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  return Math.imul(h, 0x7feb352d) >>> 0;
}

export function syntheticSource(model: OnnxModel, options: SyntheticOptions): SampleSource {
  try {
    return makeSyntheticSource(model, options);
  } catch (err) {
    // Errors name the model: the user has to know which file's inputs need sizes or values.
    if (err instanceof SampleDataError && !err.file) throw new SampleDataError(`${model.file}: ${err.message}`, model.file);
    throw err;
  }
}

function makeSyntheticSource(model: OnnxModel, options: SyntheticOptions): SampleSource {
  const { count } = options;
  if (!Number.isSafeInteger(count) || count < 1) throw fail(`count must be a positive integer, got ${count}`);
  const seed = options.seed ?? 0;
  const specs = modelInputSpecs(model);
  if (options.fixed) for (const k of Object.keys(options.fixed)) if (!specs.some((s) => s.name === k)) throw fail(`fixed: "${k}" is not an input of the model`);
  if (options.ranges) for (const k of Object.keys(options.ranges)) if (!specs.some((s) => s.name === k)) throw fail(`ranges: "${k}" is not an input of the model`);
  const plans = specs.map((spec) => {
    const dims = resolveShape(spec, options.dims ?? {});
    return { spec, dims, ...planFill(spec, options, dims.reduce((a, b) => a * b, 1)) };
  });
  const description = `synthetic: ${count} sample${count === 1 ? '' : 's'}, seed ${seed}; ${plans
    .map((p) => `${p.spec.name} ${formatShape(p.dims)} ${p.what}`)
    .join('; ')}`;
  return {
    count,
    synthetic: true,
    description,
    async *samples(signal?: AbortSignal): AsyncGenerator<Sample> {
      for (let k = 0; k < count; k++) {
        signal?.throwIfAborted();
        const rng = new Rng(sampleSeed(seed, k));
        const sample: Record<string, Tensor> = {};
        for (const p of plans) {
          sample[p.spec.name] = makeOrtTensor(p.spec.dtype, p.fill(rng), p.dims);
        }
        yield sample;
      }
    },
  };
}

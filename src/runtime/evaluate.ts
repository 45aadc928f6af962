/**
 * Float vs quantized comparison: both models run on every evaluation sample (two sessions alive at
 * once) and per-output fidelity metrics stream through MetricAccumulators, so nothing is kept per
 * sample. Latency is the median of interleaved float / quantized runs on the first sample, so
 * machine noise (other processes, frequency scaling) hits both models alike.
 *
 * A quantized model that onnxruntime cannot load or run is a failed quantization, reported as a
 * QuantizedModelError that names the file and carries onnxruntime's text.
 */
import * as fs from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { OnnxModel } from '../onnx/model';
import { fp16ToFloat32 } from '../quant/fp16';
import { looksLikeClassScores, MetricAccumulator, type NumericArray } from '../quant/metrics';
import type { Sample, SampleSource } from './samples';
import { createSession, forEachSample, ModelLoadError, ModelRunError, runSession, throwIfAborted } from './session';

export interface EvaluationProgress {
  done: number;
  total: number;
  /** "load", then "latency" (timed runs), then "evaluate" (samples). */
  phase: string;
}

export interface CompareOptions {
  signal?: AbortSignal;
  onProgress?: (p: EvaluationProgress) => void;
  /** Timed runs of each model on the first sample, default 20; 0 skips the latency measurement. */
  latencyRuns?: number;
  /** onnxruntime intra-op threads for both models, default all cores. */
  threads?: number;
}

export interface OutputComparison {
  name: string;
  /** Aggregate SQNR over all samples (see MetricAccumulator); +Infinity when identical. */
  sqnrDb: number;
  /** Mean per-sample cosine similarity. */
  cosine: number;
  /** Worst per-sample cosine similarity. */
  minCosine: number;
  maxAbsError: number;
  /** Only for outputs that look like class scores (see looksLikeClassScores). */
  top1Agreement?: number;
}

export interface ComparisonResult {
  outputs: OutputComparison[];
  /** Median milliseconds per run on the first sample; undefined when latencyRuns is 0. */
  latencyMs?: { float: number; quantized: number };
  /** Model bytes on disk, external data files included (byte length for in-memory models). */
  sizeBytes: { float: number; quantized: number };
  samples: number;
  synthetic: boolean;
  seconds: number;
}

/** The quantized model does not load or run in onnxruntime, or its outputs do not match the float model's. */
export class QuantizedModelError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: the quantized model is broken (the quantization failed): ${message}`, options);
    this.name = 'QuantizedModelError';
  }
}

const WARMUP_RUNS = 2;

type ModelInput = Uint8Array | string;

function modelName(m: ModelInput, fallback: string): string {
  return typeof m === 'string' ? m : fallback;
}

/** File bytes plus the external data files the model refers to. */
export function modelSizeBytes(model: ModelInput): number {
  if (typeof model !== 'string') return model.byteLength;
  let total = fs.statSync(model).size;
  const loaded = OnnxModel.load(model);
  try {
    const files = new Set<string>();
    for (const w of loaded.weights()) if (w.external) files.add(loaded.checkExternal(w.tensor).path);
    for (const f of files) total += fs.statSync(f).size;
  } finally {
    loaded.close();
  }
  return total;
}

/** Numeric output values in a form the metrics take; undefined for strings (not comparable). */
function numericValues(t: ort.Tensor): NumericArray | undefined {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Float64Array) return d;
  if (t.type === 'float16' && d instanceof Uint16Array) return fp16ToFloat32(d);
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, (v) => Number(v));
  if (Array.isArray(d)) return undefined;
  return Float64Array.from(d as ArrayLike<number>);
}

const sameDims = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Runs the float and the quantized model on every sample of `source` and compares their outputs.
 * Rejects with an AbortError when `signal` fires (both sessions are released either way).
 */
export async function compareModels(floatModel: ModelInput, quantModel: ModelInput, source: SampleSource, opts: CompareOptions = {}): Promise<ComparisonResult> {
  const start = performance.now();
  const { signal, onProgress } = opts;
  const what = 'evaluation';
  const latencyRuns = opts.latencyRuns ?? 20;
  if (!Number.isInteger(latencyRuns) || latencyRuns < 0) throw new RangeError(`latencyRuns must be a non-negative integer, got ${latencyRuns}`);
  const floatName = modelName(floatModel, '<float model>');
  const quantName = modelName(quantModel, '<quantized model>');
  throwIfAborted(signal, what);

  onProgress?.({ done: 0, total: source.count, phase: 'load' });
  const sessionOpts = { threads: opts.threads };
  const floatSession = await createSession(floatModel, { ...sessionOpts, name: floatName });
  let quantSession: ort.InferenceSession | undefined;
  try {
    try {
      quantSession = await createSession(quantModel, { ...sessionOpts, name: quantName });
    } catch (err) {
      if (err instanceof ModelLoadError) throw new QuantizedModelError(quantName, `onnxruntime cannot load it: ${err.ortMessage}`, { cause: err });
      throw err;
    }
    const q = quantSession;
    // After loading, so that onnxruntime's verdict on a broken file comes first.
    const sizeBytes = { float: modelSizeBytes(floatModel), quantized: 0 };
    try {
      sizeBytes.quantized = modelSizeBytes(quantModel);
    } catch (err) {
      throw new QuantizedModelError(quantName, (err as Error).message, { cause: err });
    }
    const names = floatSession.outputNames;
    const missing = names.filter((n) => !q.outputNames.includes(n));
    if (missing.length > 0) throw new QuantizedModelError(quantName, `output(s) ${missing.map((n) => `"${n}"`).join(', ')} of the float model are missing`);

    const runQuant = async (sample: Sample, context: string) => {
      try {
        return await runSession(q, sample, names, quantName, context);
      } catch (err) {
        if (err instanceof ModelRunError) throw new QuantizedModelError(quantName, `onnxruntime failed to run it on ${context}: ${err.ortMessage}`, { cause: err });
        throw err;
      }
    };
    const runFloat = (sample: Sample, context: string) => runSession(floatSession, sample, names, floatName, context);

    let latencyMs: ComparisonResult['latencyMs'];
    const accumulators = new Map<string, MetricAccumulator>();
    const samples = await forEachSample(source, signal, what, async (sample, index) => {
      const context = `evaluation sample ${index + 1}`;
      if (index === 0 && latencyRuns > 0) latencyMs = await measureLatency(runFloat, runQuant, sample, latencyRuns, signal, onProgress);
      const ref = await runFloat(sample, context);
      const test = await runQuant(sample, context);
      for (const name of names) {
        const r = ref[name]!;
        const t = test[name]!;
        if (!sameDims(r.dims, t.dims)) {
          throw new QuantizedModelError(quantName, `output "${name}" has shape [${t.dims.join(', ')}] instead of the float model's [${r.dims.join(', ')}] on ${context}`);
        }
        const rv = numericValues(r);
        const tv = numericValues(t);
        if (!rv || !tv) continue;
        let acc = accumulators.get(name);
        if (!acc) {
          // Decided once, on the first sample's float output: a model's output kind does not change.
          const classes = looksLikeClassScores(r.dims, rv) ? r.dims[r.dims.length - 1] : undefined;
          acc = new MetricAccumulator(classes);
          accumulators.set(name, acc);
        }
        acc.add(rv, tv);
      }
      onProgress?.({ done: index + 1, total: source.count, phase: 'evaluate' });
    });
    if (samples === 0) throw new RangeError(`evaluation data "${source.description}" has no samples`);

    const outputs: OutputComparison[] = [];
    for (const name of names) {
      const acc = accumulators.get(name);
      if (!acc) continue;
      const m = acc.result();
      const out: OutputComparison = { name, sqnrDb: m.sqnrDb, cosine: m.cosine, minCosine: m.minCosine, maxAbsError: m.maxAbsError };
      if (m.top1Agreement !== undefined) out.top1Agreement = m.top1Agreement;
      outputs.push(out);
    }
    return { outputs, latencyMs, sizeBytes, samples, synthetic: source.synthetic, seconds: (performance.now() - start) / 1000 };
  } finally {
    await quantSession?.release();
    await floatSession.release();
  }
}

type Runner = (sample: Sample, context: string) => Promise<Record<string, ort.Tensor>>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median ms per run of each model; warm-up runs first (excluded), then float and quantized alternate. */
async function measureLatency(
  runFloat: Runner,
  runQuant: Runner,
  sample: Sample,
  runs: number,
  signal: AbortSignal | undefined,
  onProgress: CompareOptions['onProgress'],
): Promise<{ float: number; quantized: number }> {
  const context = 'the latency sample';
  for (let i = 0; i < WARMUP_RUNS; i++) {
    await runFloat(sample, context);
    await runQuant(sample, context);
  }
  const f: number[] = [];
  const q: number[] = [];
  for (let i = 0; i < runs; i++) {
    throwIfAborted(signal, 'evaluation');
    // Alternate which model goes first so neither always runs on a cache the other just warmed.
    const order: [Runner, number[]][] = i % 2 === 0 ? [[runFloat, f], [runQuant, q]] : [[runQuant, q], [runFloat, f]];
    for (const [run, times] of order) {
      const t0 = performance.now();
      await run(sample, context);
      times.push(performance.now() - t0);
    }
    onProgress?.({ done: i + 1, total: runs, phase: 'latency' });
  }
  return { float: median(f), quantized: median(q) };
}

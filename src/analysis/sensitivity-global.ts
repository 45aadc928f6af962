/**
 * Global sensitivity: what each layer's quantization costs the model's outputs, measured on the
 * whole model — layers + 1 quantized models run over the samples (plus the float model once, for
 * the reference), in worker threads.
 *
 * "Only this layer quantized" is measured as the part of the quantized model's output noise that
 * goes away when this layer alone is kept in float: N(all) − N(all but the layer), from the model
 * with every layer quantized and the model with all but this one. In QDQ a tensor's quantization
 * is shared by its producer and its consumers (a Relu folded into a Conv makes the Conv's output
 * quantized whoever reads it; a tensor stays quantized while any quantized node reads it), so a
 * model with nothing but one layer quantized would charge that layer for noise that keeping it in
 * float does not remove. The difference measures exactly what the suggestion can buy, so ranking
 * by it predicts what keeping the top layers in float does. Reported as an SQNR:
 * 10·log10(Σref² / (N(all) − N(all but the layer))), +∞ when keeping the layer in float does not
 * help; also the model's SQNR with all but this layer quantized.
 *
 * Work split: this thread builds each model with the project's transform (quantizeStaticQdq with
 * the analysis settings and ranges, the layer added to `exclude`), serializes it and hands the bytes
 * (transferred, not copied) to the next idle worker; a worker creates its own onnxruntime session
 * (intra-op threads 1, so N workers use N cores), runs every sample, and sends back per-output sums
 * Σref² and Σ(ref − test)². Samples and float reference outputs are given to each worker once.
 *
 * Why the worker is inline source (`new Worker(code, { eval: true })`): it needs only
 * onnxruntime-node, resolved here to an absolute path and passed in, so the same code runs from the
 * TypeScript sources (tsx), from the esbuild bundle dist/cli.js and from the extension's bundle,
 * with no extra bundle entry and no dependence on which file this module was bundled into (a
 * `new Worker(__filename)` would re-run the CLI's entry point in the worker).
 */
import { Worker } from 'node:worker_threads';
import { encodeModel } from '../onnx/encode';
import { isExternal } from '../onnx/external-data';
import type { OnnxModel } from '../onnx/model';
import type { ModelProto, TensorProto } from '../onnx/proto';
import { tensorToFloat32 } from '../onnx/tensor-data';
import type { QuantConfig } from '../quant/config';
import { quantizeStaticQdq } from '../quant/graph/qdq';
import type { FloatRange } from '../quant/types';
import type { Sample, SampleSource } from '../runtime/samples';
import { abortError, createSession, defaultThreads, raceAbort, runSession, throwIfAborted } from '../runtime/session';
import { toWire } from '../runtime/worker-sessions';
import type { RuntimeLayer } from './sensitivity-local';

export interface GlobalSensitivityOptions {
  model: OnnxModel;
  /** The prepared float model (folded, Q/DQ placement applied) the one-layer models derive from. */
  prepared: ModelProto;
  domain: '' | 'com.microsoft';
  layers: readonly RuntimeLayer[];
  ranges: ReadonlyMap<string, FloatRange>;
  config: QuantConfig;
  source: SampleSource;
  /** At most this many samples (default 8). */
  samples?: number;
  /** Worker threads (default: the cores available, at most one per layer). */
  workers?: number;
  signal?: AbortSignal;
  threads?: number;
  /** After each finished layer, in completion order. */
  onLayer?: (r: GlobalLayerResult, done: number, total: number) => void;
}

export interface GlobalLayerResult {
  name: string;
  /** Worst output's SQNR (dB) of the noise this layer's quantization adds; undefined with `error`. */
  sqnrDb?: number;
  /** The same per model output. */
  outputs: Record<string, number>;
  /** Worst output's SQNR of the model with every layer but this one quantized. */
  leaveOneOutSqnrDb?: number;
  error?: string;
}

export interface GlobalSensitivityResult {
  layers: Map<string, GlobalLayerResult>;
  /** Worst output's SQNR of the model with every layer quantized. */
  allQuantizedSqnrDb: number;
  outputs: string[];
  samples: number;
  workers: number;
  seconds: number;
}


type WorkerMessage =
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'result'; id: number; sums: ([number, number] | null)[] }
  | { type: 'error'; id: number; message: string };

/** The worker: plain JavaScript, only onnxruntime-node (see the header). */
const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const feeds = workerData.samples.map((s) => {
  const f = {};
  for (const [k, v] of Object.entries(s)) f[k] = new ort.Tensor(v.type, v.data, v.dims);
  return f;
});
const outputs = workerData.outputs;
const refs = workerData.refs;
const options = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', logSeverityLevel: 3 };
if (workerData.externalDir) options.extra = { session: { model_external_initializers_file_folder_path: workerData.externalDir } };
// Stopping is cooperative: onnxruntime must not be torn down in the middle of a call, so a stop
// request is honoured between runs, after the session is released.
let stopping = false;
let busy = false;
const stopped = () => {
  parentPort.postMessage({ type: 'stopped' });
  parentPort.close();
};
parentPort.on('message', async (msg) => {
  if (msg.type === 'stop') {
    stopping = true;
    if (!busy) stopped();
    return;
  }
  busy = true;
  let session;
  let result;
  try {
    session = await ort.InferenceSession.create(msg.bytes, options);
    const sums = outputs.map(() => [0, 0]);
    for (let k = 0; k < feeds.length && !stopping; k++) {
      const out = await session.run(feeds[k], outputs);
      for (let j = 0; j < outputs.length; j++) {
        const ref = refs[k][j];
        const t = out[outputs[j]];
        const d = t && t.data;
        if (!sums[j]) continue;
        if (!ref || !(d instanceof Float32Array) || d.length !== ref.length) { sums[j] = null; continue; }
        let r2 = 0, e2 = 0;
        for (let i = 0; i < ref.length; i++) { const r = ref[i], e = r - d[i]; r2 += r * r; e2 += e * e; }
        sums[j][0] += r2;
        sums[j][1] += e2;
      }
      for (const t of Object.values(out)) if (t && t.dispose) t.dispose();
    }
    result = { type: 'result', id: msg.id, sums };
  } catch (err) {
    result = { type: 'error', id: msg.id, message: String((err && err.message) || err) };
  } finally {
    if (session) await session.release();
  }
  busy = false;
  if (stopping) stopped();
  else parentPort.postMessage(result);
});
parentPort.postMessage({ type: 'ready' });
`;

let liveWorkers = 0;

/**
 * Worker threads global sensitivity started that have not exited yet: a diagnostic for the tests
 * that check that cancellation and repeated analyses leave no thread behind.
 */
export function liveWorkerCount(): number {
  return liveWorkers;
}

/** Asks a worker to stop after its current run and waits for it to exit (terminating it after 60 s). */
function stopWorker(w: Worker): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => void w.terminate().then(() => resolve(), () => resolve()), 60_000);
    w.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    w.on('message', (m: WorkerMessage) => {
      if (m.type === 'stopped') void w.terminate();
    });
    w.postMessage({ type: 'stop' });
  });
}


function sqnrDb(refSq: number, errSq: number): number {
  if (errSq === 0) return Infinity;
  return 10 * Math.log10(refSq / errSq);
}

/** The quantized model with `without` kept in float (every layer quantized when undefined). */
export function quantizedWithout(
  prepared: ModelProto,
  without: RuntimeLayer | undefined,
  ranges: ReadonlyMap<string, FloatRange>,
  config: QuantConfig,
  domain: '' | 'com.microsoft',
  readWeight: (t: TensorProto) => Float32Array,
): { model: ModelProto; quantized: Set<string> } {
  const exclude = without ? [...config.exclude, without.name] : config.exclude;
  const result = quantizeStaticQdq(prepared, { config: { ...config, mode: 'static', exclude }, ranges, readWeight, domain });
  return { model: result.model, quantized: new Set(result.quantized.map((q) => q.name)) };
}

export async function globalSensitivity(o: GlobalSensitivityOptions): Promise<GlobalSensitivityResult> {
  const start = performance.now();
  const { model, prepared, signal } = o;
  const what = 'global sensitivity';
  throwIfAborted(signal, what);

  // Samples and float reference outputs.
  const limit = Math.max(1, o.samples ?? 8);
  const samples: Sample[] = [];
  const iterator = o.source.samples(signal)[Symbol.asyncIterator]();
  try {
    while (samples.length < limit) {
      const next = await raceAbort(iterator.next(), signal, what);
      if (next.done) break;
      samples.push(next.value);
    }
  } finally {
    void iterator.return?.()?.catch(() => undefined);
  }
  if (samples.length === 0) throw new RangeError(`sample data "${o.source.description}" has no samples`);
  const floatSession = await createSession(prepared, { threads: o.threads ?? defaultThreads(), name: model.file, externalDataDir: model.dir });
  const outputs = floatSession.outputNames.filter((n) => {
    const m = floatSession.outputMetadata.find((x) => x.name === n);
    return m !== undefined && m.isTensor && m.type === 'float32';
  });
  const refs: (Float32Array | null)[][] = [];
  try {
    for (const [k, s] of samples.entries()) {
      const out = await runSession(floatSession, s, outputs, model.file, `sample ${k + 1}`);
      refs.push(outputs.map((n) => (out[n]?.data instanceof Float32Array ? Float32Array.from(out[n]!.data as Float32Array) : null)));
      for (const t of Object.values(out)) t.dispose();
    }
  } finally {
    await floatSession.release();
  }
  const wireSamples = samples.map((s) => Object.fromEntries(Object.entries(s).map(([k, t]) => [k, toWire(t)])));

  const layers = o.layers;
  const results = new Map<string, GlobalLayerResult>();
  const total = layers.length;
  const nWorkers = Math.max(1, Math.min(o.workers ?? defaultThreads(), total));
  if (total === 0 || outputs.length === 0) {
    for (const l of layers) results.set(l.name, { name: l.name, outputs: {}, error: 'the model has no float32 output to compare' });
    return { layers: results, allQuantizedSqnrDb: NaN, outputs, samples: samples.length, workers: 0, seconds: (performance.now() - start) / 1000 };
  }
  const readWeight = (t: TensorProto) => tensorToFloat32(t, isExternal(t) ? model.rawBytes(t) : undefined, model.file);
  const ortPath = require.resolve('onnxruntime-node');
  const workerData = { ortPath, samples: wireSamples, refs, outputs, externalDir: model.dir };
  const base = quantizedWithout(prepared, undefined, o.ranges, o.config, o.domain, readWeight);

  // Job 0: every layer quantized; job k: all but layers[k − 1].
  type Sums = ([number, number] | null)[];
  let baseSums: Sums | undefined;
  const waiting: { layer: RuntimeLayer; sums: Sums }[] = [];
  const worstOf = (per: Record<string, number>) => Object.values(per).reduce((w, v) => (v >= w ? w : v), Infinity);
  const resultFor = (layer: RuntimeLayer, sums: Sums): GlobalLayerResult => {
    const per: Record<string, number> = {};
    const loo: Record<string, number> = {};
    sums.forEach((s, j) => {
      const b = baseSums![j];
      if (!s || !b) return;
      const name = outputs[j]!;
      loo[name] = sqnrDb(s[0], s[1]);
      const added = b[1] - s[1];
      per[name] = Number.isNaN(added) ? NaN : added > 0 ? 10 * Math.log10(b[0] / added) : Infinity;
    });
    return { name: layer.name, sqnrDb: worstOf(per), outputs: per, leaveOneOutSqnrDb: worstOf(loo) };
  };

  return await new Promise<GlobalSensitivityResult>((resolve, reject) => {
    const workers: Worker[] = [];
    let next = -1;
    let done = 0;
    let settled = false;
    const pending = new Map<number, RuntimeLayer | undefined>();
    const summary = (): GlobalSensitivityResult => {
      const per: Record<string, number> = {};
      baseSums?.forEach((b, j) => {
        if (b) per[outputs[j]!] = sqnrDb(b[0], b[1]);
      });
      return { layers: results, allQuantizedSqnrDb: worstOf(per), outputs, samples: samples.length, workers: nWorkers, seconds: (performance.now() - start) / 1000 };
    };
    /** Stops every worker between two runs (never inside an onnxruntime call), then settles. */
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      const end = () => (err ? reject(err) : resolve(summary()));
      void Promise.all(workers.map((w) => stopWorker(w))).then(end, end);
    };
    const onAbort = () => finish(abortError(signal!, what));
    signal?.addEventListener('abort', onAbort, { once: true });
    const record = (r: GlobalLayerResult) => {
      if (settled) return;
      results.set(r.name, r);
      done++;
      o.onLayer?.(r, done, total);
      if (done === total) finish();
    };
    const failAll = (message: string) => {
      for (const l of layers) if (!results.has(l.name)) record({ name: l.name, outputs: {}, error: message });
    };
    /** Gives the worker the next model to run. */
    const feed = (w: Worker) => {
      while (next < total && !settled) {
        const index = next++;
        const layer = index < 0 ? undefined : layers[index]!;
        let built: ModelProto;
        try {
          if (!layer) built = base.model;
          else if (!base.quantized.has(layer.name)) {
            record({ name: layer.name, outputs: {}, error: 'the static transform does not quantize it with these settings' });
            continue;
          } else built = quantizedWithout(prepared, layer, o.ranges, o.config, o.domain, readWeight).model;
        } catch (err) {
          if (!layer) {
            failAll(`cannot quantize the model: ${err instanceof Error ? err.message : String(err)}`);
            return;
          }
          record({ name: layer.name, outputs: {}, error: err instanceof Error ? err.message : String(err) });
          continue;
        }
        const bytes = encodeModel(built);
        pending.set(index, layer);
        w.postMessage({ type: 'job', id: index, bytes }, [bytes.buffer as ArrayBuffer]);
        return;
      }
    };
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData });
      liveWorkers++;
      w.once('exit', () => liveWorkers--);
      workers.push(w);
      w.on('message', (m: WorkerMessage) => {
        if (settled || m.type === 'stopped') return;
        if (m.type === 'ready') {
          feed(w);
          return;
        }
        const layer = pending.get(m.id);
        pending.delete(m.id);
        if (!layer) {
          // The all-quantized model: every layer result waits for it.
          if (m.type === 'error') failAll(`onnxruntime cannot run the quantized model: ${m.message}`);
          else {
            baseSums = m.sums;
            for (const x of waiting.splice(0)) record(resultFor(x.layer, x.sums));
          }
        } else if (m.type === 'error') record({ name: layer.name, outputs: {}, error: `onnxruntime: ${m.message}` });
        else if (baseSums) record(resultFor(layer, m.sums));
        else waiting.push({ layer, sums: m.sums });
        if (!settled) feed(w);
      });
      w.on('error', (err) => finish(err));
    }
    if (signal?.aborted) onAbort();
  });
}

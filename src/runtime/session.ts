/**
 * onnxruntime-node sessions with the project's defaults: created from a file, bytes, a decoded
 * ModelProto or an OnnxModel; always released (`withSession`); load and run failures turned into
 * errors that name the model and carry onnxruntime's own text. Also the cancellation helpers that
 * every loop over session runs shares.
 */
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/encode';
import { isExternal } from '../onnx/external-data';
import { OnnxModel, walkGraphs } from '../onnx/model';
import type { ModelProto } from '../onnx/proto';
import type { Sample } from './samples';

/**
 * A model onnxruntime can load: a file path, serialized bytes, a decoded proto or a loaded model.
 * An OnnxModel read from a file is loaded from the bytes read (its proto is not re-encoded); pass
 * a ModelProto for a transformed model.
 */
export type ModelSource = string | Uint8Array | ModelProto | OnnxModel;

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Intra-op threads; default: the cores available to this process. */
  threads?: number;
  /** onnxruntime graph optimizations, default 'all' (what deployment runs). */
  optimization?: OptimizationLevel;
  /** How errors name the model; default the file path (or "<memory>"). */
  name?: string;
  /** Folder that external data of an in-memory model is relative to (an OnnxModel knows its own). */
  externalDataDir?: string;
}

/** onnxruntime refused to load a model (corrupt, unsupported op or opset, bad external data, …). */
export class ModelLoadError extends Error {
  constructor(
    readonly file: string,
    readonly ortMessage: string,
  ) {
    super(`${file}: onnxruntime cannot load the model: ${ortMessage}`);
    this.name = 'ModelLoadError';
  }
}

/** onnxruntime loaded a model but failed to run it on some input. */
export class ModelRunError extends Error {
  constructor(
    readonly file: string,
    readonly ortMessage: string,
    readonly context = '',
  ) {
    super(`${file}: onnxruntime failed to run the model${context ? ` on ${context}` : ''}: ${ortMessage}`);
    this.name = 'ModelRunError';
  }
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

/** The name errors use for a model source when the caller gave none. */
export function sourceName(model: ModelSource): string {
  if (typeof model === 'string') return model;
  if (model instanceof OnnxModel) return model.file;
  return '<memory>';
}

/** True when some tensor of the model (any graph) keeps its data in an external file. */
export function hasExternalData(proto: ModelProto): boolean {
  if (!proto.graph) return false;
  for (const g of walkGraphs(proto.graph)) {
    if (g.initializer.some(isExternal)) return true;
    for (const n of g.node) for (const a of n.attribute) if ((a.t && isExternal(a.t)) || a.tensors.some(isExternal)) return true;
  }
  return false;
}

/** onnxruntime's options for a session with the project's defaults (also what worker-thread sessions get). */
export function ortOptions(opts: SessionOptions, externalDir: string | undefined): ort.InferenceSession.SessionOptions {
  const threads = opts.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const o: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.optimization ?? 'all',
    // 3 = errors only: published models trigger warnings (unused initializers) that mean nothing to users.
    logSeverityLevel: 3,
  };
  // Bytes carry no path, so onnxruntime needs to be told where external data files are.
  if (externalDir) o.extra = { session: { model_external_initializers_file_folder_path: externalDir } };
  return o;
}

/** Creates a session; throws ModelLoadError (with onnxruntime's message and the file name) on failure. */
export async function createSession(model: ModelSource, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const name = opts.name ?? sourceName(model);
  let target: string | Uint8Array;
  let externalDir = opts.externalDataDir;
  if (typeof model === 'string' || model instanceof Uint8Array) target = model;
  else {
    const proto = model instanceof OnnxModel ? model.proto : model;
    // An unchanged OnnxModel read from disk is its own serialization: no need to encode it again.
    target = model instanceof OnnxModel && model.buffer.length > 0 ? model.buffer : encodeModel(proto);
    if (model instanceof OnnxModel && externalDir === undefined && hasExternalData(proto)) externalDir = model.dir;
  }
  const options = ortOptions(opts, externalDir);
  let session: ort.InferenceSession;
  try {
    session = typeof target === 'string' ? await ort.InferenceSession.create(target, options) : await ort.InferenceSession.create(target, options);
  } catch (err) {
    throw new ModelLoadError(name, errorText(err));
  }
  return tracked(session);
}

// ---- live sessions ----

let liveSessions = 0;

/**
 * Sessions created by createSession and not yet released: a diagnostic for the tests that check
 * that cancellation and repeated runs leave no onnxruntime session (and its native memory) behind.
 */
export function liveSessionCount(): number {
  return liveSessions;
}

/** Counts the session until its first release. */
function tracked(session: ort.InferenceSession): ort.InferenceSession {
  liveSessions++;
  const release = session.release.bind(session);
  let released = false;
  session.release = async () => {
    if (!released) {
      released = true;
      liveSessions--;
    }
    return release();
  };
  return session;
}

/** Runs `fn` with a fresh session and releases the session whatever happens. */
export async function withSession<T>(model: ModelSource, opts: SessionOptions, fn: (session: ort.InferenceSession) => Promise<T>): Promise<T> {
  const session = await createSession(model, opts);
  try {
    return await fn(session);
  } finally {
    await session.release();
  }
}

/** One run; onnxruntime's failures become ModelRunError naming the model (and the sample, via `context`). */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches: readonly string[] | undefined,
  name: string,
  context = '',
): Promise<Record<string, ort.Tensor>> {
  try {
    return fetches ? await session.run(feeds, fetches) : await session.run(feeds);
  } catch (err) {
    throw new ModelRunError(name, errorText(err), context);
  }
}

/** onnxruntime's message on one line (it spans several; our errors are one line each). */
function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ').trim();
}

// ---- cancellation ----

/** The error every cancelled operation rejects with: name "AbortError", the signal's reason as cause. */
export function abortError(signal: AbortSignal, what = 'operation'): Error {
  const err = new Error(`${what} cancelled`, { cause: signal.reason });
  err.name = 'AbortError';
  return err;
}

export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/**
 * Settles like `promise`, or rejects with an AbortError as soon as `signal` fires (a sample source
 * waiting on disk or a decoder must not hold up cancellation). The promise keeps running; its
 * result is dropped.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined, what?: string): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Runs `fn` on every sample of `source` in order, one at a time, checking `signal` before each
 * (a stuck source is raced against it too). Returns the number of samples seen. When the loop ends
 * early the source is told to close its files; that is not awaited, since a cancelled source may
 * still be mid-read.
 */
export async function forEachSample(
  source: { samples(signal?: AbortSignal): AsyncIterable<Sample> },
  signal: AbortSignal | undefined,
  what: string,
  fn: (sample: Sample, index: number) => Promise<void>,
): Promise<number> {
  const iterator = source.samples(signal)[Symbol.asyncIterator]();
  let count = 0;
  let finished = false;
  try {
    for (;;) {
      throwIfAborted(signal, what);
      const next = await raceAbort(iterator.next(), signal, what);
      if (next.done) {
        finished = true;
        return count;
      }
      await fn(next.value, count);
      count++;
    }
  } finally {
    if (!finished) void iterator.return?.()?.catch(() => undefined);
  }
}

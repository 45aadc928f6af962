/**
 * The message protocol between a host (the extension host, or a test) and the job worker
 * (dist/job-worker.js, entry src/runtime/worker/job-worker.ts). Plain Node: no `vscode`.
 *
 * One worker runs one job: the host creates it with the job in `workerData`, the worker streams
 * `progress` / `analysis` events and ends with exactly one `done`, `failed` or `cancelled`, then
 * exits on its own. `{ type: 'cancel' }` from the host aborts the job's AbortSignal inside the
 * worker; the pipeline then deletes its temporary file and releases its onnxruntime sessions
 * before the worker answers `cancelled`.
 *
 * Both ends are this project's code, so messages are typed, not validated; errors travel as plain
 * data (structured clone keeps no Error subclass).
 */
import type { AnalysisEvent } from '../../analysis/analyze';
import type { AnalysisReport } from '../../analysis/report';
import type { QuantConfig } from '../../quant/config';
import type { ComparisonResult } from '../evaluate';
import type { PipelineProgress, QuantizeReport } from '../quantize-model';

/** Settings a job takes, as the CLI's options (same names and precedence: defaults < target < recipe < these). */
export interface JobSettings {
  mode?: QuantConfig['mode'];
  method?: QuantConfig['method'];
  perChannel?: boolean;
  target?: NonNullable<QuantConfig['target']>;
  samples?: number;
  /** Where activations get Q/DQ (static): as `--activation-qdq`. */
  activationQdq?: QuantConfig['activationQdq'];
  /** A recipe file (settings and per-node overrides). */
  recipe?: string;
  /** Calibration folder; none: synthetic data (every report says so). */
  calib?: string;
  /** Held-out folder; none: a share of `calib` (or synthetic). */
  eval?: string;
  evalFraction?: number;
  /** onnxruntime intra-op threads. */
  threads?: number;
}

export interface QuantizeJob {
  kind: 'quantize';
  input: string;
  output: string;
  settings: JobSettings;
  /** Timed runs per model in the comparison (default 20; 0 skips). */
  latencyRuns?: number;
}

export interface AnalyzeJob {
  kind: 'analyze';
  input: string;
  settings: JobSettings;
  sensitivity: 'none' | 'local' | 'global';
  suggest: boolean;
  targetSqnrDb?: number;
  /** Worker threads for global sensitivity. */
  workers?: number;
  /** Where to write the suggestion as a recipe (refused when it is the model itself). */
  writeRecipe?: string;
  /**
   * Without a calibration folder, when synthetic inputs cannot be made (symbolic dims, inputs of
   * unknown meaning): analyze the weights only and say so in a `log` message, instead of failing.
   */
  weightsOnlyFallback?: boolean;
  /** No data at all: weight statistics and findings only (as `onnx-quant analyze` without data). */
  weightsOnly?: boolean;
}

export interface CompareJob {
  kind: 'compare';
  floatModel: string;
  quantModel: string;
  settings: JobSettings;
  latencyRuns?: number;
}

export type Job = QuantizeJob | AnalyzeJob | CompareJob;

export interface CompareReport {
  floatModel: string;
  quantModel: string;
  comparison: ComparisonResult;
  /** How the evaluation data was chosen. */
  evalSource: string;
  warnings: string[];
}

export type JobResult =
  | { kind: 'quantize'; report: QuantizeReport }
  | { kind: 'analyze'; report: AnalysisReport; recipeWritten?: string }
  | { kind: 'compare'; report: CompareReport };

/** A failure, as data. `name` is the error class (SampleDataError, QuantizedModelError, …). */
export interface JobError {
  name: string;
  message: string;
}

// ---- host → worker

export interface CancelMessage {
  type: 'cancel';
}
export type HostToWorker = CancelMessage;

// ---- worker → host

export type WorkerToHost =
  | { type: 'progress'; progress: PipelineProgress }
  | { type: 'analysis'; event: AnalysisEvent }
  | { type: 'log'; message: string }
  | { type: 'done'; result: JobResult }
  | { type: 'failed'; error: JobError }
  | { type: 'cancelled' };

/** The data of an error thrown in the worker. */
export function toJobError(err: unknown): JobError {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

/** A JobError as an Error again on the host (same name and message). */
export function fromJobError(e: JobError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** The AbortError the host's runJob rejects with when the job was cancelled. */
export function cancelledError(what: string): Error {
  const err = new Error(`${what} cancelled`);
  err.name = 'AbortError';
  return err;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

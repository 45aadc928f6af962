/**
 * Host side of the job worker: starts dist/job-worker.js on a job, forwards progress, turns the
 * signal into a `cancel` message and settles when the worker has ended. Plain Node (the extension
 * host and the unit tests use it alike).
 *
 * Cancelling asks the worker to stop and waits for its `cancelled` (the job removes what it wrote
 * and releases its sessions first); a worker that has not ended `CANCEL_GRACE_MS` later is
 * terminated. The promise settles only once the thread is gone, so nothing keeps running.
 */
import { Worker } from 'node:worker_threads';
import type { AnalysisEvent } from '../../analysis/analyze';
import type { PipelineProgress } from '../quantize-model';
import { cancelledError, fromJobError, type Job, type JobResult, type WorkerToHost } from './job-protocol';

/** How long a cancelled job may take to clean up before its thread is terminated. */
export const CANCEL_GRACE_MS = 10_000;

export interface RunJobOptions {
  /** Path of job-worker.js (the bundle). */
  workerScript: string;
  signal?: AbortSignal;
  onProgress?: (p: PipelineProgress) => void;
  onAnalysis?: (e: AnalysisEvent) => void;
  onLog?: (message: string) => void;
}

/** A worker on the bundle, or on the TypeScript entry through tsx's CommonJS hook (tests, dev). */
function startWorker(script: string, job: Job): Worker {
  if (script.endsWith('.ts')) return new Worker(`require('tsx/cjs'); require(${JSON.stringify(script)});`, { eval: true, workerData: job });
  return new Worker(script, { workerData: job });
}

/** Runs one job in a fresh worker thread. Rejects with an AbortError when cancelled. */
export function runJobInWorker(job: Job, o: RunJobOptions): Promise<JobResult> {
  return new Promise<JobResult>((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(cancelledError(job.kind));
      return;
    }
    const worker = startWorker(o.workerScript, job);
    let outcome: { ok: true; result: JobResult } | { ok: false; error: Error } | undefined;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      worker.postMessage({ type: 'cancel' });
      killTimer = setTimeout(() => {
        outcome ??= { ok: false, error: cancelledError(job.kind) };
        void worker.terminate();
      }, CANCEL_GRACE_MS);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: WorkerToHost) => {
      switch (m.type) {
        case 'progress':
          o.onProgress?.(m.progress);
          return;
        case 'analysis':
          o.onAnalysis?.(m.event);
          return;
        case 'log':
          o.onLog?.(m.message);
          return;
        case 'done':
          outcome = { ok: true, result: m.result };
          return;
        case 'failed':
          outcome = { ok: false, error: fromJobError(m.error) };
          return;
        case 'cancelled':
          outcome = { ok: false, error: cancelledError(job.kind) };
          return;
      }
    });
    worker.on('error', (err) => {
      outcome ??= { ok: false, error: err };
    });
    // Settle on exit only: the thread, and with it every onnxruntime session, is gone by then.
    worker.on('exit', (code) => {
      if (killTimer) clearTimeout(killTimer);
      o.signal?.removeEventListener('abort', onAbort);
      const o2 = outcome ?? { ok: false as const, error: o.signal?.aborted ? cancelledError(job.kind) : new Error(`the job worker stopped (exit code ${code}) before finishing`) };
      if (o2.ok) resolve(o2.result);
      else reject(o2.error);
    });
  });
}

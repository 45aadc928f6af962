/**
 * One model, one onnxruntime session in each of N worker threads, so that N samples run at once.
 * On the small-batch models calibration runs, onnxruntime's intra-op threads keep the cores
 * busy for only part of an inference (PP-OCRv4's detector: two single-threaded sessions side by
 * side do 1.7× the samples per second of one two-threaded session), and onnxruntime-node runs
 * `session.run` on the calling thread, so this thread could not overlap two runs by itself.
 *
 * Each run's outputs come back as transferred buffers (not copied) and are wrapped as ort.Tensor
 * here; feeds are copied once into the worker. Like global sensitivity's workers, the worker is
 * inline source that needs only onnxruntime-node (see analysis/sensitivity-global.ts for why), and
 * stopping is cooperative: a worker finishes its current run, releases its session and exits.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { OptimizationLevel } from './session';
import { ModelLoadError, ModelRunError, ortOptions } from './session';

/** A tensor as it crosses threads. */
export interface WireTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: number[];
}

type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; outputs: Record<string, WireTensor> }
  | { type: 'run-error'; id: number; message: string }
  | { type: 'stopped' };

const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
let session;
let busy = 0;
let stopping = false;
const stop = async () => {
  if (session) await session.release().catch(() => undefined);
  session = undefined;
  parentPort.postMessage({ type: 'stopped' });
  parentPort.close();
};
const oneLine = (err) => String((err && err.message) || err).replace(/\s*\n\s*/g, ' ').trim();
parentPort.on('message', async (msg) => {
  if (msg.type === 'stop') {
    stopping = true;
    if (!busy) await stop();
    return;
  }
  busy++;
  let reply;
  const transfer = [];
  try {
    const feeds = {};
    for (const [k, v] of Object.entries(msg.feeds)) feeds[k] = new ort.Tensor(v.type, v.data, v.dims);
    const out = await session.run(feeds, msg.fetches);
    const outputs = {};
    for (const [k, t] of Object.entries(out)) {
      let data = t.data;
      if (ArrayBuffer.isView(data)) {
        // Whole buffers move without a copy; a view of a larger one is copied first.
        if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice();
        transfer.push(data.buffer);
      }
      outputs[k] = { type: t.type, data, dims: Array.from(t.dims) };
    }
    reply = { type: 'result', id: msg.id, outputs };
  } catch (err) {
    reply = { type: 'run-error', id: msg.id, message: oneLine(err) };
    transfer.length = 0;
  }
  parentPort.postMessage(reply, transfer);
  busy--;
  if (stopping && !busy) await stop();
});
(async () => {
  try {
    session = await ort.InferenceSession.create(workerData.bytes, workerData.options);
    parentPort.postMessage({ type: 'ready' });
  } catch (err) {
    parentPort.postMessage({ type: 'load-error', message: oneLine(err) });
  }
})();
`;

let liveWorkers = 0;

/** Session workers started that have not exited yet (the tests check that none are left behind). */
export function liveSessionWorkerCount(): number {
  return liveWorkers;
}

export interface WorkerSessionOptions {
  workers: number;
  /** onnxruntime intra-op threads of each worker's session. */
  threadsPerWorker: number;
  optimization?: OptimizationLevel;
  /** How errors name the model. */
  name: string;
  /** Folder external data is relative to. */
  externalDataDir?: string;
}

interface Pending {
  resolve: (outputs: Record<string, ort.Tensor>) => void;
  reject: (err: Error) => void;
  context: string;
}

/** A copy of a tensor that owns its buffer: a view would carry its whole underlying buffer across. */
export function toWire(t: ort.Tensor): WireTensor {
  const d = t.data;
  const data = ArrayBuffer.isView(d) ? (d as unknown as { slice(): ort.Tensor.DataType }).slice() : [...(d as string[])];
  return { type: t.type, data, dims: [...t.dims] };
}

class SessionWorker {
  readonly pending = new Map<number, Pending>();
  exited = false;
  private readonly exit: Promise<void>;

  constructor(
    readonly worker: Worker,
    private readonly name: string,
  ) {
    liveWorkers++;
    this.exit = new Promise((resolve) => {
      worker.once('exit', () => {
        liveWorkers--;
        this.exited = true;
        this.failAll(`a session worker stopped unexpectedly`);
        resolve();
      });
    });
    worker.on('error', (err) => this.failAll(`a session worker failed: ${err.message}`));
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'result' || m.type === 'run-error') {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.type === 'run-error') p.reject(new ModelRunError(this.name, m.message, p.context));
        else p.resolve(Object.fromEntries(Object.entries(m.outputs).map(([k, w]) => [k, new ort.Tensor(w.type, w.data as never, w.dims)])));
      } else if (m.type === 'stopped') void worker.terminate();
    });
  }

  private failAll(message: string): void {
    for (const p of this.pending.values()) p.reject(new ModelRunError(this.name, message, p.context));
    this.pending.clear();
  }

  /** Waits for the first message: the session loaded, or onnxruntime's refusal. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'load-error') reject(new ModelLoadError(this.name, m.message));
        else return;
        this.worker.off('message', onMessage);
      };
      this.worker.on('message', onMessage);
      void this.exit.then(() => reject(new ModelLoadError(this.name, 'the session worker exited before loading the model')));
    });
  }

  /** Asks the worker to stop after its current run; terminates it if it has not exited in 60 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const timer = setTimeout(() => void this.worker.terminate(), 60_000);
    this.worker.postMessage({ type: 'stop' });
    await this.exit;
    clearTimeout(timer);
  }
}

/** Runs one model in N worker threads; `run` goes to the worker with the fewest runs in flight. */
export class WorkerSessions {
  private nextId = 0;

  private constructor(
    private readonly workers: SessionWorker[],
    private readonly name: string,
  ) {}

  /** Runs that can go at once: one per worker. */
  get parallel(): number {
    return this.workers.length;
  }

  static async create(bytes: Uint8Array, o: WorkerSessionOptions): Promise<WorkerSessions> {
    const options = ortOptions({ threads: o.threadsPerWorker, optimization: o.optimization }, o.externalDataDir);
    const workerData = { ortPath: require.resolve('onnxruntime-node'), bytes, options };
    const workers = Array.from({ length: Math.max(1, o.workers) }, () => new SessionWorker(new Worker(WORKER_SOURCE, { eval: true, workerData }), o.name));
    const pool = new WorkerSessions(workers, o.name);
    try {
      await Promise.all(workers.map((w) => w.ready()));
    } catch (err) {
      await pool.release();
      throw err;
    }
    return pool;
  }

  /** One run; onnxruntime's failures become ModelRunError naming the model and `context`. */
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], context = ''): Promise<Record<string, ort.Tensor>> {
    const live = this.workers.filter((x) => !x.exited);
    // A message to a worker that has exited would never be answered.
    if (!live.length) return Promise.reject(new ModelRunError(this.name, 'every session worker has stopped', context));
    let w = live[0]!;
    for (const x of live) if (x.pending.size < w.pending.size) w = x;
    const id = this.nextId++;
    const wire = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, toWire(t)]));
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject, context });
      const transfer = Object.values(wire)
        .map((t) => t.data)
        .filter((d): d is Exclude<ort.Tensor.DataType, string[]> => ArrayBuffer.isView(d))
        .map((d) => d.buffer as ArrayBuffer);
      w.worker.postMessage({ type: 'run', id, feeds: wire, fetches }, transfer);
    });
  }

  /** Stops every worker (each after its current run) and waits for them to exit. */
  async release(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}

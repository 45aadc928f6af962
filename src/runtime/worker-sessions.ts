/**
 * One model, one onnxruntime session in each of N worker threads, so that N samples run at once.
 * On the small-batch models calibration runs, onnxruntime's intra-op threads keep the cores
 * busy for only part of an inference (PP-OCRv4's detector: two single-threaded sessions side by
 * side do 1.7× the samples per second of one two-threaded session), and onnxruntime-node runs
 * `session.run` on the calling thread, so this thread could not overlap two runs by itself.
 *
 * Each run's outputs come back as transferred buffers (not copied) and are wrapped as ort.Tensor
 * here; feeds are copied once into the worker. A run given a shared slot (see `run`) passes its
 * feeds and outputs through that SharedArrayBuffer instead: no new buffer on this thread per run.
 * Like global sensitivity's workers, the worker is inline source that needs only onnxruntime-node
 * (see analysis/sensitivity-global.ts for why), and stopping is cooperative: a worker finishes its
 * current run, releases its session and exits.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { OptimizationLevel } from './session';
import { ModelLoadError, ModelRunError, ortOptions } from './session';

/** A tensor as it crosses threads: its own data, or (`shared`) where it sits in the run's slot. */
export interface WireTensor {
  type: ort.Tensor.Type;
  data?: ort.Tensor.DataType;
  dims: number[];
  shared?: SlotPlace;
}

/** A typed array's place in a shared slot: its constructor's name, byte offset and element count. */
interface SlotPlace {
  array: string;
  offset: number;
  length: number;
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
// Buffers copied into a slot are garbage at once, and V8 collects such external memory only
// after ~64 MB of it per isolate: a young-generation collection every COLLECT_BYTES of them
// bounds it (the flag is on only while this isolate takes the function).
const COLLECT_BYTES = 16 * 2 ** 20;
let collect;
try {
  const v8 = require('node:v8');
  v8.setFlagsFromString('--expose-gc');
  try {
    collect = require('node:vm').runInNewContext('gc');
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
} catch {
  collect = undefined;
}
let garbage = 0;
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
    for (const [k, v] of Object.entries(msg.feeds)) {
      // onnxruntime-node refuses shared memory: a slot's feed is copied out first.
      const data = v.shared ? new globalThis[v.shared.array](msg.slot, v.shared.offset, v.shared.length).slice() : v.data;
      if (v.shared) garbage += data.byteLength;
      feeds[k] = new ort.Tensor(v.type, data, v.dims);
    }
    const out = await session.run(feeds, msg.fetches);
    const outputs = {};
    // With a slot, outputs are copied into it one after the other (8-byte aligned) while they fit.
    let used = 0;
    for (const [k, t] of Object.entries(out)) {
      let data = t.data;
      const offset = Math.ceil(used / 8) * 8;
      if (msg.slot && ArrayBuffer.isView(data) && offset + data.byteLength <= msg.slot.byteLength) {
        new Uint8Array(msg.slot, offset, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        outputs[k] = { type: t.type, dims: Array.from(t.dims), shared: { array: data.constructor.name, offset, length: data.length } };
        used = offset + data.byteLength;
        garbage += data.byteLength;
        continue;
      }
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
  if (collect && garbage >= COLLECT_BYTES) {
    garbage = 0;
    collect({ type: 'minor' });
  }
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
  slot?: SharedArrayBuffer;
}

/**
 * Bytes a slot needs for arrays of these byte lengths, laid out as `run` lays them out: one after
 * the other, each at an 8-byte aligned offset (the worker's copy-out follows the same rule).
 */
export function slotBytes(byteLengths: Iterable<number>): number {
  let used = 0;
  for (const n of byteLengths) used = alignInSlot(used) + n;
  return used;
}

function alignInSlot(offset: number): number {
  return Math.ceil(offset / 8) * 8;
}

/** Typed arrays a slot can hold, by constructor name (what the worker reports). */
const SLOT_ARRAYS: Record<string, new (buffer: SharedArrayBuffer, offset: number, length: number) => ort.Tensor.DataType> = {
  Float32Array,
  Float64Array,
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
};

/** A tensor from the worker: its own buffer, or a view of the run's slot. */
function fromWire(w: WireTensor, slot: SharedArrayBuffer | undefined): ort.Tensor {
  if (!w.shared) return new ort.Tensor(w.type, w.data as never, w.dims);
  const array = SLOT_ARRAYS[w.shared.array];
  if (!array || !slot) throw new Error(`a session worker returned a ${w.shared.array} in shared memory that is not there`);
  return new ort.Tensor(w.type, new array(slot, w.shared.offset, w.shared.length) as never, w.dims);
}

/**
 * The feeds as they go to the worker: typed arrays copied into the slot one after the other
 * (8-byte aligned) while they fit, the rest copied into buffers of their own (transferred).
 */
function feedsToWire(feeds: Record<string, ort.Tensor>, slot: SharedArrayBuffer | undefined): { wire: Record<string, WireTensor>; transfer: ArrayBuffer[] } {
  const wire: Record<string, WireTensor> = {};
  const transfer: ArrayBuffer[] = [];
  let used = 0;
  for (const [k, t] of Object.entries(feeds)) {
    const d = t.data;
    const offset = alignInSlot(used);
    if (slot && ArrayBuffer.isView(d) && d.constructor.name in SLOT_ARRAYS && offset + d.byteLength <= slot.byteLength) {
      new Uint8Array(slot, offset, d.byteLength).set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      wire[k] = { type: t.type, dims: [...t.dims], shared: { array: d.constructor.name, offset, length: d.length } };
      used = offset + d.byteLength;
      continue;
    }
    const w = toWire(t);
    if (ArrayBuffer.isView(w.data)) transfer.push(w.data.buffer as ArrayBuffer);
    wire[k] = w;
  }
  return { wire, transfer };
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
        else {
          try {
            p.resolve(Object.fromEntries(Object.entries(m.outputs).map(([k, w]) => [k, fromWire(w, p.slot)])));
          } catch (err) {
            p.reject(new ModelRunError(this.name, (err as Error).message, p.context));
          }
        }
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

  /** Runs can pass their feeds and outputs through a shared slot (see `run`). */
  readonly takesSlots = true;

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

  /**
   * One run; onnxruntime's failures become ModelRunError naming the model and `context`. With a
   * `slot`, the feeds go to the worker and the outputs come back through that shared memory (what
   * does not fit is copied as usual): the outputs are views of the slot, valid until the caller
   * gives the slot to another run. Measured on the benchmark CNN's histogram calibration, the
   * buffers each run otherwise brought to this thread cost its isolate a full garbage collection
   * every ~25 samples, ~1 ms of CPU a sample across V8's threads.
   */
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], context = '', slot?: SharedArrayBuffer): Promise<Record<string, ort.Tensor>> {
    const live = this.workers.filter((x) => !x.exited);
    // A message to a worker that has exited would never be answered.
    if (!live.length) return Promise.reject(new ModelRunError(this.name, 'every session worker has stopped', context));
    let w = live[0]!;
    for (const x of live) if (x.pending.size < w.pending.size) w = x;
    const id = this.nextId++;
    const { wire, transfer } = feedsToWire(feeds, slot);
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject, context, slot });
      w.worker.postMessage({ type: 'run', id, feeds: wire, fetches, slot }, transfer);
    });
  }

  /** Stops every worker (each after its current run) and waits for them to exit. */
  async release(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}

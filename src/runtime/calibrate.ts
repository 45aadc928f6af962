/**
 * Activation calibration: runs the float model on each sample and folds every requested tensor
 * into a streaming observer before the next sample. Nothing is kept per sample, so memory is that
 * of one inference whatever the sample count (onnxruntime's Python calibrator keeps every
 * activation of every sample until the end).
 *
 * Two strategies, by method:
 * - minmax: ReduceMin / ReduceMax / ReduceSum nodes on each tensor, so onnxruntime returns three
 *   numbers per tensor instead of the tensor, gathered into one output per tensor rank (see
 *   withReductions); see ReducingObserver for NaN / Inf. Fetching the tensors and scanning them
 *   (0.35 ns per value with the observers' WebAssembly kernels) measured no faster on a light CNN,
 *   and would hold every observed activation of a sample in memory at once;
 * - percentile / entropy / mse with `histogramValues` (quantize's default): each larger tensor
 *   comes back as its exact min / max and an evenly strided subset of at most that many values,
 *   taken inside onnxruntime (withSampledOutputs); copying every activation out cost 9–11× an
 *   inference on PP-OCRv4's detector and recognizer, the subset 3.4–3.9×. A Relu's output of
 *   static shape [N, C, H, W] is sampled on a grid by pooling ops instead, which onnxruntime runs
 *   in its blocked layout without converting the tensor back to NCHW;
 * - percentile / entropy / mse otherwise: the tensors become extra graph outputs and come back
 *   whole for the histogram observers (binned at ~1 ns per value by their WebAssembly kernel).
 *
 * What calibration costs beyond one float inference is mostly onnxruntime's: a tensor read by the
 * reductions or returned as an output must exist, so the fusions that would have consumed it in
 * place (Conv+Add+Relu into one NCHWc convolution) cannot happen, and NCHWc tensors are reordered
 * to NCHW for their new readers: ~1.2× of an inference on the benchmark's ResNet-style CNN before
 * anything is reduced, returned or binned. Returning the tensors costs another ~0.3× there:
 * onnxruntime-node 1.30 copies every output into a new zero-filled ArrayBuffer (preallocated
 * outputs are copied too), and collecting those buffers adds GC work of the same order.
 *
 * Samples run side by side: one session per core (at most 4) in worker threads, each given the
 * next sample while this thread takes the results in sample order (calibrationWorkers,
 * worker-sessions.ts). With histogram subsets, each sample in flight has a SharedArrayBuffer slot
 * its feeds and outputs pass through, reused from sample to sample: the buffers would otherwise
 * land in this thread's heap and cost it a full garbage collection every ~25 samples (measured
 * on the benchmark CNN at 112×112: V8's helper threads fell from 0.9 to 0.3 ms of CPU a sample;
 * in the extension host, whose heap holds every extension, a full collection costs more).
 * Batch-1 inference leaves onnxruntime's intra-op threads idle much of the time, so this hides
 * most of that cost (min-max on the PP-OCRv4 detector: 2.1× → 1.25× an inference); the
 * statistics are the same as with one session.
 *
 * Exposed tensors carry no declared type: onnxruntime types an untyped graph output from its own
 * inference, which sees every op it can run; the session's output metadata then says which are
 * float (calibrated) and which are not (reported unobserved). Tensors inside If/Loop/Scan bodies
 * cannot be graph outputs, so they are reported unobserved too, with the reason.
 */
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import type { GraphView } from '../onnx/graph';
import { DataType } from '../onnx/dtypes';
import { defaultOpset, OpsetUpgradeError, upgradeOpset } from '../onnx/opset-upgrade';
import { encodeModel } from '../onnx/encode';
import { emptyValueInfo, type GraphProto, type ModelProto } from '../onnx/proto';
import type { OnnxModel } from '../onnx/model';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { clipLowerBound } from '../quant/graph/qdq';
import { graphConstants } from '../quant/refine/weights';
import { initializer, makeNode, NameScope } from '../quant/graph/edit';
import { emptyScan, scanBatch } from '../quant/observers';
import type { CalibrationMethod } from '../quant/config';
import {
  entropyRange,
  fp16ToFloat32,
  HistogramObserver,
  MinMaxObserver,
  mseRange,
  percentileRange,
  QuantizationError,
  type FloatRange,
  type Histogram,
  type NonFiniteCounts,
  type QuantType,
} from '../quant';
import type { Sample, SampleSource } from './samples';
import { createSession, defaultThreads, forEachSample, hasExternalData, runSession, throwIfAborted } from './session';
import { slotBytes, WorkerSessions } from './worker-sessions';

export interface CalibrationProgress {
  done: number;
  total: number;
  /** "load" while onnxruntime builds the session, then "calibrate" once per sample. */
  phase: string;
}

export interface CalibrateOptions {
  method: CalibrationMethod;
  /** Histogram bins (methods other than minmax), default 2048. */
  bins?: number;
  signal?: AbortSignal;
  onProgress?: (p: CalibrationProgress) => void;
  /** onnxruntime intra-op threads, default all cores. */
  threads?: number;
  /**
   * Histogram methods: at most this many values of each activation per sample go into its
   * histogram (an evenly strided subset, its offset moving from sample to sample, taken inside
   * onnxruntime so only the subset is copied out); 0 or undefined: every value.
   */
  histogramValues?: number;
  /**
   * Worker threads that each run a session on their own sample (the cores split between them);
   * 1: one session on this thread. Default: calibrationWorkers.
   */
  workers?: number;
}

/** Largest calibration model copied into each worker: beyond it memory, not time, is what to save. */
const MAX_MODEL_BYTES_PER_WORKER = 256 * 2 ** 20;
/** Fewer samples than this do not repay starting the workers and building a session in each. */
const MIN_SAMPLES_FOR_WORKERS = 16;

/**
 * Free memory a worker's session is assumed to need: its weights and, above all, onnxruntime's
 * buffers for the exposed activations (PP-OCRv4's detector at 320×480: ~560 MB a session).
 */
function bytesPerWorker(modelBytes: number): number {
  return 2 ** 30 + 8 * modelBytes;
}

/**
 * How many samples calibration runs at once: one per core (at most 4), when there are enough
 * samples to repay the start, the model is small enough to load once per worker, and free memory
 * covers a session per worker. On the models measured (2 cores), two single-threaded sessions
 * calibrated 1.5–1.8× faster per sample than one two-threaded session: batch-1 inference leaves
 * onnxruntime's intra-op threads idle for much of the time. The cost is memory: 1.27 GB instead of
 * 710 MB for the detector.
 */
export function calibrationWorkers(threads: number, modelBytes: number, samples: number, freeBytes = os.freemem()): number {
  if (modelBytes > MAX_MODEL_BYTES_PER_WORKER || samples < MIN_SAMPLES_FOR_WORKERS) return 1;
  return Math.max(1, Math.min(threads, 4, Math.floor(freeBytes / bytesPerWorker(modelBytes))));
}

/** What calibration learned about one tensor. */
export interface TensorStats {
  /** Smallest / largest finite value over all samples. */
  min: number;
  max: number;
  /** Asymmetric histogram of the finite values (methods other than minmax). */
  histogram?: Histogram;
  /** NaN / ±Inf values skipped; non-zero counts deserve a warning. */
  nonFinite: NonFiniteCounts;
  /** Samples in which the tensor was observed. */
  samples: number;
  /** A graph input of the model (its range is the observed one: see activationRanges). */
  graphInput?: boolean;
}

export interface UnobservedTensor {
  name: string;
  reason: string;
}

export interface CalibrationResult {
  tensors: Map<string, TensorStats>;
  samples: number;
  seconds: number;
  /** True when the samples were generated rather than the user's data (reports must say so). */
  synthetic: boolean;
  /** Largest resident set size seen during the run (read after the first sample, then at most every 50 ms, and at the end). */
  peakRssBytes: number;
  unobserved: UnobservedTensor[];
}

/** Where a requested tensor's values come from. */
export type TensorPlan = { kind: 'output' } | { kind: 'input' } | { kind: 'unobserved'; reason: string };

/** Decides, from the graph alone, how each requested tensor can be observed. */
export function planTensors(main: GraphView, names: readonly string[]): Map<string, TensorPlan> {
  const plans = new Map<string, TensorPlan>();
  let nested: Map<string, string> | undefined;
  for (const name of names) {
    if (plans.has(name)) continue;
    if (!name) plans.set(name, { kind: 'unobserved', reason: 'empty tensor name' });
    else if (main.producer(name)) plans.set(name, { kind: 'output' });
    else if (main.initializer(name)) {
      plans.set(name, { kind: 'unobserved', reason: 'is an initializer (a weight): its values are known without calibration' });
    } else if (main.isGraphInput(name)) plans.set(name, { kind: 'input' });
    else {
      nested ??= subgraphTensors(main);
      const where = nested.get(name);
      plans.set(name, {
        kind: 'unobserved',
        reason: where
          ? `is inside ${where}; onnxruntime can only return tensors of the main graph`
          : 'no tensor of this name in the model',
      });
    }
  }
  return plans;
}

/** Every name defined inside a subgraph → the main-graph node and attribute that holds it. */
function subgraphTensors(main: GraphView): Map<string, string> {
  const out = new Map<string, string>();
  for (const node of main.proto.node) {
    for (const sub of main.subgraphsOf(node)) {
      const where = `the ${sub.attribute} subgraph of ${node.opType} node "${node.name}"`;
      for (const g of [sub.graph, ...sub.graph.descendants()]) {
        const define = (n: string) => {
          if (n && !out.has(n)) out.set(n, where);
        };
        g.proto.input.forEach((v) => define(v.name));
        g.proto.initializer.forEach((t) => define(t.name));
        for (const n of g.proto.node) n.output.forEach(define);
      }
    }
  }
  return out;
}

/** A copy of the model whose main graph also outputs `names`; the loaded model is not touched. */
export function withExtraOutputs(proto: ModelProto, names: readonly string[]): ModelProto {
  const graph = proto.graph!;
  const existing = new Set(graph.output.map((v) => v.name));
  const extra = names.filter((n) => !existing.has(n)).map((n) => emptyValueInfo(n));
  return { ...proto, graph: { ...graph, output: [...graph.output, ...extra] } };
}

/** The float types calibrated, with their bytes per value. */
const FLOAT_BYTES: Record<string, number> = { float32: 4, float16: 2, float64: 8 };
const FLOAT_TYPES = new Set(Object.keys(FLOAT_BYTES));

function metadataType(meta: readonly ort.InferenceSession.ValueMetadata[], name: string): string | undefined {
  const m = meta.find((v) => v.name === name);
  if (!m) return undefined;
  return m.isTensor ? m.type : 'non-tensor';
}

/** The values as float32 (observers' input); float16/float64 outputs are converted. */
function asFloat32(t: ort.Tensor): Float32Array {
  const data = t.data;
  if (data instanceof Float32Array) return data;
  if (t.type === 'float16' && data instanceof Uint16Array) return fp16TableToFloat32(data);
  if (data instanceof Float64Array) return Float32Array.from(data);
  throw new QuantizationError(`tensor of type ${t.type} cannot be calibrated`);
}

/** float32 value of every binary16 bit pattern, built once by fp16ToFloat32 itself (256 KB). */
let fp16Table: Float32Array | undefined;

/**
 * fp16ToFloat32 through a lookup table: the same values (the table is its output), at a table load
 * per value instead of a power-of-two computation (measured ~10× faster), since every calibration
 * sample of a float16 model converts each observed activation.
 */
function fp16TableToFloat32(h: Uint16Array): Float32Array {
  if (!fp16Table) {
    const codes = new Uint16Array(65536);
    for (let i = 0; i < codes.length; i++) codes[i] = i;
    fp16Table = fp16ToFloat32(codes);
  }
  const table = fp16Table;
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = table[h[i]!]!;
  return out;
}

/** One tensor's streaming state: min/max always, histogram when the method needs it. */
export class TensorObserver {
  private readonly minmax?: MinMaxObserver;
  private readonly hist?: HistogramObserver;
  samples = 0;

  constructor(method: CalibrationMethod, bins: number | undefined) {
    // The histogram observer tracks exact min/max and non-finite counts itself: one observer is enough.
    if (method === 'minmax') this.minmax = new MinMaxObserver();
    else this.hist = new HistogramObserver({ bins, symmetric: false });
  }

  update(values: Float32Array): void {
    if (this.minmax) this.minmax.update(values);
    else this.hist!.update(values);
    this.samples++;
  }

  /** One sample of a histogram tensor given as its extremes (exact, but a grid's min: see withSampledOutputs) and a subset (`whole`: all of it). */
  observeSubset(min: number, max: number, whole: boolean, subset: Float32Array): void {
    if (!whole) this.hist!.extendRange(min, max);
    this.update(subset);
  }

  /** Undefined when no finite value was ever seen. */
  stats(): TensorStats | undefined {
    if (this.minmax) {
      if (!this.minmax.hasData) return undefined;
      const r = this.minmax.range();
      return { min: r.min, max: r.max, nonFinite: this.minmax.nonFinite, samples: this.samples };
    }
    let h: Histogram;
    try {
      h = this.hist!.histogram();
    } catch {
      return undefined;
    }
    return { min: h.min, max: h.max, histogram: h, nonFinite: { nan: h.nanCount, posInf: h.posInfCount, negInf: h.negInfCount }, samples: this.samples };
  }
}

/** Where one tensor's reductions come back: output name and the index of its min (max, sum follow). */
interface ReducedAt {
  output: string;
  index: number;
}

/**
 * A copy of the model whose main graph also computes ReduceMin / ReduceMax / ReduceSum of each
 * tensor. The reductions keep their dims (a [1, …, 1] tensor of the input's rank) and those of
 * tensors of equal rank are concatenated into one output, [min₀, max₀, sum₀, min₁, …]: a handful
 * of outputs instead of three per tensor, since each output costs onnxruntime-node a tensor object
 * per run (measured 0.1–0.2× of a light CNN's inference for its 75 scalars). Tensors of unknown rank
 * or rank 0 (Concat needs rank ≥ 1) get one output per reduction.
 */
function withReductions(proto: ModelProto, names: readonly string[], rankOf: (name: string) => number | undefined): { model: ModelProto; at: Map<string, ReducedAt[]> } {
  const graph = proto.graph!;
  const scope = new NameScope(proto);
  const nodes = [...graph.node];
  const outputs = [...graph.output];
  const at = new Map<string, ReducedAt[]>();
  /** Per rank: the reductions to concatenate, and the tensors whose reductions they are. */
  const groups = new Map<number, { inputs: string[]; tensors: string[] }>();
  for (const name of names) {
    const rank = rankOf(name);
    const grouped = rank !== undefined && rank >= 1;
    const outs = (['ReduceMin', 'ReduceMax', 'ReduceSum'] as const).map((op) => {
      const out = scope.fresh(`${name}_calib_${op}`);
      // No axes: every opset reduces over all dimensions.
      nodes.push(makeNode(op, [name], [out], scope.fresh(`${out}_node`), { keepdims: grouped ? 1 : 0 }));
      return out;
    });
    if (grouped) {
      let g = groups.get(rank);
      if (!g) groups.set(rank, (g = { inputs: [], tensors: [] }));
      g.inputs.push(...outs);
      g.tensors.push(name);
    } else {
      outputs.push(...outs.map((o) => emptyValueInfo(o)));
      at.set(name, outs.map((output) => ({ output, index: 0 })));
    }
  }
  for (const [rank, g] of groups) {
    const out = scope.fresh(`calib_reductions_rank${rank}`);
    nodes.push(makeNode('Concat', g.inputs, [out], scope.fresh(`${out}_node`), { axis: 0 }));
    outputs.push(emptyValueInfo(out));
    g.tensors.forEach((name, i) => at.set(name, [{ output: out, index: 3 * i }]));
  }
  return { model: { ...proto, graph: { ...graph, node: nodes, output: outputs } }, at };
}

type Outputs = Record<string, ort.Tensor>;

/** Runs the model calibration needs: one session here, or one in each of several worker threads. */
interface ModelRunner {
  /** Runs that can go at once. */
  readonly parallel: number;
  /** `run` takes a shared slot for its feeds and outputs (worker threads: see WorkerSessions.run). */
  readonly takesSlots: boolean;
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], context: string, slot?: SharedArrayBuffer): Promise<Outputs>;
  release(): Promise<void>;
}

function inProcess(session: ort.InferenceSession, file: string): ModelRunner {
  return { parallel: 1, takesSlots: false, run: (feeds, fetches, context) => runSession(session, feeds, fetches, file, context), release: () => session.release() };
}

/**
 * Observes samples into the observers in two steps, so that several samples can be running while
 * the statistics still take them in sample order (histograms re-bin as ranges grow: the order
 * matters to the last bit): `run` only runs the model, `absorb` updates the observers. Owns the
 * sessions it runs.
 */
interface SampleObserver {
  readonly runner: ModelRunner;
  run(sample: Sample, index: number): Promise<Outputs>;
  absorb(outputs: Outputs, sample: Sample, index: number): Promise<void>;
  release(): Promise<void>;
}

const sampleContext = (index: number) => `calibration sample ${index + 1}`;

interface Targets {
  observers: Map<string, TensorObserver>;
  /** Float tensors of the main graph, with their onnxruntime types. */
  outputs: Map<string, string>;
  /** Graph inputs: read from the sample itself. */
  inputs: string[];
}

/**
 * Where one tensor's values sit in a sampled model's output (see withSampledOutputs):
 * - whole: static size at most the limit, every value (`size` of them);
 * - strided: static size, [min, max, subset]; the step is a constant and the subset's start is
 *   `phase mod step`, so its length is known here (stridedCount);
 * - dynamic: size known only at run time, [min, max, subset]; its step and subset length are the
 *   pair at `pair` of the int64 counts output;
 * - grid: a Relu's (or Relu6's) output of static shape [N, C, H, W], [min, max, subset]: every
 *   channel at every `stride`-th row and column from the first (`size` values); the min is the
 *   subset's (see gridSubset).
 */
export type SampledSegment =
  | { name: string; kind: 'whole'; size: number }
  | { name: string; kind: 'strided'; size: number; step: number }
  | { name: string; kind: 'dynamic'; pair: number }
  | { name: string; kind: 'grid'; size: number; stride: number };

/** A tensor to sample: its onnxruntime type and, where every dimension is fixed, its size and dims. */
export interface SampledTensor {
  type: string;
  size?: number;
  dims?: readonly number[];
}

export interface SampledModel {
  model: ModelProto;
  /** At most this many values of a tensor per sample (the graph inputs, observed here, follow it too). */
  limit: number;
  /** int64 [1] graph input the runner sets per sample (samplePhase). */
  phase: string;
  /** The float outputs (each of one type, at most MAX_VALUES_PER_OUTPUT values): names and the tensors' segments in order. */
  outputs: { name: string; segments: SampledSegment[] }[];
  /** int64 output [step₀, length₀, step₁, …] of the dynamic segments, when there are any. */
  counts?: string;
  /** Bytes the outputs can take at most, 8-byte aligned one after the other. */
  maxOutputBytes: number;
}

/**
 * Values gathered into one output (256 KB of float32). One output per tensor costs a tensor object
 * each (onnxruntime-node copies every output into a new buffer); one output for all of them was
 * slower still on PP-OCRv4's detector (19 MB a sample: 2.66× an inference against 2.27×), as
 * buffers that size come as fresh pages each time rather than from the allocator's heap.
 */
const MAX_VALUES_PER_OUTPUT = 65536;

/** The subset's offset in sample `index`: an odd multiplier far from common tensor strides walks the offsets without a short cycle. */
export function samplePhase(index: number): bigint {
  return BigInt(index) * 7919n;
}

/**
 * A grid subset of at most `limit` values from a tensor of dims [N, C, H, W]: the smallest row and
 * column stride that fits, and the values it takes; undefined when even one position per channel
 * is too many.
 */
export function gridSubset(dims: readonly number[], limit: number): { stride: number; size: number } | undefined {
  if (dims.length !== 4) return undefined;
  const [n, c, h, w] = dims as [number, number, number, number];
  for (let stride = 1; stride <= Math.max(h, w); stride++) {
    const size = n * c * Math.ceil(h / stride) * Math.ceil(w / stride);
    if (size <= limit) return { stride, size };
  }
  return undefined;
}

/** Outputs of a graph's Relu nodes and of its Clip nodes whose lower bound is a constant ≥ 0 (Relu6). */
function nonNegativeOutputs(graph: GraphProto): Set<string> {
  // An initializer that is also a graph input can be fed another value: not a constant here.
  const constants = graphConstants(graph);
  const out = new Set<string>();
  for (const n of graph.node) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const lower = n.opType === 'Relu' ? 0 : clipLowerBound(n, constants, tensorToFloat32);
    if (lower !== undefined && lower >= 0 && n.output[0]) out.add(n.output[0]);
  }
  return out;
}

/** Where a strided subset starts in sample `index`: phase mod step. */
function stridedStart(step: number, index: number): number {
  return Number(samplePhase(index) % BigInt(step));
}

/** Values a strided segment holds in sample `index`: from stridedStart, every step-th. */
export function stridedCount(size: number, step: number, index: number): number {
  return Math.ceil((size - stridedStart(step, index)) / step);
}

/**
 * A copy of the model whose main graph also returns, for each tensor, its exact min and max and an
 * evenly strided subset of at most `limit` of its values (step = ⌈N / limit⌉, start = phase mod
 * step, where `phase` is a new int64 [1] graph input set per sample so that the samples together
 * visit every offset). The tensors of a float type are concatenated into a few outputs of that type
 * (MAX_VALUES_PER_OUTPUT), and a tensor whose size is static gets its step as a constant: with an
 * output per tensor and each step computed at run time (11 nodes a tensor), MSE calibration of the
 * benchmark CNN at 2048 values cost 1.44–1.61× an inference, now 1.28–1.43×. Tensors whose static
 * size is at most `limit` come back whole.
 *
 * A float32 output of Relu (or of Clip with a lower bound ≥ 0, as Relu6) of static shape
 * [N, C, H, W] comes back as a grid (MaxPool 1×1 with strides, see gridSubset) with the grid's
 * min and the tensor's exact max (GlobalMaxPool) instead: the flatten the strided subset starts
 * with makes onnxruntime convert the whole tensor out of its blocked NCHWc layout, pooling does
 * not. The range of a tensor that cannot be negative includes 0 anyway, and any clipped value in
 * the grid makes its min exact. Alternating on the benchmark CNN, MSE calibration: 224×224 1.26× →
 * 1.18×, 112×112 1.67× → 1.56×; the chosen MSE ranges stayed within 0.6% of binning every value
 * (the strided subset: 0.7%). The grid does not move from sample to sample; a tensor whose min
 * must be exact keeps the strided subset (no NCHWc op gives a min).
 *
 * Needs opset ≥ 10 (Slice with steps, Mod): an older model is upgraded to 10 for this copy, or,
 * when it cannot be, undefined.
 */
export function withSampledOutputs(proto: ModelProto, tensors: ReadonlyMap<string, SampledTensor>, limit: number): SampledModel | undefined {
  const opset = defaultOpset(proto);
  if (opset === undefined) return undefined;
  if (opset < 10) {
    // The upgrade rewrites nodes whose meaning changed but keeps every tensor name.
    try {
      proto = upgradeOpset(proto, 10).model;
    } catch (err) {
      if (err instanceof OpsetUpgradeError) return undefined;
      throw err;
    }
  }
  const graph = proto.graph!;
  const scope = new NameScope(proto);
  const nodes = [...graph.node];
  const inits = [...graph.initializer];
  const constant = (name: string, value: bigint) => {
    const n = scope.fresh(name);
    inits.push(initializer(n, DataType.INT64, [1], [value]));
    return n;
  };
  const node = (base: string, op: string, ins: string[], attrs: Record<string, number | number[]> = {}) => {
    const o = scope.fresh(`${base}_calib_${op.toLowerCase()}`);
    nodes.push(makeNode(op, ins, [o], scope.fresh(`${o}_node`), attrs));
    return o;
  };
  const phase = scope.fresh('calib_sample_phase');
  const flatShape = constant('calib_flat_shape', -1n);
  const zero = constant('calib_zero', 0n);
  const end = constant('calib_end', 9223372036854775807n);
  let one: string | undefined;
  let lim: string | undefined;
  /** Per static step: its constant and phase mod step, shared by every tensor with that step. */
  const steps = new Map<number, { step: string; start: string }>();
  type Group = { type: string; pieces: string[]; segments: SampledSegment[]; values: number };
  /** The group still open for each float type. */
  const byType = new Map<string, Group>();
  /** Every group, one output each, in order. */
  const groups: Group[] = [];
  const countPieces: string[] = [];
  const nonNegative = nonNegativeOutputs(graph);
  for (const [name, { type, size, dims }] of tensors) {
    let group = byType.get(type);
    const grid = type === 'float32' && size !== undefined && size > limit && dims && nonNegative.has(name) ? gridSubset(dims, limit) : undefined;
    const values = (grid ? grid.size : Math.min(size ?? limit, limit)) + 2;
    if (group && group.values + values > MAX_VALUES_PER_OUTPUT) group = undefined;
    if (!group) {
      byType.set(type, (group = { type, pieces: [], segments: [], values: 0 }));
      groups.push(group);
    }
    group.values += values;
    if (grid) {
      // Pooling ops run in onnxruntime's blocked layout (NCHWc) on x86: nothing converts the whole
      // tensor back, as the flatten below does.
      const max = node(name, 'ReduceMax', [node(name, 'Reshape', [node(name, 'GlobalMaxPool', [name]), flatShape])], { keepdims: 1 });
      const subset = node(name, 'Reshape', [node(name, 'MaxPool', [name], { kernel_shape: [1, 1], strides: [grid.stride, grid.stride] }), flatShape]);
      group.pieces.push(node(name, 'ReduceMin', [subset], { keepdims: 1 }), max, subset);
      group.segments.push({ name, kind: 'grid', ...grid });
      continue;
    }
    const flat = node(name, 'Reshape', [name, flatShape]);
    if (size !== undefined && size <= limit) {
      group.pieces.push(flat);
      group.segments.push({ name, kind: 'whole', size });
      continue;
    }
    const extremes = [node(name, 'ReduceMin', [flat], { keepdims: 1 }), node(name, 'ReduceMax', [flat], { keepdims: 1 })];
    if (size !== undefined) {
      const s = Math.ceil(size / limit);
      let at = steps.get(s);
      if (!at) {
        const step = constant(`calib_step_${s}`, BigInt(s));
        steps.set(s, (at = { step, start: node(`step_${s}`, 'Mod', [phase, step]) }));
      }
      group.pieces.push(...extremes, node(name, 'Slice', [flat, at.start, end, zero, at.step]));
      group.segments.push({ name, kind: 'strided', size, step: s });
    } else {
      one ??= constant('calib_one', 1n);
      lim ??= constant('calib_limit', BigInt(limit));
      // ⌈N / limit⌉ as (N − 1) / limit + 1 in integer division.
      const step = node(name, 'Add', [node(name, 'Div', [node(name, 'Sub', [node(name, 'Shape', [flat]), one]), lim]), one]);
      const subset = node(name, 'Slice', [flat, node(name, 'Mod', [phase, step]), end, zero, step]);
      group.pieces.push(...extremes, subset);
      group.segments.push({ name, kind: 'dynamic', pair: countPieces.length / 2 });
      countPieces.push(step, node(name, 'Shape', [subset]));
    }
  }
  const graphOutputs = [...graph.output];
  /** A new graph output: the pieces concatenated. */
  const concatOutput = (base: string, pieces: string[]) => {
    const out = scope.fresh(base);
    nodes.push(makeNode('Concat', pieces, [out], scope.fresh(`${out}_node`), { axis: 0 }));
    graphOutputs.push(emptyValueInfo(out));
    return out;
  };
  const outputs = groups.map((g) => ({ name: concatOutput(`calib_sampled_${g.type}`, g.pieces), segments: g.segments }));
  const maxOutputBytes = slotBytes([...groups.map((g) => g.values * FLOAT_BYTES[g.type]!), countPieces.length * 8]);
  const counts = countPieces.length ? concatOutput('calib_sampled_counts', countPieces) : undefined;
  const phaseInput = emptyValueInfo(phase);
  phaseInput.type = {
    tensorType: { elemType: DataType.INT64, shape: { dims: [{ value: 1, denotation: '', unknownFields: [] }], unknownFields: [] }, unknownFields: [] },
    denotation: '',
    unknownFields: [],
  };
  return { model: { ...proto, graph: { ...graph, node: nodes, output: graphOutputs, input: [...graph.input, phaseInput], initializer: inits } }, limit, phase, outputs, counts, maxOutputBytes };
}

/**
 * The shared slots of the samples in flight (worker threads only: see WorkerSessions.run). A slot
 * holds a sample's feeds and then its outputs (the worker copies the feeds out before it writes
 * the outputs); it goes back to the pool once the outputs are absorbed, so there are as many slots
 * as samples in flight, reused while they are large enough.
 */
class SlotPool {
  private readonly inFlight = new Map<number, SharedArrayBuffer>();
  private readonly free: SharedArrayBuffer[] = [];

  /** `outputBytes`: what the fetched outputs can take at most, 8-byte aligned one after the other. */
  constructor(private readonly outputBytes: number) {}

  take(index: number, feeds: Record<string, ort.Tensor>): SharedArrayBuffer {
    const feedBytes = slotBytes(Object.values(feeds).map((t) => (ArrayBuffer.isView(t.data) ? t.data.byteLength : 0)));
    const bytes = Math.max(feedBytes, this.outputBytes);
    const i = this.free.findIndex((s) => s.byteLength >= bytes);
    const slot = i >= 0 ? this.free.splice(i, 1)[0]! : new SharedArrayBuffer(bytes);
    this.inFlight.set(index, slot);
    return slot;
  }

  /** Sample `index` is absorbed: its outputs (views of the slot) are no longer read. */
  giveBack(index: number): void {
    const slot = this.inFlight.get(index);
    if (!slot) return;
    this.inFlight.delete(index);
    this.free.push(slot);
  }
}

/**
 * Histogram methods with `histogramValues`: each large activation comes back as its exact min and
 * max and a strided subset (see withSampledOutputs), so the range is exact and the histogram's
 * counts are an estimate; small ones come back whole. Graph inputs are sampled the same way, on
 * this thread (observeStrided).
 */
class SampledTensorObserver implements SampleObserver {
  private readonly fetches: string[];
  private readonly slots?: SlotPool;

  constructor(
    readonly runner: ModelRunner,
    private readonly sampled: SampledModel,
    private readonly targets: Targets,
  ) {
    this.fetches = sampled.outputs.map((o) => o.name);
    if (sampled.counts) this.fetches.push(sampled.counts);
    if (runner.takesSlots) this.slots = new SlotPool(sampled.maxOutputBytes);
  }

  async run(sample: Sample, index: number): Promise<Outputs> {
    if (!this.fetches.length) return {};
    const feeds = { ...sample, [this.sampled.phase]: new ort.Tensor('int64', BigInt64Array.of(samplePhase(index)), [1]) };
    return this.runner.run(feeds, this.fetches, sampleContext(index), this.slots?.take(index, feeds));
  }

  async absorb(outputs: Outputs, sample: Sample, index: number): Promise<void> {
    const context = sampleContext(index);
    const counts = this.sampled.counts ? outputs[this.sampled.counts]?.data : undefined;
    if (this.sampled.counts && !(counts instanceof BigInt64Array)) throw new QuantizationError(`${context}: no subset lengths in the calibration output`);
    for (const { name: out, segments } of this.sampled.outputs) {
      const t = outputs[out];
      if (!t) throw new QuantizationError(`${context}: no value for the calibration output "${out}"`);
      const v = asFloat32(t);
      let at = 0;
      const take = (n: number, tensor: string) => {
        if (at + n > v.length) throw new QuantizationError(`${context}: the calibration output "${out}" ends inside tensor "${tensor}"`);
        const part = v.subarray(at, at + n);
        at += n;
        return part;
      };
      for (const seg of segments) {
        const obs = this.targets.observers.get(seg.name)!;
        if (seg.kind === 'whole') {
          obs.update(take(seg.size, seg.name));
          continue;
        }
        const [min, max] = take(2, seg.name);
        if (seg.kind === 'grid') {
          obs.observeSubset(min!, max!, false, take(seg.size, seg.name));
          continue;
        }
        const step = seg.kind === 'strided' ? seg.step : Number(counts![2 * seg.pair]);
        const n = seg.kind === 'strided' ? stridedCount(seg.size, seg.step, index) : Number(counts![2 * seg.pair + 1]);
        obs.observeSubset(min!, max!, step === 1, take(n, seg.name));
      }
      if (at !== v.length) throw new QuantizationError(`${context}: the calibration output "${out}" has ${v.length - at} values past its last tensor`);
    }
    for (const t of Object.values(outputs)) t.dispose();
    this.slots?.giveBack(index);
    for (const name of this.targets.inputs) observeStrided(this.targets.observers.get(name)!, sampleValues(sample[name], name, index), this.sampled.limit, index);
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}

/**
 * A graph input, observed here as onnxruntime observes the other tensors: exact extremes, and the
 * strided subset of at most `limit` values that withSampledOutputs would take (binning every value
 * of a 224×224 image took ~0.3 ms a sample on this thread, which the sessions' workers share).
 */
export function observeStrided(obs: TensorObserver, values: Float32Array, limit: number, index: number): void {
  const step = Math.ceil(values.length / limit);
  if (step <= 1) {
    obs.update(values);
    return;
  }
  const { min, max } = scanBatch(values, emptyScan());
  const subset = new Float32Array(stridedCount(values.length, step, index));
  for (let i = 0, j = stridedStart(step, index); i < subset.length; i++, j += step) subset[i] = values[j]!;
  // NaN/Inf are counted from the subset, as for the other tensors.
  if (min <= max) obs.observeSubset(min, max, false, subset);
  else obs.update(subset);
}

/** Histogram methods (and the minmax fallback): every tensor comes back whole and is scanned in JS. */
class FullTensorObserver implements SampleObserver {
  constructor(
    readonly runner: ModelRunner,
    private readonly targets: Targets,
  ) {}

  run(sample: Sample, index: number, only?: readonly string[]): Promise<Outputs> {
    const fetches = only ?? [...this.targets.outputs.keys()];
    return fetches.length > 0 ? this.runner.run(sample, fetches, sampleContext(index)) : Promise.resolve({});
  }

  async absorb(outputs: Outputs, sample: Sample, index: number, only?: readonly string[]): Promise<void> {
    for (const name of only ?? this.targets.outputs.keys()) observeTensor(this.targets.observers.get(name)!, outputs[name], name, index);
    for (const t of Object.values(outputs)) t.dispose();
    if (!only) for (const name of this.targets.inputs) observeTensor(this.targets.observers.get(name)!, sample[name], name, index);
  }

  /** Runs and absorbs `only` these tensors of one sample (the minmax fallback). */
  async observe(sample: Sample, index: number, only: readonly string[]): Promise<void> {
    await this.absorb(await this.run(sample, index, only), sample, index, only);
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}

/**
 * minmax: onnxruntime reduces each float32 tensor to min / max / sum inside the graph (as its
 * Python MinMax calibrator does), so activations never cross into JS. onnxruntime's ReduceMin /
 * ReduceMax skip NaN in some positions (measured on 1.30: a tensor holding a NaN gets finite
 * extremes about a quarter of the time, now and then not even the finite ones; ±Inf without NaN
 * always shows), so the sum is the sentinel: a non-finite min, max or sum means the tensor holds
 * NaN or ±Inf (or its sum overflowed), and that tensor of that sample is fetched whole from a
 * second session, created on first need, for the exact finite range and counts. (The sum is a
 * third pass over the tensor, ~0.05× of a light CNN's inference; nothing cheaper finds NaN.)
 */
class ReducingObserver implements SampleObserver {
  private full?: FullTensorObserver;
  /** Only the reductions: the model's own outputs may be large and are not needed. */
  private readonly fetches: string[];

  constructor(
    readonly runner: ModelRunner,
    private readonly at: Map<string, ReducedAt[]>,
    /** Float tensors that are not float32 (no reduction kernels for all of them): always fetched whole. */
    private readonly wholeAlways: readonly string[],
    private readonly makeFull: () => Promise<FullTensorObserver>,
    private readonly targets: Targets,
  ) {
    this.fetches = [...new Set([...at.values()].flat().map((r) => r.output))];
  }

  run(sample: Sample, index: number): Promise<Outputs> {
    return this.fetches.length > 0 ? this.runner.run(sample, this.fetches, sampleContext(index)) : Promise.resolve({});
  }

  async absorb(outputs: Outputs, sample: Sample, index: number): Promise<void> {
    const whole = [...this.wholeAlways];
    const pair = new Float32Array(2);
    const value = (r: ReducedAt, k: number): number => {
      const d = outputs[r.output]?.data;
      const i = r.index + k;
      return d instanceof Float32Array && i < d.length ? d[i]! : NaN;
    };
    for (const [name, refs] of this.at) {
      // Grouped: min, max, sum side by side in one output; otherwise one output each.
      const get = refs.length === 1 ? (k: number) => value(refs[0]!, k) : (k: number) => value(refs[k]!, 0);
      const mn = get(0);
      const mx = get(1);
      const sum = get(2);
      if (mn - mn !== 0 || mx - mx !== 0 || sum - sum !== 0) whole.push(name);
      else {
        pair[0] = mn;
        pair[1] = mx;
        this.targets.observers.get(name)!.update(pair);
      }
    }
    if (whole.length > 0) {
      this.full ??= await this.makeFull();
      await this.full.observe(sample, index, whole);
    }
    for (const name of this.targets.inputs) observeTensor(this.targets.observers.get(name)!, sample[name], name, index);
  }

  async release(): Promise<void> {
    try {
      await this.full?.release();
    } finally {
      await this.runner.release();
    }
  }
}

/**
 * Calibrates `tensorNames` of the model's main graph over every sample of `source`.
 * Rejects with an AbortError when `signal` fires (sessions are released either way), with
 * ModelLoadError / ModelRunError when onnxruntime cannot load or run the model.
 */
export async function calibrate(model: OnnxModel, tensorNames: string[], source: SampleSource, options: CalibrateOptions): Promise<CalibrationResult> {
  const start = performance.now();
  const { signal, onProgress } = options;
  const what = 'calibration';
  throwIfAborted(signal, what);
  const plans = planTensors(model.graph, tensorNames);
  const unobserved: UnobservedTensor[] = [];
  const exposed: string[] = [];
  for (const [name, plan] of plans) {
    if (plan.kind === 'unobserved') unobserved.push({ name, reason: plan.reason });
    else if (plan.kind === 'output') exposed.push(name);
  }

  onProgress?.({ done: 0, total: source.count, phase: 'load' });
  const sessionOptions = { threads: options.threads, name: model.file, externalDataDir: model.dir };
  const exposedModel = withExtraOutputs(model.proto, exposed);
  const minmax = options.method === 'minmax';
  const subsets = !minmax && Boolean(options.histogramValues);
  // This session only tells the types and shapes (onnxruntime's inference) for the session that
  // runs: no need to optimize it.
  let first: ort.InferenceSession | undefined = await createSession(exposedModel, { ...sessionOptions, optimization: 'disabled' });
  let runner: SampleObserver | undefined;
  let peakRss = process.memoryUsage.rss();
  // Reading the RSS costs ~0.4 ms (a /proc read), a fifth of a light CNN's inference: at most every 50 ms.
  let rssReadAt = performance.now();
  const notePeakRss = (force = false) => {
    const now = performance.now();
    if (!force && now - rssReadAt < 50) return;
    rssReadAt = now;
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  };
  const targets: Targets = { observers: new Map(), outputs: new Map(), inputs: [] };
  let samples = 0;
  try {
    for (const [name, plan] of plans) {
      if (plan.kind === 'unobserved') continue;
      const type = metadataType(plan.kind === 'output' ? first.outputMetadata : first.inputMetadata, name);
      if (!type || !FLOAT_TYPES.has(type)) {
        unobserved.push({ name, reason: `has type ${type ?? 'unknown'}; only float tensors get quantization ranges` });
        continue;
      }
      targets.observers.set(name, new TensorObserver(options.method, options.bins));
      if (plan.kind === 'output') targets.outputs.set(name, type);
      else targets.inputs.push(name);
    }

    // The model that runs: several samples at once in worker threads when that pays (see below).
    const threads = options.threads ?? defaultThreads();
    const runnerFor = async (proto: ModelProto): Promise<ModelRunner> => {
      const bytes = encodeModel(proto);
      // External weights would be loaded once per worker: their size is not in `bytes`.
      const workers = options.workers ?? (hasExternalData(proto) ? 1 : calibrationWorkers(threads, bytes.length, source.count));
      if (workers <= 1) return inProcess(await createSession(bytes, sessionOptions), model.file);
      return WorkerSessions.create(bytes, { workers, threadsPerWorker: Math.max(1, Math.floor(threads / workers)), name: model.file, externalDataDir: model.dir });
    };
    if (!minmax) {
      const sampled = subsets ? withSampledOutputs(model.proto, outputShapes(first, targets), options.histogramValues!) : undefined;
      await first.release();
      first = undefined;
      runner = sampled ? new SampledTensorObserver(await runnerFor(sampled.model), sampled, targets) : new FullTensorObserver(await runnerFor(exposedModel), targets);
    } else {
      // Ranks from onnxruntime's shape inference (an empty shape: unknown, or a scalar).
      const ranks = new Map<string, number>();
      for (const m of first.outputMetadata) if (m.isTensor && m.shape.length > 0) ranks.set(m.name, m.shape.length);
      await first.release();
      first = undefined;
      const reduced = [...targets.outputs].filter(([, t]) => t === 'float32').map(([n]) => n);
      const wholeAlways = [...targets.outputs].filter(([, t]) => t !== 'float32').map(([n]) => n);
      const { model: reducing, at } = withReductions(model.proto, reduced, (name) => ranks.get(name));
      const makeFull = async () => new FullTensorObserver(inProcess(await createSession(exposedModel, sessionOptions), model.file), targets);
      runner = new ReducingObserver(await runnerFor(reducing), at, wholeAlways, makeFull, targets);
    }

    // Samples in flight: two per worker (a worker finishing one starts the next while this thread
    // takes in results), one on this thread; the observers take them in sample order.
    const observer = runner;
    const depth = observer.runner.parallel > 1 ? 2 * observer.runner.parallel : 1;
    const running: { outputs: Promise<Outputs>; sample: Sample; index: number }[] = [];
    const absorbOldest = async () => {
      const r = running.shift()!;
      await observer.absorb(await r.outputs, r.sample, r.index);
      notePeakRss(r.index === 0);
      onProgress?.({ done: r.index + 1, total: source.count, phase: 'calibrate' });
    };
    try {
      samples = await forEachSample(source, signal, what, async (sample, index) => {
        const outputs = observer.run(sample, index);
        // Handled when absorbed; until then a failure must not count as unhandled.
        outputs.catch(() => undefined);
        running.push({ outputs, sample, index });
        if (running.length >= depth) await absorbOldest();
      });
      while (running.length) await absorbOldest();
      notePeakRss(true);
    } finally {
      // A failure or cancel: the runs still going finish before their sessions are released.
      await Promise.allSettled(running.map((r) => r.outputs));
    }
  } finally {
    await first?.release();
    await runner?.release();
  }
  if (samples === 0) throw new QuantizationError(`calibration data "${source.description}" has no samples`);

  const tensors = new Map<string, TensorStats>();
  for (const [name, obs] of targets.observers) {
    const s = obs.stats();
    if (s) tensors.set(name, targets.inputs.includes(name) ? { ...s, graphInput: true } : s);
    else unobserved.push({ name, reason: `had no finite value in ${samples} sample(s) (empty, or all NaN/Inf)` });
  }
  return {
    tensors,
    samples,
    seconds: (performance.now() - start) / 1000,
    synthetic: source.synthetic,
    peakRssBytes: peakRss,
    unobserved,
  };
}

/** Each exposed float tensor's type and, where onnxruntime's inference fixed every dimension, its size and dims. */
function outputShapes(session: ort.InferenceSession, targets: Targets): Map<string, SampledTensor> {
  const meta = new Map(session.outputMetadata.map((m) => [m.name, m]));
  const out = new Map<string, SampledTensor>();
  for (const [name, type] of targets.outputs) {
    const m = meta.get(name);
    const dims = m?.isTensor ? m.shape : undefined;
    const fixed = dims !== undefined && dims.length > 0 && dims.every((d): d is number => typeof d === 'number' && d >= 0);
    out.set(name, fixed ? { type, size: (dims as number[]).reduce((a, d) => a * d, 1), dims: dims as number[] } : { type });
  }
  return out;
}

/** A tensor of one sample (an output or a feed) as float32; its absence is an error naming it. */
function sampleValues(t: ort.Tensor | undefined, name: string, index: number): Float32Array {
  if (!t) throw new QuantizationError(`calibration sample ${index + 1}: no value for tensor "${name}"`);
  return asFloat32(t);
}

function observeTensor(obs: TensorObserver, t: ort.Tensor | undefined, name: string, index: number): void {
  obs.update(sampleValues(t, name, index));
}

export interface ChooseRangeOptions {
  symmetric?: boolean;
  /** For method "percentile", e.g. 99.99. */
  percentile?: number;
}

/**
 * The activation range a method picks from calibration statistics: minmax → the observed range
 * (made symmetric around 0 when asked); percentile / entropy / mse → the src/quant choosers over
 * the tensor's histogram.
 */
export function chooseRange(stats: TensorStats, method: CalibrationMethod, type: QuantType, options: ChooseRangeOptions = {}): FloatRange {
  const symmetric = options.symmetric === true;
  if (method === 'minmax') {
    if (!symmetric) return { min: stats.min, max: stats.max };
    const a = Math.max(Math.abs(stats.min), Math.abs(stats.max));
    return { min: -a, max: a };
  }
  const h = stats.histogram;
  if (!h) throw new QuantizationError(`method "${method}" needs a histogram: calibrate with that method, not minmax`);
  switch (method) {
    case 'percentile':
      return percentileRange(h, options.percentile ?? 99.99, { symmetric });
    case 'entropy':
      return entropyRange(h, type, { symmetric });
    case 'mse':
      return mseRange(h, type, { symmetric });
    default:
      throw new QuantizationError(`unknown calibration method "${String(method)}"`);
  }
}

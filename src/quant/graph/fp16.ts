/**
 * float32 → float16 conversion: weights (initializers and Constant nodes, in every graph) are stored
 * as float16 and ops run in float16, while the model's inputs and outputs stay float32 (a Cast after
 * each input, before each output) and numerically fragile ops stay float32 (Casts around them).
 *
 * Kept in float32, and why (KEEP_FLOAT32 below): float16 has an 11-bit mantissa and a range of
 * ±65504, with normal numbers only down to 6.1e-5. So ops that exponentiate (Exp, Pow, Softmax,
 * LogSoftmax, Log), accumulate long sums (Reduce*, CumSum, DFT/STFT), normalize by a variance
 * (LayerNormalization, GroupNormalization, InstanceNormalization, BatchNormalization: squares
 * overflow, epsilon ≈ 1e-5 is subnormal), carry state across time steps (LSTM, GRU, RNN), compute
 * coordinates or indices (Resize and Upsample, whose scales input must be float32 anyway; Range,
 * GridSample, RoiAlign, TopK, NonMaxSuppression), draw random numbers (their dtype attributes), or
 * hold quantization scales (float16 scales need opset 19) stay float32. Ops of other domains are
 * kept too (their float16 support is unknown). Integers cast to float (Cast int → float) are shape
 * or mask arithmetic: that value and everything computed only from it stay float32 (float16 is
 * exact only up to 2048).
 *
 * Mechanics: element types are inferred through the graph (declared value_info first, then per-op
 * rules); every float32 value gets a home precision (that of its producer), and a consumer of the
 * other precision reads it through one Cast per value and graph. Subgraph (If/Loop/Scan) inputs and
 * outputs are float16, so both If branches declare the same types. value_info entries follow.
 */
import { DataType } from '../../onnx/dtypes';
import { constantTensor, OnnxModel, walkGraphs } from '../../onnx/model';
import { AttributeProto, AttributeType, emptyAttribute, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../../onnx/proto';
import { makeTensor, tensorToFloat32 } from '../../onnx/tensor-data';
import { DEFAULT_CONFIG, isExcluded, QuantConfig } from '../config';
import { isExternal } from '../../onnx/external-data';
import {
  cloneModel,
  consumerMap,
  intAttr,
  isDefaultDomain,
  makeNode,
  modelSource,
  NameScope,
  RawReader,
  SkippedNode,
  TransformedNode,
  TransformResult,
} from './edit';

export interface Fp16Options {
  /** More op types to keep in float32. */
  keepFloat32?: string[];
}

const NORMALIZATION = 'divides by a variance: squares overflow float16 and epsilon (~1e-5) is subnormal';
const SUMS = 'accumulates a long sum: float16 keeps 11 significant bits';
const COORDS = 'computes coordinates or indices, which float16 rounds (exact integers only up to 2048)';
const QUANT = 'quantization scales stay float32 (float16 scales need opset 19)';
const RANDOM = 'random generator: keeps its dtype semantics';

/** Op types kept in float32, with the reason reported for each node. */
export const KEEP_FLOAT32: Readonly<Record<string, string>> = {
  Exp: 'exp overflows float16 above 11.09',
  Pow: 'powers overflow float16 (max 65504) or underflow',
  Log: 'log of float16-rounded small values loses precision',
  Softmax: 'exp and normalizing sum: overflow and accumulated rounding',
  LogSoftmax: 'exp and normalizing sum: overflow and accumulated rounding',
  ReduceSum: SUMS,
  ReduceMean: SUMS,
  ReduceProd: 'products overflow float16',
  ReduceL1: SUMS,
  ReduceL2: SUMS,
  ReduceSumSquare: SUMS,
  ReduceLogSum: SUMS,
  ReduceLogSumExp: SUMS,
  CumSum: SUMS,
  DFT: SUMS,
  STFT: SUMS,
  LayerNormalization: NORMALIZATION,
  GroupNormalization: NORMALIZATION,
  InstanceNormalization: NORMALIZATION,
  BatchNormalization: NORMALIZATION,
  MeanVarianceNormalization: NORMALIZATION,
  LpNormalization: NORMALIZATION,
  LSTM: 'recurrent state accumulates rounding over time steps',
  GRU: 'recurrent state accumulates rounding over time steps',
  RNN: 'recurrent state accumulates rounding over time steps',
  Resize: `${COORDS}; its scales input must be float32`,
  Upsample: `${COORDS}; its scales input must be float32`,
  Range: COORDS,
  GridSample: COORDS,
  AffineGrid: COORDS,
  RoiAlign: COORDS,
  NonMaxSuppression: COORDS,
  TopK: 'ranking: float16 rounding creates ties',
  RandomNormal: RANDOM,
  RandomUniform: RANDOM,
  RandomNormalLike: RANDOM,
  RandomUniformLike: RANDOM,
  Multinomial: RANDOM,
  Bernoulli: RANDOM,
  QuantizeLinear: QUANT,
  DequantizeLinear: QUANT,
  DynamicQuantizeLinear: QUANT,
  MatMulInteger: QUANT,
  ConvInteger: QUANT,
};

/** Ops that read any element type (only shapes): they never need a Cast. */
const TYPE_AGNOSTIC = new Set(['Shape', 'Size']);
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);
const F32 = DataType.FLOAT;
const F16 = DataType.FLOAT16;

type Precision = 'fp16' | 'fp32';

// ---------------------------------------------------------------------------------------------
// Element type inference

function attrTensorType(node: NodeProto, name: string): number | undefined {
  return node.attribute.find((a) => a.name === name)?.t?.dataType;
}

/** Element types of a node's outputs from its inputs' types (undefined where unknown). */
function outputTypes(node: NodeProto, type: (name: string) => number | undefined): (number | undefined)[] {
  const t = (i: number) => (node.input[i] ? type(node.input[i]!) : undefined);
  const all = (v: number | undefined) => node.output.map(() => v);
  const dtype = (fallback: number | undefined) => {
    const a = node.attribute.find((x) => x.name === 'dtype');
    return a?.i !== undefined ? Number(a.i) : fallback;
  };
  if (!isDefaultDomain(node)) return all(t(0));
  switch (node.opType) {
    case 'Constant':
      return [constantTensor(node)?.dataType];
    case 'Shape':
    case 'Size':
    case 'NonZero':
    case 'ArgMax':
    case 'ArgMin':
      return all(DataType.INT64);
    case 'Equal':
    case 'Less':
    case 'Greater':
    case 'LessOrEqual':
    case 'GreaterOrEqual':
    case 'And':
    case 'Or':
    case 'Xor':
    case 'Not':
    case 'IsNaN':
    case 'IsInf':
      return all(DataType.BOOL);
    case 'Cast':
      return [intAttr(node, 'to', 0) || undefined];
    case 'CastLike':
      return [t(1)];
    case 'ConstantOfShape':
      return [attrTensorType(node, 'value') ?? F32];
    case 'EyeLike':
    case 'RandomNormalLike':
    case 'RandomUniformLike':
    case 'Bernoulli':
      return [dtype(t(0))];
    case 'RandomNormal':
    case 'RandomUniform':
      return [dtype(F32)];
    case 'Multinomial':
      return [dtype(DataType.INT32)];
    case 'Where':
      return [t(1) ?? t(2)];
    case 'OneHot':
      return [t(2)];
    case 'QuantizeLinear':
      return [intAttr(node, 'output_dtype', 0) || t(2) || DataType.UINT8];
    case 'DequantizeLinear':
      return [t(1)];
    case 'DynamicQuantizeLinear':
      return [DataType.UINT8, F32, DataType.UINT8];
    case 'MatMulInteger':
    case 'ConvInteger':
      return all(DataType.INT32);
    case 'QLinearConv':
    case 'QLinearMatMul':
      return [t(7)];
    case 'TopK':
    case 'MaxPool':
      return [t(0), DataType.INT64];
    case 'Dropout':
      return [t(0), DataType.BOOL];
    case 'Unique':
      return [t(0), DataType.INT64, DataType.INT64, DataType.INT64];
    case 'LayerNormalization':
      return [t(0), F32, F32];
    default:
      return all(t(0));
  }
}

/** Element type of every tensor value in the model (names are unique across nested graphs). */
function inferTypes(model: ModelProto): Map<string, number> {
  const types = new Map<string, number>();
  const declare = (v: ValueInfoProto) => {
    const t = v.type?.tensorType?.elemType;
    if (t) types.set(v.name, t);
  };
  const visit = (g: GraphProto) => {
    for (const v of [...g.input, ...g.valueInfo, ...g.output]) declare(v);
    for (const t of g.initializer) types.set(t.name, t.dataType);
    for (const n of g.node) {
      const subs = n.attribute.flatMap((a) => (a.g ? [a.g] : a.graphs));
      for (const sg of subs) visit(sg);
      let outs: (number | undefined)[];
      if (n.opType === 'If' && subs[0]) outs = subs[0].output.map((o) => types.get(o.name));
      else if (n.opType === 'Loop' && subs[0]) outs = subs[0].output.slice(1).map((o) => types.get(o.name));
      else if (n.opType === 'Scan' && subs[0]) outs = subs[0].output.map((o) => types.get(o.name));
      else outs = outputTypes(n, (name) => types.get(name));
      n.output.forEach((o, i) => {
        const t = outs[i];
        if (o && !types.has(o) && t !== undefined) types.set(o, t);
      });
    }
  };
  if (model.graph) visit(model.graph);
  return types;
}

// ---------------------------------------------------------------------------------------------

function halfTensor(t: TensorProto, read: RawReader, name = t.name): TensorProto | undefined {
  const raw = isExternal(t) ? read(t) : undefined;
  if (isExternal(t) && !raw) return undefined;
  return makeTensor(name, F16, t.dims, tensorToFloat32(t, raw)); // rounds to nearest even
}

function withElemType(v: ValueInfoProto, elemType: number): ValueInfoProto {
  if (!v.type?.tensorType) return v;
  return { ...v, type: { ...v.type, tensorType: { ...v.type.tensorType, elemType } } };
}

class Fp16Converter {
  readonly quantized: TransformedNode[] = [];
  readonly skipped: SkippedNode[] = [];
  private readonly types: Map<string, number>;
  private readonly names: NameScope;
  private readonly keep: Map<string, string>;
  /** Precision of every node that reads or writes float32 values. */
  private readonly precision = new Map<NodeProto, Precision>();
  /** Where each float32 value lives after conversion: its producer's precision. */
  private readonly home = new Map<string, Precision>();
  /** Values derived only from integers cast to float (shape / mask arithmetic). */
  private readonly pinned = new Set<string>();
  private readonly constants = new Set<string>();
  private readonly mainInputs: Set<string>;
  private readonly mainOutputs: Set<string>;
  /** Cast nodes to insert, per graph: after a producer node, or at the start (null). */
  private readonly inserts = new Map<GraphProto, Map<NodeProto | null, NodeProto[]>>();
  private readonly castMemo = new Map<GraphProto, Map<string, string>>();
  private readonly producerOf = new Map<string, { node: NodeProto; graph: GraphProto }>();
  /** Float16 copies of weights, already wired to their readers. */
  private readonly handled = new Set<string>();
  weightBytes = { before: 0, after: 0 };

  constructor(
    private readonly model: ModelProto,
    private readonly read: RawReader,
    private readonly config: QuantConfig,
    options: Fp16Options,
  ) {
    this.types = inferTypes(model);
    this.names = new NameScope(model);
    this.keep = new Map(Object.entries(KEEP_FLOAT32));
    for (const op of options.keepFloat32 ?? []) this.keep.set(op, 'kept in float32 by the options');
    const g = model.graph!;
    // Initializers that are also inputs can be fed at run time (IR ≥ 4): they are inputs then.
    const overridable = model.irVersion >= 4 ? new Set(g.input.map((v) => v.name)) : new Set<string>();
    this.mainInputs = new Set(g.input.map((v) => v.name).filter((n) => overridable.has(n) || !g.initializer.some((t) => t.name === n)));
    this.mainOutputs = new Set(g.output.map((v) => v.name));
    for (const sg of walkGraphs(g)) {
      for (const t of sg.initializer) if (!this.mainInputs.has(t.name)) this.constants.add(t.name);
      for (const n of sg.node) {
        if (n.opType === 'Constant' && isDefaultDomain(n)) this.constants.add(n.output[0] ?? '');
        for (const o of n.output) if (o) this.producerOf.set(o, { node: n, graph: sg });
      }
    }
  }

  private isFloat(name: string): boolean {
    return !!name && this.types.get(name) === F32;
  }

  run(): void {
    const main = this.model.graph!;
    for (const v of main.input) if (this.isFloat(v.name) && this.mainInputs.has(v.name)) this.home.set(v.name, 'fp32');
    this.decide(main, true);
    this.convertConstants();
    this.connect();
    this.retype();
    for (const [g, byAnchor] of this.inserts) {
      const out: NodeProto[] = [...(byAnchor.get(null) ?? [])];
      for (const n of g.node) out.push(n, ...(byAnchor.get(n) ?? []));
      g.node = out;
    }
  }

  /** Chooses each node's precision, in order, descending into subgraphs before their owner's outputs. */
  private decide(g: GraphProto, isMain: boolean): void {
    if (!isMain) for (const v of g.input) if (this.isFloat(v.name)) this.home.set(v.name, 'fp16');
    for (const t of g.initializer) if (this.isFloat(t.name)) this.home.set(t.name, 'fp16');
    for (const n of g.node) {
      const subs = n.attribute.flatMap((a) => (a.g ? [a.g] : a.graphs));
      for (const sg of subs) this.decide(sg, false);
      if (n.opType === 'Constant' && isDefaultDomain(n)) continue;
      const floatIn = n.input.filter((i) => this.isFloat(i));
      const floatOut = n.output.filter((o) => this.isFloat(o));
      if (floatIn.length === 0 && floatOut.length === 0 && !CONTROL_FLOW.has(n.opType)) continue;
      const reason = this.keepReason(n, floatIn);
      const p: Precision = reason ? 'fp32' : 'fp16';
      this.precision.set(n, p);
      for (const o of floatOut) this.home.set(o, p);
      if (reason === PINNED || reason === PINNED_CAST) for (const o of floatOut) this.pinned.add(o);
      if (reason) this.skipped.push({ name: n.name, opType: n.opType, reason });
      else if (floatIn.length > 0 || floatOut.length > 0) this.quantized.push({ name: n.name, opType: n.opType, detail: 'runs in float16' });
    }
  }

  /** Why a node stays float32, or undefined when it runs in float16. */
  private keepReason(n: NodeProto, floatIn: string[]): string | undefined {
    if (CONTROL_FLOW.has(n.opType) && isDefaultDomain(n)) return undefined; // its subgraphs are converted
    if (isExcluded(this.config, n)) return 'excluded by the configuration';
    if (!isDefaultDomain(n)) return `op of domain ${n.domain}: float16 support unknown`;
    const listed = this.keep.get(n.opType);
    if (listed) return listed;
    if (n.opType.startsWith('QLinear')) return QUANT;
    if (n.opType === 'Cast' && intAttr(n, 'to', 0) === F32) {
      const from = this.types.get(n.input[0] ?? '');
      if (from !== F32 && from !== F16 && from !== DataType.DOUBLE && from !== DataType.BFLOAT16) return PINNED_CAST;
    }
    const live = floatIn.filter((i) => !this.constants.has(i));
    if (live.length > 0 && live.every((i) => this.pinned.has(i))) return PINNED;
    return undefined;
  }

  /** Stores float32 weights as float16 where every reader runs in float16; adds a float16 copy for mixed readers. */
  private convertConstants(): void {
    const consumers = consumerMap(this.model);
    const subOutputs = new Set<string>();
    for (const g of walkGraphs(this.model.graph!)) if (g !== this.model.graph) for (const o of g.output) subOutputs.add(o.name);
    const wantsHalf = (name: string) =>
      (consumers.get(name) ?? []).some((c) => this.precision.get(c.node) === 'fp16' && !TYPE_AGNOSTIC.has(c.node.opType)) || subOutputs.has(name);
    const wantsFloat = (name: string) =>
      (consumers.get(name) ?? []).some((c) => this.precision.get(c.node) === 'fp32') || this.mainOutputs.has(name);
    for (const g of walkGraphs(this.model.graph!)) {
      g.initializer = g.initializer.flatMap((t) => {
        if (t.dataType !== F32 || !this.constants.has(t.name) || !wantsHalf(t.name)) return [t];
        const half = halfTensor(t, this.read, wantsFloat(t.name) ? this.names.fresh(`${t.name}_float16`) : t.name);
        if (!half) return [t];
        this.countBytes(t);
        if (half.name === t.name) return [half];
        this.renameHalfReaders(consumers.get(t.name) ?? [], t.name, half.name);
        return [t, half];
      });
      const extra = new Map<NodeProto, NodeProto>();
      for (const n of g.node) {
        if (n.opType !== 'Constant' || !isDefaultDomain(n)) continue;
        const name = n.output[0] ?? '';
        const t = constantTensor(n);
        if (!t || t.dataType !== F32 || !wantsHalf(name)) continue;
        const both = wantsFloat(name);
        const half = halfTensor(t, this.read, both ? this.names.fresh(`${name}_float16`) : name);
        if (!half) continue;
        this.countBytes(t);
        const attr: AttributeProto = { ...emptyAttribute('value'), type: AttributeType.Tensor, t: half };
        if (!both) {
          n.attribute = [attr];
          continue;
        }
        const copy = makeNode('Constant', [], [half.name], this.names.fresh(`${n.name || name}_float16`));
        copy.attribute = [attr];
        extra.set(n, copy);
        this.renameHalfReaders(consumers.get(name) ?? [], name, half.name);
      }
      if (extra.size) g.node = g.node.flatMap((n) => (extra.has(n) ? [n, extra.get(n)!] : [n]));
    }
    for (const name of this.constants) if (this.isFloat(name) && !wantsFloat(name) && wantsHalf(name)) this.home.set(name, 'fp16');
    for (const name of this.constants) if (this.isFloat(name) && wantsFloat(name)) this.home.set(name, 'fp32');
  }

  private countBytes(t: TensorProto): void {
    const n = t.dims.reduce((a, b) => a * b, 1);
    this.weightBytes.before += 4 * n;
    this.weightBytes.after += 2 * n;
  }

  /** Points the float16 readers of a weight that keeps its float32 version at the float16 copy. */
  private renameHalfReaders(readers: { node: NodeProto }[], from: string, to: string): void {
    for (const { node } of readers) {
      if (this.precision.get(node) !== 'fp16' || TYPE_AGNOSTIC.has(node.opType)) continue;
      node.input = node.input.map((i) => (i === from ? to : i));
    }
    this.handled.add(to);
    this.types.set(to, F32);
    this.home.set(to, 'fp16');
  }

  /** Inserts Casts where a reader's precision differs from its value's home, and at the model's boundaries. */
  private connect(): void {
    const main = this.model.graph!;
    for (const o of main.output) {
      if (!this.isFloat(o.name) || this.home.get(o.name) !== 'fp16' || this.mainInputs.has(o.name)) continue;
      // Keep the public name float32: the producer writes a float16 value that is cast into it.
      const half = this.names.fresh(`${o.name}_float16`);
      for (const g of walkGraphs(main)) {
        for (const n of g.node) {
          n.input = n.input.map((i) => (i === o.name ? half : i));
          n.output = n.output.map((x) => (x === o.name ? half : x));
        }
        g.valueInfo = g.valueInfo.filter((v) => v.name !== o.name);
      }
      const producer = this.producerOf.get(o.name);
      if (producer) this.producerOf.set(half, producer);
      this.insert(main, producer?.graph === main ? producer.node : null, makeNode('Cast', [half], [o.name], this.names.fresh(`${o.name}_to_float32`), { to: F32 }));
      this.types.set(half, F32);
      this.home.set(half, 'fp16');
    }
    const consumers = consumerMap(this.model);
    for (const [name, readers] of consumers) {
      if (!this.isFloat(name) || this.handled.has(name)) continue;
      const home = this.home.get(name);
      if (!home) continue;
      for (const { node, graph } of readers) {
        const want = this.precision.get(node);
        if (!want || want === home || TYPE_AGNOSTIC.has(node.opType)) continue;
        const cast = this.castOf(name, graph, want);
        node.input = node.input.map((i) => (i === name ? cast : i));
      }
    }
    // Subgraph outputs are float16, so both If branches (and Loop/Scan bodies) agree with their node.
    for (const g of walkGraphs(main)) {
      if (g === main) continue;
      g.output = g.output.map((o) => (this.isFloat(o.name) && this.home.get(o.name) === 'fp32' ? { ...o, name: this.castOf(o.name, g, 'fp16') } : o));
    }
  }

  /** The name of `name` converted to `to`, in `graph`: one Cast per value, graph and precision. */
  private castOf(name: string, graph: GraphProto, to: Precision): string {
    let memo = this.castMemo.get(graph);
    if (!memo) this.castMemo.set(graph, (memo = new Map()));
    const key = `${to}\u0000${name}`;
    const hit = memo.get(key);
    if (hit) return hit;
    const out = this.names.fresh(`${name}_${to === 'fp16' ? 'float16' : 'float32'}`);
    const producer = this.producerOf.get(name);
    const anchor = producer && producer.graph === graph ? producer.node : null;
    this.insert(graph, anchor, makeNode('Cast', [name], [out], this.names.fresh(`${name}_to_${to === 'fp16' ? 'float16' : 'float32'}`), { to: to === 'fp16' ? F16 : F32 }));
    memo.set(key, out);
    this.types.set(out, F32); // a float value; its home tells which precision it holds
    this.home.set(out, to);
    return out;
  }

  private insert(graph: GraphProto, anchor: NodeProto | null, node: NodeProto): void {
    let byAnchor = this.inserts.get(graph);
    if (!byAnchor) this.inserts.set(graph, (byAnchor = new Map()));
    const list = byAnchor.get(anchor);
    if (list) list.push(node);
    else byAnchor.set(anchor, [node]);
  }

  /** Float16 nodes produce float16: their type attributes, and every declared type, follow. */
  private retype(): void {
    for (const [n, p] of this.precision) {
      if (p !== 'fp16') continue;
      if (n.opType === 'Cast' && intAttr(n, 'to', 0) === F32) setInt(n, 'to', F16);
      if (n.opType === 'EyeLike' && intAttr(n, 'dtype', 0) === F32) setInt(n, 'dtype', F16);
      if (n.opType === 'ConstantOfShape') {
        const a = n.attribute.find((x) => x.name === 'value');
        if (!a?.t) n.attribute = [...n.attribute, { ...emptyAttribute('value'), type: AttributeType.Tensor, t: makeTensor('value', F16, [1], [0]) }];
        else if (a.t.dataType === F32) a.t = halfTensor(a.t, this.read) ?? a.t;
      }
    }
    const isHalf = (name: string) => this.isFloat(name) && this.home.get(name) === 'fp16';
    for (const g of walkGraphs(this.model.graph!)) {
      const main = g === this.model.graph;
      g.valueInfo = g.valueInfo.map((v) => (isHalf(v.name) ? withElemType(v, F16) : v));
      if (main) continue;
      g.input = g.input.map((v) => (isHalf(v.name) ? withElemType(v, F16) : v));
      g.output = g.output.map((v) => (isHalf(v.name) || this.isFloat(v.name) ? withElemType(v, F16) : v));
    }
  }
}

const PINNED_CAST = 'casts integers to float: shape or mask arithmetic stays float32';
const PINNED = 'computes only on values cast from integers (shape or mask arithmetic)';

function setInt(n: NodeProto, name: string, value: number): void {
  n.attribute = n.attribute.map((a) => (a.name === name ? { ...a, i: BigInt(value) } : a));
}

/**
 * Converts a model to float16 (see the header). `quantized` lists the nodes that now run in float16,
 * `skipped` the float nodes kept in float32 with the reason.
 */
export function convertFp16(
  model: OnnxModel | ModelProto,
  config: QuantConfig = { ...DEFAULT_CONFIG, mode: 'fp16' },
  options: Fp16Options = {},
): TransformResult & { weightBytes: { before: number; after: number } } {
  const { proto, read } = modelSource(model);
  const out = cloneModel(proto);
  if (!out.graph) return { model: out, quantized: [], skipped: [], weightBytes: { before: 0, after: 0 } };
  const c = new Fp16Converter(out, read, config, options);
  c.run();
  return { model: out, quantized: c.quantized, skipped: c.skipped, weightBytes: c.weightBytes };
}

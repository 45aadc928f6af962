/**
 * Default-domain opset upgrade ("version conversion") without Python: QDQ quantization needs
 * opset ≥ 13 (per-channel QuantizeLinear/DequantizeLinear `axis`), 16/4-bit types need opset 21,
 * and many published models are older. Raising the opset number alone would change the meaning of
 * every operator whose definition changed between the model's opset and the target, so each such
 * node is rewritten into an equivalent one (or a small equivalent subgraph) of the target opset.
 *
 *   const { model: upgraded, changes } = upgradeOpset(model.proto, 13);
 *   const { ok, blockers } = canUpgrade(model.proto, 21);
 *
 * Scope: nodes of the default domain ('' or 'ai.onnx') in every graph (If/Loop/Scan subgraphs
 * included) and in model-local functions that import the default domain. Other domains are left
 * alone. Sources from opset 7 (the first with numpy broadcasting) to targets up to 21.
 * The input model is never modified: graphs, nodes and attribute lists are copied, tensors shared.
 *
 * How an operator is judged: `OP_VERSIONS` lists, for every default-domain operator, the opset
 * versions in which its definition changed (the "since version"s of ONNX's Operators.md, up to
 * opset 21). A node needs attention only if its operator's definition at the source opset differs
 * from the one at the target. Most of those changes only add types or attributes whose default
 * keeps the old behaviour ("compatible"); the others are rewritten:
 *
 *   step    operator(s)                          rewrite
 *   → 9     BatchNormalization-7                 `spatial` removed (spatial=0: explicit Sub/Add/Sqrt/Div/Mul/Add)
 *   → 9     Upsample-7                           `scales` attribute → input (when the target is 9)
 *   → 9     Scan-8                               batch-major Scan with sequence_lens → blocker
 *   → 10    Slice                                starts/ends/axes attributes → int64 inputs
 *   → 10    TopK                                 k attribute → int64 input of shape [1]
 *   → 10    Upsample (deprecated at 10)          → Resize (at 10: same inputs; from 11: empty roi,
 *                                                coordinate_transformation_mode=asymmetric, nearest_mode=floor)
 *   → 10    experimental ops (removed)           ImageScaler/Scale/Affine/ScaledTanh/ParametricSoftplus →
 *                                                Mul/Add/Tanh/Softplus; DynamicSlice/Crop → Slice;
 *                                                ATen, ConstantFill, GivenTensorFill, GRUUnit → blocker
 *   → 10/12 Dropout with a used mask             the mask is bool from 10, and onnxruntime fills it with
 *                                                false before 12 but true from 12 → Identity +
 *                                                ConstantOfShape(Shape(x), 0/false)
 *   → 11    Clip                                 min/max attributes → scalar inputs typed like the data
 *   → 11    Pad                                  pads/value attributes → inputs
 *   → 11    Resize-10                            roi input, coordinate_transformation_mode=asymmetric,
 *                                                nearest_mode floor (ceil for down-sampling by a
 *                                                non-integer factor, as onnxruntime computed Resize-10)
 *   → 11    Scatter (deprecated at 11)           → ScatterElements
 *   → 12    Dropout                              ratio attribute → input
 *   → 13    Softmax, LogSoftmax, Hardmax         axis semantics (2-D coercion → one axis): the last axis
 *                                                is kept, any other → Shape, Flatten, op(axis=1), Reshape
 *   → 13    Squeeze, Unsqueeze, ReduceSum        axes attribute → int64 input
 *   → 13    Split                                split attribute → int64 input
 *   → 13    Resize                               tf_half_pixel_for_nn (deprecated) → half_pixel with
 *                                                nearest_mode ceil / round_prefer_ceil where equivalent
 *   → 14    BatchNormalization                   training mode (more than one output) → training_mode=1
 *                                                with 3 outputs; used saved_mean/saved_var → blocker
 *   → 16    RoiAlign                             coordinate_transformation_mode=output_half_pixel
 *   → 18    ReduceL1/L2/LogSum/LogSumExp/Max/    axes attribute → int64 input
 *           Mean/Min/Prod/SumSquare
 *   → 18    Split                                num_outputs attribute when there is no split input
 *   → 20    GridSample                           mode bilinear/bicubic → linear/cubic
 *   → 20    DFT                                  axis attribute → input
 *   → 21    GroupNormalization                   per-group scale/bias → per-channel (Reshape/Expand)
 *
 * Operators checked and found compatible at every step (the new version only adds types, optional
 * inputs/outputs, negative axes, or attributes whose default is the old behaviour — as the ONNX
 * version converter's "compatible" adapters also record): Abs, Acos, Acosh, Add, And, ArgMax,
 * ArgMin, Asin, Asinh, Atan, Atanh, AveragePool, Bernoulli, BitShift, Bitwise*, Cast, CastLike,
 * Ceil, Celu, Compress, Concat, Constant, ConstantOfShape, Conv, ConvInteger, ConvTranspose, Cos,
 * Cosh, CumSum, DepthToSpace, DequantizeLinear, Det, Div, Einsum, Elu, Equal, Erf, Exp, Expand,
 * EyeLike, Flatten, Floor, GRU, Gather, GatherElements, GatherND, Gemm, GlobalAveragePool,
 * GlobalLpPool, GlobalMaxPool, Greater, GreaterOrEqual, HardSigmoid, HardSwish, Identity, If,
 * InstanceNormalization, IsInf, IsNaN, LRN, LSTM, LeakyRelu, Less, LessOrEqual, Log, Loop,
 * LpNormalization, LpPool, MatMul, MatMulInteger, Max, MaxPool, MaxRoiPool, MaxUnpool, Mean,
 * MeanVarianceNormalization (from 9; the experimental one of opset 1 is a blocker), Min, Mod, Mul,
 * Neg, NonMaxSuppression, NonZero, Not, OneHot, Optional*, Or, PRelu, Pow, QLinearConv,
 * QLinearMatMul, QuantizeLinear, RNN, Random*, Range, Reciprocal, Relu, Reshape, ReverseSequence,
 * Round, ScatterElements, ScatterND, Selu, Sequence*, Shape, Shrink, Sigmoid, Sign, Sin, Sinh,
 * Size, SpaceToDepth, Sqrt, Sub, Sum, Tan, Tanh, ThresholdedRelu, Tile, Transpose, Where, Xor, and
 * the ops new since opset 12 (Einsum, LayerNormalization, Trilu, GridSample…) between their own
 * versions except those listed above.
 *
 * Anything impossible (Scan-8, used saved_mean/saved_var BatchNormalization outputs,
 * an attribute that is a function's attribute reference, a data type we cannot determine for a new
 * typed constant, an unknown default-domain operator) is an OpsetUpgradeError naming the node, the
 * operator and why; callers then fall back to com.microsoft QuantizeLinear/DequantizeLinear.
 */
import { DataType, dataTypeName } from './dtypes';
import { Attr, AttrValue } from './builder';
import { constantTensor } from './model';
import {
  AttributeProto,
  AttributeType,
  emptyGraph,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  TypeProto,
} from './proto';
import { makeTensor, tensorValues } from './tensor-data';
import { cloneGraph, makeNode, NameScope } from '../quant/graph/edit';

/** Lowest source opset handled (opset 7 introduced numpy broadcasting for the arithmetic ops). */
export const MIN_SOURCE_OPSET = 7;
/** Highest target opset handled (the table below is complete up to this opset). */
export const MAX_TARGET_OPSET = 21;

/**
 * Since-versions of every default-domain operator up to opset 21 (ONNX Operators.md). An
 * operator's definition at opset N is its largest since-version ≤ N.
 */
export const OP_VERSIONS: Readonly<Record<string, readonly number[]>> = {
  Abs: [1, 6, 13],
  Acos: [7],
  Acosh: [9],
  Add: [1, 6, 7, 13, 14],
  AffineGrid: [20],
  And: [1, 7],
  ArgMax: [1, 11, 12, 13],
  ArgMin: [1, 11, 12, 13],
  Asin: [7],
  Asinh: [9],
  Atan: [7],
  Atanh: [9],
  AveragePool: [1, 7, 10, 11, 19],
  BatchNormalization: [1, 6, 7, 9, 14, 15],
  Bernoulli: [15],
  BitShift: [11],
  BitwiseAnd: [18],
  BitwiseNot: [18],
  BitwiseOr: [18],
  BitwiseXor: [18],
  BlackmanWindow: [17],
  Cast: [1, 6, 9, 13, 19, 21],
  CastLike: [15, 19, 21],
  Ceil: [1, 6, 13],
  Celu: [12],
  CenterCropPad: [18],
  Clip: [1, 6, 11, 12, 13],
  Col2Im: [18],
  Compress: [9, 11],
  Concat: [1, 4, 11, 13],
  ConcatFromSequence: [11],
  Constant: [1, 9, 11, 12, 13, 19, 21],
  ConstantOfShape: [9, 20, 21],
  Conv: [1, 11],
  ConvInteger: [10],
  ConvTranspose: [1, 11],
  Cos: [7],
  Cosh: [9],
  CumSum: [11, 14],
  DFT: [17, 20],
  DeformConv: [19],
  DepthToSpace: [1, 11, 13],
  DequantizeLinear: [10, 13, 19, 21],
  Det: [11],
  Div: [1, 6, 7, 13, 14],
  Dropout: [1, 6, 7, 10, 12, 13],
  DynamicQuantizeLinear: [11],
  Einsum: [12],
  Elu: [1, 6],
  Equal: [1, 7, 11, 13, 19],
  Erf: [9, 13],
  Exp: [1, 6, 13],
  Expand: [8, 13],
  EyeLike: [9],
  Flatten: [1, 9, 11, 13, 21],
  Floor: [1, 6, 13],
  GRU: [1, 3, 7, 14],
  Gather: [1, 11, 13],
  GatherElements: [11, 13],
  GatherND: [11, 12, 13],
  Gelu: [20],
  Gemm: [1, 6, 7, 9, 11, 13],
  GlobalAveragePool: [1],
  GlobalLpPool: [1, 2],
  GlobalMaxPool: [1],
  Greater: [1, 7, 9, 13],
  GreaterOrEqual: [12, 16],
  GridSample: [16, 20],
  GroupNormalization: [18, 21],
  HammingWindow: [17],
  HannWindow: [17],
  HardSigmoid: [1, 6],
  HardSwish: [14],
  Hardmax: [1, 11, 13],
  Identity: [1, 13, 14, 16, 19, 21],
  If: [1, 11, 13, 16, 19, 21],
  ImageDecoder: [20],
  InstanceNormalization: [1, 6],
  IsInf: [10, 20],
  IsNaN: [9, 13, 20],
  LRN: [1, 13],
  LSTM: [1, 7, 14],
  LayerNormalization: [17],
  LeakyRelu: [1, 6, 16],
  Less: [1, 7, 9, 13],
  LessOrEqual: [12, 16],
  Log: [1, 6, 13],
  LogSoftmax: [1, 11, 13],
  Loop: [1, 11, 13, 16, 19, 21],
  LpNormalization: [1],
  LpPool: [1, 2, 11, 18],
  MatMul: [1, 9, 13],
  MatMulInteger: [10],
  Max: [1, 6, 8, 12, 13],
  MaxPool: [1, 8, 10, 11, 12],
  MaxRoiPool: [1],
  MaxUnpool: [9, 11],
  Mean: [1, 6, 8, 13],
  MeanVarianceNormalization: [9, 13],
  MelWeightMatrix: [17],
  Min: [1, 6, 8, 12, 13],
  Mish: [18],
  Mod: [10, 13],
  Mul: [1, 6, 7, 13, 14],
  Multinomial: [7],
  Neg: [1, 6, 13],
  NegativeLogLikelihoodLoss: [12, 13],
  NonMaxSuppression: [10, 11],
  NonZero: [9, 13],
  Not: [1],
  OneHot: [9, 11],
  Optional: [15],
  OptionalGetElement: [15, 18],
  OptionalHasElement: [15, 18],
  Or: [1, 7],
  PRelu: [1, 6, 7, 9, 16],
  Pad: [1, 2, 11, 13, 18, 19, 21],
  Pow: [1, 7, 12, 13, 15],
  QLinearConv: [10],
  QLinearMatMul: [10, 21],
  QuantizeLinear: [10, 13, 19, 21],
  RNN: [1, 7, 14],
  RandomNormal: [1],
  RandomNormalLike: [1],
  RandomUniform: [1],
  RandomUniformLike: [1],
  Range: [11],
  Reciprocal: [1, 6, 13],
  ReduceL1: [1, 11, 13, 18],
  ReduceL2: [1, 11, 13, 18],
  ReduceLogSum: [1, 11, 13, 18],
  ReduceLogSumExp: [1, 11, 13, 18],
  ReduceMax: [1, 11, 12, 13, 18, 20],
  ReduceMean: [1, 11, 13, 18],
  ReduceMin: [1, 11, 12, 13, 18, 20],
  ReduceProd: [1, 11, 13, 18],
  ReduceSum: [1, 11, 13],
  ReduceSumSquare: [1, 11, 13, 18],
  RegexFullMatch: [20],
  Relu: [1, 6, 13, 14],
  Reshape: [1, 5, 13, 14, 19, 21],
  Resize: [10, 11, 13, 18, 19],
  ReverseSequence: [10],
  RoiAlign: [10, 16],
  Round: [11],
  STFT: [17],
  Scan: [8, 9, 11, 16, 19, 21],
  Scatter: [9, 11],
  ScatterElements: [11, 13, 16, 18],
  ScatterND: [11, 13, 16, 18],
  Selu: [1, 6],
  SequenceAt: [11],
  SequenceConstruct: [11],
  SequenceEmpty: [11],
  SequenceErase: [11],
  SequenceInsert: [11],
  SequenceLength: [11],
  SequenceMap: [17],
  Shape: [1, 13, 15, 19, 21],
  Shrink: [9],
  Sigmoid: [1, 6, 13],
  Sign: [9, 13],
  Sin: [7],
  Sinh: [9],
  Size: [1, 13, 19, 21],
  Slice: [1, 10, 11, 13],
  Softmax: [1, 11, 13],
  SoftmaxCrossEntropyLoss: [12, 13],
  Softplus: [1],
  Softsign: [1],
  SpaceToDepth: [1, 13],
  Split: [1, 2, 11, 13, 18],
  SplitToSequence: [11],
  Sqrt: [1, 6, 13],
  Squeeze: [1, 11, 13, 21],
  StringConcat: [20],
  StringNormalizer: [10],
  StringSplit: [20],
  Sub: [1, 6, 7, 13, 14],
  Sum: [1, 6, 8, 13],
  Tan: [7],
  Tanh: [1, 6, 13],
  TfIdfVectorizer: [9],
  ThresholdedRelu: [10],
  Tile: [1, 6, 13],
  TopK: [1, 10, 11],
  Transpose: [1, 13, 21],
  Trilu: [14],
  Unique: [11],
  Unsqueeze: [1, 11, 13, 21],
  Upsample: [7, 9, 10],
  Where: [9, 16],
  Xor: [1, 7],
};

/**
 * Operators whose definition at some opset is "deprecated": from that opset on the operator does
 * not exist any more and is replaced (Upsample → Resize, Scatter → ScatterElements).
 */
export const DEPRECATED_AT: Readonly<Record<string, number>> = { Upsample: 10, Scatter: 11 };

/**
 * Experimental operators of opset 1 (no versioning; removed from ONNX in opset 10, which onnxruntime
 * follows). ThresholdedRelu was promoted at 10 with the same meaning and is in OP_VERSIONS.
 */
export const EXPERIMENTAL_OPS: ReadonlySet<string> = new Set([
  'ATen',
  'Affine',
  'ConstantFill',
  'Crop',
  'DynamicSlice',
  'GRUUnit',
  'GivenTensorFill',
  'ImageScaler',
  'ParametricSoftplus',
  'Scale',
  'ScaledTanh',
]);

/** The IR version released with each opset (ONNX Versioning.md): a model at that opset needs it. */
const MIN_IR_FOR_OPSET: Readonly<Record<number, number>> = {
  7: 3, 8: 3, 9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10,
};

export class OpsetUpgradeError extends Error {
  /** Every reason the model cannot be upgraded (the message names the first). */
  readonly blockers: string[];
  /** Node and operator of the first blocker, when it is about a node. */
  readonly nodeName: string | undefined;
  readonly opType: string | undefined;

  constructor(blockers: string[], first?: { nodeName: string; opType: string }) {
    const more = blockers.length > 1 ? ` (and ${blockers.length - 1} more)` : '';
    super(`cannot upgrade the opset: ${blockers[0] ?? 'unknown reason'}${more}`);
    this.name = 'OpsetUpgradeError';
    this.blockers = blockers;
    this.nodeName = first?.nodeName;
    this.opType = first?.opType;
  }
}

export interface OpsetUpgradeResult {
  model: ModelProto;
  /** What was done, one line per kind of rewrite (with counts and example nodes). */
  changes: string[];
}

/**
 * A new model whose default-domain opset is `target`, with every node whose operator changed
 * meaning rewritten so that the model computes the same function. Throws OpsetUpgradeError
 * (listing every blocker) when some node cannot be converted.
 */
export function upgradeOpset(model: ModelProto, target: number): OpsetUpgradeResult {
  const run = runUpgrade(model, target);
  if (run.blockers.length > 0) throw new OpsetUpgradeError(run.blockers.map((b) => b.text), run.blockers[0]?.node);
  return { model: run.model, changes: run.changes };
}

/** Whether `upgradeOpset(model, target)` would succeed, and if not every reason why. */
export function canUpgrade(model: ModelProto, target: number): { ok: boolean; blockers: string[] } {
  const blockers = runUpgrade(model, target).blockers.map((b) => b.text);
  return { ok: blockers.length === 0, blockers };
}

/** The default-domain opset a model imports, or undefined. */
export function defaultOpset(model: ModelProto): number | undefined {
  return model.opsetImport.find((o) => isDefaultDomain(o.domain))?.version;
}

// =================================================================================================
// Driver

interface Blocker {
  text: string;
  node?: { nodeName: string; opType: string };
}

interface Run {
  model: ModelProto;
  changes: string[];
  blockers: Blocker[];
}

function isDefaultDomain(domain: string): boolean {
  return domain === '' || domain === 'ai.onnx';
}

/** Definition version of `op` at `opset`, or undefined when the op does not exist there. */
export function opVersionAt(op: string, opset: number): number | undefined {
  const versions = OP_VERSIONS[op];
  if (!versions) return undefined;
  let v: number | undefined;
  for (const s of versions) if (s <= opset) v = s;
  return v;
}

function runUpgrade(input: ModelProto, target: number): Run {
  const blockers: Blocker[] = [];
  const changes = new ChangeLog();
  const model = cloneModelDeep(input);
  const entry = model.opsetImport.find((o) => isDefaultDomain(o.domain));
  const source = entry?.version;
  if (!Number.isInteger(target) || target < MIN_SOURCE_OPSET || target > MAX_TARGET_OPSET) {
    blockers.push({ text: `target opset ${target} is outside the supported range ${MIN_SOURCE_OPSET}–${MAX_TARGET_OPSET}` });
    return { model, changes: [], blockers };
  }
  if (!entry || source === undefined) {
    blockers.push({ text: 'the model does not import the default ONNX domain' });
    return { model, changes: [], blockers };
  }
  if (source > target) {
    blockers.push({ text: `the model's opset ${source} is newer than the target ${target} (downgrades are not supported)` });
    return { model, changes: [], blockers };
  }
  if (source === target) return { model, changes: [], blockers };
  if (source < MIN_SOURCE_OPSET) {
    blockers.push({ text: `the model's opset ${source} is older than ${MIN_SOURCE_OPSET}, the oldest supported source` });
    return { model, changes: [], blockers };
  }

  const irBefore = model.irVersion;
  const irAfter = Math.max(model.irVersion, MIN_IR_FOR_OPSET[target] ?? model.irVersion);
  const useConstantNodes = irAfter < 4; // IR 3 wants every initializer listed as a graph input
  const scope = new NameScope(model);
  for (const f of model.functions) reserveFunctionNames(scope, f);
  let used: Set<string> | undefined;
  const usedNames = () => (used ??= namesRead(input));
  const env: Env = { from: source, to: target, scope, blockers, changes, usedNames };

  if (model.graph) upgradeGraph(model.graph, env, undefined, useConstantNodes, 'main graph');
  for (const f of model.functions) {
    const fEntry = f.opsetImport.find((o) => isDefaultDomain(o.domain));
    if (!fEntry) continue;
    if (fEntry.version > target) {
      blockers.push({ text: `function ${f.domain}.${f.name} imports opset ${fEntry.version}, newer than the target ${target}` });
      continue;
    }
    if (fEntry.version < MIN_SOURCE_OPSET) {
      blockers.push({ text: `function ${f.domain}.${f.name} imports opset ${fEntry.version}, older than ${MIN_SOURCE_OPSET}` });
      continue;
    }
    const fEnv: Env = { ...env, from: fEntry.version };
    const facts = new Facts(undefined);
    facts.collectFunction(f, fEntry.version);
    f.node = upgradeNodeList(f.node, fEnv, facts, new ConstSink(undefined, true, scope), `function ${f.name}`);
    fEntry.version = target;
  }

  entry.version = target;
  model.irVersion = irAfter;
  const header = [`default-domain opset ${source} → ${target}`];
  if (irAfter !== irBefore) header.push(`IR version ${irBefore} → ${irAfter} (the IR version opset ${target} was released with)`);
  return { model, changes: [...header, ...changes.lines()], blockers };
}

/** Structural copy: graphs (recursively), nodes, attribute lists and functions; tensors shared. */
function cloneModelDeep(m: ModelProto): ModelProto {
  return {
    ...m,
    opsetImport: m.opsetImport.map((o) => ({ ...o })),
    graph: m.graph ? cloneGraph(m.graph) : undefined,
    functions: m.functions.map(
      (f): FunctionProto => ({
        ...f,
        opsetImport: f.opsetImport.map((o) => ({ ...o })),
        node: cloneGraph({ ...emptyGraph(), node: f.node }).node,
        valueInfo: [...f.valueInfo],
      }),
    ),
  };
}

function namesRead(model: ModelProto): Set<string> {
  const s = new Set<string>();
  const visit = (nodes: NodeProto[], outputs: string[]) => {
    for (const o of outputs) s.add(o);
    for (const n of nodes) {
      for (const i of n.input) if (i) s.add(i);
      for (const a of n.attribute) {
        if (a.g) visit(a.g.node, a.g.output.map((v) => v.name));
        for (const g of a.graphs) visit(g.node, g.output.map((v) => v.name));
      }
    }
  };
  if (model.graph) visit(model.graph.node, model.graph.output.map((v) => v.name));
  for (const f of model.functions) visit(f.node, f.output);
  return s;
}

function reserveFunctionNames(scope: NameScope, f: FunctionProto): void {
  for (const name of [...f.input, ...f.output]) scope.fresh(name);
  for (const n of f.node) for (const name of [n.name, ...n.input, ...n.output]) if (name) scope.fresh(name);
}

interface Env {
  from: number;
  to: number;
  scope: NameScope;
  blockers: Blocker[];
  changes: ChangeLog;
  /** Every name read by a node or a graph/function output anywhere in the model. */
  usedNames: () => Set<string>;
}

function upgradeGraph(g: GraphProto, env: Env, parentFacts: Facts | undefined, useConstantNodes: boolean, where: string): void {
  const facts = new Facts(parentFacts);
  facts.collectGraph(g, env.from);
  const sink = new ConstSink(g, useConstantNodes, env.scope);
  g.node = upgradeNodeList(g.node, env, facts, sink, where);
}

function upgradeNodeList(nodes: NodeProto[], env: Env, facts: Facts, sink: ConstSink, where: string): NodeProto[] {
  const out: NodeProto[] = [];
  nodes.forEach((node, index) => {
    for (const a of node.attribute) {
      const label = `${where} › ${node.opType} ${describeNode(node, index)} › ${a.name}`;
      if (a.g) upgradeGraph(a.g, env, facts, sink.useConstantNodes, label);
      for (const sub of a.graphs) upgradeGraph(sub, env, facts, sink.useConstantNodes, label);
    }
    if (!isDefaultDomain(node.domain)) {
      out.push(node);
      return;
    }
    const ctx = new NodeCtx(node, index, env, facts, sink, where);
    try {
      const replaced = upgradeNode(ctx);
      out.push(...sink.takePending(), ...(replaced ?? [node]));
    } catch (err) {
      if (!(err instanceof NodeBlocker)) throw err;
      sink.takePending();
      env.blockers.push({ text: `${where}: ${node.opType} node ${describeNode(node, index)}: ${err.message}`, node: { nodeName: node.name || node.output[0] || '', opType: node.opType } });
      out.push(node);
    }
  });
  return out;
}

function describeNode(n: NodeProto, index: number): string {
  return n.name ? `"${n.name}"` : `#${index} (output "${n.output[0] ?? ''}")`;
}

/** Thrown by a rewrite that cannot preserve the node's meaning; collected as a blocker. */
class NodeBlocker extends Error {}

/** Groups the rewrites by kind: "Clip: min/max attributes → inputs — 28 nodes (a, b, c, …)". */
class ChangeLog {
  private readonly kinds = new Map<string, string[]>();
  add(kind: string, node: string): void {
    let list = this.kinds.get(kind);
    if (!list) this.kinds.set(kind, (list = []));
    list.push(node);
  }
  lines(): string[] {
    return [...this.kinds].map(([kind, nodes]) => {
      const shown = nodes.slice(0, 3).join(', ') + (nodes.length > 3 ? ', …' : '');
      return `${kind} — ${nodes.length} node${nodes.length === 1 ? '' : 's'} (${shown})`;
    });
  }
}

// =================================================================================================
// Facts about values: element type, rank, and constant tensors, from declarations and propagation

interface Fact {
  elem?: number;
  rank?: number;
  /** Number of elements of a 1-D tensor (e.g. a shape), when known. */
  length?: number;
  tensor?: TensorProto;
}

const BOOL_OPS = new Set([
  'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf', 'RegexFullMatch',
]);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
/** Ops whose first output has the rank of input 0 (every output for MULTI_SAME_RANK_OPS). */
const SAME_RANK_OPS = new Set([
  'Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization', 'BitwiseNot', 'Cast',
  'CastLike', 'Ceil', 'Celu', 'CenterCropPad', 'Clip', 'Concat', 'Conv', 'ConvInteger', 'ConvTranspose', 'Cos', 'Cosh',
  'CumSum', 'DepthToSpace', 'DequantizeLinear', 'Dropout', 'Elu', 'Erf', 'Exp', 'Floor', 'GatherElements', 'Gelu',
  'GlobalAveragePool', 'GlobalLpPool', 'GlobalMaxPool', 'GroupNormalization', 'HardSigmoid', 'HardSwish', 'Hardmax',
  'Identity', 'InstanceNormalization', 'IsInf', 'IsNaN', 'LRN', 'LayerNormalization', 'LeakyRelu', 'Log', 'LogSoftmax',
  'LpNormalization', 'LpPool', 'MaxPool', 'MeanVarianceNormalization', 'Mish', 'Neg', 'Not', 'PRelu', 'Pad',
  'QLinearConv', 'QuantizeLinear', 'Reciprocal', 'Relu', 'Resize', 'ReverseSequence', 'Round', 'Scatter',
  'ScatterElements', 'ScatterND', 'Selu', 'Shrink', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Slice', 'Softmax', 'Softplus',
  'Softsign', 'SpaceToDepth', 'Split', 'Sqrt', 'Tan', 'Tanh', 'ThresholdedRelu', 'Tile', 'TopK', 'Transpose', 'Trilu',
  'Upsample',
]);
const MULTI_SAME_RANK_OPS = new Set(['Split', 'TopK', 'Dropout', 'MaxPool']);
const BROADCAST_OPS = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'Greater', 'Less', 'GreaterOrEqual',
  'LessOrEqual', 'And', 'Or', 'Xor', 'BitShift', 'Where', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor',
]);
const REDUCE_OPS = new Set([
  'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd',
  'ReduceSum', 'ReduceSumSquare',
]);

function tensorFact(t: TensorProto): Fact {
  return { elem: t.dataType, rank: t.dims.length, length: t.dims.length === 1 ? t.dims[0] : undefined, tensor: t };
}

class Facts {
  private readonly map = new Map<string, Fact>();
  constructor(private readonly parent: Facts | undefined) {}

  get(name: string): Fact | undefined {
    return this.map.get(name) ?? this.parent?.get(name);
  }
  elem(name: string): number | undefined {
    return this.get(name)?.elem;
  }
  rank(name: string): number | undefined {
    return this.get(name)?.rank;
  }
  tensor(name: string): TensorProto | undefined {
    return this.get(name)?.tensor;
  }

  private set(name: string, f: Fact): void {
    if (!name) return;
    const old = this.map.get(name) ?? {};
    this.map.set(name, {
      elem: old.elem ?? (f.elem ? f.elem : undefined),
      rank: old.rank ?? f.rank,
      length: old.length ?? f.length,
      tensor: old.tensor ?? f.tensor,
    });
  }

  private declare(name: string, type: TypeProto | undefined): void {
    const t = type?.tensorType;
    if (!t) return;
    this.set(name, { elem: t.elemType || undefined, rank: t.shape ? t.shape.dims.length : undefined });
  }

  /** Declarations of a graph, then propagation through its nodes. */
  collectGraph(g: GraphProto, opset: number): void {
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) this.declare(v.name, v.type);
    for (const t of g.initializer) this.set(t.name, tensorFact(t));
    this.collectNodes(g.node, opset);
  }

  /** A function body: its value_info declarations (IR ≥ 10), then propagation. */
  collectFunction(f: FunctionProto, opset: number): void {
    for (const v of f.valueInfo) this.declare(v.name, v.type);
    this.collectNodes(f.node, opset);
  }

  /** Two passes, so that graphs whose nodes are not topologically sorted still get their facts. */
  private collectNodes(nodes: NodeProto[], opset: number): void {
    for (let pass = 0; pass < 2; pass++) for (const n of nodes) this.propagate(n, opset);
  }

  private propagate(n: NodeProto, opset: number): void {
    if (!isDefaultDomain(n.domain)) return;
    const op = n.opType;
    const in0 = n.input[0] ?? '';
    const e0 = in0 ? this.elem(in0) : undefined;
    const r0 = in0 ? this.rank(in0) : undefined;
    const out = n.output;

    if (op === 'Constant') {
      const t = constantTensor(n);
      if (t && out[0]) this.set(out[0], tensorFact(t));
      return;
    }

    // ---- element types
    const elems: (number | undefined)[] = out.map(() => e0);
    const intAttr = (name: string): number | undefined => {
      const a = findAttr(n, name);
      return a?.i !== undefined ? Number(a.i) : undefined;
    };
    if (op === 'Cast') elems.fill(intAttr('to'));
    else if (op === 'CastLike') elems.fill(this.elem(n.input[1] ?? ''));
    else if (INT64_OPS.has(op)) elems.fill(DataType.INT64);
    else if (BOOL_OPS.has(op)) elems.fill(DataType.BOOL);
    else if (op === 'ConstantOfShape') elems.fill(findAttr(n, 'value')?.t?.dataType ?? DataType.FLOAT);
    else if (op === 'EyeLike' || op === 'RandomNormalLike' || op === 'RandomUniformLike' || op === 'Bernoulli') elems.fill(intAttr('dtype') ?? e0);
    else if (op === 'RandomNormal' || op === 'RandomUniform') elems.fill(intAttr('dtype') ?? DataType.FLOAT);
    else if (op === 'Multinomial') elems.fill(intAttr('dtype') ?? DataType.INT32);
    else if (op === 'Where') elems.fill(this.elem(n.input[1] ?? ''));
    else if (op === 'OneHot') elems.fill(this.elem(n.input[2] ?? ''));
    else if (op === 'QuantizeLinear') elems.fill(intAttr('output_dtype') || (n.input[2] ? this.elem(n.input[2]) : DataType.UINT8));
    else if (op === 'DequantizeLinear') elems.fill(this.elem(n.input[1] ?? ''));
    else if (op === 'DynamicQuantizeLinear') elems.splice(0, 3, DataType.UINT8, DataType.FLOAT, DataType.UINT8);
    else if (op === 'QLinearConv' || op === 'QLinearMatMul') elems.fill(this.elem(n.input[7] ?? ''));
    else if (op === 'ConvInteger' || op === 'MatMulInteger') elems.fill(DataType.INT32);
    else if (op === 'TopK' || op === 'MaxPool' || op === 'Unique') elems.fill(DataType.INT64, 1);
    else if (op === 'Dropout') elems.fill(opset >= 10 ? DataType.BOOL : e0, 1);
    else if (op === 'BlackmanWindow' || op === 'HammingWindow' || op === 'HannWindow' || op === 'MelWeightMatrix') elems.fill(intAttr('output_datatype') ?? DataType.FLOAT);
    else if (op === 'StringNormalizer' || op === 'StringConcat') elems.fill(DataType.STRING);
    else if (op === 'StringSplit') elems.splice(0, 2, DataType.STRING, DataType.INT64);
    else if (op === 'TfIdfVectorizer') elems.fill(DataType.FLOAT);
    else if (op === 'ImageDecoder') elems.fill(DataType.UINT8);
    else if (op === 'If' || op === 'Loop' || op === 'Scan') {
      // Declared output types of the body (Loop's body outputs start with the condition).
      const body = findAttr(n, op === 'If' ? 'then_branch' : 'body')?.g;
      const skip = op === 'Loop' ? 1 : 0;
      elems.forEach((_, i) => (elems[i] = body?.output[i + skip]?.type?.tensorType?.elemType || undefined));
    }
    else if (op.startsWith('Sequence') || op.startsWith('Optional') || op === 'SplitToSequence' || op === 'ConcatFromSequence') elems.fill(undefined);

    // ---- ranks
    const ranks: (number | undefined)[] = out.map(() => undefined);
    const rIn = (i: number) => (n.input[i] ? this.rank(n.input[i]!) : undefined);
    const constLen = (i: number): number | undefined => (n.input[i] ? this.get(n.input[i]!)?.length : undefined);
    const attrLen = (name: string): number | undefined => findAttr(n, name)?.ints.length;
    if (op === 'Transpose' && findAttr(n, 'perm')) ranks[0] = findAttr(n, 'perm')!.ints.length;
    else if (MULTI_SAME_RANK_OPS.has(op)) ranks.fill(r0);
    else if (SAME_RANK_OPS.has(op)) ranks[0] = r0;
    else if (BROADCAST_OPS.has(op)) {
      const rs = n.input.filter((i) => i).map((i) => this.rank(i));
      if (rs.every((r) => r !== undefined)) ranks.fill(Math.max(...(rs as number[])));
    } else if (op === 'MatMul' || op === 'MatMulInteger') {
      const [ra, rb] = [rIn(0), rIn(1)];
      if (ra !== undefined && rb !== undefined) ranks[0] = ra === 1 && rb === 1 ? 0 : ra === 1 ? rb - 1 : rb === 1 ? ra - 1 : Math.max(ra, rb);
    } else if (op === 'Gemm' || op === 'Flatten' || op === 'NonZero') ranks[0] = 2;
    else if (op === 'Shape' || op === 'Range') ranks[0] = 1;
    else if (op === 'Size') ranks[0] = 0;
    else if (op === 'ArgMax' || op === 'ArgMin') ranks[0] = r0 === undefined ? undefined : intAttr('keepdims') === 0 ? r0 - 1 : r0;
    else if (REDUCE_OPS.has(op)) {
      const noAxes = !findAttr(n, 'axes') && !n.input[1];
      if (intAttr('keepdims') !== 0 || (noAxes && intAttr('noop_with_empty_axes') === 1)) ranks[0] = r0;
      else if (r0 !== undefined) {
        const k = attrLen('axes') || constLen(1);
        ranks[0] = k !== undefined && k > 0 ? r0 - k : n.input[1] ? undefined : 0;
      }
    } else if (op === 'Reshape') ranks[0] = constLen(1);
    else if (op === 'Unsqueeze' || op === 'Squeeze') {
      const k = attrLen('axes') || constLen(1);
      if (r0 !== undefined && k) ranks[0] = op === 'Unsqueeze' ? r0 + k : r0 - k;
    } else if (op === 'Gather') {
      const ri = rIn(1);
      if (r0 !== undefined && ri !== undefined) ranks[0] = r0 + ri - 1;
    } else if (op === 'ConstantOfShape') ranks[0] = constLen(0);
    else if (op === 'LSTM' || op === 'GRU' || op === 'RNN') ranks.splice(0, 3, 4, 3, 3);

    // ---- lengths of 1-D tensors (shapes being assembled for Reshape, Expand, …)
    let length: number | undefined;
    if (op === 'Shape' && !findAttr(n, 'start') && !findAttr(n, 'end')) length = r0;
    else if (op === 'Cast' || op === 'Identity' || op === 'Neg' || op === 'Abs') length = constLen(0);
    else if (op === 'Unsqueeze' && r0 === 0 && (attrLen('axes') || constLen(1)) === 1) length = 1;
    else if (op === 'Concat' && (intAttr('axis') === 0 || intAttr('axis') === -1)) {
      const ls = n.input.map((_, i) => constLen(i));
      if (ls.every((l) => l !== undefined)) length = (ls as number[]).reduce((a, b) => a + b, 0);
    }

    out.forEach((name, i) => this.set(name, { elem: elems[i], rank: ranks[i], length: i === 0 ? length : undefined }));
  }
}

// =================================================================================================
// New constants: initializers of the node's graph (or Constant nodes in functions and IR-3 models)

class ConstSink {
  private pending: NodeProto[] = [];
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly graph: GraphProto | undefined,
    readonly useConstantNodes: boolean,
    private readonly scope: NameScope,
  ) {}

  /** A tensor of the given values; returns its name. Equal constants of one graph are shared. */
  add(base: string, dataType: number, dims: number[], values: readonly number[] | readonly bigint[]): string {
    const key = `${dataType}|${dims.join(',')}|${values.map(String).join(',')}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const name = this.scope.fresh(base);
    const tensor = makeTensor(name, dataType, dims, dataType === DataType.INT64 ? BigInt64Array.from(values.map((v) => BigInt(v))) : (values as readonly number[]));
    if (this.useConstantNodes || !this.graph) {
      this.pending.push(makeNode('Constant', [], [name], this.scope.fresh(`${name}_const`), { value: tensor }));
    } else {
      this.graph.initializer.push(tensor);
    }
    this.cache.set(key, name);
    return name;
  }

  int64s(base: string, values: readonly (number | bigint)[], dims: number[] = [values.length]): string {
    return this.add(base, DataType.INT64, dims, values.map((v) => BigInt(v)));
  }

  /** Constant nodes created since the last call, to be inserted before the node that uses them. */
  takePending(): NodeProto[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }
}

// =================================================================================================
// Per-node context and helpers

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE, DataType.BFLOAT16]);

class NodeCtx {
  constructor(
    readonly node: NodeProto,
    readonly index: number,
    readonly env: Env,
    readonly facts: Facts,
    readonly sink: ConstSink,
    readonly where: string,
  ) {}

  get from(): number {
    return this.env.from;
  }
  get to(): number {
    return this.env.to;
  }
  /** True when the upgrade passes the opset at which the op's definition changed to version v. */
  crosses(v: number): boolean {
    return this.from < v && v <= this.to;
  }
  get label(): string {
    return this.node.name || this.node.output[0] || `#${this.index}`;
  }
  change(kind: string): void {
    this.env.changes.add(`${this.node.opType}: ${kind}`, this.label);
  }
  fresh(suffix: string): string {
    return this.env.scope.fresh(`${this.label}_${suffix}`);
  }
  int64s(suffix: string, values: readonly (number | bigint)[], dims?: number[]): string {
    return this.sink.int64s(`${this.label}_${suffix}`, values, dims);
  }
  /** A constant of the element type of `like` (a float type), e.g. Clip's min. */
  typedScalar(suffix: string, like: string, value: number, dims: number[] = []): string {
    const elem = this.floatElemOf(like);
    return this.sink.add(`${this.label}_${suffix}`, elem, dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => value));
  }
  typedValues(suffix: string, like: string, values: readonly number[], dims: number[]): string {
    return this.sink.add(`${this.label}_${suffix}`, this.floatElemOf(like), dims, values);
  }
  floatElemOf(name: string): number {
    const elem = this.facts.elem(name);
    if (elem === undefined) throw new NodeBlocker(`cannot determine the element type of "${name}", needed for a new constant of the same type`);
    if (!FLOAT_TYPES.has(elem)) throw new NodeBlocker(`"${name}" has element type ${dataTypeName(elem)}, expected a float type`);
    return elem;
  }
  attr(name: string): AttributeProto | undefined {
    const a = findAttr(this.node, name);
    if (a && a.refAttrName) throw new NodeBlocker(`attribute "${name}" refers to the function attribute "${a.refAttrName}"; its value is unknown here`);
    return a;
  }
  removeAttr(name: string): AttributeProto | undefined {
    const a = this.attr(name);
    if (a) this.node.attribute = this.node.attribute.filter((x) => x !== a);
    return a;
  }
  setAttr(name: string, value: AttrValue): void {
    const a = makeNodeAttr(name, value);
    const i = this.node.attribute.findIndex((x) => x.name === name);
    if (i >= 0) this.node.attribute[i] = a;
    else this.node.attribute.push(a);
  }
  /** Whether an output is read anywhere (any node input or graph output of the model's graphs). */
  outputUsed(i: number): boolean {
    const name = this.node.output[i];
    return !!name && this.env.usedNames().has(name);
  }
}

function findAttr(n: NodeProto, name: string): AttributeProto | undefined {
  return n.attribute.find((a) => a.name === name);
}

function makeNodeAttr(name: string, value: AttrValue): AttributeProto {
  return makeNode('X', [], [], '', { [name]: value }).attribute[0]!;
}

function intsOf(a: AttributeProto): bigint[] {
  return a.type === AttributeType.Int && a.i !== undefined ? [a.i] : [...a.ints];
}
function intOf(a: AttributeProto | undefined, dflt: number): number {
  return a?.i !== undefined ? Number(a.i) : dflt;
}
function floatOf(a: AttributeProto | undefined, dflt: number): number {
  return a?.f !== undefined ? a.f : dflt;
}
function stringOf(a: AttributeProto | undefined, dflt: string): string {
  return a?.s !== undefined ? Buffer.from(a.s).toString('utf8') : dflt;
}

/** Drops trailing empty optional inputs. */
function trimInputs(inputs: string[]): string[] {
  const out = [...inputs];
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

// =================================================================================================
// Rewrites

function upgradeNode(ctx: NodeCtx): NodeProto[] | undefined {
  const op = ctx.node.opType;
  if (EXPERIMENTAL_OPS.has(op)) return experimental(ctx);
  if (op === 'MeanVarianceNormalization' && ctx.from < 9 && ctx.to >= 10) {
    throw new NodeBlocker('the experimental MeanVarianceNormalization of opset 1 has no equivalent definition after opset 9');
  }
  const before = opVersionAt(op, ctx.from);
  if (before === undefined) {
    if (OP_VERSIONS[op]) throw new NodeBlocker(`${op} does not exist at the model's opset ${ctx.from}`);
    throw new NodeBlocker(`unknown default-domain operator ${op}; its definition history is not known here`);
  }
  const after = opVersionAt(op, ctx.to);
  if (before === after) return undefined;
  const rewrite = REWRITES[op];
  return rewrite ? rewrite(ctx) : undefined;
}

type Rewrite = (ctx: NodeCtx) => NodeProto[] | undefined;

const REWRITES: Readonly<Record<string, Rewrite>> = {
  Softmax: softmaxFamily,
  LogSoftmax: softmaxFamily,
  Hardmax: softmaxFamily,
  Clip: clip,
  Pad: pad,
  Slice: slice,
  TopK: topK,
  Squeeze: axesToInput(13),
  Unsqueeze: axesToInput(13),
  ReduceSum: axesToInput(13),
  ReduceL1: axesToInput(18),
  ReduceL2: axesToInput(18),
  ReduceLogSum: axesToInput(18),
  ReduceLogSumExp: axesToInput(18),
  ReduceMax: axesToInput(18),
  ReduceMean: axesToInput(18),
  ReduceMin: axesToInput(18),
  ReduceProd: axesToInput(18),
  ReduceSumSquare: axesToInput(18),
  Split: split,
  Dropout: dropout,
  BatchNormalization: batchNormalization,
  Upsample: upsample,
  Resize: resize,
  Scan: (ctx) => {
    if (ctx.crosses(9)) throw new NodeBlocker('Scan-8 (batch-major, with sequence_lens) has no rewrite to Scan-9 here');
    return undefined;
  },
  Scatter: (ctx) => {
    if (ctx.to >= DEPRECATED_AT.Scatter!) {
      ctx.node.opType = 'ScatterElements';
      ctx.change('deprecated Scatter → ScatterElements (same inputs and axis)');
    }
    return undefined;
  },
  RoiAlign: (ctx) => {
    if (ctx.crosses(16) && !ctx.attr('coordinate_transformation_mode')) {
      ctx.setAttr('coordinate_transformation_mode', 'output_half_pixel');
      ctx.change('coordinate_transformation_mode=output_half_pixel (RoiAlign-10 behaviour; the default became half_pixel)');
    }
    return undefined;
  },
  GridSample: (ctx) => {
    if (!ctx.crosses(20)) return undefined;
    const mode = stringOf(ctx.attr('mode'), 'bilinear');
    const renamed = mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : mode;
    if (renamed !== mode || !ctx.attr('mode')) {
      ctx.setAttr('mode', renamed);
      ctx.change(`mode ${mode} → ${renamed}`);
    }
    return undefined;
  },
  DFT: (ctx) => {
    if (!ctx.crosses(20)) return undefined;
    const axis = intOf(ctx.removeAttr('axis'), 1);
    const n = ctx.node;
    n.input = [n.input[0] ?? '', n.input[1] ?? '', ctx.int64s('axis', [axis], [])];
    ctx.change('axis attribute → input');
    return undefined;
  },
  GroupNormalization: groupNormalization,
};

/** Softmax/LogSoftmax/Hardmax < 13 coerce the input to 2-D at `axis`; 13 works on one axis. */
function softmaxFamily(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(13)) return undefined;
  const n = ctx.node;
  const axis = intOf(ctx.attr('axis'), 1);
  const x = n.input[0] ?? '';
  const rank = ctx.facts.rank(x) ?? ctx.facts.rank(n.output[0] ?? '');
  if (axis === -1 || (rank !== undefined && axis === rank - 1)) {
    ctx.setAttr('axis', axis);
    ctx.change(`axis=${axis} is the last axis: kept (written explicitly, the default became -1)`);
    return undefined;
  }
  // Old meaning: flatten to [prod(d[:axis]), prod(d[axis:])], normalize rows, restore the shape.
  const shape = ctx.fresh('shape');
  const flat = ctx.fresh('2d');
  const flatOut = ctx.fresh('2d_out');
  const y = n.output[0] ?? '';
  const nodes = [
    makeNode('Shape', [x], [shape], ctx.fresh('shape_node')),
    makeNode('Flatten', [x], [flat], ctx.fresh('flatten'), { axis: Attr.int(axis) }),
    { ...n, input: [flat], output: [flatOut], attribute: [makeNodeAttr('axis', Attr.int(1))] },
    makeNode('Reshape', [flatOut, shape], [y], ctx.fresh('reshape'), ctx.to >= 14 ? { allowzero: Attr.int(1) } : {}),
  ];
  ctx.change(`axis=${axis} on ${rank === undefined ? 'an input of unknown rank' : `a rank-${rank} input`}: Shape → Flatten(axis=${axis}) → ${n.opType}(axis=1) → Reshape (opset-13 semantics are per-axis)`);
  return nodes;
}

function clip(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(11)) return undefined;
  const min = ctx.attr('min');
  const max = ctx.attr('max');
  if (!min && !max) return undefined;
  const x = ctx.node.input[0] ?? '';
  const inputs = [
    x,
    min ? ctx.typedScalar('min', x, floatOf(min, -3.4028234663852886e38)) : '',
    max ? ctx.typedScalar('max', x, floatOf(max, 3.4028234663852886e38)) : '',
  ];
  ctx.removeAttr('min');
  ctx.removeAttr('max');
  ctx.node.input = trimInputs(inputs);
  ctx.change('min/max attributes → scalar inputs');
  return undefined;
}

function pad(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(11)) return undefined;
  const padsAttr = ctx.attr('pads') ?? ctx.attr('paddings');
  if (!padsAttr) throw new NodeBlocker('Pad-2 without a pads attribute');
  const mode = stringOf(ctx.attr('mode'), 'constant');
  const value = floatOf(ctx.attr('value'), 0);
  const x = ctx.node.input[0] ?? '';
  const inputs = [x, ctx.int64s('pads', intsOf(padsAttr))];
  if (mode === 'constant' && value !== 0) inputs.push(ctx.typedScalar('value', x, value));
  ctx.removeAttr('pads');
  ctx.removeAttr('paddings');
  ctx.removeAttr('value');
  ctx.node.input = inputs;
  ctx.change('pads/value attributes → inputs');
  return undefined;
}

function slice(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(10)) return undefined;
  const starts = ctx.attr('starts');
  const ends = ctx.attr('ends');
  if (!starts || !ends) throw new NodeBlocker('Slice-1 without starts/ends attributes');
  const axes = ctx.attr('axes');
  const n = ctx.node;
  const inputs = [n.input[0] ?? '', ctx.int64s('starts', intsOf(starts)), ctx.int64s('ends', intsOf(ends))];
  if (axes) inputs.push(ctx.int64s('axes', intsOf(axes)));
  for (const name of ['starts', 'ends', 'axes']) ctx.removeAttr(name);
  n.input = inputs;
  ctx.change('starts/ends/axes attributes → inputs');
  return undefined;
}

function topK(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(10)) return undefined;
  const k = ctx.attr('k');
  if (!k) throw new NodeBlocker('TopK-1 without its k attribute');
  ctx.node.input = [ctx.node.input[0] ?? '', ctx.int64s('k', [intOf(k, 0)], [1])];
  ctx.removeAttr('k');
  ctx.change('k attribute → input');
  return undefined;
}

/** Squeeze/Unsqueeze/ReduceSum at 13 and the other Reduce ops at 18 take `axes` as an input. */
function axesToInput(at: number): Rewrite {
  return (ctx) => {
    if (!ctx.crosses(at)) return undefined;
    const axes = ctx.attr('axes');
    const n = ctx.node;
    if (!axes) {
      if (n.opType === 'Unsqueeze') throw new NodeBlocker('Unsqueeze without its axes attribute');
      return undefined;
    }
    ctx.removeAttr('axes');
    const values = intsOf(axes);
    if (values.length > 0 || n.opType === 'Unsqueeze') n.input = [n.input[0] ?? '', ctx.int64s('axes', values)];
    ctx.change('axes attribute → input');
    return undefined;
  };
}

function split(ctx: NodeCtx): NodeProto[] | undefined {
  const n = ctx.node;
  if (ctx.crosses(13)) {
    const sizes = ctx.attr('split');
    if (sizes) {
      ctx.removeAttr('split');
      n.input = [n.input[0] ?? '', ctx.int64s('split', intsOf(sizes))];
      ctx.change('split attribute → input');
    }
  }
  if (ctx.crosses(18) && !n.input[1] && !ctx.attr('num_outputs')) {
    ctx.setAttr('num_outputs', Attr.int(n.output.length));
    ctx.change('num_outputs attribute added (required without a split input)');
  }
  return undefined;
}

/**
 * Dropout: `ratio` became an input at 12. Its optional mask changed type at 10 (data type → bool)
 * and, in practice, value at 12: onnxruntime fills the inference mask of Dropout 7–11 with
 * zeros/false but that of Dropout ≥ 12 with true (the ONNX reference). A used mask is therefore
 * rebuilt as the constant the model computed before, ConstantOfShape(Shape(x)) of 0/false, and the
 * data path becomes the Identity that inference Dropout is.
 */
function dropout(ctx: NodeCtx): NodeProto[] | undefined {
  const n = ctx.node;
  const x = n.input[0] ?? '';
  const mask = n.output[1];
  if (mask && ctx.outputUsed(1) && (ctx.crosses(10) || ctx.crosses(12))) {
    const maskType = ctx.from < 10 ? ctx.floatElemOf(x) : DataType.BOOL;
    const shape = ctx.fresh('shape');
    ctx.change(`inference Dropout → Identity, its used mask → ConstantOfShape(Shape(x), ${ctx.from < 10 ? '0' : 'false'}) as onnxruntime computed it`);
    return [
      { ...n, opType: 'Identity', input: [x], output: [n.output[0] ?? ''], attribute: [] },
      makeNode('Shape', [x], [shape], ctx.fresh('shape_node')),
      makeNode('ConstantOfShape', [shape], [mask], ctx.fresh('mask'), { value: makeTensor('value', maskType, [1], maskType === DataType.BOOL ? [false] : [0]) }),
    ];
  }
  if (ctx.crosses(12)) {
    const ratio = ctx.removeAttr('ratio');
    if (ratio) n.input = [x, ctx.sink.add(`${ctx.label}_ratio`, DataType.FLOAT, [], [floatOf(ratio, 0.5)])];
    n.output = trimInputs(n.output.map((o, i) => (i === 1 && !ctx.outputUsed(1) ? '' : o)));
    ctx.change('ratio attribute → input');
  }
  return undefined;
}

/**
 * BatchNormalization before 14 runs in training mode (batch statistics) when it has more than one
 * output — onnxruntime counts the outputs, empty names included; from 14 `training_mode` says so
 * and the outputs are Y, running mean, running variance (saved_mean/saved_var are gone).
 * BatchNormalization-7 (opsets 7–8) also has `spatial`, removed at 9.
 */
function batchNormalization(ctx: NodeCtx): NodeProto[] | undefined {
  const n = ctx.node;
  const training = n.output.length > 1;
  if (ctx.crosses(9)) {
    const spatial = ctx.removeAttr('spatial');
    if (spatial && intOf(spatial, 1) === 0) {
      if (training) throw new NodeBlocker('training-mode BatchNormalization with spatial=0 has no equivalent after opset 8');
      return perActivationBatchNorm(ctx);
    }
    if (spatial) ctx.change('spatial=1 attribute removed (always spatial since opset 9)');
  }
  if (ctx.crosses(14) && training) {
    for (const i of [3, 4]) {
      if (n.output[i] && ctx.outputUsed(i)) throw new NodeBlocker(`its training-mode output ${i + 1} ("${n.output[i]}", saved mean/variance) is used; BatchNormalization-14 has no such output`);
    }
    n.output = trimInputs(n.output.slice(0, 3));
    ctx.setAttr('training_mode', Attr.int(1));
    ctx.change('training mode (more than one output) → training_mode=1 with Y, running mean, running variance');
  }
  return undefined;
}

/** BatchNormalization-7 spatial=0 in test mode: statistics of shape (C, D1, …) broadcast on (N, C, D1, …). */
function perActivationBatchNorm(ctx: NodeCtx): NodeProto[] {
  const n = ctx.node;
  const [x, scale, bias, mean, variance] = [0, 1, 2, 3, 4].map((i) => n.input[i] ?? '') as [string, string, string, string, string];
  const eps = floatOf(ctx.attr('epsilon'), 1e-5);
  const epsName = ctx.typedScalar('epsilon', x, eps);
  const [centered, varEps, std, normed, scaled] = ['centered', 'var_eps', 'std', 'normalized', 'scaled'].map((s) => ctx.fresh(s)) as [string, string, string, string, string];
  ctx.change('spatial=0 (per-activation statistics) → Sub/Add/Sqrt/Div/Mul/Add');
  return [
    makeNode('Sub', [x, mean], [centered], ctx.fresh('sub')),
    makeNode('Add', [variance, epsName], [varEps], ctx.fresh('add_eps')),
    makeNode('Sqrt', [varEps], [std], ctx.fresh('sqrt')),
    makeNode('Div', [centered, std], [normed], ctx.fresh('div')),
    makeNode('Mul', [normed, scale], [scaled], ctx.fresh('mul')),
    makeNode('Add', [scaled, bias], [n.output[0] ?? ''], n.name || ctx.fresh('add_bias')),
  ];
}

/** Upsample-7 (scales attribute) / Upsample-9 (scales input), deprecated at 10. */
function upsample(ctx: NodeCtx): NodeProto[] | undefined {
  const n = ctx.node;
  const x = n.input[0] ?? '';
  let scales = n.input[1] ?? '';
  const scalesAttr = ctx.removeAttr('scales');
  if (!scales) {
    if (!scalesAttr) throw new NodeBlocker('Upsample without scales');
    scales = ctx.sink.add(`${ctx.label}_scales`, DataType.FLOAT, [scalesAttr.floats.length], scalesAttr.floats);
  }
  let mode = stringOf(ctx.removeAttr('mode'), 'nearest');
  if (mode === 'bilinear') mode = 'linear';
  if (ctx.to < DEPRECATED_AT.Upsample!) {
    // Upsample-7 → Upsample-9: only the scales attribute becomes an input.
    n.input = [x, scales];
    ctx.setAttr('mode', mode);
    ctx.change('scales attribute → input');
    return undefined;
  }
  n.opType = 'Resize';
  n.attribute = n.attribute.filter((a) => a.name !== 'mode');
  ctx.setAttr('mode', mode);
  if (ctx.to === 10) {
    n.input = [x, scales];
    ctx.change('deprecated Upsample → Resize-10 (same inputs and mode)');
    return undefined;
  }
  n.input = [x, roiInput(ctx), scales];
  ctx.setAttr('coordinate_transformation_mode', 'asymmetric');
  if (mode === 'nearest') ctx.setAttr('nearest_mode', 'floor');
  ctx.change(`deprecated Upsample → Resize (coordinate_transformation_mode=asymmetric${mode === 'nearest' ? ', nearest_mode=floor' : ''})`);
  return undefined;
}

/** Resize-11/12 require the roi input (ignored unless tf_crop_and_resize); 13 makes it optional. */
function roiInput(ctx: NodeCtx): string {
  return ctx.to >= 13 ? '' : ctx.sink.add(`${ctx.label}_roi`, DataType.FLOAT, [0], []);
}

function resize(ctx: NodeCtx): NodeProto[] | undefined {
  const n = ctx.node;
  if (ctx.crosses(11)) {
    // Resize-10: (X, scales), asymmetric coordinates; nearest rounding as onnxruntime implemented
    // it (floor when up-sampling, ceil when down-sampling an axis).
    const mode = stringOf(ctx.attr('mode'), 'nearest');
    const scales = n.input[1] ?? '';
    n.input = [n.input[0] ?? '', roiInput(ctx), scales];
    ctx.setAttr('coordinate_transformation_mode', 'asymmetric');
    let how = 'coordinate_transformation_mode=asymmetric';
    if (mode === 'nearest') {
      const t = ctx.facts.tensor(scales);
      let values: number[] | undefined;
      if (t) {
        const v = tensorValues(t);
        if (v instanceof Float32Array || v instanceof Float64Array) values = Array.from(v);
      }
      const down = values?.some((s) => s < 1 && !Number.isInteger(1 / s)) ?? false;
      const up = values?.some((s) => s > 1) ?? false;
      if (down && up) throw new NodeBlocker('nearest Resize-10 that up-samples some axes and down-samples others (by a non-integer factor) has no single nearest_mode');
      const nearest = down ? 'ceil' : 'floor';
      ctx.setAttr('nearest_mode', nearest);
      how += `, nearest_mode=${nearest}`;
      if (!values) how += ' (scales not constant: assumes up-sampling or integer down-sampling)';
    }
    ctx.change(`Resize-10 → roi input, ${how}`);
  }
  if (ctx.crosses(13)) {
    const ctm = ctx.attr('coordinate_transformation_mode');
    if (ctm && stringOf(ctm, '') === 'tf_half_pixel_for_nn') {
      const mode = stringOf(ctx.attr('mode'), 'nearest');
      const nearest = stringOf(ctx.attr('nearest_mode'), 'round_prefer_floor');
      // x = (y + 0.5) / s then round; half_pixel gives x - 0.5, so round_prefer_floor(x) = ceil(x - 0.5)
      // and floor(x) = round_prefer_ceil(x - 0.5).
      const mapped = mode === 'nearest' ? ({ round_prefer_floor: 'ceil', floor: 'round_prefer_ceil' } as Record<string, string>)[nearest] : undefined;
      if (mapped) {
        ctx.setAttr('coordinate_transformation_mode', 'half_pixel');
        ctx.setAttr('nearest_mode', mapped);
        ctx.change(`deprecated tf_half_pixel_for_nn with nearest_mode=${nearest} → half_pixel with nearest_mode=${mapped}`);
      } else {
        ctx.change('deprecated coordinate_transformation_mode=tf_half_pixel_for_nn kept (no equivalent mode; onnxruntime still implements it)');
      }
    }
  }
  return undefined;
}

/** GroupNormalization-18 has per-group scale/bias ([G]); 21 has per-channel ones ([C]). */
function groupNormalization(ctx: NodeCtx): NodeProto[] | undefined {
  if (!ctx.crosses(21)) return undefined;
  const n = ctx.node;
  const groups = intOf(ctx.attr('num_groups'), 0);
  if (groups <= 0) throw new NodeBlocker('GroupNormalization without a positive num_groups');
  const x = n.input[0] ?? '';
  const channels = ctx.fresh('channels');
  const perGroup = ctx.fresh('channels_per_group');
  const expandShape = ctx.fresh('expand_shape');
  const pre: NodeProto[] = [
    makeNode('Shape', [x], [channels], ctx.fresh('shape'), { start: Attr.int(1), end: Attr.int(2) }),
    makeNode('Div', [channels, ctx.int64s('num_groups', [groups], [1])], [perGroup], ctx.fresh('div')),
    makeNode('Concat', [ctx.int64s('one', [1], [1]), perGroup], [expandShape], ctx.fresh('concat'), { axis: Attr.int(0) }),
  ];
  const colShape = ctx.int64s('col_shape', [-1, 1]);
  const flatShape = ctx.int64s('flat_shape', [-1]);
  const inputs = [...n.input];
  for (const i of [1, 2]) {
    const v = n.input[i];
    if (!v) continue;
    const col = ctx.fresh(`param${i}_col`);
    const expanded = ctx.fresh(`param${i}_expanded`);
    const perChannel = ctx.fresh(`param${i}_per_channel`);
    pre.push(
      makeNode('Reshape', [v, colShape], [col], ctx.fresh(`param${i}_reshape`)),
      makeNode('Expand', [col, expandShape], [expanded], ctx.fresh(`param${i}_expand`)),
      makeNode('Reshape', [expanded, flatShape], [perChannel], ctx.fresh(`param${i}_flatten`)),
    );
    inputs[i] = perChannel;
  }
  n.input = inputs;
  const elem = ctx.facts.elem(x);
  if (elem !== undefined && elem !== DataType.FLOAT && !ctx.attr('stash_type')) ctx.setAttr('stash_type', Attr.int(elem));
  ctx.change('per-group scale/bias → per-channel (Reshape/Expand/Reshape)');
  return [...pre, n];
}

/** Experimental opset-1 ops, removed at opset 10. */
function experimental(ctx: NodeCtx): NodeProto[] | undefined {
  if (ctx.to < 10) return undefined;
  const n = ctx.node;
  const op = n.opType;
  const x = n.input[0] ?? '';
  const y = n.output[0] ?? '';
  const name = n.name || ctx.fresh(op.toLowerCase());
  const mul = (a: string, b: string, out: string) => makeNode('Mul', [a, b], [out], ctx.fresh('mul'));
  switch (op) {
    case 'DynamicSlice':
      n.opType = 'Slice';
      ctx.change('experimental DynamicSlice → Slice (same inputs)');
      return undefined;
    case 'Crop': {
      // Crop(border=[left, top, right, bottom], scale=[height, width]) on NCHW → Slice of H and W.
      const border = ctx.attr('border')?.ints.map(Number) ?? [];
      if (border.length !== 4) throw new NodeBlocker('experimental Crop without a 4-element border attribute');
      const [left, top, right, bottom] = border as [number, number, number, number];
      const size = ctx.attr('scale')?.ints.map(Number) ?? [];
      const end = (start: number, len: number | undefined, cut: number): bigint => (len !== undefined ? BigInt(start + len) : cut > 0 ? BigInt(-cut) : 9223372036854775807n);
      const starts = ctx.int64s('starts', [top, left]);
      const ends = ctx.int64s('ends', [end(top, size[0], bottom), end(left, size[1], right)]);
      ctx.change('experimental Crop → Slice of H and W');
      return [makeNode('Slice', [x, starts, ends, ctx.int64s('axes', [2, 3])], [y], name)];
    }
    case 'Scale': {
      ctx.change('experimental Scale → Mul');
      return [makeNode('Mul', [x, ctx.typedScalar('scale', x, floatOf(ctx.attr('scale'), 1))], [y], name)];
    }
    case 'Affine': {
      const t = ctx.fresh('scaled');
      ctx.change('experimental Affine → Mul/Add');
      return [
        mul(x, ctx.typedScalar('alpha', x, floatOf(ctx.attr('alpha'), 1)), t),
        makeNode('Add', [t, ctx.typedScalar('beta', x, floatOf(ctx.attr('beta'), 0))], [y], name),
      ];
    }
    case 'ImageScaler': {
      const bias = ctx.attr('bias')?.floats ?? [];
      const t = ctx.fresh('scaled');
      ctx.change('experimental ImageScaler → Mul/Add');
      const nodes = [mul(x, ctx.typedScalar('scale', x, floatOf(ctx.attr('scale'), 1)), bias.length ? t : y)];
      if (bias.length) nodes.push(makeNode('Add', [t, ctx.typedValues('bias', x, bias, [1, bias.length, 1, 1])], [y], name));
      return nodes;
    }
    case 'ScaledTanh':
    case 'ParametricSoftplus': {
      const alpha = ctx.attr('alpha');
      const beta = ctx.attr('beta');
      if (!alpha || !beta) throw new NodeBlocker(`experimental ${op} without alpha/beta attributes`);
      const [t1, t2] = [ctx.fresh('scaled'), ctx.fresh('activated')];
      ctx.change(`experimental ${op} → Mul/${op === 'ScaledTanh' ? 'Tanh' : 'Softplus'}/Mul`);
      return [
        mul(x, ctx.typedScalar('beta', x, floatOf(beta, 1)), t1),
        makeNode(op === 'ScaledTanh' ? 'Tanh' : 'Softplus', [t1], [t2], ctx.fresh('act')),
        makeNode('Mul', [t2, ctx.typedScalar('alpha', x, floatOf(alpha, 1))], [y], name),
      ];
    }
    default:
      throw new NodeBlocker(`experimental operator ${op} was removed at opset 10 and has no rewrite here`);
  }
}

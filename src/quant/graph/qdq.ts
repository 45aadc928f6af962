/**
 * Static quantization in QDQ format: QuantizeLinear → DequantizeLinear pairs on the activations of
 * the quantized nodes, weights stored already quantized behind a DequantizeLinear, biases in int32
 * with s_bias = s_input · s_weight. onnxruntime fuses these patterns into integer kernels.
 *
 * Rules:
 * - Only the main graph's nodes are quantized statically: activations inside If/Loop/Scan bodies
 *   cannot be observed by calibration (they are not graph outputs onnxruntime can expose).
 * - Graph inputs and outputs keep their float type and names. A graph output is never quantized:
 *   the last layer's result stays exact, and onnxruntime still runs its integer matmul/conv.
 * - A tensor read by several quantized nodes gets one Q/DQ pair; a weight shared by several nodes
 *   with the same settings is quantized once.
 * - Every node left in float is reported with the reason.
 */
import { DataType } from '../../onnx/dtypes';
import { GraphView } from '../../onnx/graph';
import { constantTensor, walkGraphs } from '../../onnx/model';
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { Attr } from '../../onnx/builder';
import { ActivationType, isExcluded, nodeSettings, NodeQuantSettings, QuantConfig, WeightType } from '../config';
import { QuantizationError } from '../errors';
import { computePerChannelQParams, computeQParams, quantizeBias, tensorMinMax } from '../params';
import { channelMinMax, preserveKernelSums, quantizePerChannel, quantizeTensor } from '../quantize';
import { FloatRange, PerChannelQuantParams, QuantArray, QuantParams, QuantType } from '../types';
import { cloneModel, initializer, makeNode, NameScope, pruneUnusedInitializers, requireOpset, TransformResult } from './edit';
import { activationInputIndices, CALIBRATED_OPS, INTEGER_ONLY_WITH_QUANTIZED_OUTPUT, isFoldableActivation, outputChannelAxis, SAME_SCALE_OPS, VALUE_PRESERVING_OPS, WEIGHTED_OPS } from './ops';

/** The transform's result, plus the parameters of every activation that got a Q/DQ pair. */
export interface StaticQdqResult extends TransformResult {
  activations: Map<string, QuantParams>;
  /** Activation tensor → the name of its DequantizeLinear output (what quantized readers see). */
  dequantized: Map<string, string>;
}

const ACTIVATION_BITS: Record<ActivationType, number> = { uint8: 8, int8: 8, uint16: 16, int16: 16 };
const WEIGHT_BITS: Record<WeightType, number> = { int8: 8, uint8: 8, int4: 4, uint4: 4 };

/**
 * The calibrated float range of a main-graph activation tensor for the integer type it gets, or
 * undefined when calibration never saw it. The type matters: a range searched for 8 bits clips
 * more than one searched for 16.
 */
export type RangeChooser = (tensor: string, type: ActivationType, symmetric: boolean) => FloatRange | undefined;

/** A chooser over fixed ranges (min-max style: the same whatever the type). */
export function fixedRanges(ranges: ReadonlyMap<string, FloatRange>): RangeChooser {
  return (t) => ranges.get(t);
}

export interface StaticQdqOptions {
  config: QuantConfig;
  /** Calibrated float range of each main-graph activation tensor (fixed, or chosen per type). */
  ranges: ReadonlyMap<string, FloatRange> | RangeChooser;
  /** Float values of a weight tensor (inline or external data). */
  readWeight: (t: TensorProto) => Float32Array;
  /** '' for standard ONNX Q/DQ (opset ≥ 13); 'com.microsoft' for onnxruntime's contrib Q/DQ. */
  domain: '' | 'com.microsoft';
  /** If nodes of the main graph (by name) whose branch every calibration sample took. */
  takenBranches?: ReadonlyMap<string, 'then_branch' | 'else_branch'>;
  /**
   * Only decide: add the activation tensors the transform would quantize to this set and stop
   * before computing parameters or rewriting anything (see quantizedActivationTensors).
   */
  planOnly?: Set<string>;
}

const QUANT_DATA_TYPE: Record<QuantType, DataType> = {
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int16: DataType.INT16,
  uint16: DataType.UINT16,
  int4: DataType.INT4,
  uint4: DataType.UINT4,
};

function nodeLabel(n: NodeProto): string {
  return n.name || `${n.opType}(${n.output[0] ?? ''})`;
}

function attrInt(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : dflt;
}

function attrFloat(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.f !== undefined ? a.f : dflt;
}

/**
 * A channel whose weights are all below 2⁻²⁰ of the largest channel's gets that as its range:
 * its weights round to (near) zero, which they are next to the others, and its scale stays far
 * from the float32 underflow that made s_in·s_w (the int32 bias scale) unrepresentable — which
 * used to leave the whole layer in float (seen on PP-OCRv4's recognizer).
 */
function widenNegligibleChannels(mins: Float32Array | number[], maxs: Float32Array | number[]): void {
  let largest = 0;
  for (let c = 0; c < mins.length; c++) largest = Math.max(largest, Math.abs(mins[c]!), Math.abs(maxs[c]!));
  const floor = largest * 2 ** -20;
  for (let c = 0; c < mins.length; c++) {
    if (Math.max(Math.abs(mins[c]!), Math.abs(maxs[c]!)) < floor) {
      mins[c] = Math.min(mins[c]!, -floor);
      maxs[c] = Math.max(maxs[c]!, floor);
    }
  }
}

/**
 * Per-channel parameters of a weight exactly as the transform computes them (refinements that
 * pick the integers themselves, e.g. learned rounding, need the same scales).
 */
export function weightChannelParams<T extends WeightType | ActivationType>(values: Float32Array, dims: readonly number[], type: T, symmetric: boolean, axis: number): PerChannelQuantParams<T> {
  const { mins, maxs } = channelMinMax(values, dims, axis);
  widenNegligibleChannels(mins, maxs);
  return computePerChannelQParams(mins, maxs, type, axis, { symmetric });
}

/**
 * The scales and zero points the transform gives a weight: per channel of `axis`, or (undefined)
 * one of each for the tensor.
 */
export function weightQParams(values: Float32Array, dims: readonly number[], type: WeightType | ActivationType, symmetric: boolean, axis: number | undefined, what?: string): { scales: Float32Array; zeroPoints: Int32Array } {
  if (axis !== undefined) {
    const p = weightChannelParams(values, dims, type, symmetric, axis);
    return { scales: p.scales, zeroPoints: p.zeroPoints };
  }
  const r = tensorMinMax(values, what);
  const p = computeQParams(r.min, r.max, type, { symmetric });
  return { scales: Float32Array.of(p.scale), zeroPoints: Int32Array.of(p.zeroPoint) };
}

/**
 * The integers the transform stores for a weight, with their scales and zero points (see
 * weightQParams); with `kernelSums`, each convolution kernel keeps its float sum (preserveKernelSums).
 * Learned rounding uses it too, to know exactly what the transform will write.
 */
export function weightIntegers(values: Float32Array, dims: readonly number[], type: WeightType | ActivationType, symmetric: boolean, axis: number | undefined, kernelSums: boolean, what?: string): { q: QuantArray; scales: Float32Array; zeroPoints: Int32Array } {
  const p = weightQParams(values, dims, type, symmetric, axis, what);
  const q = axis !== undefined
    ? quantizePerChannel(values, dims, { scales: p.scales, zeroPoints: p.zeroPoints, axis, type })
    : quantizeTensor(values, { scale: p.scales[0]!, zeroPoint: p.zeroPoints[0]!, type });
  if (kernelSums) preserveKernelSums(values, q, dims, p.scales, p.zeroPoints, axis, type);
  return { q, ...p };
}

/** Conv and ConvTranspose weights keep each kernel's sum (see preserveKernelSums) unless turned off. */
export function keepsKernelSums(opType: string, config: QuantConfig): boolean {
  return (opType === 'Conv' || opType === 'ConvTranspose') && config.kernelSumRounding;
}

/** The constant lower bound of a Clip: attribute (opset < 11) or constant second input. */
export function clipLowerBound(n: NodeProto, constants: ReadonlyMap<string, TensorProto>, read: (t: TensorProto) => Float32Array): number | undefined {
  if (n.opType !== 'Clip') return undefined;
  const attr = n.attribute.find((a) => a.name === 'min');
  if (attr) return attr.f;
  const name = n.input[1];
  if (!name) return -Infinity; // no lower bound
  const t = constants.get(name);
  if (!t) return undefined;
  const v = read(t);
  return v.length === 1 ? v[0] : undefined;
}

type Role = { kind: 'weighted'; weightIndex: number; biasIndex?: number } | { kind: 'matmul-activations' } | { kind: 'same-scale' } | { kind: 'calibrated' };

/** Initializers and Constant-node values of a graph, on top of those of the enclosing scopes. */
function graphConstants(graph: GraphProto, outer: ReadonlyMap<string, TensorProto>): Map<string, TensorProto> {
  const constants = new Map(outer);
  for (const t of graph.initializer) constants.set(t.name, t);
  for (const n of graph.node) {
    if (n.opType !== 'Constant' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const t = constantTensor(n);
    if (t && n.output[0]) constants.set(n.output[0], t);
  }
  return constants;
}

/**
 * The main-graph activation tensors the static transform quantizes when every tensor has a range:
 * what calibration has to observe. Far fewer than every input and output of a quantizable node —
 * PP-OCRv4's detector 99 of 294, the recognizer 75 of 378 — since a conv whose output only float
 * ops read takes its input in float, and a float op's output is not quantized. Each tensor not
 * observed keeps onnxruntime's fusions in the calibration run and saves its copy and histogram.
 * Whether a Relu/Clip folds into its producer depends on the range calibration finds, so both
 * outcomes' tensors are included.
 */
export function quantizedActivationTensors(proto: ModelProto, config: QuantConfig, readWeight: (t: TensorProto) => Float32Array): Set<string> {
  const requested = new Set<string>();
  for (const min of [-1, 0]) quantizeStaticQdq(proto, { config, ranges: () => ({ min, max: 1 }), readWeight, domain: '', planOnly: requested });
  return requested;
}

export function quantizeStaticQdq(source: ModelProto, options: StaticQdqOptions): StaticQdqResult {
  const model = cloneModel(source);
  const main = model.graph!;
  const names = new NameScope(model);
  const result: StaticQdqResult = { model, quantized: [], skipped: [], activations: new Map(), dequantized: new Map() };
  const mainConstants = graphConstants(main, new Map());
  quantizeGraph(main, mainConstants, options, names, result);
  if (options.planOnly) return result;
  // The branch of an If that every calibration sample took was calibrated too: quantize it in place.
  for (const n of main.node) {
    if (n.opType !== 'If') continue;
    const taken = options.takenBranches?.get(n.name);
    if (!taken) continue;
    for (const a of n.attribute) {
      if (!a.g) continue;
      if (a.name === taken) {
        quantizeGraph(a.g, graphConstants(a.g, mainConstants), options, names, result);
      } else {
        for (const b of a.g.node) {
          if (b.opType === 'Constant') continue;
          result.skipped.push({ name: nodeLabel(b), opType: b.opType, reason: `in the ${a.name} of If "${n.name}", which no calibration sample took; kept in float` });
        }
      }
    }
  }
  dropUnusedConstants(main);
  pruneUnusedInitializers(main);
  if (options.domain === '') requireOpset(model, '', 13);
  else requireOpset(model, 'com.microsoft', 1);
  return result;
}

function weightCount(constants: ReadonlyMap<string, TensorProto>, n: NodeProto, role: Extract<Role, { kind: 'weighted' }>): number {
  return (constants.get(n.input[role.weightIndex] ?? '')?.dims ?? []).reduce((a, d) => a * Number(d), 1);
}

/**
 * The float kernels that keep float weights, with their weight counts: convs whose output only
 * float ops read (see ActivationQdq; with 'none', every weighted layer), smallest first, while the
 * bytes they add over quantized weights stay within `budget` × the size of all of the graph's
 * quantized weights.
 * Quantizing such a layer's weights saves size and no time, and the small ones — depthwise filters
 * of 9 or 25 taps, early pointwise layers — lose the most to it: on PP-OCRv4's recognizer the
 * default budget keeps 20 convs (106,336 weights) in float, and output SQNR on new lines went from
 * 21.2–22.6 to 23.6–25.8 dB.
 */
function floatKernelsKeepingFloatWeights(
  floatKernels: ReadonlySet<NodeProto>,
  roles: ReadonlyMap<NodeProto, Role>,
  settings: ReadonlyMap<NodeProto, NodeQuantSettings>,
  constants: ReadonlyMap<string, TensorProto>,
  budget: number,
): { n: NodeProto; count: number }[] {
  if (!(budget > 0) || floatKernels.size === 0) return [];
  const bits = (n: NodeProto) => WEIGHT_BITS[settings.get(n)!.weightType];
  let quantizedBytes = 0;
  for (const [n, r] of roles) if (r.kind === 'weighted') quantizedBytes += (weightCount(constants, n, r) * bits(n)) / 8;
  const candidates = [...floatKernels].map((n) => ({ n, count: weightCount(constants, n, roles.get(n) as Extract<Role, { kind: 'weighted' }>) }));
  candidates.sort((a, b) => a.count - b.count);
  const kept: { n: NodeProto; count: number }[] = [];
  let added = 0;
  for (const c of candidates) {
    added += (c.count * (32 - bits(c.n))) / 8;
    if (added > budget * quantizedBytes) break;
    kept.push(c);
  }
  return kept;
}

/** Quantizes one graph's nodes in place (the main graph, or a taken If branch). */
function quantizeGraph(
  graph: GraphProto,
  constants: ReadonlyMap<string, TensorProto>,
  options: StaticQdqOptions,
  names: NameScope,
  result: StaticQdqResult,
): void {
  const { config, readWeight, domain } = options;
  const calibrated = typeof options.ranges === 'function' ? options.ranges : fixedRanges(options.ranges);
  const view = new GraphView(graph);
  // Outputs of value-preserving data movement are not calibrated (calibrationTensors): the range of
  // the tensor they move stands in, which is exactly the one a same-scale output gets anyway.
  const ranges: RangeChooser = (t, type, symmetric) => {
    const own = calibrated(t, type, symmetric);
    if (own) return own;
    const p = view.producer(t);
    return p && VALUE_PRESERVING_OPS.has(p.opType) && p.input[0] ? ranges(p.input[0], type, symmetric) : undefined;
  };
  const order = view.topologicalNodes();
  const outputs = new Set(graph.output.map((o) => o.name));
  const isFloatConstant = (name: string) => {
    const t = constants.get(name);
    return t !== undefined && (t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16 || t.dataType === DataType.DOUBLE);
  };

  const { quantized, skipped, activations } = result;
  const roles = new Map<NodeProto, Role>();
  const settings = new Map<NodeProto, NodeQuantSettings>();
  /** Activation tensors that get a Q/DQ pair, with the type their quantized neighbours asked for. */
  const tensorType = new Map<string, { type: ActivationType; symmetric: boolean }>();
  const producedByQuantized = (name: string) => {
    const p = view.producer(name);
    return p !== undefined && (roles.has(p) || folded.has(p));
  };
  // Whether calibration saw a tensor does not depend on the type asked for.
  const hasRange = (name: string) => ranges(name, config.activationType, config.symmetricActivations) !== undefined;

  // Whether some reader of a tensor may run quantized (directly, or through data movement). An
  // output only float ops read (Softmax, LayerNorm, a graph output…) keeps its float value: a Q/DQ
  // there buys no integer kernel, only noise — e.g. classifier logits rounded to 8 bits flip
  // near-tied argmaxes. onnxruntime still runs the layer itself on integer weights and inputs.
  const feedsQuantizedMemo = new Map<string, boolean>();
  const feedsQuantized = (t: string): boolean => {
    let v = feedsQuantizedMemo.get(t);
    if (v !== undefined) return v;
    feedsQuantizedMemo.set(t, false); // cycles cannot occur in a DAG; this guards malformed graphs
    v = view.consumers(t).some((c) => {
      if ((c.domain !== '' && c.domain !== 'ai.onnx') || isExcluded(config, c) || view.subgraphsOf(c).length > 0) return false;
      if (c.opType in WEIGHTED_OPS) return true;
      // Data movement and calibrated ops (Add, Relu, …) are worth quantizing only on the way to
      // a quantized reader themselves.
      return (SAME_SCALE_OPS.has(c.opType) || CALIBRATED_OPS.has(c.opType)) && c.output.some((o) => o !== '' && !outputs.has(o) && feedsQuantized(o));
    });
    feedsQuantizedMemo.set(t, v);
    return v;
  };

  // Relu/Clip nodes that fold into their producer's output quantization (see isFoldableActivation):
  // activation output → the tensor the producer writes instead.
  const foldable = new Map<NodeProto, string>();
  const foldedOutput = new Map<string, string>();
  // With float activations ('none') nothing is quantized for an activation to fold into.
  const weightsOnly = config.activationQdq === 'none';
  for (const n of weightsOnly ? [] : order) {
    if (isExcluded(config, n)) continue;
    const symmetric = nodeSettings(config, view.producer(n.input[0] ?? '')?.name ?? '').symmetricActivations;
    if (!isFoldableActivation(n, view, outputs, symmetric, (c) => clipLowerBound(c as NodeProto, constants, readWeight))) continue;
    const s = nodeSettings(config, view.producer(n.input[0]!)?.name ?? '');
    const r = ranges(n.output[0]!, s.activationType, s.symmetricActivations);
    if (!r || r.min < 0) continue;
    // Folding relies on the output's quantization to clamp: only when that output is quantized.
    if (!feedsQuantized(n.output[0]!)) continue;
    // Consumers read the quantized value once the activation is gone; a subgraph cannot be rewired.
    if (view.consumers(n.output[0]!).some((c) => view.subgraphsOf(c).length > 0)) continue;
    foldable.set(n, n.input[0]!);
    foldedOutput.set(n.input[0]!, n.output[0]!);
  }
  const folded = new Set<NodeProto>();
  /**
   * Convs whose output only float ops read ('integer-kernels', see ActivationQdq): onnxruntime
   * runs them in float whatever their input, so they read it unquantized.
   */
  const floatInputs = new Set<NodeProto>();
  // 'auto' is resolved before the transform (runtime/activation-qdq.ts); unresolved, it plans as 'integer-kernels'.
  const integerKernelsOnly = config.activationQdq === 'integer-kernels' || config.activationQdq === 'auto';

  // ---- 1. decide which nodes are quantized, in topological order ----
  for (const n of order) {
    if (n.opType === 'Constant') continue;
    if (foldable.has(n)) {
      const producer = view.producer(foldable.get(n)!)!;
      if (roles.has(producer)) {
        folded.add(n);
        quantized.push({ name: nodeLabel(n), opType: n.opType, detail: `folded into ${nodeLabel(producer)}: its output range starts at 0, so quantization clamps negatives` });
        continue;
      }
      foldedOutput.delete(foldable.get(n)!); // the producer stays in float: so does the activation
    }
    const skip = (reason: string) => skipped.push({ name: nodeLabel(n), opType: n.opType, reason });
    if (n.domain !== '' && n.domain !== 'ai.onnx') {
      skip(`operator of domain ${n.domain} is kept in float`);
      continue;
    }
    if (isExcluded(config, n)) {
      skip('excluded by the user (--exclude or recipe)');
      continue;
    }
    if (view.subgraphsOf(n).length > 0) {
      const taken = options.takenBranches?.get(n.name);
      skip(
        taken
          ? `control flow: its ${taken} (taken by every calibration sample) is quantized inside`
          : 'control flow (If/Loop/Scan): its subgraphs run in float; activations inside them cannot be calibrated',
      );
      continue;
    }
    let role: Role | undefined;
    const weighted = WEIGHTED_OPS[n.opType];
    if (weighted) {
      const w = n.input[weighted.weight] ?? '';
      if (isFloatConstant(w)) role = { kind: 'weighted', weightIndex: weighted.weight, biasIndex: weighted.bias };
      else if (n.opType === 'MatMul') role = { kind: 'matmul-activations' };
      else {
        skip('its weight is computed at run time, not a constant');
        continue;
      }
      if (n.opType === 'Gemm' && attrInt(n, 'transA', 0) !== 0) {
        skip('Gemm with transA=1 has no integer kernel');
        continue;
      }
    } else if ((SAME_SCALE_OPS.has(n.opType) || CALIBRATED_OPS.has(n.opType)) && n.output.every((o) => !o || outputs.has(o))) {
      skip('its output is a graph output, which stays in float');
      continue;
    } else if (SAME_SCALE_OPS.has(n.opType)) {
      if (!producedByQuantized(n.input[0] ?? '') || !hasRange(n.input[0] ?? '')) {
        skip('data movement is quantized only between quantized nodes');
        continue;
      }
      role = { kind: 'same-scale' };
    } else if (CALIBRATED_OPS.has(n.opType) && !n.output.some((o) => o && !outputs.has(o) && feedsQuantized(o))) {
      skip(`its output is read only by float ops: ${n.opType} stays in float`);
      continue;
    } else if (CALIBRATED_OPS.has(n.opType)) {
      const acts = activationInputIndices(n.opType, n.input.length).map((i) => n.input[i] ?? '').filter((x) => x && !constants.has(x));
      if (!acts.some(producedByQuantized)) {
        skip(`${n.opType} is quantized only after a quantized node`);
        continue;
      }
      role = { kind: 'calibrated' };
    } else {
      skip(`no integer kernel for ${n.opType}; kept in float`);
      continue;
    }

    // Every float activation the node reads, and every output (but graph outputs), needs a range.
    const acts = activationInputIndices(n.opType, n.input.length)
      .filter((i) => !(role!.kind === 'weighted' && (i === role!.weightIndex || i === role!.biasIndex)))
      .map((i) => n.input[i] ?? '')
      .filter((x) => x && !constants.has(x));
    const outs =
      role.kind === 'same-scale'
        ? []
        : n.output
            .filter((o) => o && !outputs.has(o))
            .map((o) => foldedOutput.get(o) ?? o)
            .filter(feedsQuantized);
    if (weightsOnly && role.kind !== 'weighted') {
      skip('activations stay float (--activation-qdq none): only weights are quantized');
      continue;
    }
    if (n.opType === 'Split' || n.output.length > 1) {
      if (role.kind !== 'same-scale') {
        skip('multiple outputs are not quantized');
        continue;
      }
    }
    const floatIn = weightsOnly || (integerKernelsOnly && outs.length === 0 && role.kind === 'weighted' && INTEGER_ONLY_WITH_QUANTIZED_OUTPUT.has(n.opType));
    // The activations this node asks to be quantized (a float-kernel layer asks for none).
    const requested = floatIn ? [] : [...acts, ...outs];
    const missing = requested.find((t) => !hasRange(t));
    if (missing) {
      skip(`no calibrated range for tensor "${missing}"`);
      continue;
    }
    if (floatIn) floatInputs.add(n);
    roles.set(n, role);
    const s = nodeSettings(config, n.name);
    settings.set(n, s);
    for (const t of requested) {
      // A tensor shared by nodes of different precision gets the highest any of them asks for
      // (in place: same-scale outputs share the object, so they follow their input).
      const cur = tensorType.get(t);
      if (!cur) tensorType.set(t, { type: s.activationType, symmetric: s.symmetricActivations });
      else if (ACTIVATION_BITS[s.activationType] > ACTIVATION_BITS[cur.type]) Object.assign(cur, { type: s.activationType, symmetric: s.symmetricActivations });
    }
    if (role.kind === 'same-scale') for (const o of n.output) if (o && !outputs.has(o)) tensorType.set(o, tensorType.get(n.input[0]!)!);
  }

  // ---- 1b. float kernels keep float weights, smallest first, within the budget ----
  for (const { n, count } of floatKernelsKeepingFloatWeights(floatInputs, roles, settings, constants, integerKernelsOnly || weightsOnly ? config.floatKernelWeights : 0)) {
    floatInputs.delete(n);
    roles.delete(n);
    settings.delete(n);
    skipped.push({
      name: nodeLabel(n),
      opType: n.opType,
      reason: `runs as a float kernel in onnxruntime (${weightsOnly ? 'its activations stay float' : 'its output feeds only float ops'}), so int8 weights would save only size: its ${count} weights stay float (--float-kernel-weights)`,
    });
  }

  if (options.planOnly) {
    // A same-scale output takes its input's parameters: its own range is never read.
    const sameScale = new Set([...roles].filter(([n, r]) => r.kind === 'same-scale' && VALUE_PRESERVING_OPS.has(n.opType)).flatMap(([n]) => n.output));
    for (const t of tensorType.keys()) if (!sameScale.has(t)) options.planOnly.add(t);
    return;
  }

  // ---- 2. activation parameters; same-scale outputs reuse their input's ----
  const paramsOf = (t: string): QuantParams => {
    let p = activations.get(t);
    if (!p) {
      const { type, symmetric } = tensorType.get(t)!;
      const r = ranges(t, type, symmetric)!;
      try {
        p = computeQParams(r.min, r.max, type, { symmetric });
      } catch (err) {
        if (err instanceof QuantizationError) throw new QuantizationError(`activation "${t}": ${err.message}`);
        throw err;
      }
      activations.set(t, p);
    }
    return p;
  };
  for (const n of order) {
    const role = roles.get(n);
    if (!role) continue;
    if (role.kind === 'same-scale') {
      const p = paramsOf(n.input[0]!);
      for (const o of n.output) if (o && !outputs.has(o)) activations.set(o, p);
    }
  }
  for (const t of tensorType.keys()) paramsOf(t);

  // ---- 3. rewrite ----
  const head: NodeProto[] = []; // weight DQs and graph-input Q/DQs, placed first
  const after = new Map<string, NodeProto[]>(); // Q/DQ pairs emitted right after a tensor's producer
  const dqName = new Map<string, string>(); // activation tensor → its dequantized name
  const newInits: TensorProto[] = [];

  const qdqFor = (t: string): string => {
    let out = dqName.get(t);
    if (out) return out;
    const p = activations.get(t)!;
    const scale = names.fresh(`${t}_scale`);
    const zp = names.fresh(`${t}_zero_point`);
    const q = names.fresh(`${t}_quantized`);
    out = names.fresh(`${t}_dequantized`);
    newInits.push(initializer(scale, DataType.FLOAT, [], new Float32Array([p.scale])));
    newInits.push(initializer(zp, QUANT_DATA_TYPE[p.type], [], [p.zeroPoint]));
    const nodes = [
      makeNode('QuantizeLinear', [t, scale, zp], [q], names.fresh(`${t}_QuantizeLinear`), {}, domain),
      makeNode('DequantizeLinear', [q, scale, zp], [out], names.fresh(`${t}_DequantizeLinear`), {}, domain),
    ];
    const producer = view.producer(t);
    if (producer) {
      const key = producer.output[0] ?? t;
      after.set(key, [...(after.get(key) ?? []), ...nodes]);
    } else head.push(...nodes);
    dqName.set(t, out);
    result.dequantized.set(t, out);
    return out;
  };

  const weightCache = new Map<string, { name: string; scales: Float32Array | number }>();
  const quantizeWeight = (
    w: string,
    type: WeightType | ActivationType,
    symmetric: boolean,
    axis: number | undefined,
    convKernels = false,
  ): { name: string; scales: Float32Array | number } => {
    const key = `${w}|${type}|${symmetric}|${axis ?? 'tensor'}|${convKernels}`;
    const cached = weightCache.get(key);
    if (cached) return cached;
    const t = constants.get(w)!;
    const values = readWeight(t);
    const dims = [...t.dims];
    const qName = names.fresh(`${w}_quantized`);
    const sName = names.fresh(`${w}_scale`);
    const zName = names.fresh(`${w}_zero_point`);
    const dq = names.fresh(`${w}_dequantized`);
    const attrs: Record<string, Attr> = {};
    let scales: Float32Array | number;
    const p = weightIntegers(values, dims, type, symmetric, axis, convKernels, `weight "${w}"`);
    newInits.push(initializer(qName, QUANT_DATA_TYPE[type], dims, p.q));
    if (axis !== undefined) {
      newInits.push(initializer(sName, DataType.FLOAT, [p.scales.length], p.scales));
      newInits.push(initializer(zName, QUANT_DATA_TYPE[type], [p.zeroPoints.length], Array.from(p.zeroPoints)));
      attrs.axis = Attr.int(axis);
      scales = p.scales;
    } else {
      newInits.push(initializer(sName, DataType.FLOAT, [], p.scales));
      newInits.push(initializer(zName, QUANT_DATA_TYPE[type], [], [p.zeroPoints[0]!]));
      scales = p.scales[0]!;
    }
    head.push(makeNode('DequantizeLinear', [qName, sName, zName], [dq], names.fresh(`${w}_DequantizeLinear`), attrs, domain));
    const result = { name: dq, scales };
    weightCache.set(key, result);
    return result;
  };

  /** Returns the dequantized bias's name, or a note starting with "bias " when it stays in float. */
  const quantizeBiasInput = (b: string, inputScale: number, weightScales: Float32Array | number, channels: number): string => {
    const t = constants.get(b)!;
    const values = readWeight(t);
    if (values.length !== channels || t.dims.length !== 1) return `bias "${b}" is not a vector of ${channels} (kept in float)`;
    const q = quantizeBias(values, inputScale, weightScales);
    const perChannel = typeof weightScales !== 'number';
    const biasScales = perChannel ? Float32Array.from(weightScales, (s) => Math.fround(inputScale * s)) : new Float32Array([Math.fround(inputScale * weightScales)]);
    // int32 saturation would silently clip a large bias: keep such biases in float instead.
    for (let i = 0; i < values.length; i++) {
      const s = biasScales[perChannel ? i : 0]!;
      if (Math.abs(values[i]! / s) >= 2 ** 31 - 1) return `bias "${b}" does not fit int32 at scale ${s} (kept in float)`;
    }
    const qName = names.fresh(`${b}_quantized`);
    const sName = names.fresh(`${b}_scale`);
    const zName = names.fresh(`${b}_zero_point`);
    const dq = names.fresh(`${b}_dequantized`);
    newInits.push(initializer(qName, DataType.INT32, [channels], q));
    newInits.push(initializer(sName, DataType.FLOAT, perChannel ? [channels] : [], biasScales));
    newInits.push(initializer(zName, DataType.INT32, perChannel ? [channels] : [], new Int32Array(perChannel ? channels : 1)));
    head.push(makeNode('DequantizeLinear', [qName, sName, zName], [dq], names.fresh(`${b}_DequantizeLinear`), perChannel ? { axis: Attr.int(0) } : {}, domain));
    return dq;
  };

  // The output of a folded activation exists only quantized: float consumers read its DQ too.
  const foldedOutputs = new Set([...folded].map((n) => n.output[0]!));
  // A float-kernel layer reads the float value, unless the tensor exists only quantized (a folded
  // activation) or its producer is quantized (reading the float output would keep that producer
  // from fusing into an integer kernel).
  const readsFloat = (n: NodeProto, x: string) => floatInputs.has(n) && !foldedOutputs.has(x) && !producedByQuantized(x);

  for (const n of order) {
    const role = roles.get(n);
    if (!role) continue;
    const s = settings.get(n)!;
    const details: string[] = [];
    try {
      if (role.kind === 'weighted') {
        const w = n.input[role.weightIndex]!;
        const t = constants.get(w)!;
        const transB = attrInt(n, 'transB', 0) !== 0;
        const axis = s.perChannel && t.dims.length >= 2 ? outputChannelAxis(n.opType, t.dims.length, transB) : undefined;
        const wq = quantizeWeight(w, s.weightType, s.symmetricWeights, axis, keepsKernelSums(n.opType, options.config));
        const input = n.input[0]!;
        let biasNote = '';
        const b = role.biasIndex !== undefined ? n.input[role.biasIndex] : undefined;
        const quantizedInput = activations.has(input) && !readsFloat(n, input);
        if (b && isFloatConstant(b) && quantizedInput) {
          const gemmScaled = n.opType === 'Gemm' && (attrFloat(n, 'alpha', 1) !== 1 || attrFloat(n, 'beta', 1) !== 1);
          const channels = axis !== undefined ? t.dims[axis]! : n.opType === 'Gemm' ? t.dims[transB ? 0 : 1]! : n.opType === 'ConvTranspose' ? t.dims[1]! * attrInt(n, 'group', 1) : t.dims[0]!;
          const perChannelOk = axis === undefined || n.opType !== 'ConvTranspose' || attrInt(n, 'group', 1) === 1;
          if (gemmScaled) biasNote = 'bias kept in float (Gemm alpha/beta ≠ 1)';
          else if (!perChannelOk) biasNote = 'bias kept in float (grouped ConvTranspose)';
          else {
            const r = quantizeBiasInput(b, activations.get(input)!.scale, wq.scales, channels);
            if (r.startsWith('bias ')) biasNote = r;
            else n.input[role.biasIndex!] = r;
          }
        }
        n.input[role.weightIndex] = wq.name;
        details.push(`${s.weightType} ${axis !== undefined ? 'per-channel' : 'per-tensor'} weights`);
        if (quantizedInput) details.push(`${activations.get(input)!.type} activations`);
        else if (weightsOnly) details.push('float activations (--activation-qdq none)');
        else if (floatInputs.has(n)) details.push('float activations: its output feeds only float ops, so onnxruntime runs it as a float kernel');
        if (biasNote) details.push(biasNote);
      } else {
        for (const i of activationInputIndices(n.opType, n.input.length)) {
          const x = n.input[i];
          if (!x || activations.has(x)) continue;
          if (isFloatConstant(x) && role.kind !== 'same-scale') {
            // A constant operand (e.g. the scalar of Mul) is quantized like an activation.
            const { type, symmetric } = tensorType.get(n.output[0] ?? '') ?? { type: s.activationType, symmetric: s.symmetricActivations };
            n.input[i] = quantizeWeight(x, type, symmetric, undefined).name;
          }
        }
        details.push(role.kind === 'same-scale' ? 'same scale as its input' : role.kind === 'matmul-activations' ? 'both inputs quantized' : `${s.activationType} activations`);
      }
      quantized.push({ name: nodeLabel(n), opType: n.opType, detail: details.join(', ') });
    } catch (err) {
      if (!(err instanceof QuantizationError)) throw err;
      skipped.push({ name: nodeLabel(n), opType: n.opType, reason: `cannot quantize: ${err.message}` });
    }
  }

  // Quantized nodes read the dequantized value of each quantized activation. Pairs are created
  // only here, for tensors a quantized node reads: float consumers and graph outputs keep the float.
  for (const n of order) {
    if (folded.has(n)) continue;
    const quantizedNode = roles.has(n);
    for (let i = 0; i < n.input.length; i++) {
      const x = n.input[i]!;
      if (readsFloat(n, x)) continue;
      if (activations.has(x) && (quantizedNode || foldedOutputs.has(x))) n.input[i] = qdqFor(x);
    }
  }

  // Folded activations vanish: their producer writes the activation's output tensor directly.
  for (const n of folded) {
    const producer = view.producer(n.input[0]!)!;
    producer.output[0] = n.output[0]!;
  }

  // Re-emit nodes in topological order with each Q/DQ pair right after its producer.
  const emitted: NodeProto[] = [...head];
  for (const n of order) {
    if (folded.has(n)) continue;
    emitted.push(n);
    for (const o of n.output) {
      const extra = after.get(o);
      if (extra) emitted.push(...extra);
    }
  }
  graph.node = emitted;
  graph.initializer.push(...newInits);
  if (graph !== result.model.graph) dropUnusedConstants(graph);
}

/** Removes Constant nodes whose value nothing reads any more (their weights were quantized). */
function dropUnusedConstants(graph: GraphProto): void {
  const used = new Set<string>();
  for (const g of walkGraphs(graph)) {
    for (const n of g.node) for (const i of n.input) used.add(i);
    for (const o of g.output) used.add(o.name);
  }
  graph.node = graph.node.filter((n) => n.opType !== 'Constant' || n.output.some((o) => used.has(o)));
}

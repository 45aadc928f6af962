/**
 * The "layers" of a model for analysis: every node with a constant float weight that quantization
 * acts on (Conv, ConvTranspose, Gemm, MatMul; LSTM/GRU/RNN weights W and R), in every graph, with
 * how its weight splits into channels and blocks, and the BatchNormalization the quantize pipeline
 * would fold into it. Nothing here reads tensor data except small BatchNormalization parameters.
 */
import { DataType } from '../onnx/dtypes';
import type { ModelProto, NodeProto, TensorProto } from '../onnx/proto';
import { isExcluded, QuantConfig } from '../quant/config';
import { cloneModel, ConstantResolver, floatAttr, intAttr, isDefaultDomain, modelScopes, RawReader, ResolvedConstant, Scope, useCounts } from '../quant/graph/edit';
import { WEIGHTED_OPS } from '../quant/graph/ops';
import { scaleWeight } from '../quant/graph/fold-batchnorm';
import { weightLayout, WeightLayout } from './weight-stats';

/** Float element types a weight can have for analysis. */
export const FLOAT_WEIGHT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

const RECURRENT = new Set(['LSTM', 'GRU', 'RNN']);

/** Operators that hold weights in an already quantized form. */
export const QUANTIZED_OPS: ReadonlySet<string> = new Set([
  'QLinearConv',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'QGemm',
  'DynamicQuantizeMatMul',
  'MatMulNBits',
  'MatMulIntegerToFloat',
  'DynamicQuantizeLSTM',
  'QAttention',
  'GatherBlockQuantized',
]);

export interface LayerWeight {
  /** The node input holding it. */
  input: string;
  /** 'weight' (W / B), or 'recurrence' (R of LSTM/GRU/RNN). */
  role: 'weight' | 'recurrence';
  constant: ResolvedConstant;
  dims: number[];
  dataType: number;
  layout: WeightLayout;
}

export interface BatchNormFold {
  /** The BatchNormalization node's name. */
  node: string;
  /** Per output channel: γ / √(var + ε), applied as the quantize pipeline's fold does. */
  factor: Float64Array;
}

export interface LayerInfo {
  /** The node's name; for nodes without one, a generated name (`unnamed`). */
  name: string;
  unnamed: boolean;
  opType: string;
  node: NodeProto;
  scope: Scope;
  /** '' for the main graph; else the chain of If/Loop/Scan nodes holding the graph. */
  graph: string;
  weights: LayerWeight[];
  /** The activation input (X / A) and the output. */
  input: string;
  output: string;
  /** Main-graph node the static QDQ transform quantizes (weights and input activation). */
  staticQuantizable: boolean;
  /** Why not, when not. */
  staticNote?: string;
  /** MatMul/Gemm with a 2-D float weight: int4/int8 weight-only applies. */
  weightOnly: boolean;
  fold?: BatchNormFold;
}

/** A node that already holds quantized weights (finding OQ003). */
export interface QuantizedNode {
  name: string;
  opType: string;
  graph: string;
}

function graphPath(scope: Scope): string {
  const parts: string[] = [];
  for (let s: Scope | undefined = scope; s && s.owner; s = s.parent) parts.unshift(s.owner.name || s.owner.opType);
  return parts.join(' > ');
}

/**
 * A copy of the model (tensors shared) in which every node has a name, unique in the model;
 * generated names are `<opType>_<n>`. Analysis reports, exclude lists and recipes key on names.
 */
export function withNodeNames(proto: ModelProto): { model: ModelProto; generated: Set<string> } {
  const model = cloneModel(proto);
  const generated = new Set<string>();
  const used = new Set<string>();
  for (const s of modelScopes(model)) for (const n of s.graph.node) if (n.name) used.add(n.name);
  const counters = new Map<string, number>();
  for (const s of modelScopes(model)) {
    for (const n of s.graph.node) {
      if (n.name) continue;
      let k = counters.get(n.opType) ?? 0;
      let name: string;
      do name = `${n.opType}_${k++}`;
      while (used.has(name));
      counters.set(n.opType, k);
      used.add(name);
      n.name = name;
      generated.add(name);
    }
  }
  return { model, generated };
}

/**
 * The BatchNormalization the quantize pipeline folds into `target`, with its per-channel factor
 * (same conditions as src/quant/graph/fold-batchnorm.ts), or undefined.
 */
function foldFor(
  target: NodeProto,
  scope: Scope,
  consumers: Map<string, NodeProto[]>,
  uses: Map<string, number>,
  resolver: ConstantResolver,
  config: QuantConfig,
): BatchNormFold | undefined {
  if (!config.foldBatchNorm || !['Conv', 'ConvTranspose', 'Gemm'].includes(target.opType) || target.output.length !== 1) return undefined;
  const y = target.output[0] ?? '';
  const bn = consumers.get(y)?.[0];
  if (!bn || bn.opType !== 'BatchNormalization' || !isDefaultDomain(bn) || (uses.get(y) ?? 0) !== 1 || bn.input[0] !== y) return undefined;
  if (isExcluded(config, bn) || intAttr(bn, 'training_mode', 0) !== 0 || intAttr(bn, 'spatial', 1) !== 1) return undefined;
  if (bn.output.slice(1).some((o) => o && (uses.get(o) ?? 0) > 0)) return undefined;
  const params: Float32Array[] = [];
  for (let i = 1; i <= 4; i++) {
    const c = resolver.resolve(scope, bn.input[i] ?? '');
    const v = c && resolver.floats(c);
    if (!v) return undefined;
    params.push(v);
  }
  const [gamma, beta, mean, variance] = params as [Float32Array, Float32Array, Float32Array, Float32Array];
  const n = gamma.length;
  if (beta.length !== n || mean.length !== n || variance.length !== n) return undefined;
  const eps = floatAttr(bn, 'epsilon', 1e-5);
  const factor = new Float64Array(n);
  for (let c = 0; c < n; c++) factor[c] = gamma[c]! / Math.sqrt(variance[c]! + eps);
  return { node: bn.name, factor };
}

/**
 * The weight with a BatchNormalization folded in, as fold-batchnorm.ts computes it (float64
 * factor, rounded once to float32), or undefined when the shapes do not allow the fold.
 */
export function foldedWeight(opType: string, dims: readonly number[], w: Float32Array, factor: Float64Array, node: NodeProto): Float32Array | undefined {
  const scaled = scaleWeight({ ...node, opType }, dims, w, factor);
  return typeof scaled === 'string' ? undefined : scaled;
}

function staticNote(node: NodeProto, scope: Scope): string | undefined {
  if (scope.parent) return 'inside a control-flow subgraph: only main-graph nodes are quantized statically';
  if (RECURRENT.has(node.opType)) return `${node.opType} has no static QDQ kernel (dynamic quantization handles LSTM weights)`;
  if (node.opType === 'Gemm' && intAttr(node, 'transA', 0) !== 0) return 'Gemm with transA=1 has no integer kernel';
  return undefined;
}

export interface LayerDiscovery {
  layers: LayerInfo[];
  quantizedNodes: QuantizedNode[];
}

/** Every layer of the model (see the header), in graph order, main graph first. */
export function discoverLayers(model: ModelProto, read: RawReader, config: QuantConfig, generated: ReadonlySet<string> = new Set()): LayerDiscovery {
  const resolver = new ConstantResolver(model, read);
  const uses = useCounts(model);
  const layers: LayerInfo[] = [];
  const quantizedNodes: QuantizedNode[] = [];
  for (const scope of modelScopes(model)) {
    const consumers = new Map<string, NodeProto[]>();
    for (const n of scope.graph.node) for (const i of n.input) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
    const graph = graphPath(scope);
    for (const node of scope.graph.node) {
      if (QUANTIZED_OPS.has(node.opType)) {
        quantizedNodes.push({ name: node.name, opType: node.opType, graph });
        continue;
      }
      if (node.opType === 'DequantizeLinear') {
        // A DequantizeLinear of a constant integer tensor is a stored quantized weight.
        const c = resolver.resolve(scope, node.input[0] ?? '');
        if (c && !FLOAT_WEIGHT_TYPES.has(c.tensor.dataType)) quantizedNodes.push({ name: node.name, opType: node.opType, graph });
        continue;
      }
      if (!isDefaultDomain(node)) continue;
      const inputs: [number, LayerWeight['role']][] = WEIGHTED_OPS[node.opType]
        ? [[WEIGHTED_OPS[node.opType]!.weight, 'weight']]
        : RECURRENT.has(node.opType)
          ? [
              [1, 'weight'],
              [2, 'recurrence'],
            ]
          : [];
      if (inputs.length === 0) continue;
      const weights: LayerWeight[] = [];
      for (const [index, role] of inputs) {
        const name = node.input[index] ?? '';
        const c = resolver.resolve(scope, name);
        if (!c || !FLOAT_WEIGHT_TYPES.has(c.tensor.dataType)) continue;
        const dims = [...c.tensor.dims];
        const transB = node.opType === 'Gemm' && intAttr(node, 'transB', 0) !== 0;
        weights.push({ input: name, role, constant: c, dims, dataType: c.tensor.dataType, layout: weightLayout(node.opType, dims, { transB, blockSize: config.blockSize }) });
      }
      if (weights.length === 0) continue;
      const note = staticNote(node, scope);
      const w = weights[0]!;
      const gemmOk = node.opType !== 'Gemm' || intAttr(node, 'transA', 0) === 0;
      layers.push({
        name: node.name,
        unnamed: generated.has(node.name),
        opType: node.opType,
        node,
        scope,
        graph,
        weights,
        input: node.input[0] ?? '',
        output: node.output[0] ?? '',
        staticQuantizable: note === undefined && w.role === 'weight' && WEIGHTED_OPS[node.opType] !== undefined,
        staticNote: note,
        weightOnly: (node.opType === 'MatMul' || node.opType === 'Gemm') && gemmOk && w.dims.length === 2,
        fold: foldFor(node, scope, consumers, uses, resolver, config),
      });
    }
  }
  return { layers, quantizedNodes };
}

/** The float32 values of a layer weight (a view when possible), the BatchNormalization fold applied. */
export function layerWeightValues(layer: LayerInfo, w: LayerWeight, toFloat32: (t: TensorProto) => Float32Array): Float32Array {
  const values = toFloat32(w.constant.tensor);
  if (layer.fold && w.role === 'weight') return foldedWeight(layer.opType, w.dims, values, layer.fold.factor, layer.node) ?? values;
  return values;
}

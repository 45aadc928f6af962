/**
 * Dynamic quantization: weights are stored as 8-bit integers, activations are quantized at run time
 * (uint8, range from each tensor as it comes), so no calibration data is needed. Suited to
 * MatMul/Gemm-heavy and recurrent models, where weights dominate and activation ranges vary.
 *
 * What each op becomes — only kernels onnxruntime's CPU provider runs (checked by the tests, ORT 1.30):
 * - MatMul, Gemm → com.microsoft.DynamicQuantizeMatMul(A, B_q, b_scale, b_zero_point[, bias]): one
 *   fused kernel (what onnxruntime's own optimizer fuses DynamicQuantizeLinear + MatMulInteger +
 *   scale Mul into). B is int8/uint8 per tensor or per column (b_scale of shape [N]). Gemm's transB is
 *   applied when quantizing (B stored [K, N]), alpha is multiplied into B, beta·C becomes the bias
 *   (or an Add when C is not a per-column constant). Gemm with transA = 1 is skipped.
 * - Conv → DynamicQuantizeLinear → ConvInteger → Cast → Mul(x_scale · w_scale) [→ Add bias]. ConvInteger
 *   takes one weight zero point only (a per-channel zero point fails at run time), so per-channel
 *   scales are used only when every channel's zero point is equal (symmetric weights); otherwise the
 *   weight is quantized per tensor. Needs opset ≥ 11 (DynamicQuantizeLinear).
 * - LSTM → com.microsoft.DynamicQuantizeLSTM: W [D, 4H, I] and R [D, 4H, H] stored transposed as
 *   [D, I, 4H] / [D, H, 4H], scales per direction or per (direction, gate column). Weights behind
 *   Slice/Concat/Unsqueeze chains (how PyTorch exports reorder gates) are folded first.
 * - GRU, RNN, ConvTranspose: skipped (onnxruntime has no dynamically quantized kernel for them).
 * Weight types are int8 or uint8; 4-bit weights belong to weight-only mode. `reduceRange` keeps int8
 * weights within ±64 so u8·s8 pair sums fit int16 on CPUs without VNNI (AVX2's vpmaddubsw saturates).
 */
import { DataType } from '../../onnx/dtypes';
import { OnnxModel } from '../../onnx/model';
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { DEFAULT_CONFIG, isExcluded, nodeSettings, QuantConfig } from '../config';
import { channelMinMax, computePerChannelQParams, computeQParams, quantizePerChannel, quantizeTensor, tensorMinMax } from '../index';
import {
  cloneModel,
  ConstantResolver,
  floatAttr,
  initializer,
  intAttr,
  isDefaultDomain,
  isFoldableOp,
  makeNode,
  modelScopes,
  modelSource,
  NameScope,
  pruneDeadNodes,
  requireOpset,
  ResolvedConstant,
  Scope,
  SkippedNode,
  TransformedNode,
  TransformResult,
} from './edit';

export interface DynamicOptions {
  /** Quantize int8 weights to 7 bits (|q| ≤ 64), for CPUs without VNNI. Default false. */
  reduceRange?: boolean;
}

const CANDIDATES = new Set(['MatMul', 'Gemm', 'Conv', 'LSTM', 'GRU', 'RNN', 'ConvTranspose']);
const NO_KERNEL: Record<string, string> = {
  GRU: 'onnxruntime has no dynamically quantized GRU kernel',
  RNN: 'onnxruntime has no dynamically quantized RNN kernel',
  ConvTranspose: 'onnxruntime has no integer ConvTranspose kernel',
};

type WeightType = 'int8' | 'uint8';

/** A quantized weight: integer values and their scale / zero point, per tensor or per channel. */
interface Quantized8 {
  q: Int8Array | Uint8Array;
  scales: Float32Array;
  zeroPoints: Int32Array;
}

/** Quantizes `x` (shape `dims`) per tensor, or per index along `axis`; `reduceRange` widens int8 scales ×2. */
function quantize8(x: Float32Array, dims: number[], axis: number | undefined, type: WeightType, symmetric: boolean, reduceRange: boolean): Quantized8 {
  const widen = reduceRange && type === 'int8' ? 2 : 1;
  if (axis === undefined) {
    const r = tensorMinMax(x, 'weight');
    const p = computeQParams(r.min * widen, r.max * widen, type, { symmetric });
    return { q: quantizeTensor(x, p), scales: Float32Array.of(p.scale), zeroPoints: Int32Array.of(p.zeroPoint) };
  }
  const { mins, maxs } = channelMinMax(x, dims, axis);
  const p = computePerChannelQParams(
    mins.map((v) => v * widen),
    maxs.map((v) => v * widen),
    type,
    axis,
    { symmetric },
  );
  return { q: quantizePerChannel(x, dims, p), scales: p.scales, zeroPoints: p.zeroPoints };
}

function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

const ONNX_TYPE: Record<WeightType, DataType> = { int8: DataType.INT8, uint8: DataType.UINT8 };

/** Rewrites the candidate nodes of every graph; memos make shared weights and activations quantize once. */
class DynamicQuantizer {
  readonly quantized: TransformedNode[] = [];
  readonly skipped: SkippedNode[] = [];
  private readonly resolver: ConstantResolver;
  private readonly names: NameScope;
  /** Quantized weights by source tensor and layout, so a shared weight is quantized once. */
  private readonly weightMemo = new Map<TensorProto, Map<string, { q: string; scale: string; zp: string; perChannel: boolean }>>();
  /** DynamicQuantizeLinear outputs by graph and activation, shared by the Convs reading it. */
  private readonly dqlMemo = new Map<GraphProto, Map<string, [string, string, string]>>();
  /** Nodes to place before the node being rewritten (DynamicQuantizeLinear, from dynamicQuantize). */
  private readonly pending: NodeProto[] = [];
  usedContrib = false;

  constructor(
    private readonly model: ModelProto,
    read: (t: TensorProto) => Uint8Array | undefined,
    private readonly config: QuantConfig,
    private readonly options: DynamicOptions,
  ) {
    this.resolver = new ConstantResolver(model, read);
    this.names = new NameScope(model);
  }

  run(): void {
    const opset = this.model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
    for (const scope of modelScopes(this.model)) {
      const rewritten: NodeProto[] = [];
      for (const node of scope.graph.node) {
        if (!CANDIDATES.has(node.opType) || !isDefaultDomain(node)) {
          rewritten.push(node);
          continue;
        }
        const result = this.rewrite(node, scope, opset);
        if (typeof result === 'string') {
          this.skipped.push({ name: node.name, opType: node.opType, reason: result });
          rewritten.push(node);
        } else {
          this.quantized.push({ name: node.name, opType: node.opType, detail: result.detail });
          rewritten.push(...this.pending.splice(0), ...result.nodes);
        }
      }
      scope.graph.node = rewritten;
    }
  }

  private rewrite(node: NodeProto, scope: Scope, opset: number): { nodes: NodeProto[]; detail: string } | string {
    if (isExcluded(this.config, node)) return 'excluded by the configuration';
    const noKernel = NO_KERNEL[node.opType];
    if (noKernel) return noKernel;
    const s = nodeSettings(this.config, node.name);
    if (s.weightType !== 'int8' && s.weightType !== 'uint8') {
      return `weight type ${s.weightType} is not supported by onnxruntime's dynamic kernels (8-bit only); use weight-only mode for 4-bit weights`;
    }
    const type: WeightType = s.weightType;
    switch (node.opType) {
      case 'MatMul':
        return this.matMul(node, scope, type, s.symmetricWeights, s.perChannel);
      case 'Gemm':
        return this.gemm(node, scope, type, s.symmetricWeights, s.perChannel);
      case 'Conv':
        if (opset < 11) return `opset ${opset} has no DynamicQuantizeLinear (needs 11)`;
        return this.conv(node, scope, type, s.symmetricWeights, s.perChannel);
      default:
        return this.lstm(node, scope, type, s.symmetricWeights, s.perChannel);
    }
  }

  /** The float32 constant behind a node input, or why there is none. */
  private weight(scope: Scope, name: string, what: string): { c: ResolvedConstant; values: Float32Array } | string {
    const c = this.resolver.resolve(scope, name);
    if (!c) return `${what} is not a constant`;
    if (c.tensor.dataType !== DataType.FLOAT) return `${what} is ${c.tensor.dataType === DataType.FLOAT16 ? 'float16' : `data type ${c.tensor.dataType}`}, not float32`;
    const values = this.resolver.floats(c);
    if (!values) return `${what} is in external data that was not loaded (pass the OnnxModel, not its proto)`;
    return { c, values };
  }

  /**
   * Stores a quantized weight once per source tensor and layout, next to the source (so If/Loop
   * branches reading an outer weight share it); folded weights go to the asking graph.
   */
  private storeWeight(
    scope: Scope,
    source: ResolvedConstant,
    layout: string,
    build: () => { q: Quantized8; dims: number[]; scaleDims: number[]; zeroPointDims?: number[]; type: WeightType },
  ): { q: string; scale: string; zp: string; perChannel: boolean } {
    let byLayout = this.weightMemo.get(source.tensor);
    if (!byLayout) this.weightMemo.set(source.tensor, (byLayout = new Map()));
    const hit = byLayout.get(layout);
    if (hit) return hit;
    const { q, dims, scaleDims, zeroPointDims, type } = build();
    const base = source.tensor.name || 'weight';
    const names = { q: this.names.fresh(`${base}_quantized`), scale: this.names.fresh(`${base}_scale`), zp: this.names.fresh(`${base}_zero_point`) };
    const home = source.kind === 'folded' ? scope.graph : source.scope.graph;
    home.initializer.push(
      initializer(names.q, ONNX_TYPE[type], dims, q.q),
      initializer(names.scale, DataType.FLOAT, scaleDims, q.scales),
      initializer(names.zp, ONNX_TYPE[type], zeroPointDims ?? scaleDims, q.zeroPoints),
    );
    const entry = { ...names, perChannel: q.scales.length > 1 };
    byLayout.set(layout, entry);
    return entry;
  }

  private describe(type: WeightType, symmetric: boolean, perChannel: boolean, dims: readonly number[]): string {
    const range = this.options.reduceRange && type === 'int8' ? ' (7-bit range)' : '';
    return `${type}${range} ${symmetric ? 'symmetric' : 'asymmetric'} ${perChannel ? 'per-channel' : 'per-tensor'} weight [${dims.join('x')}]`;
  }

  /** B as [K, N] (rank 2) or batched, quantized per column when asked and possible. */
  private matMulWeight(scope: Scope, w: { c: ResolvedConstant; values: Float32Array }, kn: Float32Array, dims: number[], layout: string, type: WeightType, symmetric: boolean, perChannel: boolean) {
    const perColumn = perChannel && dims.length === 2;
    const key = `${layout}|${type}|${symmetric}|${perColumn}|${this.options.reduceRange === true}`;
    return this.storeWeight(scope, w.c, key, () => ({
      q: quantize8(kn, dims, perColumn ? 1 : undefined, type, symmetric, this.options.reduceRange === true),
      dims,
      scaleDims: perColumn ? [dims[1]!] : [],
      type,
    }));
  }

  private matMul(node: NodeProto, scope: Scope, type: WeightType, symmetric: boolean, perChannel: boolean) {
    const w = this.weight(scope, node.input[1] ?? '', 'input B');
    if (typeof w === 'string') {
      return this.resolver.resolve(scope, node.input[0] ?? '') ? "the constant is input A; onnxruntime's dynamic kernels quantize a constant B only" : `no constant weight: ${w}`;
    }
    const dims = w.c.tensor.dims;
    if (dims.length < 2) return `input B has rank ${dims.length}; DynamicQuantizeMatMul needs a matrix`;
    const stored = this.matMulWeight(scope, w, w.values, [...dims], 'kn', type, symmetric, perChannel);
    this.usedContrib = true;
    const q = makeNode('DynamicQuantizeMatMul', [node.input[0]!, stored.q, stored.scale, stored.zp], [...node.output], node.name, {}, 'com.microsoft');
    return { nodes: [q], detail: `DynamicQuantizeMatMul, ${this.describe(type, symmetric, stored.perChannel, dims)}` };
  }

  private gemm(node: NodeProto, scope: Scope, type: WeightType, symmetric: boolean, perChannel: boolean) {
    if (intAttr(node, 'transA', 0) !== 0) return 'transA=1: DynamicQuantizeMatMul cannot transpose its activation input';
    const w = this.weight(scope, node.input[1] ?? '', 'input B');
    if (typeof w === 'string') return `no constant weight: ${w}`;
    const dims = w.c.tensor.dims;
    if (dims.length !== 2) return `input B has rank ${dims.length}, expected 2`;
    const transB = intAttr(node, 'transB', 0) !== 0;
    const alpha = floatAttr(node, 'alpha', 1);
    const beta = floatAttr(node, 'beta', 1);
    const [k, n] = transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!];
    // B is stored [K, N] as DynamicQuantizeMatMul reads it; alpha scales the weight before quantizing.
    const build = () => {
      const kn = transB ? transpose2d(w.values, n, k) : Float32Array.from(w.values);
      if (alpha !== 1) for (let i = 0; i < kn.length; i++) kn[i] = kn[i]! * alpha;
      return kn;
    };
    const layout = `gemm|${transB}|${alpha}`;
    const perColumn = perChannel;
    const key = `${layout}|${type}|${symmetric}|${perColumn}|${this.options.reduceRange === true}`;
    const stored = this.storeWeight(scope, w.c, key, () => ({
      q: quantize8(build(), [k, n], perColumn ? 1 : undefined, type, symmetric, this.options.reduceRange === true),
      dims: [k, n],
      scaleDims: perColumn ? [n] : [],
      type,
    }));
    const inputs = [node.input[0]!, stored.q, stored.scale, stored.zp];
    const nodes: NodeProto[] = [];
    const cName = node.input[2] ?? '';
    const y = node.output[0]!;
    let biasNote = '';
    if (cName) {
      const c = this.weight(scope, cName, 'input C');
      if (typeof c !== 'string' && (c.values.length === n || c.values.length === 1)) {
        const bias = new Float32Array(n);
        for (let j = 0; j < n; j++) bias[j] = beta * c.values[c.values.length === 1 ? 0 : j]!;
        const bName = this.names.fresh(`${node.name || y}_bias`);
        scope.graph.initializer.push(initializer(bName, DataType.FLOAT, [n], bias));
        inputs.push(bName);
        biasNote = ', C as bias';
      } else {
        // C is an activation or a full [M, N] matrix: add beta·C after the product.
        let addend = cName;
        if (beta !== 1) {
          const betaName = this.names.fresh(`${node.name || y}_beta`);
          scope.graph.initializer.push(initializer(betaName, DataType.FLOAT, [], [beta]));
          addend = this.names.fresh(`${node.name || y}_beta_c`);
          nodes.push(makeNode('Mul', [cName, betaName], [addend], this.names.fresh(`${node.name}_beta_mul`)));
        }
        const product = this.names.fresh(`${y}_product`);
        nodes.push(makeNode('DynamicQuantizeMatMul', inputs, [product], node.name, {}, 'com.microsoft'));
        nodes.push(makeNode('Add', [product, addend], [y], this.names.fresh(`${node.name}_add_c`)));
        this.usedContrib = true;
        return { nodes, detail: `DynamicQuantizeMatMul + Add, ${this.describe(type, symmetric, stored.perChannel, [k, n])}${transB ? ', transB applied' : ''}` };
      }
    }
    this.usedContrib = true;
    nodes.push(makeNode('DynamicQuantizeMatMul', inputs, [y], node.name, {}, 'com.microsoft'));
    return { nodes, detail: `DynamicQuantizeMatMul, ${this.describe(type, symmetric, stored.perChannel, [k, n])}${transB ? ', transB applied' : ''}${biasNote}` };
  }

  private conv(node: NodeProto, scope: Scope, type: WeightType, symmetric: boolean, perChannel: boolean) {
    const w = this.weight(scope, node.input[1] ?? '', 'weight W');
    if (typeof w === 'string') return w;
    const dims = [...w.c.tensor.dims];
    const m = dims[0]!;
    let bias: Float32Array | undefined;
    if (node.input[2]) {
      const b = this.weight(scope, node.input[2], 'bias B');
      if (typeof b === 'string') return b;
      bias = b.values;
    }
    // ConvInteger accepts a single weight zero point: per-channel only when all channels share it.
    const reduce = this.options.reduceRange === true;
    let q = perChannel ? quantize8(w.values, dims, 0, type, symmetric, reduce) : undefined;
    let fallback = '';
    if (q && q.zeroPoints.some((z) => z !== q!.zeroPoints[0])) {
      q = undefined;
      fallback = ' (per-channel zero points differ; ConvInteger takes one, so per tensor)';
    }
    const perCh = q !== undefined;
    const key = `conv|${type}|${symmetric}|${perCh}|${reduce}`;
    const rank = dims.length;
    const stored = this.storeWeight(scope, w.c, key, () => {
      const qq = q ?? quantize8(w.values, dims, undefined, type, symmetric, reduce);
      // Scales broadcast over the output [N, M, spatial…]; the zero point stays a scalar.
      const scaleDims = perCh ? [1, m, ...new Array<number>(rank - 2).fill(1)] : [];
      return { q: { q: qq.q, scales: qq.scales, zeroPoints: qq.zeroPoints.subarray(0, 1) }, dims, scaleDims, zeroPointDims: [], type };
    });

    const [xq, xs, xz] = this.dynamicQuantize(scope, node.input[0]!);
    const nodes: NodeProto[] = [];
    const y = node.output[0]!;
    const base = node.name || y;
    const acc = this.names.fresh(`${y}_int32`);
    const accF = this.names.fresh(`${y}_int32_float`);
    const scale = this.names.fresh(`${y}_scale`);
    const attrs = node.attribute.filter((a) => ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'].includes(a.name));
    const convInt = makeNode('ConvInteger', [xq, stored.q, xz, stored.zp], [acc], this.names.fresh(`${base}_ConvInteger`));
    convInt.attribute = attrs;
    nodes.push(convInt);
    nodes.push(makeNode('Cast', [acc], [accF], this.names.fresh(`${base}_cast`), { to: DataType.FLOAT }));
    nodes.push(makeNode('Mul', [xs, stored.scale], [scale], this.names.fresh(`${base}_scale_mul`)));
    const scaled = bias ? this.names.fresh(`${y}_no_bias`) : y;
    nodes.push(makeNode('Mul', [accF, scale], [scaled], this.names.fresh(`${base}_rescale`)));
    if (bias) {
      const bName = this.names.fresh(`${base}_bias_reshaped`);
      scope.graph.initializer.push(initializer(bName, DataType.FLOAT, [1, m, ...new Array<number>(rank - 2).fill(1)], bias));
      nodes.push(makeNode('Add', [scaled, bName], [y], this.names.fresh(`${base}_bias_add`)));
    }
    return { nodes, detail: `ConvInteger, ${this.describe(type, symmetric, perCh, dims)}${fallback}` };
  }

  /** DynamicQuantizeLinear of an activation, once per graph; inserted before its first use. */
  private dynamicQuantize(scope: Scope, x: string): [string, string, string] {
    let byName = this.dqlMemo.get(scope.graph);
    if (!byName) this.dqlMemo.set(scope.graph, (byName = new Map()));
    const hit = byName.get(x);
    if (hit) return hit;
    const outs: [string, string, string] = [this.names.fresh(`${x}_quantized`), this.names.fresh(`${x}_scale`), this.names.fresh(`${x}_zero_point`)];
    this.pending.push(makeNode('DynamicQuantizeLinear', [x], [...outs], this.names.fresh(`${x}_DynamicQuantizeLinear`)));
    byName.set(x, outs);
    return outs;
  }

  private lstm(node: NodeProto, scope: Scope, type: WeightType, symmetric: boolean, perChannel: boolean) {
    if (intAttr(node, 'layout', 0) !== 0) return 'layout=1 (batch-first): DynamicQuantizeLSTM supports the default layout only';
    const w = this.weight(scope, node.input[1] ?? '', 'W');
    if (typeof w === 'string') return w;
    const r = this.weight(scope, node.input[2] ?? '', 'R');
    if (typeof r === 'string') return r;
    const [d, gates, inputSize] = w.c.tensor.dims;
    const hidden = r.c.tensor.dims[2];
    if (w.c.tensor.dims.length !== 3 || r.c.tensor.dims.length !== 3 || !d || !gates || !inputSize || !hidden) return 'W or R is not 3-D';
    const reduce = this.options.reduceRange === true;
    // [D, 4H, X] → [D, X, 4H], quantized per direction or per (direction, gate column).
    const build = (values: Float32Array, x: number) => () => {
      const q = type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
      const n = perChannel ? d * gates : d;
      const scales = new Float32Array(n);
      const zeroPoints = new Int32Array(n);
      for (let dir = 0; dir < d; dir++) {
        const slice = transpose2d(values.subarray(dir * gates * x, (dir + 1) * gates * x), gates, x);
        const part = quantize8(slice, [x, gates], perChannel ? 1 : undefined, type, symmetric, reduce);
        q.set(part.q, dir * gates * x);
        scales.set(part.scales, dir * part.scales.length);
        zeroPoints.set(part.zeroPoints, dir * part.zeroPoints.length);
      }
      return { q: { q, scales, zeroPoints }, dims: [d, x, gates], scaleDims: perChannel ? [d, gates] : [d], type };
    };
    const key = `lstm|${type}|${symmetric}|${perChannel}|${reduce}`;
    const wq = this.storeWeight(scope, w.c, key, build(w.values, inputSize));
    const rq = this.storeWeight(scope, r.c, key, build(r.values, hidden));
    const inputs = [...node.input.slice(0, 8)];
    while (inputs.length < 8) inputs.push('');
    inputs[1] = wq.q;
    inputs[2] = rq.q;
    inputs.push(wq.scale, wq.zp, rq.scale, rq.zp);
    const q = makeNode('DynamicQuantizeLSTM', inputs, [...node.output], node.name, {}, 'com.microsoft');
    q.attribute = node.attribute.filter((a) => a.name !== 'layout');
    this.usedContrib = true;
    return { nodes: [q], detail: `DynamicQuantizeLSTM, ${this.describe(type, symmetric, perChannel, [d, inputSize + hidden, gates])} (W and R)` };
  }
}

export function quantizeDynamic(
  model: OnnxModel | ModelProto,
  config: QuantConfig = { ...DEFAULT_CONFIG, mode: 'dynamic' },
  options: DynamicOptions = {},
): TransformResult {
  const { proto, read } = modelSource(model);
  const out = cloneModel(proto);
  const q = new DynamicQuantizer(out, read, config, options);
  q.run();
  if (q.usedContrib) requireOpset(out, 'com.microsoft', 1);
  pruneDeadNodes(out, isFoldableOp);
  return { model: out, quantized: q.quantized, skipped: q.skipped };
}

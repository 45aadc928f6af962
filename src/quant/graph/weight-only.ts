/**
 * Weight-only quantization of MatMul/Gemm weights to 4 or 8 bits, blockwise along the reduction
 * axis K (every `blockSize` = 32/64/128 consecutive K values of one output column share a scale and
 * zero point). Activations stay float; the weight is dequantized inside the kernel.
 *
 * Two encodings:
 * - `matmulnbits` (default below opset 21): com.microsoft.MatMulNBits, onnxruntime's fast kernel
 *   (MLAS unpacks 4-bit blocks on the fly). Its layout, verified against a JS dequantizer in the
 *   tests: B is uint8 [N, ceil(K/bs), bs·bits/8], the codes of column n's block b packed along K,
 *   low nibble first; scales float [N, ceil(K/bs)]; zero_points uint8 [N, ceil(ceil(K/bs)·bits/8)],
 *   packed the same way, omitted when every block uses the default 2^(bits−1). Codes are unsigned:
 *   signed int4/int8 values are stored offset by 8/128 (same dequantized value). A padded last
 *   block holds the zero point code, i.e. 0. bits = 4 (int4/uint4) or 8 (int8/uint8).
 * - `dq` (default at opset ≥ 21): standard DequantizeLinear with `block_size` (opset 21), weight
 *   stored as packed int4/uint4 (or int8/uint8), feeding the original MatMul/Gemm. Portable to any
 *   ONNX runtime. onnxruntime 1.30's optimizer fuses DQ + MatMul into MatMulNBits with
 *   accuracy_level 4 (activations quantized to int8 per block; session option
 *   "session.qdq_matmulnbits_accuracy_level" changes it), so it runs fast but is not bit-equal to
 *   the unfused graph (~1e-2 relative, measured in the tests). It is not used below opset 21
 *   because raising a model's opset changes the semantics of its other ops (Resize, Split, Reduce*
 *   axes, …) and would need a full version converter.
 *
 * Gemm → MatMulNBits + Add: transB is applied when packing, alpha is multiplied into the weight,
 * beta·C is added after (an initializer, or Mul + Add when C is computed). transA = 1 is skipped.
 * In `dq` form a Gemm keeps its attributes and reads DequantizeLinear's output directly.
 */
import { DataType } from '../../onnx/dtypes';
import { OnnxModel } from '../../onnx/model';
import { ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { DEFAULT_CONFIG, isExcluded, nodeSettings, QuantConfig, WeightType } from '../config';
import { computeBlockwiseQParams, quantizeBlockwise, quantRange } from '../index';
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

export type WeightOnlyFormat = 'auto' | 'matmulnbits' | 'dq';

export interface WeightOnlyOptions {
  /** 'auto' (default): MatMulNBits below opset 21, DequantizeLinear with block_size from opset 21. */
  format?: WeightOnlyFormat;
  /**
   * MatMulNBits accuracy_level: 0 (default) computes in float32; 4 lets onnxruntime quantize A to
   * int8 per block as well (faster, no longer weight-only numerically).
   */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
}

/** A [K, N] weight quantized in K-blocks: codes per element, scales / zero points [blocks, N]. */
export interface BlockQuantizedWeight {
  k: number;
  n: number;
  blockSize: number;
  blocks: number;
  type: WeightType;
  /** Signed or unsigned integer values, row-major [K, N]. */
  q: Int8Array | Uint8Array;
  /** Row-major [blocks, N]. */
  scales: Float32Array;
  zeroPoints: Int32Array;
}

/** Quantizes W [K, N] blockwise along K (axis 0). */
export function quantizeKBlocks(w: Float32Array, k: number, n: number, blockSize: number, type: WeightType, symmetric: boolean): BlockQuantizedWeight {
  const p = computeBlockwiseQParams(w, [k, n], 0, blockSize, type, { symmetric });
  return { k, n, blockSize, blocks: p.scaleShape[0]!, type, q: quantizeBlockwise(w, [k, n], p), scales: p.scales, zeroPoints: p.zeroPoints };
}

/** MatMulNBits tensors (see the header for the layout). */
export function packMatMulNBits(w: BlockQuantizedWeight): { bits: 4 | 8; b: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array | undefined } {
  const { k, n, blockSize, blocks } = w;
  const range = quantRange(w.type);
  const bits = range.bits === 4 ? 4 : 8;
  const offset = range.signed ? 1 << (bits - 1) : 0; // signed values → unsigned codes
  const perByte = 8 / bits;
  const blob = blockSize / perByte;
  const b = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zp = new Uint8Array(n * blocks);
  const defaultZp = 1 << (bits - 1);
  let allDefault = true;
  for (let col = 0; col < n; col++) {
    for (let blk = 0; blk < blocks; blk++) {
      const z = w.zeroPoints[blk * n + col]! + offset;
      scales[col * blocks + blk] = w.scales[blk * n + col]!;
      zp[col * blocks + blk] = z;
      if (z !== defaultZp) allDefault = false;
      const base = (col * blocks + blk) * blob;
      for (let i = 0; i < blockSize; i++) {
        const row = blk * blockSize + i;
        // Rows past K (a partial last block) hold the zero point: they dequantize to 0.
        const code = row < k ? w.q[row * n + col]! + offset : z;
        b[base + Math.floor(i / perByte)]! |= code << ((i % perByte) * bits);
      }
    }
  }
  if (allDefault) return { bits, b, scales, zeroPoints: undefined };
  if (bits === 8) return { bits, b, scales, zeroPoints: zp };
  const zpCols = Math.ceil(blocks / 2);
  const packed = new Uint8Array(n * zpCols);
  for (let col = 0; col < n; col++) {
    for (let blk = 0; blk < blocks; blk++) packed[col * zpCols + (blk >> 1)]! |= zp[col * blocks + blk]! << ((blk & 1) * 4);
  }
  return { bits, b, scales, zeroPoints: packed };
}

const DQ_TYPE: Record<WeightType, DataType> = { int4: DataType.INT4, uint4: DataType.UINT4, int8: DataType.INT8, uint8: DataType.UINT8 };

function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

type Rewrite = { nodes: NodeProto[]; detail: string };

class WeightOnlyQuantizer {
  readonly quantized: TransformedNode[] = [];
  readonly skipped: SkippedNode[] = [];
  usedContrib = false;
  private readonly resolver: ConstantResolver;
  private readonly names: NameScope;
  /** Stored weights by source tensor and layout: a shared weight is quantized once. */
  private readonly memo = new Map<TensorProto, Map<string, string[]>>();

  constructor(
    private readonly model: ModelProto,
    read: (t: TensorProto) => Uint8Array | undefined,
    private readonly config: QuantConfig,
    private readonly format: 'matmulnbits' | 'dq',
    private readonly accuracyLevel: number,
  ) {
    this.resolver = new ConstantResolver(model, read);
    this.names = new NameScope(model);
  }

  run(): void {
    for (const scope of modelScopes(this.model)) {
      const out: NodeProto[] = [];
      for (const node of scope.graph.node) {
        if ((node.opType !== 'MatMul' && node.opType !== 'Gemm') || !isDefaultDomain(node)) {
          out.push(node);
          continue;
        }
        const r = this.rewrite(node, scope);
        if (typeof r === 'string') {
          this.skipped.push({ name: node.name, opType: node.opType, reason: r });
          out.push(node);
        } else {
          this.quantized.push({ name: node.name, opType: node.opType, detail: r.detail });
          out.push(...r.nodes);
        }
      }
      scope.graph.node = out;
    }
  }

  private rewrite(node: NodeProto, scope: Scope): Rewrite | string {
    if (isExcluded(this.config, node)) return 'excluded by the configuration';
    const s = nodeSettings(this.config, node.name);
    const isGemm = node.opType === 'Gemm';
    if (isGemm && intAttr(node, 'transA', 0) !== 0) return 'transA=1: the activation would need a transpose';
    const c = this.resolver.resolve(scope, node.input[1] ?? '');
    if (!c) return this.resolver.resolve(scope, node.input[0] ?? '') ? 'the constant is input A; only a constant B (the weight) is quantized' : 'input B is not a constant (no weight)';
    if (c.tensor.dataType !== DataType.FLOAT) return `weight is data type ${c.tensor.dataType}, not float32`;
    if (c.tensor.dims.length !== 2) return `weight has rank ${c.tensor.dims.length}; blockwise kernels take a 2-D [K, N] weight`;
    const values = this.resolver.floats(c);
    if (!values) return 'weight is in external data that was not loaded (pass the OnnxModel, not its proto)';
    const transB = isGemm && intAttr(node, 'transB', 0) !== 0;
    const [k, n] = transB ? [c.tensor.dims[1]!, c.tensor.dims[0]!] : [c.tensor.dims[0]!, c.tensor.dims[1]!];
    const bs = this.config.blockSize;
    const what = `${s.weightType} ${s.symmetricWeights ? 'symmetric' : 'asymmetric'}, block ${bs} along K, weight [${k}x${n}]`;
    if (this.format === 'dq') return this.dq(node, scope, c, values, s.weightType, s.symmetricWeights, transB, what);
    return this.matMulNBits(node, scope, c, values, k, n, s.weightType, s.symmetricWeights, transB, what);
  }

  private stored(c: ResolvedConstant, scope: Scope, layout: string, build: () => TensorProto[]): string[] {
    let byLayout = this.memo.get(c.tensor);
    if (!byLayout) this.memo.set(c.tensor, (byLayout = new Map()));
    const hit = byLayout.get(layout);
    if (hit) return hit;
    const tensors = build();
    // Next to the float weight, so subgraphs reading an outer weight share one copy.
    (c.kind === 'folded' ? scope.graph : c.scope.graph).initializer.push(...tensors);
    const names = tensors.map((t) => t.name);
    byLayout.set(layout, names);
    return names;
  }

  private matMulNBits(node: NodeProto, scope: Scope, c: ResolvedConstant, values: Float32Array, k: number, n: number, type: WeightType, symmetric: boolean, transB: boolean, what: string): Rewrite {
    const isGemm = node.opType === 'Gemm';
    const alpha = isGemm ? floatAttr(node, 'alpha', 1) : 1;
    const bs = this.config.blockSize;
    const base = c.tensor.name || 'weight';
    const [bName, sName, zName] = this.stored(c, scope, `nbits|${type}|${symmetric}|${bs}|${transB}|${alpha}`, () => {
      const kn = transB ? transpose2d(values, n, k) : alpha !== 1 ? Float32Array.from(values) : values;
      if (alpha !== 1) for (let i = 0; i < kn.length; i++) kn[i] = kn[i]! * alpha;
      const p = packMatMulNBits(quantizeKBlocks(kn, k, n, bs, type, symmetric));
      const blocks = Math.ceil(k / bs);
      const t = [
        initializer(this.names.fresh(`${base}_nbits`), DataType.UINT8, [n, blocks, p.b.length / (n * blocks)], p.b),
        initializer(this.names.fresh(`${base}_nbits_scales`), DataType.FLOAT, [n, blocks], p.scales),
      ];
      if (p.zeroPoints) t.push(initializer(this.names.fresh(`${base}_nbits_zero_points`), DataType.UINT8, [n, p.zeroPoints.length / n], p.zeroPoints));
      return t;
    });
    this.usedContrib = true;
    const bits = quantRange(type).bits;
    const attrs = { K: k, N: n, bits, block_size: bs, ...(this.accuracyLevel ? { accuracy_level: this.accuracyLevel } : {}) };
    const inputs = [node.input[0]!, bName!, sName!, ...(zName ? [zName] : [])];
    const y = node.output[0]!;
    const cName = isGemm ? node.input[2] ?? '' : '';
    if (!cName) return { nodes: [makeNode('MatMulNBits', inputs, [y], node.name, attrs, 'com.microsoft')], detail: `MatMulNBits, ${what}` };
    // Gemm's beta·C is added after the product.
    const nodes: NodeProto[] = [];
    const product = this.names.fresh(`${y}_product`);
    nodes.push(makeNode('MatMulNBits', inputs, [product], node.name, attrs, 'com.microsoft'));
    const beta = floatAttr(node, 'beta', 1);
    let addend = cName;
    const cc = this.resolver.resolve(scope, cName);
    const cv = cc && this.resolver.floats(cc);
    if (cc && cv) {
      if (beta !== 1) {
        addend = this.names.fresh(`${cName}_times_beta`);
        scope.graph.initializer.push(initializer(addend, DataType.FLOAT, cc.tensor.dims, Float32Array.from(cv, (v) => v * beta)));
      }
    } else if (beta !== 1) {
      const betaName = this.names.fresh(`${node.name || y}_beta`);
      scope.graph.initializer.push(initializer(betaName, DataType.FLOAT, [], [beta]));
      addend = this.names.fresh(`${cName}_times_beta`);
      nodes.push(makeNode('Mul', [cName, betaName], [addend], this.names.fresh(`${node.name}_beta_mul`)));
    }
    nodes.push(makeNode('Add', [product, addend], [y], this.names.fresh(`${node.name}_add_c`)));
    return { nodes, detail: `MatMulNBits + Add, ${what}${transB ? ', transB applied' : ''}` };
  }

  private dq(node: NodeProto, scope: Scope, c: ResolvedConstant, values: Float32Array, type: WeightType, symmetric: boolean, transB: boolean, what: string): Rewrite {
    const dims = c.tensor.dims;
    const bs = this.config.blockSize;
    // Blocks run along K: axis 0 of a [K, N] weight, axis 1 of Gemm's transposed [N, K].
    const axis = transB ? 1 : 0;
    const base = c.tensor.name || 'weight';
    const [qName, sName, zName] = this.stored(c, scope, `dq|${type}|${symmetric}|${bs}|${axis}`, () => {
      const kn = transB ? transpose2d(values, dims[0]!, dims[1]!) : values;
      const [k, n] = transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!];
      const w = quantizeKBlocks(kn, k, n, bs, type, symmetric);
      // Back to the stored layout; scales [blocks, N] become [N, blocks] for the transposed weight.
      const q = transB ? transposeInts(w.q, k, n) : w.q;
      const scales = transB ? transpose2d(w.scales, w.blocks, n) : w.scales;
      const zps = transB ? transposeInts(Int32Array.from(w.zeroPoints), w.blocks, n) : w.zeroPoints;
      const sDims = transB ? [n, w.blocks] : [w.blocks, n];
      const t = [
        initializer(this.names.fresh(`${base}_${type}`), DQ_TYPE[type], dims, q),
        initializer(this.names.fresh(`${base}_${type}_scales`), DataType.FLOAT, sDims, scales),
      ];
      if (zps.some((z) => z !== 0)) t.push(initializer(this.names.fresh(`${base}_${type}_zero_points`), DQ_TYPE[type], sDims, zps));
      return t;
    });
    const wOut = this.names.fresh(`${base}_dequantized`);
    const dq = makeNode('DequantizeLinear', [qName!, sName!, ...(zName ? [zName] : [])], [wOut], this.names.fresh(`${node.name || base}_DequantizeLinear`), { axis, block_size: bs });
    const rewritten: NodeProto = { ...node, input: node.input.map((x, i) => (i === 1 ? wOut : x)) };
    return { nodes: [dq, rewritten], detail: `DequantizeLinear(block_size) + ${node.opType}, ${what}` };
  }
}

function transposeInts<T extends Int8Array | Uint8Array | Int32Array>(x: T, rows: number, cols: number): T {
  const out = new (x.constructor as new (n: number) => T)(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

export function quantizeWeightOnly(
  model: OnnxModel | ModelProto,
  config: QuantConfig = { ...DEFAULT_CONFIG, mode: 'weight-only', weightType: 'int4' },
  options: WeightOnlyOptions = {},
): TransformResult {
  const { proto, read } = modelSource(model);
  const out = cloneModel(proto);
  const opset = out.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
  const wanted = options.format ?? 'auto';
  const format = wanted === 'auto' ? (opset >= 21 ? 'dq' : 'matmulnbits') : wanted;
  if (format === 'dq' && opset < 21) {
    throw new RangeError(`weight-only format "dq" needs opset 21 (DequantizeLinear block_size); the model imports opset ${opset}`);
  }
  const q = new WeightOnlyQuantizer(out, read, config, format, options.accuracyLevel ?? 0);
  q.run();
  if (q.usedContrib) requireOpset(out, 'com.microsoft', 1);
  pruneDeadNodes(out, isFoldableOp);
  return { model: out, quantized: q.quantized, skipped: q.skipped };
}

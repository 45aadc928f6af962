/**
 * Folds BatchNormalization into the Conv, ConvTranspose or Gemm before it, so quantization sees one
 * weight per layer and the runtime one op instead of two:
 *
 *   f[c] = γ[c] / √(var[c] + ε)
 *   W'   = W · f        per output channel (Conv: axis 0; ConvTranspose: axis 1 within each group;
 *                       Gemm: the output column, i.e. axis 1 of B, or axis 0 when transB = 1)
 *   b'   = (b − mean) · f + β          (Gemm: b = beta · C, and beta becomes 1)
 *
 * A BatchNormalization is folded only when its input comes from such a node in the same graph that
 * nothing else reads, every parameter is a float32 constant, and it runs in inference mode; every
 * other BatchNormalization is reported with the reason it stays. Works on a copy: the input model's
 * tensors (views of its file) are never written.
 */
import { DataType } from '../../onnx/dtypes';
import { OnnxModel } from '../../onnx/model';
import { ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { DEFAULT_CONFIG, isExcluded, QuantConfig } from '../config';
import {
  cloneModel,
  ConstantResolver,
  floatAttr,
  initializer,
  intAttr,
  isDefaultDomain,
  modelScopes,
  modelSource,
  NameScope,
  pruneDeadNodes,
  Scope,
  SkippedNode,
  TransformedNode,
  TransformResult,
  useCounts,
} from './edit';

const FOLD_TARGETS = new Set(['Conv', 'ConvTranspose', 'Gemm']);

/** One fold, computed before anything is edited. */
interface Fold {
  bn: NodeProto;
  target: NodeProto;
  weight: Float32Array;
  weightDims: number[];
  bias: Float32Array;
}

export function foldBatchNorm(model: OnnxModel | ModelProto, config: QuantConfig = DEFAULT_CONFIG): TransformResult {
  const { proto, read } = modelSource(model);
  const out = cloneModel(proto);
  const resolver = new ConstantResolver(out, read);
  const uses = useCounts(out);
  const names = new NameScope(out);
  const quantized: TransformedNode[] = [];
  const skipped: SkippedNode[] = [];

  for (const scope of modelScopes(out)) {
    const producers = new Map<string, NodeProto>();
    for (const n of scope.graph.node) for (const o of n.output) if (o) producers.set(o, n);
    const folds: Fold[] = [];
    for (const bn of scope.graph.node) {
      if (bn.opType !== 'BatchNormalization' || !isDefaultDomain(bn)) continue;
      const plan = planFold(bn, scope, producers, resolver, uses, config);
      if (typeof plan === 'string') skipped.push({ name: bn.name, opType: bn.opType, reason: plan });
      else folds.push(plan);
    }
    for (const f of folds) {
      applyFold(f, scope, names);
      quantized.push({ name: f.bn.name, opType: 'BatchNormalization', detail: `folded into ${f.target.opType} "${f.target.name}"` });
    }
  }
  pruneDeadNodes(out);
  return { model: out, quantized, skipped };
}

/** The fold for one BatchNormalization, or the reason it cannot be folded. */
function planFold(
  bn: NodeProto,
  scope: Scope,
  producers: Map<string, NodeProto>,
  resolver: ConstantResolver,
  uses: Map<string, number>,
  config: QuantConfig,
): Fold | string {
  if (isExcluded(config, bn)) return 'excluded by the configuration';
  if (intAttr(bn, 'training_mode', 0) !== 0) return 'training_mode=1: normalizes with batch statistics, not constants';
  if (intAttr(bn, 'spatial', 1) !== 1) return 'spatial=0 (per-element statistics) cannot fold into per-channel weights';
  if (bn.output.slice(1).some((o) => o && (uses.get(o) ?? 0) > 0)) return 'its running mean/variance outputs are used';
  const x = bn.input[0] ?? '';
  const target = producers.get(x);
  if (!target) return 'its input is not computed by a node of the same graph';
  if (!FOLD_TARGETS.has(target.opType) || !isDefaultDomain(target)) return `its input comes from ${target.opType}, not Conv, ConvTranspose or Gemm`;
  if ((uses.get(x) ?? 0) !== 1) return `${target.opType} "${target.name}" output is also read elsewhere`;
  if (target.output.length !== 1) return `${target.opType} "${target.name}" has more than one output`;

  const params: Float32Array[] = [];
  for (const [i, what] of ['scale', 'bias', 'mean', 'variance'].entries()) {
    const c = resolver.resolve(scope, bn.input[i + 1] ?? '');
    const v = c && resolver.floats(c);
    if (!v) return `its ${what} is not a float32 constant`;
    params.push(v);
  }
  const [gamma, beta, mean, variance] = params as [Float32Array, Float32Array, Float32Array, Float32Array];
  const channels = gamma.length;
  if ([beta, mean, variance].some((p) => p.length !== channels)) return 'its parameters have different lengths';

  const wConst = resolver.resolve(scope, target.input[1] ?? '');
  const w = wConst && resolver.floats(wConst);
  if (!w || !wConst) return `${target.opType} "${target.name}" weight is not a float32 constant`;
  const dims = wConst.tensor.dims;
  const biasName = target.input[2] ?? '';
  let bias: Float32Array | undefined;
  if (biasName) {
    const c = resolver.resolve(scope, biasName);
    bias = c && resolver.floats(c);
    if (!bias) return `${target.opType} "${target.name}" bias is not a float32 constant`;
  }

  const eps = floatAttr(bn, 'epsilon', 1e-5);
  const factor = new Float64Array(channels);
  for (let c = 0; c < channels; c++) factor[c] = gamma[c]! / Math.sqrt(variance[c]! + eps);

  const weight = scaleWeight(target, dims, w, factor);
  if (typeof weight === 'string') return weight;
  // Gemm adds beta · C; the folded Gemm keeps beta = 1, so C' absorbs it.
  const beta0 = target.opType === 'Gemm' ? floatAttr(target, 'beta', 1) : 1;
  if (bias && bias.length !== 1 && bias.length !== channels) {
    return `${target.opType} "${target.name}" bias has ${bias.length} values for ${channels} channels`;
  }
  const b = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const b0 = bias ? beta0 * bias[bias.length === 1 ? 0 : c]! : 0;
    b[c] = (b0 - mean[c]!) * factor[c]! + beta[c]!;
  }
  return { bn, target, weight, weightDims: [...dims], bias: b };
}

/** W scaled per output channel by `factor` (computed in float64, rounded once), or why it cannot be. */
export function scaleWeight(target: NodeProto, dims: readonly number[], w: Float32Array, factor: Float64Array): Float32Array | string {
  const channels = factor.length;
  const where = `${target.opType} "${target.name}"`;
  // The weight's row-major layout is viewed as [outer, lanes, inner]; lane k of row o scales by factor[channelOf(o, k)].
  let outer = 1;
  let lanes = channels;
  let inner = 1;
  let channelOf = (_o: number, k: number) => k;
  if (target.opType === 'Conv') {
    if (dims[0] !== channels) return `${where} has ${dims[0]} output channels but BatchNormalization has ${channels}`;
    inner = w.length / channels;
  } else if (target.opType === 'ConvTranspose') {
    // Weight [C_in, C_out / group, k…]: output channel = group index · (C_out / group) + column.
    const group = intAttr(target, 'group', 1);
    const perGroup = dims[1] ?? 0;
    if (dims.length < 3 || perGroup * group !== channels) return `${where} has ${perGroup * group} output channels but BatchNormalization has ${channels}`;
    const inPerGroup = dims[0]! / group;
    outer = dims[0]!;
    lanes = perGroup;
    inner = w.length / (outer * perGroup);
    channelOf = (o, k) => Math.floor(o / inPerGroup) * perGroup + k;
  } else {
    // Gemm: the channel is the output column: B[k, n], or B[n, k] with transB.
    const transB = intAttr(target, 'transB', 0) !== 0;
    if (dims.length !== 2 || (transB ? dims[0] : dims[1]) !== channels) return `${where} output columns do not match BatchNormalization's ${channels} channels`;
    if (transB) inner = dims[1]!;
    else outer = dims[0]!;
  }
  const out = new Float32Array(w.length);
  let idx = 0;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < lanes; k++) {
      const f = factor[channelOf(o, k)]!;
      for (let i = 0; i < inner; i++, idx++) out[idx] = w[idx]! * f;
    }
  }
  return out;
}

/** Rewrites the target to produce the BatchNormalization's output with folded weights, and drops the BatchNormalization. */
function applyFold(f: Fold, scope: Scope, names: NameScope): void {
  const g = scope.graph;
  const wName = names.fresh(`${f.target.input[1]}_bnfold`);
  const bName = names.fresh(`${f.target.input[2] || f.target.input[1]}_bnfold_bias`);
  const tensors: TensorProto[] = [
    initializer(wName, DataType.FLOAT, f.weightDims, f.weight),
    initializer(bName, DataType.FLOAT, [f.bias.length], f.bias),
  ];
  g.initializer.push(...tensors);
  const oldOutput = f.target.output[0]!;
  const folded: NodeProto = {
    ...f.target,
    input: [f.target.input[0]!, wName, bName],
    output: [f.bn.output[0]!],
    attribute: f.target.opType === 'Gemm' ? f.target.attribute.filter((a) => a.name !== 'beta') : f.target.attribute,
  };
  g.node = g.node.filter((n) => n !== f.bn).map((n) => (n === f.target ? folded : n));
  // The intermediate value is gone; a stale value_info entry for it would only mislead.
  g.valueInfo = g.valueInfo.filter((v) => v.name !== oldOutput);
}

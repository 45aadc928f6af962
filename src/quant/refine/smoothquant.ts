/**
 * SmoothQuant (Xiao et al. 2023): activations of MatMul/Gemm layers often have a few input channels
 * (K) with much larger values than the rest, and a per-tensor activation scale then wastes most of
 * its 8 bits on them. Since X·W = (X·diag(1/s))·(diag(s)·W), channel j's range can be moved into the
 * weights (quantized per output channel, so they absorb it cheaply):
 *
 *   s_j = max|X_j|^α / max|W_j|^(1−α)        (max over the layer's weight row j; over every layer
 *                                            reading X when several do, so they can share X/s)
 *
 * X/s is folded into X's producer when it is a LayerNormalization or an affine Mul→Add (γ/s, β/s:
 * free); otherwise a Div node by s is inserted before each layer (one float op per layer: cost).
 * α is fixed, or searched per layer on a grid by the layer's own output error at 8 bits.
 */
import { GraphProto, NodeProto } from '../../onnx/proto';
import { intAttr, isDefaultDomain } from '../graph/edit';
import { computePerChannelQParams, computeQParams } from '../params';
import { quantizePerChannel, quantizeTensor, dequantize, dequantizePerChannel, channelMinMax } from '../quantize';
import type { ActivationType } from '../config';
import { ConstReader, FloatConst, nodeKey, WeightEdit } from './weights';

/** A layer reading X: its weight laid out so that row j (of K) is weight input channel j. */
export interface SmoothLayer {
  node: NodeProto;
  w: FloatConst;
  /** Gemm with transB=1 stores B as [N, K]: input channel j is column j. */
  transposed: boolean;
}

/** Layers sharing one activation tensor X (smoothed together), with X's per-channel abs max. */
export interface SmoothGroup {
  x: string;
  layers: SmoothLayer[];
  /** max |X[..., j]| over the calibration data, length K. */
  xMax?: Float32Array;
  /** A few rows of X ([rows, K] row-major) for the α search. */
  rows?: Float32Array;
}

/** max|W_j| over rows j of K of each layer, then the largest over the layers. */
export function weightChannelMax(layers: readonly SmoothLayer[], k: number): Float32Array {
  const out = new Float32Array(k);
  for (const l of layers) {
    const v = l.w.values;
    const n = v.length / k;
    for (let j = 0; j < k; j++) {
      let mx = out[j]!;
      for (let c = 0; c < n; c++) mx = Math.max(mx, Math.abs(v[l.transposed ? c * k + j : j * n + c]!));
      out[j] = mx;
    }
  }
  return out;
}

/** s_j = xMax_j^α / wMax_j^(1−α); channels with a zero range keep s = 1. */
export function smoothScales(xMax: Float32Array, wMax: Float32Array, alpha: number): Float32Array {
  const s = new Float32Array(xMax.length);
  for (let j = 0; j < s.length; j++) {
    const x = xMax[j]!;
    const w = wMax[j]!;
    s[j] = x > 0 && w > 0 ? Math.pow(x, alpha) / Math.pow(w, 1 - alpha) : 1;
    if (!(s[j]! > 0) || !Number.isFinite(s[j]!)) s[j] = 1;
  }
  return s;
}

/** Weight with input channel j multiplied by s_j. */
export function scaleWeightRows(l: SmoothLayer, s: Float32Array): Float32Array {
  const k = s.length;
  const n = l.w.values.length / k;
  const out = new Float32Array(l.w.values.length);
  for (let j = 0; j < k; j++) for (let c = 0; c < n; c++) {
    const i = l.transposed ? c * k + j : j * n + c;
    out[i] = l.w.values[i]! * s[j]!;
  }
  return out;
}

/** Largest over median per-channel abs max: how much one channel dominates X's range. */
export function outlierRatio(xMax: Float32Array): number {
  const sorted = Float32Array.from(xMax).sort();
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return median > 0 ? sorted[sorted.length - 1]! / median : 1;
}

/**
 * Output error ||Q(X/s)·Q(s·W) − X·W||² of the layers on sample rows, with per-tensor activations
 * of `actType` (min-max range) and symmetric int8 weights per output channel: what the α search minimizes.
 */
export function smoothedError(group: SmoothGroup, s: Float32Array | undefined, actType: ActivationType): number {
  const rows = group.rows!;
  const k = group.xMax!.length;
  const r = rows.length / k;
  const xs = s ? rows.map((v, i) => v / s[i % k]!) : rows;
  let lo = 0;
  let hi = 0;
  for (const v of xs) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const xq = dequantize(quantizeTensor(xs, computeQParams(lo, hi, actType)), computeQParams(lo, hi, actType));
  let err = 0;
  for (const l of group.layers) {
    const w = s ? scaleWeightRows(l, s) : l.w.values;
    const n = w.length / k;
    // Per output channel: axis 1 of [K, N], axis 0 of [N, K].
    const dims = l.transposed ? [n, k] : [k, n];
    const axis = l.transposed ? 0 : 1;
    const { mins, maxs } = channelMinMax(w, dims, axis);
    const p = computePerChannelQParams(mins, maxs, 'int8', axis, { symmetric: true });
    const wq = dequantizePerChannel(quantizePerChannel(w, dims, p), dims, p);
    const w0 = l.w.values;
    for (let i = 0; i < r; i++) {
      for (let c = 0; c < n; c++) {
        let a = 0;
        let b = 0;
        for (let j = 0; j < k; j++) {
          const wi = l.transposed ? c * k + j : j * n + c;
          a += rows[i * k + j]! * w0[wi]!;
          b += xq[i * k + j]! * wq[wi]!;
        }
        err += (a - b) ** 2;
      }
    }
  }
  return err;
}

/** Candidate groups: MatMul (2-D constant weight) and Gemm (transA=0) layers reading the same X. */
export function findSmoothGroups(g: GraphProto, consts: ConstReader, excluded: (n: NodeProto) => boolean): SmoothGroup[] {
  const groups = new Map<string, SmoothGroup>();
  for (const n of g.node) {
    if ((n.opType !== 'MatMul' && n.opType !== 'Gemm') || !isDefaultDomain(n) || excluded(n)) continue;
    if (n.opType === 'Gemm' && intAttr(n, 'transA', 0) !== 0) continue;
    const x = n.input[0];
    const w = consts.get(n.input[1]);
    if (!x || !w || w.dims.length !== 2 || consts.constants.has(x)) continue;
    const layer = { node: n, w, transposed: n.opType === 'Gemm' && intAttr(n, 'transB', 0) !== 0 };
    const grp = groups.get(x) ?? { x, layers: [] };
    grp.layers.push(layer);
    groups.set(x, grp);
  }
  // Every reader of X must be in the group: the others would see X/s.
  const readers = new Map<string, number>();
  for (const n of g.node) for (const i of new Set(n.input)) if (groups.has(i)) readers.set(i, (readers.get(i) ?? 0) + 1);
  const k = (l: SmoothLayer) => l.w.dims[l.transposed ? 1 : 0]!;
  return [...groups.values()].filter((grp) => readers.get(grp.x) === grp.layers.length && grp.layers.every((l) => k(l) === k(grp.layers[0]!)));
}

/**
 * Edits that divide X by s: folded into a LayerNormalization or Mul→Add producer read only by the
 * group, else a Div before each layer. Returns the edits and where X/s went, in words.
 */
export function divideActivation(g: GraphProto, consts: ConstReader, group: SmoothGroup, s: Float32Array): { edits: WeightEdit[]; where: string } {
  const producer = g.node.find((n) => n.output.includes(group.x));
  const k = s.length;
  const vec = (name: string | undefined) => {
    const c = consts.get(name);
    return c && c.values.length === k && c.dims.slice(0, -1).every((d) => d === 1) ? c : undefined;
  };
  const divided = (c: FloatConst) => c.values.map((v, j) => v / s[j]!);
  const graphOutput = g.output.some((o) => o.name === group.x);
  if (producer && !graphOutput && isDefaultDomain(producer)) {
    if (producer.opType === 'LayerNormalization' && intAttr(producer, 'axis', -1) === -1) {
      const gamma = vec(producer.input[1]);
      const beta = producer.input[2] ? vec(producer.input[2]) : undefined;
      if (gamma && (beta || !producer.input[2])) {
        const key = nodeKey(producer);
        const edits: WeightEdit[] = [{ kind: 'replace', node: key, input: 1, dims: gamma.dims, values: divided(gamma), tag: 'smooth' }];
        if (beta) edits.push({ kind: 'replace', node: key, input: 2, dims: beta.dims, values: divided(beta), tag: 'smooth' });
        return { edits, where: `folded into LayerNormalization "${key}"` };
      }
    }
    if (producer.opType === 'Add') {
      // Exporters' decomposed LayerNorm ends with Mul(γ) → Add(β).
      const ci = vec(producer.input[1]) ? 1 : vec(producer.input[0]) ? 0 : -1;
      const mulOut = producer.input[1 - ci];
      const mul = ci >= 0 ? g.node.find((n) => n.output.includes(mulOut ?? '')) : undefined;
      const uses = g.node.filter((n) => n.input.includes(mulOut ?? '')).length;
      if (mul && mul.opType === 'Mul' && uses === 1 && isDefaultDomain(mul) && !g.output.some((o) => o.name === mulOut)) {
        const gi = vec(mul.input[1]) ? 1 : vec(mul.input[0]) ? 0 : -1;
        if (gi >= 0) {
          const beta = vec(producer.input[ci])!;
          const gamma = vec(mul.input[gi])!;
          return {
            edits: [
              { kind: 'replace', node: nodeKey(mul), input: gi, dims: gamma.dims, values: divided(gamma), tag: 'smooth' },
              { kind: 'replace', node: nodeKey(producer), input: ci, dims: beta.dims, values: divided(beta), tag: 'smooth' },
            ],
            where: `folded into Mul "${nodeKey(mul)}" → Add "${nodeKey(producer)}"`,
          };
        }
      }
    }
  }
  return {
    edits: group.layers.map((l) => ({ kind: 'divide', node: nodeKey(l.node), input: 0, divisor: s, tag: 'smooth' }) satisfies WeightEdit),
    where: `a Div node inserted before ${group.layers.length} layer(s)`,
  };
}

/** Edits multiplying each layer's weight rows by s. */
export function scaleWeights(group: SmoothGroup, s: Float32Array): WeightEdit[] {
  return group.layers.map((l) => ({ kind: 'replace', node: nodeKey(l.node), input: 1, dims: l.w.dims, values: scaleWeightRows(l, s), tag: 'smooth' }) satisfies WeightEdit);
}

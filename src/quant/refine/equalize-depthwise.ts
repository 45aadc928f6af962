/**
 * Activation equalization for depthwise convolutions. A per-tensor activation scale must cover the
 * widest channel, so when one channel of a depthwise conv's input spans 50 and the median one 3
 * (PP-OCRv4's recognizer, its first depthwise conv), the narrow channels get a handful of 8-bit
 * steps. A depthwise conv reads each input channel with its own filter, so dividing input channel c
 * by s_c and multiplying its filter by s_c computes the same function — and costs the weights
 * nothing, since they are quantized per output channel (each filter's scale just moves with it).
 * That is SmoothQuant, free on the weight side.
 *
 * Full equalization is not always best: the range search (MSE) clips a tensor whose wide values are
 * rare outliers, and equalizing every channel to its own extreme makes outliers common, so the
 * widest channels then get coarser steps than before. Hence s_c = (absMax_c / widest)^α with α
 * chosen per layer from a grid by the error it predicts on sampled pixels: each channel's
 * quantization error in the original units, weighted by its filter's energy.
 *
 * X/s goes into X's producer when that is a Conv (its output channel c divided: weights and bias)
 * or a BatchNormalization (scale and bias) read only by these convs: free and exact. Inputs that
 * come from anything else are left alone: dividing them with an inserted Div node was measured on
 * PP-OCRv4's recognizer (depthwise convs after HardSwish + affine blocks) and made it worse
 * (86 → 83 of 100 lines identical) although the predicted error below fell; why is open.
 */
import { GraphProto, NodeProto } from '../../onnx/proto';
import type { ActivationType } from '../config';
import { mseRange } from '../calibrate-mse';
import { intAttr, isDefaultDomain } from '../graph/edit';
import { HistogramObserver } from '../histogram';
import { computeQParams } from '../params';
import { quantRange } from '../types';
import { ConstReader, FloatConst, nodeKey, WeightEdit } from './weights';

/** Depthwise convs reading one activation X (NCHW, C channels). */
export interface DepthwiseGroup {
  x: string;
  channels: number;
  layers: { node: NodeProto; w: FloatConst }[];
}

/** Depthwise: one input channel per group (weight [C·m, 1, k…], group = C). */
function depthwiseChannels(n: NodeProto, w: FloatConst | undefined): number | undefined {
  if (n.opType !== 'Conv' || !isDefaultDomain(n) || !w || w.dims.length < 3 || w.dims[1] !== 1) return undefined;
  const group = intAttr(n, 'group', 1);
  return group > 1 && w.dims[0]! % group === 0 ? group : undefined;
}

export function findDepthwiseGroups(g: GraphProto, consts: ConstReader, excluded: (n: NodeProto) => boolean): DepthwiseGroup[] {
  const groups = new Map<string, DepthwiseGroup>();
  for (const n of g.node) {
    const x = n.input[0];
    const w = consts.get(n.input[1]);
    const c = depthwiseChannels(n, w);
    if (c === undefined || !x || consts.constants.has(x) || excluded(n)) continue;
    const grp = groups.get(x) ?? { x, channels: c, layers: [] };
    if (grp.channels !== c) continue;
    grp.layers.push({ node: n, w: w! });
    groups.set(x, grp);
  }
  return [...groups.values()];
}

/** Smallest divisor relative to the widest channel: an all-but-dead channel is not blown up further. */
const MIN_RELATIVE_SCALE = 2 ** -10;

/** s_c = (absMax_c / max_c absMax_c)^α (floored); α = 1 makes every channel span what the widest one does. */
export function equalizationScales(absMax: Float32Array, alpha: number): Float32Array {
  let widest = 0;
  for (const v of absMax) widest = Math.max(widest, v);
  const s = new Float32Array(absMax.length).fill(1);
  if (!(widest > 0) || !Number.isFinite(widest)) return s;
  for (let c = 0; c < s.length; c++) s[c] = Math.max(Math.pow(absMax[c]! / widest, alpha), MIN_RELATIVE_SCALE);
  return s;
}

/** Sum of squared filter weights per input channel of the group's convs. */
export function filterEnergy(group: DepthwiseGroup): Float64Array {
  const e = new Float64Array(group.channels);
  for (const { w } of group.layers) {
    const rows = w.dims[0]!;
    const inner = w.values.length / rows;
    const per = rows / group.channels;
    for (let i = 0; i < w.values.length; i++) e[Math.floor(Math.floor(i / inner) / per)] += w.values[i]! ** 2;
  }
  return e;
}

/**
 * Predicted output error of quantizing X/s per tensor (range by MSE search over a histogram, as the
 * pipeline's default calibration does): Σ_c energy_c · Σ_pixels (s_c·(x̃_c − Q(x̃_c)))², x̃ = x/s.
 * `rows` are sampled pixels, [P, C] row-major.
 */
export function equalizedError(rows: Float32Array, energy: Float64Array, s: Float32Array, type: ActivationType): number {
  const k = s.length;
  const scaled = new Float32Array(rows.length);
  for (let i = 0; i < rows.length; i++) scaled[i] = rows[i]! / s[i % k]!;
  const h = new HistogramObserver();
  h.update(scaled);
  const p = computeQParams(...rangeOf(mseRange(h.histogram(), type)), type);
  const { qmin, qmax } = quantRange(type);
  let err = 0;
  for (let i = 0; i < scaled.length; i++) {
    const q = Math.min(qmax, Math.max(qmin, Math.round(scaled[i]! / p.scale) + p.zeroPoint));
    const c = i % k;
    err += energy[c]! * (s[c]! * (scaled[i]! - (q - p.zeroPoint) * p.scale)) ** 2;
  }
  return err;
}

function rangeOf(r: { min: number; max: number }): [number, number] {
  return [Math.min(0, r.min), Math.max(0, r.max)];
}

export const EQUALIZATION_ALPHAS = [0.25, 0.5, 0.75, 1];

/** The α of EQUALIZATION_ALPHAS with the least predicted error, or undefined when leaving X alone is best. */
export function chooseEqualization(rows: Float32Array, absMax: Float32Array, energy: Float64Array, type: ActivationType): { alpha: number; gain: number } | undefined {
  const none = equalizedError(rows, energy, new Float32Array(absMax.length).fill(1), type);
  let best: { alpha: number; err: number } | undefined;
  for (const alpha of EQUALIZATION_ALPHAS) {
    const err = equalizedError(rows, energy, equalizationScales(absMax, alpha), type);
    if (err < (best?.err ?? none)) best = { alpha, err };
  }
  return best && { alpha: best.alpha, gain: none / best.err };
}

/** Largest over median channel abs max. */
export function channelSpread(absMax: Float32Array): number {
  const sorted = Float32Array.from(absMax).sort();
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return median > 0 ? sorted[sorted.length - 1]! / median : 1;
}

/** A copy of `w` with slice i along axis 0 multiplied (or divided) by s[⌊i / per⌋]. */
function scaleAxis0(w: FloatConst, s: Float32Array, divide: boolean): Float32Array {
  const rows = w.dims[0]!;
  const inner = w.values.length / rows;
  const per = rows / s.length;
  const out = new Float32Array(w.values.length);
  for (let i = 0; i < rows; i++) {
    const f = divide ? 1 / s[Math.floor(i / per)]! : s[Math.floor(i / per)]!;
    for (let j = 0; j < inner; j++) out[i * inner + j] = w.values[i * inner + j]! * f;
  }
  return out;
}

/**
 * Edits computing the same function with X/s into the convs: filters × s, and X / s folded into
 * X's producer; undefined when the producer cannot take it (see the module comment).
 */
export function equalizeDepthwise(g: GraphProto, consts: ConstReader, group: DepthwiseGroup, s: Float32Array): { edits: WeightEdit[]; where: string } | undefined {
  const edits: WeightEdit[] = group.layers.map((l) => ({ kind: 'replace', node: nodeKey(l.node), input: 1, dims: l.w.dims, values: scaleAxis0(l.w, s, false), tag: 'dweq' }));
  const readers = g.node.filter((n) => n.input.includes(group.x)).length;
  const producer = g.node.find((n) => n.output[0] === group.x);
  const foldable = producer && isDefaultDomain(producer) && readers === group.layers.length && !g.output.some((o) => o.name === group.x);
  if (foldable && producer.opType === 'Conv') {
    const w = consts.get(producer.input[1]);
    const b = producer.input[2] ? consts.get(producer.input[2]) : undefined;
    if (w && w.dims[0] === s.length && (!producer.input[2] || b?.values.length === s.length)) {
      const key = nodeKey(producer);
      edits.push({ kind: 'replace', node: key, input: 1, dims: w.dims, values: scaleAxis0(w, s, true), tag: 'dweq' });
      if (b) edits.push({ kind: 'replace', node: key, input: 2, dims: b.dims, values: scaleAxis0(b, s, true), tag: 'dweq' });
      return { edits, where: `folded into Conv "${key}"` };
    }
  }
  if (foldable && producer.opType === 'BatchNormalization' && producer.output.length === 1) {
    const scale = consts.get(producer.input[1]);
    const bias = consts.get(producer.input[2]);
    if (scale?.values.length === s.length && bias?.values.length === s.length) {
      const key = nodeKey(producer);
      edits.push(
        { kind: 'replace', node: key, input: 1, dims: scale.dims, values: scaleAxis0(scale, s, true), tag: 'dweq' },
        { kind: 'replace', node: key, input: 2, dims: bias.dims, values: scaleAxis0(bias, s, true), tag: 'dweq' },
      );
      return { edits, where: `folded into BatchNormalization "${key}"` };
    }
  }
  return undefined;
}

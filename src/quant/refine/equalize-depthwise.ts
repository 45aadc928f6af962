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
 * X/s goes into X's producer when that is a Conv (its output channel c divided: weights and bias),
 * a BatchNormalization (scale and bias), or an affine block (a Mul by a constant, optionally
 * followed by an Add of a constant: the constants become per-channel), read only by these convs:
 * free and exact. Inputs that come from anything else are left alone (an inserted Div node would
 * be exact too, but costs a pass over the tensor at run time). Affine folds are marked: see
 * Equalization.affine.
 */
import { DataType } from '../../onnx/dtypes';
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
export interface Equalization {
  edits: WeightEdit[];
  where: string;
  /**
   * X/s went into the constants of an affine block rather than a Conv or BatchNormalization.
   * Exact in float too, but measured to interact with neighbouring quantized layers (PP-OCRv4's
   * recognizer: one such layer alone +15 dB at the outputs, with the rest quantized −4 dB), so the
   * pipeline keeps it only where the quantized model measures better with it.
   */
  affine: boolean;
}

export function equalizeDepthwise(g: GraphProto, consts: ConstReader, group: DepthwiseGroup, s: Float32Array): Equalization | undefined {
  const fold = depthwiseFold(g, consts, group);
  if (!fold) return undefined;
  const edits: WeightEdit[] = group.layers.map((l) => ({ kind: 'replace', node: nodeKey(l.node), input: 1, dims: l.w.dims, values: scaleAxis0(l.w, s, false), tag: 'dweq' }));
  return { edits: [...edits, ...fold.edits(s)], where: fold.where, affine: fold.affine };
}

/** Where X/s of a group can go (see divisionInProducer); undefined when nowhere. Reads no weights. */
export function depthwiseFold(g: GraphProto, consts: ConstReader, group: DepthwiseGroup): ProducerDivision | undefined {
  return divisionInProducer(g, consts, group.x, group.channels, group.layers.length, group.layers[0]!.w.dims.length);
}

/** A way to divide channel c of a tensor by s_c in its producer: `edits(s)` builds the weight edits. */
export interface ProducerDivision {
  where: string;
  affine: boolean;
  edits: (s: Float32Array) => WeightEdit[];
}

/**
 * How to divide channel c of tensor x (NCHW, `rank` dims, `channels` channels) by s_c where x is
 * computed, exactly: a Conv's output channels (weights and bias), a BatchNormalization's scale and
 * bias, a Mul by a constant (a → a/s), or an Add of a constant whose other input can itself be
 * divided (b → b/s): the learnable affine blocks of PP-LCNetV3 (HardSwish · a + b) take it that
 * way. Undefined when x has other readers than the `readers` expected, is a graph output, or comes
 * from anything else. Decides from shapes alone; weights are read when the edits are built.
 */
function divisionInProducer(g: GraphProto, consts: ConstReader, x: string, channels: number, readers: number, rank: number): ProducerDivision | undefined {
  const producer = g.node.find((n) => n.output[0] === x);
  if (!producer || !isDefaultDomain(producer) || producer.output.length !== 1) return undefined;
  if (g.node.filter((n) => n.input.includes(x)).length !== readers || g.output.some((o) => o.name === x)) return undefined;
  const key = nodeKey(producer);
  const input = (i: number) => producer.input[i] ?? '';
  /** Input i's constant divided along axis 0 (a Conv's output channels, a BatchNormalization vector). */
  const divideAxis0 = (i: number) => (s: Float32Array): WeightEdit => {
    const c = consts.get(input(i))!;
    return { kind: 'replace', node: key, input: i, dims: c.dims, values: scaleAxis0(c, s, true), tag: 'dweq' };
  };
  switch (producer.opType) {
    case 'Conv': {
      const w = floatDims(consts, input(1));
      const hasBias = input(2) !== '';
      if (!w || w[0] !== channels || (hasBias && size(floatDims(consts, input(2))) !== channels)) return undefined;
      return { where: `folded into Conv "${key}"`, affine: false, edits: (s) => (hasBias ? [divideAxis0(1)(s), divideAxis0(2)(s)] : [divideAxis0(1)(s)]) };
    }
    case 'BatchNormalization': {
      if (size(floatDims(consts, input(1))) !== channels || size(floatDims(consts, input(2))) !== channels) return undefined;
      return { where: `folded into BatchNormalization "${key}"`, affine: false, edits: (s) => [divideAxis0(1)(s), divideAxis0(2)(s)] };
    }
    case 'Mul':
    case 'Add': {
      const ci = [0, 1].find((i) => perChannel(floatDims(consts, input(i)), channels, rank));
      if (ci === undefined) return undefined;
      const divideConstant = (s: Float32Array): WeightEdit => {
        const c = consts.get(input(ci))!;
        const values = Float32Array.from(s, (sc, ch) => c.values[c.values.length === 1 ? 0 : ch]! / sc);
        return { kind: 'replace', node: key, input: ci, dims: channelDims(channels, rank), values, tag: 'dweq' };
      };
      if (producer.opType === 'Mul') return { where: `folded into the constant of Mul "${key}"`, affine: true, edits: (s) => [divideConstant(s)] };
      // (h + b)/s = h/s + b/s: h must take the division too.
      const inner = divisionInProducer(g, consts, input(1 - ci), channels, 1, rank);
      if (!inner) return undefined;
      return { where: `${inner.where} and the constant of Add "${key}"`, affine: true, edits: (s) => [divideConstant(s), ...inner.edits(s)] };
    }
    default:
      return undefined;
  }
}

/** Dims of a float32 constant, or undefined when `name` is not one. */
function floatDims(consts: ConstReader, name: string): number[] | undefined {
  const t = consts.constants.get(name);
  return t && t.dataType === DataType.FLOAT ? t.dims.map(Number) : undefined;
}

function size(dims: number[] | undefined): number {
  return dims ? dims.reduce((a, b) => a * b, 1) : -1;
}

/** Dims [1, C, 1, …] of a per-channel constant for an NCHW tensor of `rank` dims. */
function channelDims(channels: number, rank: number): number[] {
  return Array.from({ length: rank }, (_, i) => (i === 1 ? channels : 1));
}

/** Whether a constant of these dims broadcasts against an NCHW tensor as one value, or one per channel. */
function perChannel(dims: number[] | undefined, channels: number, rank: number): boolean {
  if (!dims || dims.length > rank) return false;
  const n = size(dims);
  if (n === 1) return true;
  if (n !== channels) return false;
  // Right-aligned against [N, C, H, W…]: only the channel axis may be more than 1.
  return rank - dims.length + dims.findIndex((d) => d === channels) === 1;
}

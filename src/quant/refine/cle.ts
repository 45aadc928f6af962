/**
 * Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization", §4.1). For a pair
 * Conv₁ → f → Conv₂ where f is positively homogeneous (f(s·x) = s·f(x) for s > 0: Relu, PRelu,
 * LeakyRelu, an unbounded Clip(0), or nothing), dividing output channel i of Conv₁ (weights and
 * bias) by s_i and multiplying input channel i of Conv₂ by s_i leaves the float function unchanged.
 * With s_i = √(r1_i / r2_i) (r1_i: range of Conv₁'s output channel i, r2_i: range of Conv₂'s input
 * channel i) both become √(r1_i·r2_i): per-tensor weight ranges even out, which is what per-tensor
 * (and, less so, per-channel) int8 needs. Chains are equalized pair by pair, repeatedly, until the
 * scales settle.
 *
 * Clip(0, 6) (ReLU6) is NOT scale-equivariant (min(s·x, 6) ≠ s·min(x, 6)): such pairs are skipped.
 * Grouped and depthwise Convs are handled: input channel i of Conv₂ with G groups is lane
 * i mod (C/G) of the output channels of group ⌊i / (C/G)⌋.
 */
import { walkGraphs } from '../../onnx/model';
import { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/proto';
import { intAttr, isDefaultDomain, SkippedNode, useCounts } from '../graph/edit';
import { applyEdits, ConstReader, FloatConst, graphConstants, nodeKey, WeightEdit } from './weights';

export interface ClePair {
  first: string;
  second: string;
  /** The activation between them, if any. */
  activation?: string;
}

export interface CleResult {
  model: ModelProto;
  pairs: ClePair[];
  /** Candidate pairs left alone, with why (named by the activation or second Conv). */
  skipped: SkippedNode[];
  /** Mean over touched Convs of (largest / mean output-channel weight range), before and after. */
  spread: { before: number; after: number };
  iterations: number;
}

export interface CleOptions {
  /** Passes over all pairs at most (chains need several to settle). */
  maxIterations?: number;
  /** Scales are kept within [1/maxScale, maxScale]: a near-dead channel must not blow up its bias. */
  maxScale?: number;
}

const HOMOGENEOUS = new Set(['Relu', 'PRelu', 'LeakyRelu']);

/** A Conv being equalized: current weights, bias, and geometry. */
interface Layer {
  node: NodeProto;
  w: FloatConst;
  b: Float32Array | undefined;
  group: number;
}

interface Pair {
  a: Layer;
  b: Layer;
  act?: NodeProto;
}

/** Why `act` between two Convs breaks equalization, or undefined when it is positively homogeneous. */
function activationProblem(act: NodeProto, consts: ConstReader): string | undefined {
  if (!isDefaultDomain(act)) return `${act.opType} of domain ${act.domain} is not known to be scale-equivariant`;
  if (HOMOGENEOUS.has(act.opType)) return undefined;
  if (act.opType !== 'Clip') return `${act.opType} is not positively homogeneous (f(s·x) ≠ s·f(x))`;
  const minAttr = act.attribute.find((a) => a.name === 'min');
  const maxAttr = act.attribute.find((a) => a.name === 'max');
  const lo = minAttr ? minAttr.f : act.input[1] ? consts.get(act.input[1])?.values : new Float32Array([-Infinity]);
  const hasMax = maxAttr !== undefined || Boolean(act.input[2]);
  const loValue = typeof lo === 'number' ? lo : lo?.length === 1 ? lo[0] : undefined;
  if (hasMax) return 'Clip with an upper bound (e.g. ReLU6) is not scale-equivariant: min(s·x, 6) ≠ s·min(x, 6)';
  if (loValue !== 0 && loValue !== -Infinity) return `Clip with lower bound ${loValue ?? '(not constant)'} is not scale-equivariant`;
  return undefined;
}

function convLayer(n: NodeProto, consts: ConstReader): Layer | string {
  if (n.opType !== 'Conv' || !isDefaultDomain(n)) return `${n.opType} is not a Conv`;
  const w = consts.get(n.input[1]);
  if (!w || w.dims.length < 3) return `Conv "${nodeKey(n)}" weight is not a float32 constant`;
  const b = n.input[2] ? consts.get(n.input[2]) : undefined;
  if (n.input[2] && (!b || b.values.length !== w.dims[0])) return `Conv "${nodeKey(n)}" bias is not a float32 constant vector`;
  return { node: n, w: { dims: w.dims, values: Float32Array.from(w.values) }, b: b ? Float32Array.from(b.values) : undefined, group: intAttr(n, 'group', 1) };
}

/** Max |w| of each output channel of a Conv weight [M, C/g, k…]. */
function outputRanges(l: Layer): Float64Array {
  const m = l.w.dims[0]!;
  const inner = l.w.values.length / m;
  const r = new Float64Array(m);
  for (let o = 0; o < m; o++) {
    let mx = 0;
    for (let k = o * inner; k < (o + 1) * inner; k++) mx = Math.max(mx, Math.abs(l.w.values[k]!));
    r[o] = mx;
  }
  return r;
}

/** Calls fn(flatIndex) for every weight element that multiplies input channel `c` of Conv `l`. */
function forInputChannel(l: Layer, c: number, fn: (k: number) => void): void {
  const [m, cPerGroup] = l.w.dims as [number, number];
  const kernel = l.w.values.length / (m * cPerGroup);
  const outPerGroup = m / l.group;
  const g = Math.floor(c / cPerGroup);
  const lane = c % cPerGroup;
  for (let o = g * outPerGroup; o < (g + 1) * outPerGroup; o++) {
    const base = (o * cPerGroup + lane) * kernel;
    for (let k = base; k < base + kernel; k++) fn(k);
  }
}

/** Largest over mean output-channel range: 1 is perfectly even. */
function spreadOf(l: Layer): number {
  const r = outputRanges(l);
  let mx = 0;
  let sum = 0;
  for (const v of r) {
    mx = Math.max(mx, v);
    sum += v;
  }
  return sum > 0 ? mx / (sum / r.length) : 1;
}

/** One equalization step of a pair; returns the largest |log s| applied. */
function equalizePair(p: Pair, maxScale: number): number {
  const r1 = outputRanges(p.a);
  let worst = 0;
  for (let i = 0; i < r1.length; i++) {
    let r2 = 0;
    forInputChannel(p.b, i, (k) => (r2 = Math.max(r2, Math.abs(p.b.w.values[k]!))));
    if (!(r1[i]! > 0) || !(r2 > 0)) continue;
    const s = Math.min(maxScale, Math.max(1 / maxScale, Math.sqrt(r1[i]! / r2)));
    if (s === 1) continue;
    worst = Math.max(worst, Math.abs(Math.log(s)));
    const inner = p.a.w.values.length / r1.length;
    for (let k = i * inner; k < (i + 1) * inner; k++) p.a.w.values[k] = p.a.w.values[k]! / s;
    if (p.a.b) p.a.b[i] = p.a.b[i]! / s;
    forInputChannel(p.b, i, (k) => (p.b.w.values[k] = p.b.w.values[k]! * s));
  }
  return worst;
}

/** Finds equalizable pairs in one graph. */
function findPairs(g: GraphProto, consts: ConstReader, uses: Map<string, number>, layers: Map<NodeProto, Layer>, skipped: SkippedNode[]): Pair[] {
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const layerOf = (n: NodeProto): Layer | string => {
    const known = layers.get(n);
    if (known) return known;
    const l = convLayer(n, consts);
    if (typeof l !== 'string') layers.set(n, l);
    return l;
  };
  const pairs: Pair[] = [];
  for (const n of g.node) {
    if (n.opType !== 'Conv' || !isDefaultDomain(n)) continue;
    const x = n.input[0] ?? '';
    let p = producer.get(x);
    if (!p || (uses.get(x) ?? 0) !== 1) continue;
    let act: NodeProto | undefined;
    if (p.opType !== 'Conv') {
      if (!['Relu', 'PRelu', 'LeakyRelu', 'Clip'].includes(p.opType)) continue;
      act = p;
      const before = producer.get(act.input[0] ?? '');
      if (!before || before.opType !== 'Conv' || (uses.get(act.input[0]!) ?? 0) !== 1) continue;
      const why = activationProblem(act, consts);
      if (why) {
        skipped.push({ name: nodeKey(act), opType: act.opType, reason: `not equalized with the Convs around it: ${why}` });
        continue;
      }
      p = before;
    }
    const a = layerOf(p);
    const b = layerOf(n);
    if (typeof a === 'string' || typeof b === 'string') {
      skipped.push({ name: nodeKey(n), opType: 'Conv', reason: `not equalized: ${typeof a === 'string' ? a : b}` });
      continue;
    }
    const [m2, cPerGroup] = b.w.dims as [number, number];
    if (cPerGroup * b.group !== a.w.dims[0] || m2 % b.group !== 0) {
      skipped.push({ name: nodeKey(n), opType: 'Conv', reason: `not equalized: reads ${cPerGroup * b.group} channels but "${nodeKey(p)}" makes ${a.w.dims[0]}` });
      continue;
    }
    pairs.push({ a, b, act });
  }
  return pairs;
}

/**
 * Equalizes every Conv→f→Conv pair in every graph of the model (f positively homogeneous). Returns
 * a new model; `proto` is not modified. `read` gives a tensor's float values (inline or external).
 */
export function equalizeCrossLayer(proto: ModelProto, read: (t: TensorProto) => Float32Array, options: CleOptions = {}): CleResult {
  const maxIterations = options.maxIterations ?? 20;
  const maxScale = options.maxScale ?? 1e3;
  const uses = useCounts(proto);
  const layers = new Map<NodeProto, Layer>();
  const skipped: SkippedNode[] = [];
  const pairs: Pair[] = [];
  // Subgraphs see their enclosing graphs' constants.
  const outerOf = new Map<GraphProto, Map<string, TensorProto>>();
  for (const g of walkGraphs(proto.graph!)) {
    const consts = new ConstReader(g, read, outerOf.get(g));
    const mine = graphConstants(g, outerOf.get(g));
    for (const n of g.node) for (const a of n.attribute) for (const sub of [...(a.g ? [a.g] : []), ...a.graphs]) outerOf.set(sub, mine);
    pairs.push(...findPairs(g, consts, uses, layers, skipped));
  }
  const touched = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const before = touched.length ? touched.reduce((s, l) => s + spreadOf(l), 0) / touched.length : 1;
  let iterations = 0;
  while (pairs.length && iterations < maxIterations) {
    iterations++;
    let worst = 0;
    for (const p of pairs) worst = Math.max(worst, equalizePair(p, maxScale));
    if (worst < 1e-4) break;
  }
  const after = touched.length ? touched.reduce((s, l) => s + spreadOf(l), 0) / touched.length : 1;
  const edits: WeightEdit[] = [];
  for (const l of touched) {
    const key = nodeKey(l.node);
    edits.push({ kind: 'replace', node: key, input: 1, dims: l.w.dims, values: l.w.values, tag: 'cle' });
    if (l.b) edits.push({ kind: 'replace', node: key, input: 2, dims: [l.b.length], values: l.b, tag: 'cle' });
  }
  return {
    model: applyEdits(proto, edits),
    pairs: pairs.map((p) => ({ first: nodeKey(p.a.node), second: nodeKey(p.b.node), activation: p.act ? nodeKey(p.act) : undefined })),
    skipped,
    spread: { before, after },
    iterations,
  };
}

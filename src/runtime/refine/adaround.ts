/**
 * Learned rounding over a static plan (AdaRound-style; the arithmetic is in
 * src/quant/refine/adaround.ts). For every quantized Conv/Gemm/MatMul with its own constant weight:
 * one streaming pass of the float model over calibration data accumulates the Gram matrix of the
 * layer's float input (src/runtime/refine/layer-inputs.ts); then, layers with the largest expected
 * rounding error first, each output channel's integers are chosen to minimize the layer's output
 * error, until the time budget is spent. The float weight is replaced by s·q, so the Q/DQ transform
 * — which computes the same scales, from the same code — stores exactly those integers; that is
 * checked per layer before the edit is kept.
 *
 * Runs after calibration (the scales are the weights' own, not the activations') and before bias
 * correction, which then measures the final weights.
 */
import { walkGraphs } from '../../onnx/model';
import type { NodeProto } from '../../onnx/proto';
import { isExcluded, nodeSettings } from '../../quant/config';
import { keepsKernelSums, quantizeStaticQdq, weightIntegers, weightQParams } from '../../quant/graph/qdq';
import { outputChannelAxis } from '../../quant/graph/ops';
import { roundChannel, shrinkGram, weightIndex, WeightLayout } from '../../quant/refine/adaround';
import type { RefinementReport } from '../../quant/refine/report';
import { ConstReader, FloatConst, WeightEdit } from '../../quant/refine/weights';
import { quantRange } from '../../quant/types';
import { withExtraOutputs } from '../calibrate';
import type { StaticPlan } from '../quantize-model';
import { createSession, runSession, throwIfAborted } from '../session';
import type { RefineContext } from './bias-correction';
import { floatData, forFirstSamples, named, planWithEdits } from './common';
import { extractPatches, GramEngine, LayerGeometry, layerGeometry } from './layer-inputs';

export interface AdaroundOptions {
  /** Time budget in seconds for the whole refinement (input statistics and rounding). */
  seconds: number;
  /** Calibration samples whose inputs are measured (default 64). */
  maxSamples?: number;
  /** Patches taken from one sample, per layer (default 4096). */
  patchesPerSample?: number;
  /** Patches per layer over all samples (default 16384). */
  patchesPerLayer?: number;
  /** Float64 Gram memory held at once; more layers take more passes over the data (default 512 MB). */
  gramBytes?: number;
}

interface Layer {
  key: string;
  node: NodeProto;
  input: string;
  weight: FloatConst;
  geo: LayerGeometry;
  layout: WeightLayout;
  channels: number;
  /** Output channels per group (a Conv's channel c reads group ⌊c / perGroup⌋). */
  perGroup: number;
  scales: Float32Array;
  zeroPoints: Int32Array;
  /** The weight's quantization axis (its output channels), undefined when per-tensor. */
  axis: number | undefined;
  type: ReturnType<typeof nodeSettings>['weightType'];
  symmetric: boolean;
  /** The transform keeps this layer's kernel sums (keepsKernelSums). */
  kernelSums: boolean;
  gram?: Float64Array;
  patches: number;
  /** Expected rounding error relative to the output energy, from H's diagonal: the ordering key. */
  proxy: number;
}

const WORKABLE = new Set(['Conv', 'Gemm', 'MatMul']);
/** Fewest input patches a layer needs (or K, when smaller) for its Gram matrix to be trusted. */
const MIN_PATCHES = 512;

/** Per channel (one broadcast to every channel when the weight has a single scale). */
function broadcastToChannels(p: { scales: Float32Array; zeroPoints: Int32Array }, channels: number): { scales: Float32Array; zeroPoints: Int32Array } {
  if (p.scales.length === channels) return p;
  return { scales: new Float32Array(channels).fill(p.scales[0]!), zeroPoints: new Int32Array(channels).fill(p.zeroPoints[0]!) };
}

/** The integers the transform's own quantization gives `values`, as the transform computes them (weightIntegers). */
function transformIntegers(values: Float32Array, layer: Layer): { q: ArrayLike<number>; scales: Float32Array; zeroPoints: Int32Array } {
  const w = weightIntegers(values, layer.weight.dims, layer.type, layer.symmetric, layer.axis, layer.kernelSums);
  return { q: w.q, ...broadcastToChannels(w, layer.channels) };
}

/** Quantized Conv/Gemm/MatMul layers learned rounding can work on, and the reasons for the rest. */
function findLayers(plan: StaticPlan, ctx: RefineContext): { proto: StaticPlan['calibProto']; layers: Layer[]; skipped: string[] } {
  const proto = named(plan.calibProto);
  const g = proto.graph!;
  const q = quantizeStaticQdq(proto, { config: ctx.config, ranges: ctx.ranges, readWeight: ctx.readWeight, domain: plan.domain });
  const quantized = new Set(q.quantized.map((n) => n.name));
  const users = new Map<string, number>();
  for (const sub of walkGraphs(g)) for (const n of sub.node) for (const i of n.input) if (i) users.set(i, (users.get(i) ?? 0) + 1);
  const consts = new ConstReader(g, ctx.readWeight);
  const layers: Layer[] = [];
  const skipped: string[] = [];
  for (const n of g.node) {
    if (!WORKABLE.has(n.opType) || !quantized.has(n.name) || isExcluded(ctx.config, n)) continue;
    const w = consts.get(n.input[1]);
    if (!w || !n.input[0]) continue; // activations × activations: no weight to round
    if ((users.get(n.input[1]!) ?? 0) > 1) {
      skipped.push(`${n.name}: weight shared with another node`);
      continue;
    }
    const geo = layerGeometry(n, w.dims);
    if (typeof geo === 'string') {
      skipped.push(`${n.name}: ${geo}`);
      continue;
    }
    const s = nodeSettings(ctx.config, n.name);
    const transB = n.attribute.find((a) => a.name === 'transB')?.i;
    const rowsLayout = n.opType === 'Conv' || (n.opType === 'Gemm' && Boolean(transB));
    const channels = rowsLayout ? w.dims[0]! : w.dims[1]!;
    const axis = s.perChannel && w.dims.length >= 2 ? outputChannelAxis(n.opType, w.dims.length, Boolean(transB)) : undefined;
    let params;
    try {
      params = broadcastToChannels(weightQParams(w.values, w.dims, s.weightType, s.symmetricWeights, axis), channels);
    } catch (err) {
      skipped.push(`${n.name}: ${(err as Error).message}`);
      continue;
    }
    layers.push({
      key: n.name,
      node: n,
      input: n.input[0],
      weight: w,
      geo,
      layout: rowsLayout ? { kind: 'rows', k: geo.k } : { kind: 'columns', k: geo.k, channels },
      channels,
      perGroup: channels / geo.groups,
      ...params,
      axis,
      type: s.weightType,
      symmetric: s.symmetricWeights,
      kernelSums: keepsKernelSums(n.opType, ctx.config),
      patches: 0,
      proxy: 0,
    });
  }
  return { proto, layers, skipped };
}

/** Accumulates every layer's input Gram matrices, in as many passes as the memory budget needs. */
async function measureInputs(proto: StaticPlan['calibProto'], layers: Layer[], ctx: RefineContext, opts: Required<AdaroundOptions>, deadline: number): Promise<number> {
  const gramOf = (l: Layer) => l.geo.groups * l.geo.k * l.geo.k;
  const passes: Layer[][] = [];
  let used = 0;
  for (const l of layers) {
    const bytes = gramOf(l) * 8;
    if (!passes.length || (used + bytes > opts.gramBytes && passes.at(-1)!.length)) {
      passes.push([]);
      used = 0;
    }
    passes.at(-1)!.push(l);
    used += bytes;
  }
  const total = Math.min(opts.maxSamples, ctx.calib.count);
  const engine = await GramEngine.create(ctx.threads);
  let seen = 0;
  try {
    for (const [pi, pass] of passes.entries()) {
      if (performance.now() > deadline) break;
      const inputs = [...new Set(pass.map((l) => l.input))];
      const session = await createSession(withExtraOutputs(proto, inputs), { threads: ctx.threads, name: `${ctx.model.file} (learned-rounding inputs)`, externalDataDir: ctx.model.dir });
      const start = performance.now();
      try {
        for (const l of pass) l.gram = new Float64Array(gramOf(l));
        // Statistics may use half of what is left of the budget, shared by the remaining passes.
        const share = (deadline - start) / (2 * (passes.length - pi));
        seen = await forFirstSamples(ctx.calib, total, ctx.signal, 'learned rounding', async (sample, i) => {
          if (i >= 2 && performance.now() - start > share) return;
          ctx.onProgress?.({ phase: 'quantize', done: i, total, message: `learned rounding: layer inputs${passes.length > 1 ? ` (pass ${pi + 1}/${passes.length})` : ''}, sample ${i + 1}/${total}` });
          const r = await runSession(session, sample, inputs, ctx.model.file, `calibration sample ${i + 1}`);
          for (const l of pass) {
            const t = r[l.input]!;
            const left = opts.patchesPerLayer - l.patches;
            // At most 4M values per call: a depthwise Conv has K·groups values per patch.
            const cap = Math.min(opts.patchesPerSample, left, Math.max(1, Math.floor(2 ** 22 / (l.geo.k * l.geo.groups))));
            if (cap <= 0) continue;
            const p = extractPatches(floatData(t, l.input), t.dims.map(Number), l.geo, cap, (i * 0.618034) % 1);
            await engine.accumulate(p, l.gram!);
            l.patches += p.patches;
          }
        });
      } finally {
        await session.release();
      }
    }
  } finally {
    await engine.release();
  }
  return seen;
}

/** Yields to the event loop (so a cancel can arrive) at most every 30 ms. */
function yielder(signal: AbortSignal | undefined): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < 30) return;
    await new Promise((r) => setImmediate(r));
    last = performance.now();
    throwIfAborted(signal, 'learned rounding');
  };
}

interface Rounded {
  values: Float32Array;
  /** The chosen integer of every weight (minus its zero point), in the weight's layout. */
  chosen: Int32Array;
  before: number;
  after: number;
  flips: number;
}

/** Chooses the integers of every channel of one layer; undefined when the deadline passes first. */
async function roundLayer(l: Layer, deadline: number, pause: () => Promise<void>): Promise<Rounded | undefined> {
  const k = l.geo.k;
  const { qmin, qmax } = quantRange(l.type);
  const values = Float32Array.from(l.weight.values);
  const chosen = new Int32Array(values.length);
  const u = new Float64Array(k);
  const start = new Int32Array(k);
  // Start from the transform's own integers (nearest rounding, kernel sums kept): learned
  // rounding then never writes anything worse than the transform would.
  const own = transformIntegers(l.weight.values, l).q;
  let before = 0;
  let after = 0;
  let flips = 0;
  for (let c = 0; c < l.channels; c++) {
    await pause();
    if (performance.now() > deadline) return undefined;
    const s = l.scales[c]!;
    const z = l.zeroPoints[c]!;
    const lo = qmin - z;
    const hi = qmax - z;
    // Exactly the transform's value before rounding (quantizeSpan): fround(w/s), clamped.
    for (let j = 0; j < k; j++) u[j] = Math.min(hi, Math.max(lo, Math.fround(l.weight.values[weightIndex(l.layout, c, j)]! / s)));
    for (let j = 0; j < k; j++) start[j] = own[weightIndex(l.layout, c, j)]! - z;
    const offset = Math.floor(c / l.perGroup) * k * k;
    const res = roundChannel(u, l.gram!, k, { lo, hi, start }, offset);
    before += s * s * res.before;
    after += s * s * res.after;
    flips += res.flips;
    for (let j = 0; j < k; j++) {
      const at = weightIndex(l.layout, c, j);
      chosen[at] = res.r[j]!;
      // Every weight becomes its integer times the scale, so the transform reads back exactly the
      // chosen integers (its kernel-sum rounding finds nothing to move: every weight is on the grid).
      values[at] = Math.fround(s * res.r[j]!);
    }
  }
  return { values, chosen, before, after, flips };
}

/** True when the transform's own quantization of the new weight gives the same scales and exactly the chosen integers. */
function reproduces(l: Layer, rounded: Rounded): boolean {
  const t = transformIntegers(rounded.values, l);
  for (let c = 0; c < l.channels; c++) if (t.scales[c] !== l.scales[c] || t.zeroPoints[c] !== l.zeroPoints[c]) return false;
  for (let c = 0; c < l.channels; c++) {
    for (let j = 0; j < l.geo.k; j++) {
      const at = weightIndex(l.layout, c, j);
      if (t.q[at]! - l.zeroPoints[c]! !== rounded.chosen[at]) return false;
    }
  }
  return true;
}

export async function learnedRounding(plan: StaticPlan, ctx: RefineContext, opts: AdaroundOptions): Promise<{ plan: StaticPlan; report: RefinementReport }> {
  const t0 = performance.now();
  const o: Required<AdaroundOptions> = { maxSamples: 64, patchesPerSample: 4096, patchesPerLayer: 16384, gramBytes: 512 * 2 ** 20, ...opts };
  const deadline = t0 + o.seconds * 1000;
  const { proto, layers, skipped } = findLayers(plan, ctx);
  const done = (summary: string, changed: string[] = []): RefinementReport => ({ name: 'learned rounding', summary, layers: changed, seconds: (performance.now() - t0) / 1000 });
  if (!layers.length) return { plan, report: done(`no quantized Conv/Gemm/MatMul with its own constant weight${skipped.length ? ` (${skipped.length} skipped, e.g. ${skipped[0]})` : ''}`) };

  const samples = await measureInputs(proto, layers, ctx, o, deadline);
  const measured = layers.filter((l) => l.gram && l.patches > 0);
  // Largest expected rounding error first: Σ H_jj·(uniform rounding variance) over Σ H_jj·w², per layer.
  for (const l of measured) {
    let err = 0;
    let sig = 0;
    for (let c = 0; c < l.channels; c++) {
      const base = Math.floor(c / l.perGroup) * l.geo.k * l.geo.k;
      const s = l.scales[c]!;
      for (let j = 0; j < l.geo.k; j++) {
        const hjj = l.gram![base + j * l.geo.k + j]!;
        const w = l.weight.values[weightIndex(l.layout, c, j)]!;
        err += (hjj * s * s) / 12;
        sig += hjj * w * w;
      }
    }
    l.proxy = sig > 0 ? err / sig : 0;
  }
  measured.sort((a, b) => b.proxy - a.proxy);

  const pause = yielder(ctx.signal);
  const edits: WeightEdit[] = [];
  const changed: string[] = [];
  const gains: number[] = [];
  const forTime: string[] = layers.filter((l) => !measured.includes(l)).map((l) => l.key);
  const scarce: string[] = [];
  let flips = 0;
  for (const [i, l] of measured.entries()) {
    throwIfAborted(ctx.signal, 'learned rounding');
    if (performance.now() > deadline) {
      forTime.push(l.key);
      continue;
    }
    if (l.patches < Math.min(l.geo.k, MIN_PATCHES)) {
      // Too few input vectors: H is mostly noise and the rounding fits the calibration samples,
      // not the layer. Seen on the VAD (24–96 patches for K = 128–387: −1.5 dB on held-out audio),
      // while the recognizer's deep layers (960 patches, K up to 2880) still gained.
      scarce.push(l.key);
      l.gram = undefined;
      continue;
    }
    ctx.onProgress?.({ phase: 'quantize', done: i, total: measured.length, message: `learned rounding ${l.key} ${i + 1}/${measured.length}` });
    shrinkGram(l.gram!, l.geo.k, l.geo.groups, l.patches);
    const r = await roundLayer(l, deadline, pause);
    l.gram = undefined; // the memory is the largest thing held here
    if (!r) {
      forTime.push(l.key);
      continue;
    }
    if (!r.flips) continue;
    if (!reproduces(l, r)) {
      skipped.push(`${l.key}: the transform would not store the chosen integers`);
      continue;
    }
    edits.push({ kind: 'replace', node: l.key, input: 1, dims: l.weight.dims, values: r.values, tag: 'adaround' });
    changed.push(l.key);
    gains.push(r.before > 0 ? r.after / r.before : 1);
    flips += r.flips;
  }
  gains.sort((a, b) => a - b);
  const median = gains.length ? gains[Math.floor(gains.length / 2)]! : 1;
  const parts = [
    `${changed.length} of ${layers.length} layer(s) re-rounded (${flips} weight(s) flipped; layer output error from weight rounding −${(100 * (1 - median)).toFixed(0)}% median, on ${samples} calibration sample(s))`,
  ];
  if (forTime.length) parts.push(`${forTime.length} skipped for time (budget ${o.seconds} s: ${forTime.slice(0, 3).join(', ')}${forTime.length > 3 ? ', …' : ''})`);
  if (scarce.length) parts.push(`${scarce.length} kept nearest rounding for lack of data (fewer than min(K, ${MIN_PATCHES}) input patches: ${scarce.slice(0, 3).join(', ')}${scarce.length > 3 ? ', …' : ''})`);
  if (skipped.length) parts.push(`${skipped.length} not eligible (e.g. ${skipped[0]})`);
  return { plan: planWithEdits(plan, edits), report: done(parts.join('; '), changed) };
}

/**
 * The accuracy-aware loop behind `quantize --target-sqnr` and `--metric`: quantize, measure,
 * raise the layer that hurts most to the next precision (8-bit activations → 16-bit activations →
 * float), repeat until the target holds, nothing is left to raise, or the step budget is spent.
 *
 * "Hurts most" is measured, not guessed: on a few probe samples, each quantized layer is raised
 * alone (to 16-bit activations, and to float) and the worst output's SQNR is measured, so a
 * layer's rank is its effect at the outputs of this model with these settings. (An earlier version
 * charged each layer the SQNR lost between its input and output tensors; that confuses signal
 * changes — a Clip, an added constant — with noise, and picked layers whose fix did not help.)
 * The loop then raises layers in that order, each to the cheapest rung that buys most of the
 * gain, measuring the target after each step; 16-bit layers go to float in a second pass.
 *
 * Calibration happens once, before the loop; each step only re-transforms and re-runs.
 */
import type * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/encode';
import { GraphView } from '../onnx/graph';
import type { ModelProto } from '../onnx/proto';
import type { ActivationType, NodeOverride, QuantConfig } from '../quant/config';
import { isExcluded, nodeSettings } from '../quant/config';
import type { StaticQdqResult } from '../quant/graph/qdq';
import { activationInputIndices, CALIBRATED_OPS, WEIGHTED_OPS } from '../quant/graph/ops';
import { MetricAccumulator } from '../quant/metrics';
import type { Sample, SampleSource } from './samples';
import { createSession, forEachSample, runSession, throwIfAborted } from './session';

/** A user's task metric: higher is better; averaged over the evaluation samples. */
export type ScoreFunction = (floatOutputs: Record<string, ort.Tensor>, quantOutputs: Record<string, ort.Tensor>, sample: Sample) => number | Promise<number>;

export type LoopTarget =
  /** Every graph output's aggregate SQNR at least `minDb`. */
  | { kind: 'sqnr'; minDb: number }
  /** The mean of a user metric at least `min`. */
  | { kind: 'metric'; name: string; score: ScoreFunction; min: number };

export type LoopPrecision = 'int8' | 'int16' | 'float';

export interface LoopStep {
  /** 0 is the starting point (the settings as given). */
  step: number;
  /** The layer raised at this step (none at step 0). */
  layer?: string;
  opType?: string;
  precision?: LoopPrecision;
  /** What raising this layer alone bought on the probe samples (dB of the worst output's SQNR). */
  gainDb?: number;
  /** The target's quantity after this step: worst output SQNR (dB) or the mean user metric. */
  metric: number;
  /** Serialized size of the quantized model after this step. */
  sizeBytes: number;
  met: boolean;
}

export interface LoopResult {
  target: LoopTarget;
  steps: LoopStep[];
  met: boolean;
  /** The settings of the last step: the input config plus the per-node precision overrides. */
  config: QuantConfig;
  /** The transform of the last step (what gets written). */
  transformed: StaticQdqResult;
  /** Why the loop ended. */
  stopReason: 'target met' | 'nothing left to raise' | 'step budget spent';
}

export interface LoopOptions {
  /** The prepared float model (StaticPlan.proto): same tensor names as the quantized graph. */
  floatProto: ModelProto;
  /** Where external data of the float model lives (for sessions built from memory). */
  externalDataDir?: string;
  config: QuantConfig;
  /** Re-runs the static transform for a config (the pipeline's transformStatic, bound). */
  transform: (config: QuantConfig) => StaticQdqResult;
  target: LoopTarget;
  /** Samples the target is measured on. */
  eval: SampleSource;
  /** How many of the first `eval` samples rank the layers (default 4). */
  probeSamples?: number;
  maxSteps: number;
  signal?: AbortSignal;
  threads?: number;
  onStep?: (step: LoopStep) => void;
  onProgress?: (message: string) => void;
}

const SIXTEEN_BIT: Record<ActivationType, ActivationType> = { uint8: 'uint16', int8: 'int16', uint16: 'uint16', int16: 'int16' };
const is16 = (t: ActivationType) => t === 'uint16' || t === 'int16';

/** A node the loop may raise: a main-graph layer the transform quantized (not data movement). */
interface Candidate {
  name: string;
  opType: string;
  /** Float activations it reads. */
  inputs: string[];
  /** The tensor whose quantization it owns: its output, or that of the Relu/Clip folded into it. */
  output: string;
}

function candidates(floatProto: ModelProto, transformed: StaticQdqResult, config: QuantConfig): Candidate[] {
  const g = floatProto.graph!;
  const view = new GraphView(g);
  const initializers = new Set(g.initializer.map((t) => t.name));
  const quantized = new Set(transformed.quantized.map((q) => q.name));
  const out: Candidate[] = [];
  for (const n of g.node) {
    if (!n.name || !quantized.has(n.name) || isExcluded(config, n)) continue;
    if (!(n.opType in WEIGHTED_OPS) && !CALIBRATED_OPS.has(n.opType)) continue;
    const inputs = activationInputIndices(n.opType, n.input.length)
      .map((i) => n.input[i] ?? '')
      .filter((x) => x && !initializers.has(x) && view.producer(x)?.opType !== 'Constant');
    const weighted = WEIGHTED_OPS[n.opType];
    const acts = weighted ? inputs.filter((x) => x !== n.input[weighted.weight] && x !== n.input[weighted.bias ?? -1]) : inputs;
    let output = n.output[0] ?? '';
    // A Relu/Clip folded into this node: its output carries the node's quantization.
    const readers = view.consumers(output);
    if (readers.length === 1 && (readers[0]!.opType === 'Relu' || readers[0]!.opType === 'Clip') && transformed.dequantized.has(readers[0]!.output[0] ?? '')) {
      output = readers[0]!.output[0]!;
    }
    out.push({ name: n.name, opType: n.opType, inputs: acts, output });
  }
  return out;
}

function precisionOf(config: QuantConfig, name: string): LoopPrecision {
  if (config.nodes[name]?.exclude) return 'float';
  return is16(nodeSettings(config, name).activationType) ? 'int16' : 'int8';
}

/** The config with one node raised a level; undefined when it is already in float. */
function raise(config: QuantConfig, name: string): { config: QuantConfig; precision: LoopPrecision } | undefined {
  const current = precisionOf(config, name);
  if (current === 'float') return undefined;
  const o: NodeOverride = { ...(config.nodes[name] ?? {}) };
  let precision: LoopPrecision;
  if (current === 'int8') {
    o.activationType = SIXTEEN_BIT[nodeSettings(config, name).activationType];
    precision = 'int16';
  } else {
    o.exclude = true;
    precision = 'float';
  }
  return { config: { ...config, nodes: { ...config.nodes, [name]: o } }, precision };
}

const toFloat64 = (t: ort.Tensor): Float64Array | undefined => {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Float64Array) return Float64Array.from(d);
  return undefined;
};

/** Measures the target's quantity on `eval`: float outputs are computed once and kept. */
class TargetMeter {
  private floatOutputs: Record<string, ort.Tensor>[] | undefined;

  constructor(
    private readonly o: LoopOptions,
    private readonly source: SampleSource,
    private readonly target: LoopTarget,
  ) {}

  private async floatRuns(): Promise<Record<string, ort.Tensor>[]> {
    if (this.floatOutputs) return this.floatOutputs;
    const session = await createSession(this.o.floatProto, { threads: this.o.threads, name: '<float model>', externalDataDir: this.o.externalDataDir });
    const outs: Record<string, ort.Tensor>[] = [];
    try {
      await forEachSample(this.source, this.o.signal, 'accuracy loop', async (sample, i) => {
        outs.push(await runSession(session, sample, undefined, '<float model>', `evaluation sample ${i + 1}`));
      });
    } finally {
      await session.release();
    }
    this.floatOutputs = outs;
    return outs;
  }

  async measure(model: Uint8Array): Promise<number> {
    const ref = await this.floatRuns();
    const session = await createSession(model, { threads: this.o.threads, name: '<quantized model>', externalDataDir: this.o.externalDataDir });
    const target = this.target;
    const acc = new Map<string, MetricAccumulator>();
    let scoreSum = 0;
    let count = 0;
    try {
      await forEachSample(this.source, this.o.signal, 'accuracy loop', async (sample, i) => {
        const test = await runSession(session, sample, Object.keys(ref[i]!), '<quantized model>', `evaluation sample ${i + 1}`);
        if (target.kind === 'metric') {
          const s = await target.score(ref[i]!, test, sample);
          if (typeof s !== 'number' || !Number.isFinite(s)) throw new TypeError(`metric ${target.name}: score() returned ${String(s)} for evaluation sample ${i + 1}; it must return a finite number`);
          scoreSum += s;
        } else {
          for (const [name, r] of Object.entries(ref[i]!)) {
            const rv = toFloat64(r);
            const tv = test[name] ? toFloat64(test[name]!) : undefined;
            if (!rv || !tv) continue;
            let a = acc.get(name);
            if (!a) acc.set(name, (a = new MetricAccumulator()));
            a.add(rv, tv);
          }
        }
        count++;
      });
    } finally {
      await session.release();
    }
    if (target.kind === 'metric') return count ? scoreSum / count : NaN;
    let worst = Infinity;
    for (const a of acc.values()) worst = Math.min(worst, a.result().sqnrDb);
    return worst;
  }
}

function firstSamples(source: SampleSource, n: number): SampleSource {
  const count = Math.max(1, Math.min(n, source.count));
  return { ...source, count, samples: (signal) => takeFirst(source.samples(signal), count) };
}

async function* takeFirst(it: AsyncIterable<Sample>, n: number): AsyncGenerator<Sample> {
  if (n <= 0) return;
  let i = 0;
  for await (const s of it) {
    yield s;
    if (++i >= n) return;
  }
}

const meets = (target: LoopTarget, value: number) => (target.kind === 'sqnr' ? value >= target.minDb : value >= target.min);

/** A candidate with what each rung of the ladder buys on the probe samples (dB of worst output SQNR). */
interface Ranked extends Candidate {
  gain16: number;
  gainFloat: number;
  /** The rung the first pass applies: 16-bit activations when they buy most of what float does. */
  rung: LoopPrecision;
}

/**
 * Ranks the candidates by what raising each alone buys: two probe measurements per layer (16-bit
 * activations; float). Sensitivity measured on the model as quantized, in the one quantity the
 * loop optimizes (the worst output's SQNR), so a layer's rank reflects its effect at the outputs.
 */
async function rankCandidates(o: LoopOptions, config: QuantConfig, cands: readonly Candidate[], probe: TargetMeter, base: number): Promise<Ranked[]> {
  const ranked: Ranked[] = [];
  for (const [i, c] of cands.entries()) {
    throwIfAborted(o.signal, 'accuracy loop');
    o.onProgress?.(`ranking layers: ${i + 1}/${cands.length} (${c.name})`);
    const to16 = raise(config, c.name)!;
    const gain16 = to16.precision === 'int16' ? (await probe.measure(encodeModel(o.transform(to16.config).model))) - base : -Infinity;
    const toFloat = to16.precision === 'float' ? to16 : raise(to16.config, c.name)!;
    const gainFloat = (await probe.measure(encodeModel(o.transform(toFloat.config).model))) - base;
    const rung: LoopPrecision = gain16 >= 0.75 * gainFloat ? 'int16' : 'float';
    ranked.push({ ...c, gain16, gainFloat, rung });
  }
  return ranked.sort((a, b) => Math.max(b.gain16, b.gainFloat) - Math.max(a.gain16, a.gainFloat));
}

/** Runs the loop. The returned transform is the last step's, whether or not the target was met. */
export async function accuracyLoop(o: LoopOptions): Promise<LoopResult> {
  const meter = new TargetMeter(o, o.eval, o.target);
  let config = o.config;
  let transformed = o.transform(config);
  let bytes = encodeModel(transformed.model);
  o.onProgress?.('measuring the starting point');
  let value = await meter.measure(bytes);
  const steps: LoopStep[] = [{ step: 0, metric: value, sizeBytes: bytes.length, met: meets(o.target, value) }];
  o.onStep?.(steps[0]!);
  if (steps[0]!.met) return { target: o.target, steps, met: true, config, transformed, stopReason: 'target met' };

  // Ranking works on the worst output SQNR (continuous, unlike most task metrics) of a few samples.
  const probe = new TargetMeter(o, firstSamples(o.eval, o.probeSamples ?? 4), { kind: 'sqnr', minDb: Infinity });
  const base = await probe.measure(bytes);
  const ranked = await rankCandidates(o, config, candidates(o.floatProto, transformed, config), probe, base);

  // First pass: each layer, worst first, to the rung it needs; second pass: 16-bit ones to float.
  const plan: { layer: Ranked; precision: LoopPrecision }[] = [
    ...ranked.map((l) => ({ layer: l, precision: l.rung })),
    ...ranked.filter((l) => l.rung === 'int16').map((l) => ({ layer: l, precision: 'float' as const })),
  ];
  let stopReason: LoopResult['stopReason'] = 'nothing left to raise';
  for (const { layer, precision } of plan) {
    if (meets(o.target, value)) break;
    throwIfAborted(o.signal, 'accuracy loop');
    if (steps.length > o.maxSteps) {
      stopReason = 'step budget spent';
      break;
    }
    let next = raise(config, layer.name);
    if (next && precision === 'float' && next.precision === 'int16') next = raise(next.config, layer.name);
    if (!next) continue;
    config = next.config;
    transformed = o.transform(config);
    bytes = encodeModel(transformed.model);
    o.onProgress?.(`step ${steps.length}: ${layer.name} → ${next.precision}`);
    value = await meter.measure(bytes);
    const step: LoopStep = {
      step: steps.length,
      layer: layer.name,
      opType: layer.opType,
      precision: next.precision,
      gainDb: next.precision === 'int16' ? layer.gain16 : layer.gainFloat,
      metric: value,
      sizeBytes: bytes.length,
      met: meets(o.target, value),
    };
    steps.push(step);
    o.onStep?.(step);
  }
  if (meets(o.target, value)) stopReason = 'target met';
  return { target: o.target, steps, met: meets(o.target, value), config, transformed, stopReason };
}

/** The per-node overrides the loop added (what the recipe next to the output records). */
export function loopOverrides(start: QuantConfig, end: QuantConfig): Record<string, NodeOverride> {
  const out: Record<string, NodeOverride> = {};
  for (const [name, o] of Object.entries(end.nodes)) if (JSON.stringify(start.nodes[name]) !== JSON.stringify(o)) out[name] = o;
  return out;
}

/**
 * Bit-width suggestion: per layer one of int4 weight-only, int8, int16 activations or float, for
 * the smallest model that keeps the model's output SQNR at or above a target (or the best SQNR
 * within a size budget), verified by really quantizing with the choice and comparing with the
 * float model (the caller's `verify`, which runs the project's transforms and onnxruntime).
 *
 * Two plans, because a recipe has one mode (quantize applies `mode` to the whole model):
 * - static: every statically quantizable layer int8 (W8A8, the analysis settings), int16
 *   (16-bit activations, recipe override activationType uint16/int16; weights stay int8, so the
 *   size is the same) or float (recipe exclude);
 * - weight-only: MatMul/Gemm weights int4 blockwise (or int8 blockwise, or float); activations
 *   and every other layer stay float.
 * The static plan is tried first; the weight-only plan when the model has MatMul/Gemm weights.
 * The smaller verified model that meets the target wins; on a tie the static plan (integer kernels).
 *
 * Search (target): guided by the sensitivities, decided by measurement. Each layer's noise at each
 * choice is modelled from its sensitivities — n(int8) = 10^(−globalSQNR/10) (the local SQNR when
 * there is no global one), n(int16) and n(int4) scaled by the ratio of the local SQNRs, n(float) = 0
 * — and the promotions are ordered by noise removed per byte added (int8 → int16 first when 16-bit
 * activations help at all, since they add no bytes; then → float). The answer is the shortest
 * prefix of that order whose quantized model meets the target: the first probe is where the
 * prediction (the measured all-int8 noise minus the modelled gains) meets it with a 0.5 dB margin,
 * then doubling while measurements fall short, then bisection; at most `maxRounds` verifications,
 * and everything promoted (which always meets it) as the last resort.
 *
 * Search (budget): from float, layers go to int8 (int4 in the weight-only plan) in order of least
 * noise added per byte saved until the estimated size fits; the size is verified (and the estimate
 * corrected); then, while below the target, the noisiest int8 layers get 16-bit activations at no
 * byte cost if that measures better.
 */
import type { QuantConfig, NodeOverride } from '../quant/config';

export type Choice = 'int4' | 'int8' | 'int16' | 'float';
export const CHOICE_BITS: Readonly<Record<Choice, number>> = { int4: 4, int8: 8, int16: 16, float: 32 };

/** What the search knows about a layer. */
export interface SuggestLayer {
  name: string;
  opType: string;
  unnamed: boolean;
  staticQuantizable: boolean;
  weightOnly: boolean;
  /** Weight elements (all of the layer's weights) and output channels. */
  weightElements: number;
  channels: number;
  /** Float bytes of the weights as stored. */
  floatBytes: number;
  /** Multiply-accumulates per run (0 when unknown). */
  macs: number;
  /** Model-output SQNR with only this layer quantized (int8). */
  globalSqnrDb?: number;
  /** Layer-output SQNR with only this layer quantized, per precision. */
  localSqnrDb: Partial<Record<'int8' | 'int16' | 'int4', number>>;
  /** Why it stays float whatever the target (not quantizable). */
  fixedReason?: string;
  /**
   * Nodes whose override makes this layer's input 16-bit: the static transform gives a tensor the
   * type of the first quantized node that touches it — its producer (through data movement) — so
   * the override goes on the producer chain as well as on the layer. Default: the layer alone.
   */
  int16Nodes?: string[];
}

export interface Plan {
  mode: 'static' | 'weight-only';
  choices: Map<string, Choice>;
}

export interface Verification {
  /** Worst model output's SQNR (dB). */
  sqnrDb: number;
  /** Bytes of the quantized model. */
  sizeBytes: number;
}

export interface SuggestOptions {
  layers: readonly SuggestLayer[];
  /** The settings the plan builds on (activation type, per-channel, …). */
  config: QuantConfig;
  targetSqnrDb: number;
  maxSizeBytes?: number;
  /** Bytes of the float model (file plus external data). */
  floatSizeBytes: number;
  /** Quantizes with the plan's recipe settings (planSettings) and measures it. */
  verify: (plan: Plan, settings: Partial<QuantConfig>) => Promise<Verification>;
  maxRounds?: number;
  signal?: AbortSignal;
  onRound?: (r: { plan: Plan['mode']; round: number; verification: Verification; changed: number }) => void;
}

export interface LayerSuggestion {
  choice: Choice;
  bits: number;
  reason: string;
}

export interface Suggestion {
  mode: Plan['mode'];
  targetSqnrDb: number;
  maxSizeBytes?: number;
  met: boolean;
  layers: Map<string, LayerSuggestion>;
  achieved: Verification & { floatSizeBytes: number; estimatedSizeBytes: number; latencyProxy: number };
  /** Every verification made, in order. */
  history: { mode: Plan['mode']; sqnrDb: number; sizeBytes: number; promoted: number }[];
  /** Settings for a recipe (global fields and per-node overrides). */
  recipe: Partial<QuantConfig>;
  notes: string[];
}

/** Relative latency of a MAC by choice (float = 1): a proxy, not a measurement. */
export const LATENCY_FACTOR: Readonly<Record<Choice, number>> = { float: 1, int16: 1, int8: 0.5, int4: 1 };

const MARGIN_DB = 0.5;
/** 16-bit activations are chosen over float when they cut a layer's noise at least this much. */
const INT16_GAIN = 4;

const toNoise = (db: number | undefined): number | undefined => (db === undefined || Number.isNaN(db) ? undefined : db === Infinity ? 0 : 10 ** (-db / 10));
const toDb = (noise: number): number => (noise <= 0 ? Infinity : -10 * Math.log10(noise));

/** Bytes of a layer's weights under a choice (scales and zero points included). */
export function layerBytes(l: SuggestLayer, c: Choice, mode: Plan['mode'], blockSize: number): number {
  switch (c) {
    case 'float':
      return l.floatBytes;
    case 'int8':
    case 'int16':
      return mode === 'static' ? l.weightElements + 5 * l.channels : l.weightElements + (4 * l.weightElements) / blockSize;
    case 'int4':
      return l.weightElements / 2 + (4 * l.weightElements) / blockSize;
  }
}

/** Per-layer noise model (see the header). */
function noiseModel(l: SuggestLayer): Record<Choice, number> {
  const g8 = toNoise(l.globalSqnrDb);
  const l8 = toNoise(l.localSqnrDb.int8);
  const n8 = g8 ?? l8 ?? 0;
  const ratio = (p: 'int16' | 'int4'): number | undefined => {
    const lp = toNoise(l.localSqnrDb[p]);
    if (lp === undefined) return undefined;
    if (l8 === undefined || l8 === 0) return lp === 0 ? 0 : undefined;
    return lp / l8;
  };
  const r16 = ratio('int16');
  const r4 = ratio('int4');
  // Without an int8 reference, the int4 local noise itself is the proxy.
  const n4 = r4 !== undefined ? n8 * r4 : (toNoise(l.localSqnrDb.int4) ?? n8 * 256);
  return { float: 0, int16: r16 !== undefined ? Math.min(n8, n8 * r16) : n8 / 256, int8: n8, int4: n4 };
}

function planSize(layers: readonly SuggestLayer[], choices: Map<string, Choice>, mode: Plan['mode'], floatSize: number, blockSize: number): number {
  let size = floatSize;
  for (const l of layers) size += layerBytes(l, choices.get(l.name) ?? 'float', mode, blockSize) - l.floatBytes;
  return size;
}

function latencyProxy(layers: readonly SuggestLayer[], choices: Map<string, Choice>): number {
  let total = 0;
  let weighted = 0;
  for (const l of layers) {
    const macs = l.macs || l.weightElements;
    total += macs;
    weighted += macs * LATENCY_FACTOR[choices.get(l.name) ?? 'float'];
  }
  return total > 0 ? weighted / total : 1;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const err = new Error('suggestion cancelled', { cause: signal.reason });
    err.name = 'AbortError';
    throw err;
  }
}

interface PlanRun {
  mode: Plan['mode'];
  choices: Map<string, Choice>;
  verification: Verification;
  met: boolean;
  rounds: number;
}

/**
 * One search (see the header) for one plan: the promotions in the order the sensitivities rank them
 * (best noise removed per byte added first; 16-bit activations, which add no bytes, before float),
 * then the shortest prefix of that order that meets the target, found by measurement: the first
 * probe where the prediction meets the target, doubling while it falls short, then bisection.
 */
async function searchTarget(
  mode: Plan['mode'],
  candidates: readonly SuggestLayer[],
  o: SuggestOptions,
  history: Suggestion['history'],
): Promise<PlanRun> {
  const maxRounds = Math.max(2, o.maxRounds ?? 8);
  const noise = new Map(candidates.map((l) => [l.name, noiseModel(l)]));
  const base: Choice = mode === 'static' ? 'int8' : 'int4';
  const target = 10 ** (-(o.targetSqnrDb + MARGIN_DB) / 10);
  const steps = (c: Choice, l: SuggestLayer): Choice | undefined => {
    if (mode === 'static') {
      // 16-bit activations first when they help at all: they cost no bytes (weights stay int8).
      if (c === 'int8') return noise.get(l.name)!.int16 < noise.get(l.name)!.int8 ? 'int16' : 'float';
      return c === 'int16' ? 'float' : undefined;
    }
    return c === 'int4' ? 'int8' : c === 'int8' ? 'float' : undefined;
  };
  const bytes = (l: SuggestLayer, c: Choice) => layerBytes(l, c, mode, o.config.blockSize);

  // The promotion order.
  const order: { name: string; to: Choice; gain: number }[] = [];
  const sim = new Map<string, Choice>(candidates.map((l) => [l.name, base]));
  for (;;) {
    let best: { l: SuggestLayer; to: Choice; gain: number; score: number } | undefined;
    for (const l of candidates) {
      const c = sim.get(l.name)!;
      const to = steps(c, l);
      if (!to) continue;
      const n = noise.get(l.name)!;
      const gain = n[c] - n[to];
      const cost = bytes(l, to) - bytes(l, c);
      const score = cost <= 0 ? 1e300 * Math.max(gain, 1e-300) : gain / cost;
      if (!best || score > best.score || (score === best.score && gain > best.gain)) best = { l, to, gain, score };
    }
    if (!best) break;
    sim.set(best.l.name, best.to);
    order.push({ name: best.l.name, to: best.to, gain: best.gain });
  }
  const choicesAt = (k: number): Map<string, Choice> => {
    const c = new Map<string, Choice>(candidates.map((l) => [l.name, base]));
    for (let i = 0; i < k; i++) c.set(order[i]!.name, order[i]!.to);
    return c;
  };
  const measured = new Map<number, Verification>();
  let rounds = 0;
  const measure = async (k: number): Promise<Verification> => {
    const hit = measured.get(k);
    if (hit) return hit;
    throwIfAborted(o.signal);
    const choices = choicesAt(k);
    const v = await o.verify({ mode, choices }, planSettings({ mode, choices }, o.config, o.layers));
    rounds++;
    measured.set(k, v);
    history.push({ mode, sqnrDb: v.sqnrDb, sizeBytes: v.sizeBytes, promoted: k });
    o.onRound?.({ plan: mode, round: rounds, verification: v, changed: k });
    return v;
  };
  const meets = (v: Verification) => v.sqnrDb >= o.targetSqnrDb;
  const n = order.length;
  const v0 = await measure(0);
  let lo = 0; // known to fall short
  let hi: number | undefined; // known to meet
  if (meets(v0)) hi = 0;
  else if (n > 0) {
    // First probe: where the prediction from the measured noise meets the target.
    let predicted = Number.isNaN(v0.sqnrDb) ? Infinity : toNoise(v0.sqnrDb)!;
    let k = 0;
    while (k < n && predicted > target) predicted -= order[k++]!.gain;
    k = Math.max(1, k);
    while (rounds < maxRounds) {
      if (meets(await measure(k))) hi = k;
      else lo = k;
      if (hi !== undefined) {
        if (hi - lo <= 1) break;
        k = Math.floor((lo + hi) / 2);
      } else {
        if (k >= n) break;
        k = Math.min(n, Math.max(k + 1, 2 * k));
      }
    }
    // Out of rounds without a prefix that meets the target: everything promoted always does.
    if (hi === undefined && !measured.has(n)) {
      if (meets(await measure(n))) hi = n;
    }
  }
  const k = hi ?? [...measured.entries()].reduce((b, e) => (e[1].sqnrDb > b[1].sqnrDb ? e : b))[0];
  const v = measured.get(k)!;
  return { mode, choices: choicesAt(k), verification: v, met: meets(v), rounds };
}

/** Budget search: the best SQNR within `maxSizeBytes` (demoting from float, least noise per byte saved first). */
async function searchBudget(mode: Plan['mode'], candidates: readonly SuggestLayer[], o: SuggestOptions, history: Suggestion['history']): Promise<PlanRun> {
  const budget = o.maxSizeBytes!;
  const noise = new Map(candidates.map((l) => [l.name, noiseModel(l)]));
  const low: Choice = mode === 'static' ? 'int8' : 'int4';
  const choices = new Map<string, Choice>(candidates.map((l) => [l.name, 'float']));
  const order = [...candidates].sort((a, b) => {
    const saved = (l: SuggestLayer) => l.floatBytes - layerBytes(l, low, mode, o.config.blockSize);
    return noise.get(a.name)![low] / Math.max(1, saved(a)) - noise.get(b.name)![low] / Math.max(1, saved(b));
  });
  const maxRounds = o.maxRounds ?? 6;
  let rounds = 0;
  let v: Verification | undefined;
  let i = 0;
  let limit = budget;
  for (;;) {
    while (i < order.length && planSize(candidates, choices, mode, o.floatSizeBytes, o.config.blockSize) > limit) choices.set(order[i++]!.name, low);
    throwIfAborted(o.signal);
    v = await o.verify({ mode, choices: new Map(choices) }, planSettings({ mode, choices }, o.config, o.layers));
    rounds++;
    history.push({ mode, sqnrDb: v.sqnrDb, sizeBytes: v.sizeBytes, promoted: i });
    o.onRound?.({ plan: mode, round: rounds, verification: v, changed: i });
    if (v.sizeBytes <= budget || i >= order.length || rounds >= maxRounds) break;
    // The estimate was short: aim lower by what it missed.
    limit -= v.sizeBytes - budget;
  }
  // Zero-byte improvements: int8 → int16 for the noisiest layers while below the target.
  if (mode === 'static' && v.sizeBytes <= budget && v.sqnrDb < o.targetSqnrDb && rounds < maxRounds) {
    const upgrades = candidates
      .filter((l) => choices.get(l.name) === 'int8' && noise.get(l.name)!.int16 * INT16_GAIN <= noise.get(l.name)!.int8)
      .sort((a, b) => noise.get(b.name)!.int8 - noise.get(a.name)!.int8);
    if (upgrades.length) {
      for (const l of upgrades) choices.set(l.name, 'int16');
      const v2 = await o.verify({ mode, choices: new Map(choices) }, planSettings({ mode, choices }, o.config, o.layers));
      history.push({ mode, sqnrDb: v2.sqnrDb, sizeBytes: v2.sizeBytes, promoted: upgrades.length });
      if (v2.sqnrDb >= v.sqnrDb) v = v2;
      else for (const l of upgrades) choices.set(l.name, 'int8');
    }
  }
  return { mode, choices, verification: v, met: v.sizeBytes <= budget, rounds };
}

function fmtDb(x: number | undefined): string {
  return x === undefined ? '?' : x === Infinity ? '∞' : `${x.toFixed(1)} dB`;
}

/** The per-layer reasons, in words a user can act on. */
function reasons(run: PlanRun, layers: readonly SuggestLayer[], o: SuggestOptions, rank: Map<string, number>): Map<string, LayerSuggestion> {
  const out = new Map<string, LayerSuggestion>();
  const n = layers.filter((l) => rank.has(l.name)).length;
  for (const l of layers) {
    const c = run.choices.get(l.name);
    const sens = l.globalSqnrDb !== undefined ? `model SQNR ${fmtDb(l.globalSqnrDb)} with only this layer in int8` : `layer SQNR ${fmtDb(l.localSqnrDb.int8)} in int8 (local)`;
    const r = rank.has(l.name) ? `, sensitivity rank ${rank.get(l.name)! + 1} of ${n}` : '';
    let reason: string;
    let choice: Choice;
    if (l.fixedReason || c === undefined) {
      choice = 'float';
      reason = l.fixedReason ?? (run.mode === 'weight-only' ? 'weight-only mode quantizes MatMul/Gemm weights only' : 'not quantized by this plan');
    } else {
      choice = c;
      switch (c) {
        case 'int8':
          reason =
            run.mode === 'static'
              ? `int8 fits the ${o.targetSqnrDb} dB target (${sens}${r})`
              : `int8 weight-only: int4 would cost too much (layer SQNR ${fmtDb(l.localSqnrDb.int4)} in int4, ${sens}${r})`;
          break;
        case 'int16':
          reason = `16-bit activations: int8 is too noisy here (${sens}${r}; ${fmtDb(l.localSqnrDb.int16)} with 16-bit activations), at no size cost`;
          break;
        case 'int4':
          reason = `int4 weight-only fits the target (layer SQNR ${fmtDb(l.localSqnrDb.int4)} in int4${r})`;
          break;
        case 'float':
          reason = `kept in float: among the most sensitive layers (${sens}${r}${l.localSqnrDb.int16 !== undefined ? `; ${fmtDb(l.localSqnrDb.int16)} even with 16-bit activations` : ''})`;
          break;
      }
    }
    out.set(l.name, { choice, bits: CHOICE_BITS[choice], reason });
  }
  return out;
}

/** Recipe settings for a plan. */
export function planSettings(plan: Plan, config: QuantConfig, layers: readonly SuggestLayer[] = []): Partial<QuantConfig> {
  const nodes: Record<string, NodeOverride> = {};
  const exclude = [...config.exclude];
  const sixteen = config.activationType === 'int8' || config.activationType === 'int16' ? 'int16' : 'uint16';
  for (const [name, c] of plan.choices) {
    if (c === 'float') exclude.push(name);
    else if (c === 'int16') for (const n of layers.find((l) => l.name === name)?.int16Nodes ?? [name]) nodes[n] = { activationType: sixteen };
    else if (c === 'int8' && plan.mode === 'weight-only') nodes[name] = { weightType: 'int8' };
  }
  const base: Partial<QuantConfig> =
    plan.mode === 'static'
      ? { mode: 'static', method: config.method, percentile: config.percentile, perChannel: config.perChannel, activationType: config.activationType, weightType: config.weightType === 'int4' || config.weightType === 'uint4' ? 'int8' : config.weightType, symmetricActivations: config.symmetricActivations, symmetricWeights: config.symmetricWeights }
      : { mode: 'weight-only', weightType: 'int4', symmetricWeights: config.symmetricWeights, blockSize: config.blockSize };
  if (plan.mode === 'static') base.samples = config.samples; // the calibration it was verified with
  if (config.target) base.target = config.target;
  base.foldBatchNorm = config.foldBatchNorm;
  if (exclude.length) base.exclude = [...new Set(exclude)];
  if (Object.keys(nodes).length) base.nodes = nodes;
  return base;
}

export async function suggest(o: SuggestOptions): Promise<Suggestion> {
  const history: Suggestion['history'] = [];
  const notes: string[] = [];
  const staticLayers = o.layers.filter((l) => l.staticQuantizable && !l.fixedReason);
  const woLayers = o.layers.filter((l) => l.weightOnly && !l.fixedReason);
  const budgetMode = o.maxSizeBytes !== undefined;
  const runs: PlanRun[] = [];
  if (staticLayers.length) runs.push(budgetMode ? await searchBudget('static', staticLayers, o, history) : await searchTarget('static', staticLayers, o, history));
  if (woLayers.length) {
    // The weight-only plan can only win when its smallest form (every candidate int4, the rest
    // float) is smaller than what the static plan achieved (or the static plan missed the goal).
    const smallest = planSize(woLayers, new Map(woLayers.map((l) => [l.name, 'int4' as Choice])), 'weight-only', o.floatSizeBytes, o.config.blockSize);
    const st = runs[0];
    if (!st || !st.met || smallest < st.verification.sizeBytes) {
      runs.push(budgetMode ? await searchBudget('weight-only', woLayers, o, history) : await searchTarget('weight-only', woLayers, o, history));
    } else {
      notes.push(`weight-only plan not tried: even with every MatMul/Gemm weight in int4 the model would be about ${Math.round(smallest)} bytes, no smaller than the static plan's ${st.verification.sizeBytes}`);
    }
  }
  if (runs.length === 0) throw new RangeError('the model has no layer this tool can quantize');
  // Target: the smallest verified model meeting it (static on a tie); budget: the best SQNR within it.
  const pick = (a: PlanRun, b: PlanRun): PlanRun => {
    if (a.met !== b.met) return a.met ? a : b;
    if (budgetMode) return b.verification.sqnrDb > a.verification.sqnrDb && b.verification.sizeBytes <= o.maxSizeBytes! ? b : a;
    if (!a.met) return b.verification.sqnrDb > a.verification.sqnrDb ? b : a;
    return b.verification.sizeBytes < a.verification.sizeBytes ? b : a;
  };
  const best = runs.reduce(pick);
  for (const r of runs) {
    if (r !== best) notes.push(`${r.mode} plan: ${fmtDb(r.verification.sqnrDb)} at ${r.verification.sizeBytes} bytes (${r.met ? 'also meets the goal, larger' : 'does not meet the goal'})`);
  }
  if (budgetMode && best.met && best.verification.sqnrDb < o.targetSqnrDb) {
    notes.push(`within the ${o.maxSizeBytes} byte budget the best measured SQNR is ${fmtDb(best.verification.sqnrDb)}, below ${o.targetSqnrDb} dB`);
  }
  if (!best.met) {
    notes.push(
      budgetMode
        ? `no plan fits the ${o.maxSizeBytes} byte budget: the smallest is ${best.verification.sizeBytes} bytes (${fmtDb(best.verification.sqnrDb)})`
        : `the ${o.targetSqnrDb} dB target was not reached after ${best.rounds} verification(s): best ${fmtDb(best.verification.sqnrDb)}`,
    );
  }
  const candidates = best.mode === 'static' ? staticLayers : woLayers;
  const sens = (l: SuggestLayer) => l.globalSqnrDb ?? l.localSqnrDb.int8 ?? Infinity;
  const ranked = [...candidates].sort((a, b) => sens(a) - sens(b));
  const rank = new Map(ranked.map((l, i) => [l.name, i]));
  const unnamed = candidates.filter((l) => l.unnamed && best.choices.get(l.name) !== (best.mode === 'static' ? 'int8' : 'int4'));
  if (unnamed.length) notes.push(`${unnamed.length} node(s) without a name cannot be addressed by a recipe (${unnamed.map((l) => l.name).join(', ')}): the recipe leaves them at the default`);
  const plan: Plan = { mode: best.mode, choices: new Map([...best.choices].filter(([n]) => !o.layers.find((l) => l.name === n)?.unnamed)) };
  return {
    mode: best.mode,
    targetSqnrDb: o.targetSqnrDb,
    maxSizeBytes: o.maxSizeBytes,
    met: best.met,
    layers: reasons(best, o.layers, o, rank),
    achieved: {
      ...best.verification,
      floatSizeBytes: o.floatSizeBytes,
      estimatedSizeBytes: planSize(candidates, best.choices, best.mode, o.floatSizeBytes, o.config.blockSize),
      latencyProxy: latencyProxy(o.layers, best.choices),
    },
    history,
    recipe: planSettings(plan, o.config, o.layers),
    notes,
  };
}

export { toDb, toNoise };

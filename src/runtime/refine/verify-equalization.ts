/**
 * Keeps a pending (affine-block) depthwise equalization only where the quantized model measures
 * better with it. Each fold is exact in float and lowers its own layer's error, yet on PP-OCRv4's
 * recognizer two of them lowered the outputs' SQNR from 17.5 to 12.6 dB with the rest of the model
 * quantized (alone, one of them raised it by 15 dB): the effect is not local, so it is measured.
 *
 * Ranges come from the one calibration pass over the plan with every pending fold applied, which
 * also calibrated each original X through a probe (withPendingEqualizations), so a variant without
 * a fold quantizes X exactly as a run without that fold would. Measured: the worst output's SQNR
 * (logits for Softmax outputs) against the float model on the first PROBE_SAMPLES calibration
 * samples, for all folds, all but one (each), the folds that passed, and none; the best wins.
 */
import type { RefinementReport } from '../../quant/refine/report';
import type { TensorStats } from '../calibrate';
import { firstSamples, TargetMeter } from '../accuracy-loop';
import { activationRanges, transformStatic, type StaticPlan } from '../quantize-model';
import { throwIfAborted } from '../session';
import { planWithEdits } from './common';
import type { PendingEqualization } from './equalize-depthwise';
import type { SmoothContext } from './smoothquant';

/** Calibration samples each variant is measured on. */
export const PROBE_SAMPLES = 4;
/** A fold counts as harmful when the model measures this much better (dB) without it. */
const HARM_DB = 0.1;

/**
 * What the pipeline's measured choices compare: the worst output's SQNR against the float model
 * (logits for Softmax outputs) on the first PROBE_SAMPLES calibration samples.
 */
export function probeMeter(ctx: SmoothContext): TargetMeter {
  return new TargetMeter({ referenceProto: ctx.model.proto, externalDataDir: ctx.model.dir, threads: ctx.threads, signal: ctx.signal }, firstSamples(ctx.calib, PROBE_SAMPLES), { kind: 'sqnr', minDb: Infinity }, true);
}

export interface VerifiedEqualization {
  /** `plan` (without pending folds) with the kept folds applied. */
  plan: StaticPlan;
  /** Calibration statistics for that plan: a dropped fold's X takes its probe's statistics. */
  stats: Map<string, TensorStats>;
  kept: PendingEqualization[];
  report: RefinementReport;
}

/**
 * `plan`: the plan without the pending folds (what the pipeline has after the other refinements);
 * `stats`: calibration of withPendingEqualizations(plan, pending), `probes`: its probe names.
 */
export async function verifyEqualizations(plan: StaticPlan, pending: readonly PendingEqualization[], stats: ReadonlyMap<string, TensorStats>, probes: ReadonlyMap<string, string>, ctx: SmoothContext): Promise<VerifiedEqualization> {
  const t0 = performance.now();
  const meter = probeMeter(ctx);
  const variant = (kept: readonly PendingEqualization[]) => {
    const p = planWithEdits(plan, kept.flatMap((e) => e.edits));
    const s = new Map(stats);
    for (const e of pending) {
      if (kept.includes(e)) continue;
      const original = stats.get(probes.get(e.x) ?? '');
      if (original) s.set(e.x, original);
    }
    for (const probe of probes.values()) s.delete(probe);
    return { plan: p, stats: s };
  };
  const measured = new Map<string, number>();
  const measure = async (kept: readonly PendingEqualization[], what: string): Promise<number> => {
    const key = pending.map((e) => (kept.includes(e) ? '1' : '0')).join('');
    const known = measured.get(key);
    if (known !== undefined) return known;
    throwIfAborted(ctx.signal, 'depthwise equalization');
    ctx.onProgress?.({ phase: 'quantize', done: measured.size, total: pending.length + 3, message: `depthwise equalization: measuring ${what}` });
    const v = variant(kept);
    const db = await meter.measure(transformStatic(v.plan, ctx.config, activationRanges(v.stats, ctx.config), ctx.readWeight).model);
    measured.set(key, db);
    return db;
  };

  const all = await measure(pending, 'all affine folds');
  const harmful = new Set<PendingEqualization>();
  for (const e of pending) {
    const without = await measure(pending.filter((x) => x !== e), `without ${e.layers.join('+')}`);
    if (without > all + HARM_DB) harmful.add(e);
  }
  const passed = pending.filter((e) => !harmful.has(e));
  const passedDb = await measure(passed, 'the folds that helped');
  const none = await measure([], 'no affine fold');
  const options = [
    { kept: [...pending], db: all },
    { kept: passed, db: passedDb },
    { kept: [], db: none },
  ];
  // Best measured; on a tie the one with fewer folds (nothing to explain).
  const best = options.reduce((a, b) => (b.db > a.db || (b.db === a.db && b.kept.length < a.kept.length) ? b : a));
  const v = variant(best.kept);
  const summary = best.kept.length
    ? `${best.kept.length} of ${pending.length} affine-block fold(s) kept (worst output SQNR on ${PROBE_SAMPLES} calibration samples ${none.toFixed(1)} → ${best.db.toFixed(1)} dB): ${best.kept.slice(0, 3).map((e) => e.note).join('; ')}${best.kept.length > 3 ? '; …' : ''}`
    : `none of ${pending.length} affine-block fold(s) kept: the quantized model measured ${none.toFixed(1)} dB without them, ${all.toFixed(1)} dB with all`;
  return {
    plan: v.plan,
    stats: v.stats,
    kept: best.kept,
    report: { name: 'depthwise-equalization', summary, layers: best.kept.flatMap((e) => e.layers), seconds: (performance.now() - t0) / 1000 },
  };
}

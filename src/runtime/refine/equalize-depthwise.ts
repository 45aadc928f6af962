/**
 * Depthwise activation equalization over a static plan: one pass over calibration data for the
 * per-channel abs max of every depthwise Conv input (src/runtime/refine/channel-stats.ts), then the
 * float-exact edits of src/quant/refine/equalize-depthwise.ts. Runs before activation calibration,
 * which then sees the equalized X. Inputs whose widest channel is under SPREAD_THRESHOLD × the
 * median are left alone, and so are inputs X/s cannot be folded into (see the quant module).
 *
 * Folds into a Conv or BatchNormalization are applied at once. Folds into affine blocks are
 * returned as pending: the pipeline calibrates with them (and with probes that recover each
 * original X as X/s · s, so one calibration pass has both ranges) and keeps each only where the
 * quantized model measures better with it (verify-equalization.ts).
 */
import { isExcluded, nodeSettings } from '../../quant/config';
import { channelSpread, chooseEqualization, depthwiseFold, equalizationScales, equalizeDepthwise, filterEnergy, findDepthwiseGroups } from '../../quant/refine/equalize-depthwise';
import type { RefinementReport } from '../../quant/refine/report';
import { ConstReader, nodeKey, WeightEdit } from '../../quant/refine/weights';
import { DataType } from '../../onnx/dtypes';
import { initializer, makeNode, NameScope } from '../../quant/graph/edit';
import type { StaticPlan } from '../quantize-model';
import { throwIfAborted } from '../session';
import { channelStats } from './channel-stats';
import { planWithEdits } from './common';
import type { SmoothContext } from './smoothquant';

export const SPREAD_THRESHOLD = 4;

/** An affine-block equalization awaiting measurement: X/s with s per channel. */
export interface PendingEqualization {
  x: string;
  scales: Float32Array;
  /** X's rank (its convs' filter rank). */
  rank: number;
  edits: WeightEdit[];
  /** The depthwise convs reading X (their keys). */
  layers: string[];
  note: string;
}

export interface DepthwiseEqualizationResult {
  /** The plan with the Conv / BatchNormalization folds applied. */
  plan: StaticPlan;
  pending: PendingEqualization[];
  report: RefinementReport;
}

export async function equalizeDepthwiseInputs(plan: StaticPlan, ctx: SmoothContext): Promise<DepthwiseEqualizationResult> {
  const t0 = performance.now();
  const g = plan.calibProto.graph!;
  const consts = new ConstReader(g, ctx.readWeight);
  const all = findDepthwiseGroups(g, consts, (n) => isExcluded(ctx.config, n));
  const groups = all.filter((gr) => depthwiseFold(g, consts, gr) !== undefined);
  const done = (summary: string, layers: string[] = []) => ({ name: 'depthwise-equalization' as const, summary, layers, seconds: (performance.now() - t0) / 1000 });
  if (!groups.length) return { plan, pending: [], report: done(all.length ? `no depthwise Conv reads a Conv, BatchNormalization or affine block output alone (of ${all.length})` : 'no depthwise Conv') };
  const names = groups.map((gr) => gr.x);
  const stats = await channelStats(ctx.model, plan.calibProto, names, ctx.calib, {
    signal: ctx.signal,
    threads: ctx.threads,
    maxSamples: 32,
    keepRows: 4096,
    channelsFirst: new Set(names),
    onSample: (d, t) => ctx.onProgress?.({ phase: 'calibrate', done: d, total: t, message: 'depthwise equalization: per-channel activation ranges' }),
  });
  const edits: WeightEdit[] = [];
  const layers: string[] = [];
  const notes: string[] = [];
  const pending: PendingEqualization[] = [];
  for (const gr of groups) {
    throwIfAborted(ctx.signal, 'depthwise equalization');
    const st = stats.get(gr.x);
    if (!st || st.absMax.length !== gr.channels) continue;
    const spread = channelSpread(st.absMax);
    if (spread < SPREAD_THRESHOLD) continue;
    const act = nodeSettings(ctx.config, gr.layers[0]!.node.name).activationType;
    const choice = st.rows.length ? chooseEqualization(st.rows, st.absMax, filterEnergy(gr), act) : undefined;
    if (!choice) continue;
    const scales = equalizationScales(st.absMax, choice.alpha);
    const eq = equalizeDepthwise(g, consts, gr, scales);
    if (!eq) continue;
    const keys = gr.layers.map((l) => nodeKey(l.node));
    const note = `${keys.join('+')} α=${choice.alpha} (widest channel ${spread.toFixed(0)}× the median, predicted error ÷${choice.gain.toFixed(1)}, X/s ${eq.where})`;
    if (eq.affine) {
      pending.push({ x: gr.x, scales, rank: gr.layers[0]!.w.dims.length, edits: eq.edits, layers: keys, note });
      continue;
    }
    edits.push(...eq.edits);
    layers.push(...keys);
    notes.push(note);
  }
  const summary = notes.length
    ? `${notes.length} of ${groups.length} depthwise Conv input(s) equalized: ${notes.slice(0, 4).join('; ')}${notes.length > 4 ? '; …' : ''}`
    : `no depthwise Conv input has channels ${SPREAD_THRESHOLD}× wider than the median that a Conv or BatchNormalization can take (of ${groups.length})`;
  return { plan: planWithEdits(plan, edits), pending, report: done(summary, layers) };
}

/**
 * The plan calibration runs when equalizations are pending: all of them applied, and in the
 * calibration proto a probe per pending X computing X/s · s (the original X), calibrated as an
 * extra tensor, so one pass yields the ranges of both versions.
 */
export function withPendingEqualizations(plan: StaticPlan, pending: readonly PendingEqualization[]): { plan: StaticPlan; probes: Map<string, string> } {
  const probes = new Map<string, string>();
  if (!pending.length) return { plan, probes };
  const applied = planWithEdits(plan, pending.flatMap((p) => p.edits));
  const calib = applied.calibProto;
  const g = calib.graph!;
  const scope = new NameScope(calib);
  const node = [...g.node];
  const init = [...g.initializer];
  for (const p of pending) {
    const s = scope.fresh(`${p.x}_dweq_scales`);
    const probe = scope.fresh(`${p.x}_dweq_original`);
    init.push(initializer(s, DataType.FLOAT, Array.from({ length: p.rank }, (_, i) => (i === 1 ? p.scales.length : 1)), p.scales));
    node.push(makeNode('Mul', [p.x, s], [probe], scope.fresh(`${probe}_Mul`)));
    probes.set(p.x, probe);
  }
  const calibProto = { ...calib, graph: { ...g, node, initializer: init } };
  return { plan: { ...applied, calibProto, extraCalibration: [...(plan.extraCalibration ?? []), ...probes.values()] }, probes };
}

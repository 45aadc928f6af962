/**
 * Depthwise activation equalization over a static plan: one pass over calibration data for the
 * per-channel abs max of every depthwise Conv input (src/runtime/refine/channel-stats.ts), then the
 * float-exact edits of src/quant/refine/equalize-depthwise.ts. Runs before activation calibration,
 * which then sees the equalized X. Inputs whose widest channel is under SPREAD_THRESHOLD × the
 * median are left alone, and so are inputs X/s cannot be folded into (see the quant module).
 */
import { isExcluded, nodeSettings } from '../../quant/config';
import { channelSpread, chooseEqualization, equalizationScales, equalizeDepthwise, filterEnergy, findDepthwiseGroups } from '../../quant/refine/equalize-depthwise';
import type { RefinementReport } from '../../quant/refine/report';
import { ConstReader, nodeKey, WeightEdit } from '../../quant/refine/weights';
import type { StaticPlan } from '../quantize-model';
import { throwIfAborted } from '../session';
import { channelStats } from './channel-stats';
import { planWithEdits } from './common';
import type { SmoothContext } from './smoothquant';

export const SPREAD_THRESHOLD = 4;

export async function equalizeDepthwiseInputs(plan: StaticPlan, ctx: SmoothContext): Promise<{ plan: StaticPlan; report: RefinementReport }> {
  const t0 = performance.now();
  const g = plan.calibProto.graph!;
  const consts = new ConstReader(g, ctx.readWeight);
  const all = findDepthwiseGroups(g, consts, (n) => isExcluded(ctx.config, n));
  const groups = all.filter((gr) => equalizeDepthwise(g, consts, gr, new Float32Array(gr.channels).fill(1)) !== undefined);
  const done = (summary: string, layers: string[] = []) => ({ name: 'depthwise-equalization' as const, summary, layers, seconds: (performance.now() - t0) / 1000 });
  if (!groups.length) return { plan, report: done(all.length ? `no depthwise Conv reads a Conv or BatchNormalization output alone (of ${all.length})` : 'no depthwise Conv') };
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
  for (const gr of groups) {
    throwIfAborted(ctx.signal, 'depthwise equalization');
    const st = stats.get(gr.x);
    if (!st || st.absMax.length !== gr.channels) continue;
    const spread = channelSpread(st.absMax);
    if (spread < SPREAD_THRESHOLD) continue;
    const act = nodeSettings(ctx.config, gr.layers[0]!.node.name).activationType;
    const choice = st.rows.length ? chooseEqualization(st.rows, st.absMax, filterEnergy(gr), act) : undefined;
    if (!choice) continue;
    const eq = equalizeDepthwise(g, consts, gr, equalizationScales(st.absMax, choice.alpha));
    if (!eq) continue;
    edits.push(...eq.edits);
    const keys = gr.layers.map((l) => nodeKey(l.node));
    layers.push(...keys);
    notes.push(`${keys.join('+')} α=${choice.alpha} (widest channel ${spread.toFixed(0)}× the median, predicted error ÷${choice.gain.toFixed(1)}, X/s ${eq.where})`);
  }
  if (!edits.length) return { plan, report: done(`no depthwise Conv input has channels ${SPREAD_THRESHOLD}× wider than the median (of ${groups.length})`) };
  return {
    plan: planWithEdits(plan, edits),
    report: done(`${notes.length} of ${groups.length} depthwise Conv input(s) equalized: ${notes.slice(0, 4).join('; ')}${notes.length > 4 ? '; …' : ''}`, layers),
  };
}

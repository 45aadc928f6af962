/**
 * SmoothQuant over a static plan: one pass over calibration data for the per-channel abs max of
 * every candidate MatMul/Gemm input (src/runtime/refine/channel-stats.ts), then the edits of
 * src/quant/refine/smoothquant.ts. Runs before activation calibration, which then sees X/s.
 * Only groups whose input has outlier channels (largest channel ≥ OUTLIER_RATIO × the median) are
 * smoothed; with α = 'auto' each group's α comes from a grid search on its own output error, and a
 * group where no α beats leaving it alone is left alone.
 */
import type { OnnxModel } from '../../onnx/model';
import type { QuantConfig } from '../../quant/config';
import { isExcluded, nodeSettings } from '../../quant/config';
import type { TensorProto } from '../../onnx/proto';
import type { RefinementReport } from '../../quant/refine/report';
import { divideActivation, findSmoothGroups, outlierRatio, scaleWeights, smoothedError, smoothScales, weightChannelMax } from '../../quant/refine/smoothquant';
import { ConstReader, nodeKey, WeightEdit } from '../../quant/refine/weights';
import type { PipelineProgress, StaticPlan } from '../quantize-model';
import type { SampleSource } from '../samples';
import { throwIfAborted } from '../session';
import { channelStats } from './channel-stats';
import { planWithEdits } from './common';

export const OUTLIER_RATIO = 4;
const ALPHA_GRID = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

export interface SmoothContext {
  model: OnnxModel;
  config: QuantConfig;
  readWeight: (t: TensorProto) => Float32Array;
  calib: SampleSource;
  signal?: AbortSignal;
  threads?: number;
  onProgress?: (p: PipelineProgress) => void;
}

export async function smoothQuant(plan: StaticPlan, ctx: SmoothContext): Promise<{ plan: StaticPlan; report: RefinementReport }> {
  const t0 = performance.now();
  const g = plan.calibProto.graph!;
  const consts = new ConstReader(g, ctx.readWeight);
  const groups = findSmoothGroups(g, consts, (n) => isExcluded(ctx.config, n));
  const done = (summary: string, layers: string[] = []) => ({ name: 'smoothquant' as const, summary, layers, seconds: (performance.now() - t0) / 1000 });
  if (!groups.length) return { plan, report: done('no MatMul/Gemm with a constant weight') };
  const stats = await channelStats(ctx.model, plan.calibProto, groups.map((gr) => gr.x), ctx.calib, {
    signal: ctx.signal,
    threads: ctx.threads,
    maxSamples: 32,
    keepRows: ctx.config.smoothQuantAlpha === 'auto' ? 64 : 0,
    onSample: (d, t) => ctx.onProgress?.({ phase: 'calibrate', done: d, total: t, message: 'SmoothQuant: per-channel activation ranges' }),
  });
  const edits: WeightEdit[] = [];
  const layers: string[] = [];
  const notes: string[] = [];
  let divs = 0;
  for (const [i, gr] of groups.entries()) {
    throwIfAborted(ctx.signal, 'SmoothQuant');
    const st = stats.get(gr.x);
    const k = gr.layers[0]!.w.dims[gr.layers[0]!.transposed ? 1 : 0]!;
    if (!st || st.absMax.length !== k) continue;
    gr.xMax = st.absMax;
    gr.rows = st.rows;
    const ratio = outlierRatio(st.absMax);
    if (ratio < OUTLIER_RATIO) continue;
    const wMax = weightChannelMax(gr.layers, k);
    let alpha: number | undefined = typeof ctx.config.smoothQuantAlpha === 'number' ? ctx.config.smoothQuantAlpha : undefined;
    if (alpha === undefined) {
      ctx.onProgress?.({ phase: 'quantize', done: i, total: groups.length, message: `SmoothQuant α search ${nodeKey(gr.layers[0]!.node)}` });
      const act = nodeSettings(ctx.config, gr.layers[0]!.node.name).activationType;
      let best = st.rows.length ? smoothedError(gr, undefined, act) : Infinity;
      for (const a of ALPHA_GRID) {
        const e = smoothedError(gr, smoothScales(st.absMax, wMax, a), act);
        if (e < best) [best, alpha] = [e, a];
      }
      if (alpha === undefined) continue;
    }
    const s = smoothScales(st.absMax, wMax, alpha);
    const div = divideActivation(g, consts, gr, s);
    if (div.where.startsWith('a Div')) divs += gr.layers.length;
    edits.push(...div.edits, ...scaleWeights(gr, s));
    const names = gr.layers.map((l) => nodeKey(l.node));
    layers.push(...names);
    notes.push(`${names.join('+')} α=${alpha} (outliers ${ratio.toFixed(0)}×, X/s ${div.where})`);
  }
  if (!edits.length) return { plan, report: done(`no MatMul/Gemm input has outlier channels worth smoothing (of ${groups.length} candidate(s))`) };
  return {
    plan: planWithEdits(plan, edits),
    report: done(`${notes.length} of ${groups.length} MatMul/Gemm input(s) smoothed${divs ? `, ${divs} Div node(s) added` : ''}: ${notes.slice(0, 4).join('; ')}${notes.length > 4 ? '; …' : ''}`, layers),
  };
}

/**
 * Streaming per-channel statistics of activations: the abs max of each last-axis channel (the K
 * channels a MatMul/Gemm reduces over; or axis 1, what a Conv reads) over calibration samples, plus a bounded, evenly spread
 * sample of rows for searches. Memory is K floats plus the kept rows, whatever the sample count.
 */
import type { OnnxModel } from '../../onnx/model';
import type { ModelProto } from '../../onnx/proto';
import { withExtraOutputs } from '../calibrate';
import type { SampleSource } from '../samples';
import { createSession, runSession } from '../session';
import { floatData, forFirstSamples } from './common';

export interface ChannelStats {
  /** max |x[..., j]| per last-axis channel j. */
  absMax: Float32Array;
  /** Kept rows, [rows, K] row-major. */
  rows: Float32Array;
}

export interface ChannelStatsOptions {
  signal?: AbortSignal;
  threads?: number;
  maxSamples?: number;
  /** Rows kept per tensor (spread over the samples). */
  keepRows?: number;
  /** Tensors whose channels are axis 1 (NCHW, what convolutions read) instead of the last axis; their rows are pixels' channel vectors. */
  channelsFirst?: ReadonlySet<string>;
  onSample?: (done: number, total: number) => void;
}

export async function channelStats(model: OnnxModel, proto: ModelProto, tensors: readonly string[], calib: SampleSource, opts: ChannelStatsOptions = {}): Promise<Map<string, ChannelStats>> {
  const total = Math.min(opts.maxSamples ?? 32, calib.count);
  const keep = opts.keepRows ?? 128;
  const perSample = Math.max(1, Math.ceil(keep / Math.max(1, total)));
  const acc = new Map<string, { absMax: Float32Array; rows: number[][] }>();
  const session = await createSession(withExtraOutputs(proto, tensors), { threads: opts.threads, name: model.file, externalDataDir: model.dir });
  try {
    await forFirstSamples(calib, total, opts.signal, 'SmoothQuant statistics', async (sample, i) => {
      const out = await runSession(session, sample, tensors, model.file, `calibration sample ${i + 1}`);
      for (const name of tensors) {
        const t = out[name]!;
        const x = floatData(t, name);
        const first = opts.channelsFirst?.has(name) === true && t.dims.length >= 2;
        const k = Number((first ? t.dims[1] : t.dims[t.dims.length - 1]) ?? 1);
        let a = acc.get(name);
        if (!a) acc.set(name, (a = { absMax: new Float32Array(k), rows: [] }));
        if (a.absMax.length !== k) continue; // shapes that change the channel count are not smoothable
        const m = a.absMax;
        if (first) {
          const inner = x.length / (Number(t.dims[0]) * k);
          for (let base = 0, c = 0; base < x.length; base += inner, c = (c + 1) % k) {
            let mx = m[c]!;
            for (let idx = base; idx < base + inner; idx++) {
              const v = Math.abs(x[idx]!);
              if (v > mx) mx = v; // NaN never wins
            }
            m[c] = mx;
          }
          const step = Math.max(1, Math.floor(inner / perSample));
          for (let p = 0; p < inner && a.rows.length < keep; p += step) {
            const row = new Array<number>(k);
            for (let c = 0; c < k; c++) row[c] = x[c * inner + p]!;
            a.rows.push(row);
          }
          continue;
        }
        for (let idx = 0; idx < x.length; idx++) {
          const v = Math.abs(x[idx]!);
          const j = idx % k;
          if (v > m[j]!) m[j] = v;
        }
        const nRows = x.length / k;
        const step = Math.max(1, Math.floor(nRows / perSample));
        for (let r = 0; r < nRows && a.rows.length < keep; r += step) a.rows.push(Array.from(x.subarray(r * k, (r + 1) * k)));
      }
      opts.onSample?.(i + 1, total);
    });
  } finally {
    await session.release();
  }
  const res = new Map<string, ChannelStats>();
  for (const [name, a] of acc) res.set(name, { absMax: a.absMax, rows: Float32Array.from(a.rows.flat()) });
  return res;
}

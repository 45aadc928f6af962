/**
 * The input statistics learned rounding needs: for a Conv/Gemm/MatMul, the Gram matrix H = Σ x xᵀ
 * of the vectors its weights are dotted with — im2col patches for a Conv (pads, strides,
 * dilations; one H per group, so a depthwise Conv has one small H per channel), rows of the input
 * for Gemm/MatMul. Streaming: each sample's input is cut into at most `maxPatches` evenly spread
 * patches, their XᵀX (computed by onnxruntime's GEMM, far faster than a JS loop for K in the
 * thousands) is added to a float64 sum, and the sample is dropped.
 */
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../onnx/builder';
import { DataType } from '../../onnx/dtypes';
import type { NodeProto } from '../../onnx/proto';
import { createSession, runSession } from '../session';

/** How a layer's input becomes the K-vectors its weights see. 1-D convs are 2-D with height 1. */
export type LayerGeometry =
  | {
      kind: 'conv';
      groups: number;
      cinPerGroup: number;
      kernel: [number, number];
      strides: [number, number];
      dilations: [number, number];
      /** [top, left, bottom, right], or an auto_pad mode resolved per input size. */
      pads: [number, number, number, number] | 'SAME_UPPER' | 'SAME_LOWER';
      k: number;
    }
  | { kind: 'rows'; k: number; transA: boolean; groups: 1 };

const ints = (n: NodeProto, name: string): number[] | undefined => {
  const a = n.attribute.find((x) => x.name === name);
  return a && a.ints.length ? a.ints.map(Number) : undefined;
};
const int = (n: NodeProto, name: string, dflt: number): number => {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : dflt;
};

/** The geometry of a Conv/Gemm/MatMul with weight dims `w`, or why learned rounding skips it. */
export function layerGeometry(n: NodeProto, w: readonly number[]): LayerGeometry | string {
  if (n.opType === 'Gemm') {
    if (w.length !== 2) return 'weight is not 2-D';
    return { kind: 'rows', k: int(n, 'transB', 0) ? w[1]! : w[0]!, transA: int(n, 'transA', 0) !== 0, groups: 1 };
  }
  if (n.opType === 'MatMul') return w.length === 2 ? { kind: 'rows', k: w[0]!, transA: false, groups: 1 } : 'weight is not 2-D';
  if (n.opType !== 'Conv') return `${n.opType} is not supported`;
  const spatial = w.length - 2;
  if (spatial !== 1 && spatial !== 2) return `${spatial}-D convolution is not supported`;
  const two = (v: number[] | undefined, d: number): [number, number] => (spatial === 1 ? [1, v?.[0] ?? d] : [v?.[0] ?? d, v?.[1] ?? d]);
  const autoPad = n.attribute.find((a) => a.name === 'auto_pad')?.s;
  const mode = autoPad ? new TextDecoder().decode(autoPad) : 'NOTSET';
  let pads: [number, number, number, number] | 'SAME_UPPER' | 'SAME_LOWER';
  if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER') pads = mode;
  else if (mode === 'VALID') pads = [0, 0, 0, 0];
  else {
    const p = ints(n, 'pads') ?? new Array<number>(2 * spatial).fill(0);
    pads = spatial === 1 ? [0, p[0]!, 0, p[1]!] : [p[0]!, p[1]!, p[2]!, p[3]!];
  }
  const kernel: [number, number] = spatial === 1 ? [1, w[2]!] : [w[2]!, w[3]!];
  return { kind: 'conv', groups: int(n, 'group', 1), cinPerGroup: w[1]!, kernel, strides: two(ints(n, 'strides'), 1), dilations: two(ints(n, 'dilations'), 1), pads, k: w[1]! * kernel[0] * kernel[1] };
}

/** Patches of one input, [groups, patches, K] row-major. */
export interface Patches {
  data: Float32Array;
  groups: number;
  patches: number;
  k: number;
}

/** `count` of `total` positions, evenly spread; `phase` in [0, 1) shifts them between samples. */
function spread(total: number, count: number, phase: number): Int32Array {
  const out = new Int32Array(count);
  for (let j = 0; j < count; j++) out[j] = Math.min(total - 1, Math.floor(((j + phase) * total) / count));
  return out;
}

/** Cuts an input tensor into at most `maxPatches` patches (per group) of the layer's geometry. */
export function extractPatches(x: Float32Array, dims: readonly number[], geo: LayerGeometry, maxPatches: number, phase = 0.5): Patches {
  const k = geo.k;
  if (geo.kind === 'rows') {
    const rows = x.length / k;
    if (!Number.isInteger(rows)) throw new RangeError(`input of ${x.length} values is not rows of ${k}`);
    const n = Math.min(rows, maxPatches);
    const pick = spread(rows, n, phase);
    const data = new Float32Array(n * k);
    for (let p = 0; p < n; p++) {
      const row = pick[p]!;
      if (geo.transA) for (let j = 0; j < k; j++) data[p * k + j] = x[j * rows + row]!;
      else data.set(x.subarray(row * k, row * k + k), p * k);
    }
    return { data, groups: 1, patches: n, k };
  }
  const spatial = dims.length - 2;
  const [batch, cin] = [dims[0]!, dims[1]!];
  const [h, w] = spatial === 1 ? [1, dims[2]!] : [dims[2]!, dims[3]!];
  if (cin !== geo.groups * geo.cinPerGroup) throw new RangeError(`input has ${cin} channels, the weight expects ${geo.groups}×${geo.cinPerGroup}`);
  const [kh, kw] = geo.kernel;
  const [sh, sw] = geo.strides;
  const [dh, dw] = geo.dilations;
  const out = (size: number, kk: number, s: number, d: number, before: number, after: number) => Math.floor((size + before + after - (d * (kk - 1) + 1)) / s) + 1;
  let pt: number, pl: number, oh: number, ow: number;
  if (typeof geo.pads === 'string') {
    oh = Math.ceil(h / sh);
    ow = Math.ceil(w / sw);
    const th = Math.max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - h);
    const tw = Math.max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - w);
    pt = geo.pads === 'SAME_UPPER' ? Math.floor(th / 2) : Math.ceil(th / 2);
    pl = geo.pads === 'SAME_UPPER' ? Math.floor(tw / 2) : Math.ceil(tw / 2);
  } else {
    [pt, pl] = [geo.pads[0], geo.pads[1]];
    oh = out(h, kh, sh, dh, geo.pads[0], geo.pads[2]);
    ow = out(w, kw, sw, dw, geo.pads[1], geo.pads[3]);
  }
  const positions = batch * oh * ow;
  const n = Math.max(0, Math.min(positions, maxPatches));
  const pick = spread(positions, n, phase);
  const g = geo.groups;
  const cg = geo.cinPerGroup;
  const data = new Float32Array(g * n * k);
  for (let p = 0; p < n; p++) {
    const pos = pick[p]!;
    const b = Math.floor(pos / (oh * ow));
    const oy = Math.floor(pos / ow) % oh;
    const ox = pos % ow;
    for (let gi = 0; gi < g; gi++) {
      let at = (gi * n + p) * k;
      for (let ci = 0; ci < cg; ci++) {
        const plane = (b * cin + gi * cg + ci) * h * w;
        for (let i = 0; i < kh; i++) {
          const y = oy * sh - pt + i * dh;
          for (let j = 0; j < kw; j++, at++) {
            const xx = ox * sw - pl + j * dw;
            data[at] = y >= 0 && y < h && xx >= 0 && xx < w ? x[plane + y * w + xx]! : 0;
          }
        }
      }
    }
  }
  return { data, groups: g, patches: n, k };
}

/** Computes Σ XᵀX per group with onnxruntime: one small session for every layer and sample. */
export class GramEngine {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(threads?: number): Promise<GramEngine> {
    const b = new ModelBuilder({ opset: 17 });
    const x = b.input('x', DataType.FLOAT, ['G', 'P', 'K']);
    const xt = b.node('Transpose', [x], { perm: [0, 2, 1] });
    b.output(b.node('MatMul', [xt, x], {}, { outputs: ['gram'] }), DataType.FLOAT);
    return new GramEngine(await createSession(b.build(), { threads, name: '<gram>' }));
  }

  /** Adds XᵀX of each group of `p` into `into` (groups consecutive K×K blocks). */
  async accumulate(p: Patches, into: Float64Array): Promise<void> {
    if (!p.patches) return;
    const r = await runSession(this.session, { x: new ort.Tensor('float32', p.data, [p.groups, p.patches, p.k]) }, ['gram'], '<gram>');
    const gram = r.gram!.data as Float32Array;
    for (let i = 0; i < gram.length; i++) into[i] = into[i]! + gram[i]!;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

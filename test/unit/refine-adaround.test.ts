/**
 * Learned rounding (AdaRound-style): the greedy rounding on hand-checked and brute-forced cases,
 * im2col patches against onnxruntime's own Conv, exact reproduction of the chosen integers by the
 * Q/DQ transform, an end-to-end SQNR gain measured by onnxruntime, and cancellation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AttrValue, ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import type { ModelProto, TensorProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG, QuantConfig } from '../../src/quant/config';
import { quadraticError, roundChannel, shrinkGram } from '../../src/quant/refine/adaround';
import { extractPatches, GramEngine, layerGeometry } from '../../src/runtime/refine/layer-inputs';
import { activationRanges, calibrateStatic, prepareStatic, quantizeModel, QuantizeReport, transformStatic, weightReader } from '../../src/runtime/quantize-model';
import { learnedRounding } from '../../src/runtime/refine/adaround';
import type { Sample, SampleSource } from '../../src/runtime/samples';
import { liveSessionCount } from '../../src/runtime/session';
import { tempDir } from '../helpers/ort';

/** Smooth images (a few low-frequency waves plus a little noise): neighbouring inputs correlate, as in real data. */
function smoothImages(count: number, seed: number, dims: number[]): SampleSource {
  const [n, c, h, w] = dims as [number, number, number, number];
  return {
    count,
    synthetic: false,
    description: `${count} smooth test images`,
    async *samples(): AsyncIterable<Sample> {
      const rng = new Rng(seed);
      for (let s = 0; s < count; s++) {
        const data = new Float32Array(n * c * h * w);
        const waves = Array.from({ length: 3 }, () => [rng.next() * 0.6, rng.next() * 0.6, rng.next() * 6, rng.normal()]);
        for (let i = 0; i < data.length; i++) {
          const x = i % w;
          const y = Math.floor(i / w) % h;
          const ch = Math.floor(i / (w * h)) % c;
          let v = 0.1 * rng.normal();
          for (const [fx, fy, ph, a] of waves) v += a! * Math.sin(fx! * x + fy! * y + ph! + ch);
          data[i] = v;
        }
        yield { x: new ort.Tensor('float32', data, dims) };
      }
    },
  };
}

const initializerByName = (p: ModelProto, name: string): TensorProto => p.graph!.initializer.find((t) => t.name === name)!;

describe('learned rounding', () => {
  it('beats nearest rounding on a hand-checked pair of correlated weights', () => {
    // Weights 1 and 2 (0.4 each) see inputs with correlation 0.9: both rounding down adds up their
    // errors (0.608), rounding one up lets them cancel (0.088). Weights 0 and 3 are the channel's
    // extremes (they set its scale) and see independent inputs.
    const h = new Float64Array([1, 0, 0, 0, 0, 1, 0.9, 0, 0, 0.9, 1, 0, 0, 0, 0, 1]);
    const u = [-2, 0.4, 0.4, 3];
    const r = roundChannel(u, h, 4, { lo: -127, hi: 127 });
    assert.ok(Math.abs(r.before - 0.608) < 1e-12, `nearest: ${r.before}`);
    assert.ok(Math.abs(r.after - 0.088) < 1e-12, `learned: ${r.after}`);
    assert.deepEqual([r.r[0], r.r[1]! + r.r[2]!, r.r[3]], [-2, 1, 3]);
    assert.equal(r.flips, 1);
    // An uncorrelated (diagonal) H: nearest rounding is optimal and nothing moves.
    const d = roundChannel(u, new Float64Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), 4, { lo: -127, hi: 127 });
    assert.equal(d.flips, 0);
  });

  it('is never worse than nearest rounding, stays on floor/ceil and off the range ends (random cases, brute force)', () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 200; trial++) {
      const k = 2 + (trial % 7);
      const p = 3 + (trial % 11);
      // H = XᵀX of correlated rows (shared component), so the optimum often differs from nearest.
      const x = new Float64Array(p * k);
      for (let i = 0; i < p; i++) {
        const common = rng.normal();
        for (let j = 0; j < k; j++) x[i * k + j] = common + 0.5 * rng.normal();
      }
      const h = new Float64Array(k * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let q = 0; q < p; q++) h[i * k + j] += x[q * k + i]! * x[q * k + j]!;
      const u = Array.from({ length: k }, () => (trial % 5 === 0 ? 127 * (2 * rng.next() - 1) : 6 * rng.normal()));
      const res = roundChannel(u, h, k, { lo: -127, hi: 127 });
      assert.ok(res.after <= res.before + 1e-9 * Math.abs(res.before), `trial ${trial}: ${res.before} → ${res.after}`);
      assert.ok(Math.abs(res.after - quadraticError(res.r, u, h, k)) <= 1e-9 * Math.max(1, res.after));
      for (let j = 0; j < k; j++) {
        assert.ok(res.r[j] === Math.floor(u[j]!) || res.r[j] === Math.ceil(u[j]!) || res.r[j] === Math.round(u[j]!), `trial ${trial}: ${u[j]} → ${res.r[j]}`);
        assert.ok(res.r[j]! >= -127 && res.r[j]! <= 127);
      }
      // Brute force over floor/ceil of the free weights: the greedy result lies between optimum and nearest.
      let best = Infinity;
      for (let m = 0; m < 1 << k; m++) {
        const r = u.map((v, j) => Math.min(127, Math.max(-127, (m >> j) & 1 ? Math.ceil(v) : Math.floor(v))));
        best = Math.min(best, quadraticError(r, u, h, k));
      }
      assert.ok(best <= res.after + 1e-9 * Math.abs(res.after));
    }
  });

  it('shrinks the off-diagonal of a Gram matrix estimated from few patches', () => {
    const h = new Float64Array([4, 2, 2, 4]);
    const gamma = shrinkGram(h, 2, 1, 2);
    assert.equal(gamma, 0.5);
    assert.deepEqual(Array.from(h), [4, 1, 1, 4]);
  });

  it('cuts Conv inputs into the patches onnxruntime’s Conv multiplies (pads, strides, dilations, groups, 1-D)', async () => {
    const cases: { x: number[]; w: number[]; attrs: Record<string, AttrValue> }[] = [
      { x: [2, 4, 9, 11], w: [6, 2, 3, 2], attrs: { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] } },
      { x: [1, 3, 7, 7], w: [3, 1, 3, 3], attrs: { group: 3, auto_pad: 'SAME_UPPER', strides: [2, 2] } },
      { x: [1, 2, 20], w: [4, 2, 5], attrs: { strides: [3], pads: [2, 1] } },
    ];
    const rng = new Rng(3);
    for (const c of cases) {
      const b = new ModelBuilder({ opset: 17 });
      const x = b.input('x', DataType.FLOAT, c.x);
      const wv = rng.normals(c.w.reduce((a, v) => a * v, 1));
      const w = b.initializer('w', DataType.FLOAT, c.w, wv);
      b.output(b.node('Conv', [x, w], c.attrs, { outputs: ['y'], name: 'conv' }), DataType.FLOAT);
      const proto = b.build();
      const xv = rng.normals(c.x.reduce((a, v) => a * v, 1));
      const session = await ort.InferenceSession.create(encodeModel(proto));
      const y = (await session.run({ x: new ort.Tensor('float32', xv, c.x) })).y!;
      await session.release();
      const geo = layerGeometry(proto.graph!.node[0]!, c.w);
      assert.ok(typeof geo !== 'string', String(geo));
      const p = extractPatches(xv, c.x, geo, 1e9);
      const cout = c.w[0]!;
      const spatialOut = y.dims.slice(2).reduce((a, v) => a * v, 1);
      assert.equal(p.patches, c.x[0]! * spatialOut);
      const perGroup = cout / p.groups;
      const yd = y.data as Float32Array;
      for (let pos = 0; pos < p.patches; pos++) {
        const bIdx = Math.floor(pos / spatialOut);
        for (let ch = 0; ch < cout; ch++) {
          const g = Math.floor(ch / perGroup);
          let s = 0;
          for (let k = 0; k < p.k; k++) s += wv[ch * p.k + k]! * p.data[(g * p.patches + pos) * p.k + k]!;
          const ref = yd[(bIdx * cout + ch) * spatialOut + (pos % spatialOut)]!;
          assert.ok(Math.abs(s - ref) < 1e-4 * (1 + Math.abs(ref)), `${JSON.stringify(c.attrs)} pos ${pos} ch ${ch}: ${s} vs ${ref}`);
        }
      }
      // The Gram engine's XᵀX per group equals the direct sum.
      const engine = await GramEngine.create(1);
      const gram = new Float64Array(p.groups * p.k * p.k);
      await engine.accumulate(p, gram);
      await engine.release();
      for (const [i, j] of [[0, 0], [0, p.k - 1], [p.k - 1, 1]] as const) {
        let s = 0;
        for (let q = 0; q < p.patches; q++) s += p.data[(p.groups - 1) * p.patches * p.k + q * p.k + i]! * p.data[(p.groups - 1) * p.patches * p.k + q * p.k + j]!;
        assert.ok(Math.abs(gram[(p.groups - 1) * p.k * p.k + i * p.k + j]! - s) < 1e-3 * (1 + Math.abs(s)));
      }
    }
  });

  describe('end to end', () => {
    /** x → Conv 3×3 (8→16) → Relu → Conv 3×3 (16→8) → Gemm over the flattened map. */
    function buildModel(file: string): void {
      const b = new ModelBuilder({ opset: 21, seed: 11 });
      const x = b.input('x', DataType.FLOAT, [1, 8, 12, 12]);
      const c1 = b.relu(b.conv(x, 8, 16, 3, { name: 'conv1' }));
      const c2 = b.conv(c1, 16, 8, 3, { name: 'conv2', stride: 2 });
      const flat = b.node('Flatten', [c2], { axis: 1 });
      b.output(b.gemm(flat, 8 * 36, 10, { name: 'fc' }), DataType.FLOAT);
      saveModel(b.build(), file);
    }

    async function run(dir: string, file: string, config: Partial<QuantConfig>, tag: string, signal?: AbortSignal, onProgress?: (m: string) => void): Promise<{ out: string; r: QuantizeReport }> {
      const out = path.join(dir, `${tag}.onnx`);
      const r = await quantizeModel({
        input: file,
        output: out,
        // 16-bit activations: weight rounding is then the main error, which is what this refinement reduces.
        config: { ...DEFAULT_CONFIG, activationType: 'uint16', ...config },
        calib: smoothImages(12, 1, [1, 8, 12, 12]),
        eval: smoothImages(6, 2, [1, 8, 12, 12]),
        evalNote: 'test',
        latencyRuns: 0,
        signal,
        onProgress: (p) => p.message && onProgress?.(p.message),
      });
      return { out, r };
    }

    it('improves output SQNR, reports the layers, and the transform stores exactly the chosen integers', async () => {
      const { dir, cleanup } = tempDir();
      try {
        const file = path.join(dir, 'm.onnx');
        buildModel(file);
        const messages: string[] = [];
        const plain = await run(dir, file, { adaround: false }, 'plain');
        const learned = await run(dir, file, { adaround: true, adaroundSeconds: 30 }, 'learned', undefined, (m) => messages.push(m));
        const rep = learned.r.refinements.find((f) => f.name === 'learned rounding');
        assert.ok(rep, 'reported');
        // fc sees one input row per sample: 12 rows for K = 288 is too little data to trust its H.
        assert.deepEqual([...rep.layers].sort(), ['conv1', 'conv2']);
        assert.match(rep.summary, /2 of 3 layer\(s\) re-rounded/);
        assert.match(rep.summary, /1 kept nearest rounding for lack of data .*fc/);
        assert.ok(messages.some((m) => /^learned rounding conv\d [23]\/3$/.test(m)), messages.join('\n'));
        const before = plain.r.eval.outputs[0]!.sqnrDb;
        const after = learned.r.eval.outputs[0]!.sqnrDb;
        console.log(`# SQNR ${before.toFixed(2)} → ${after.toFixed(2)} dB`);
        assert.ok(after > before + 1, `SQNR ${before.toFixed(2)} → ${after.toFixed(2)} dB`);

        // At the plan level: the transform of the re-rounded plan keeps every scale, and stores
        // exactly the chosen integers — the adjusted weight over its scale where the refinement
        // changed a weight (one step from nearest rounding), nearest rounding everywhere else.
        const model = OnnxModel.load(file);
        try {
          const config: QuantConfig = { ...DEFAULT_CONFIG, activationType: 'uint16', adaround: true };
          const calib = smoothImages(12, 1, [1, 8, 12, 12]);
          const plan = await prepareStatic(model, config, calib);
          const stats = await calibrateStatic(model, plan, config, calib);
          const ranges = activationRanges(stats.stats, config);
          const readWeight = weightReader(model);
          const ar = await learnedRounding(plan, { model, config, ranges, readWeight, calib }, { seconds: 30 });
          const q0 = transformStatic(plan, config, ranges, readWeight).model;
          const q1 = transformStatic(ar.plan, config, ranges, readWeight).model;
          let changed = 0;
          for (const layer of ['conv1', 'conv2', 'fc']) {
            const weightOf = (m: ModelProto) => initializerByName(m, m.graph!.node.find((n) => n.name === layer)!.input[1]!);
            const orig = readWeight(weightOf(plan.proto));
            const adjusted = readWeight(weightOf(ar.plan.proto));
            const stored = (m: ModelProto) => {
              const dq = m.graph!.node.find((n) => n.output[0] === m.graph!.node.find((x) => x.name === layer)!.input[1])!;
              return { q: tensorToFloat32(initializerByName(m, dq.input[0]!)), s: tensorToFloat32(initializerByName(m, dq.input[1]!)) };
            };
            const a = stored(q0);
            const b = stored(q1);
            assert.deepEqual(Array.from(b.s), Array.from(a.s), `${layer}: scales`);
            const perChannel = a.s.length;
            // Conv [C, …] and Gemm with transB [N, K]: a channel's weights are contiguous.
            const channelOf = (i: number) => Math.floor(i / (orig.length / perChannel));
            // A re-rounded layer's weights are all written as integer × scale (so the transform reads
            // back exactly the chosen integers); a layer left alone keeps its float weights.
            const rerounded = adjusted.some((v, i) => v !== orig[i]);
            for (let i = 0; i < orig.length; i++) {
              const sc = a.s[channelOf(i)]!;
              if (rerounded) assert.equal(Math.fround(b.q[i]! * sc), adjusted[i], `${layer}[${i}]: stored ${b.q[i]} × ${sc} is the adjusted weight`);
              if (b.q[i] !== a.q[i]) {
                changed++;
                assert.equal(Math.abs(b.q[i]! - a.q[i]!), 1, `${layer}[${i}]: one step from nearest`);
              }
            }
          }
          assert.ok(changed > 0);
        } finally {
          model.close();
        }
      } finally {
        cleanup();
      }
    });

    it('cancels cleanly while rounding', async () => {
      const { dir, cleanup } = tempDir();
      try {
        const file = path.join(dir, 'm.onnx');
        buildModel(file);
        const ac = new AbortController();
        const sessions = liveSessionCount();
        await assert.rejects(
          run(dir, file, { adaround: true }, 'cancelled', ac.signal, (m) => {
            if (m.startsWith('learned rounding ')) ac.abort();
          }),
          (e: Error) => e.name === 'AbortError',
        );
        assert.equal(liveSessionCount(), sessions);
        assert.ok(!fs.existsSync(path.join(dir, 'cancelled.onnx')));
      } finally {
        cleanup();
      }
    });
  });
});

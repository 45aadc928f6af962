/**
 * Sensitivity: local SQNR against a double-precision simulation of the quantized layer; global
 * sensitivity against the quantize pipeline itself; worker counts giving the same numbers;
 * cancellation; and the ranking test of the issue — keeping the top-k sensitive layers in float
 * gives a better whole-model SQNR than keeping k random layers in float.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { analyzeModel } from '../../src/analysis/analyze';
import type { AnalysisReport } from '../../src/analysis/report';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { syntheticSource } from '../../src/runtime/data';
import { quantizeModel } from '../../src/runtime/quantize-model';
import type { Sample, SampleSource } from '../../src/runtime/samples';
import { tempDir } from '../helpers/ort';

/**
 * Eight 3×3 convolutions with ReLU and a 1×1 head. Three layers get one weight per output channel
 * scaled up (×40, ×25, ×10): int8 then spends its steps on those weights, so these layers cost the
 * most — but the model's behaviour decides which ones really matter.
 */
function buildChain(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 5 });
  let x = b.input('x', DataType.FLOAT, [1, 8, 16, 16]);
  const outlier: Record<number, number> = { 2: 40, 5: 25, 6: 10 };
  for (let i = 0; i < 8; i++) {
    x = b.relu(b.conv(x, 8, 8, 3, { name: `conv${i}` }));
    const k = outlier[i];
    if (k) {
      const node = b.graph.node.find((n) => n.name === `conv${i}`)!;
      const w = b.graph.initializer.find((t) => t.name === node.input[1])!;
      const v = new Float32Array(new Uint8Array(w.rawData!).buffer);
      for (let c = 0; c < 8; c++) v[c * 72 + (c % 9)] = v[c * 72 + (c % 9)]! * k;
      w.rawData = new Uint8Array(v.buffer);
    }
  }
  b.output(b.conv(x, 8, 4, 1, { name: 'head', pad: 0 }), DataType.FLOAT, [1, 4, 16, 16]);
  saveModel(b.build(), file);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

describe('sensitivity', () => {
  const tmp = tempDir();
  const file = path.join(tmp.dir, 'chain.onnx');
  let calib: SampleSource;
  let evalSource: SampleSource;
  let report: AnalysisReport;

  before(async () => {
    buildChain(file);
    const m = OnnxModel.load(file);
    calib = syntheticSource(m, { count: 8, seed: 1 });
    evalSource = syntheticSource(m, { count: 4, seed: 2 });
    report = await analyzeModel({ model: file, calib, eval: evalSource, sensitivity: 'global', workers: 2, suggest: false });
  });
  after(() => tmp.cleanup());

  /**
   * Whole-model SQNR of the quantize pipeline with `floatLayers` kept in float. Sensitivity ranks
   * layers at nearest rounding (learned rounding would re-round every candidate model): the
   * pipeline is compared with it off, and without quantize's model-dependent 16-bit defaults
   * (analysis measures the settings as given).
   */
  const sqnrWith = async (floatLayers: string[]): Promise<number> => {
    const r = await quantizeModel({ input: file, output: path.join(tmp.dir, 'q.onnx'), config: { ...DEFAULT_CONFIG, adaround: false, activationTypeAuto: false, exclude: floatLayers }, calib, eval: evalSource, evalNote: 'test', latencyRuns: 0 });
    return Math.min(...r.eval.outputs.map((o) => o.sqnrDb));
  };

  it('global: the all-quantized and leave-one-out models measure what the quantize pipeline gives', async () => {
    assert.ok(Math.abs(report.global!.allQuantizedSqnrDb - (await sqnrWith([]))) < 0.01);
    const top = report.layers.find((l) => l.sensitivity.rank === 1)!;
    assert.ok(Math.abs(top.sensitivity.leaveOneOutSqnrDb! - (await sqnrWith([top.name]))) < 0.01);
    // The reported layer SQNR is the noise keeping it in float removes: all-quantized minus leave-one-out.
    const all = 10 ** (-report.global!.allQuantizedSqnrDb / 10);
    const loo = 10 ** (-top.sensitivity.leaveOneOutSqnrDb! / 10);
    assert.ok(Math.abs(top.sensitivity.globalSqnrDb! - -10 * Math.log10(all - loo)) < 0.05);
  });

  it('ranking predicts reality: top-k layers in float beat k random layers in float (k = 1, 2, 3; local and global)', async () => {
    const names = report.layers.map((l) => l.name);
    const rank = (key: 'localSqnrDb' | 'globalSqnrDb') =>
      [...report.layers].sort((a, b) => (a.sensitivity[key] ?? Infinity) - (b.sensitivity[key] ?? Infinity)).map((l) => l.name);
    const rng = new Rng(9);
    for (const k of [1, 2, 3]) {
      const random: number[] = [];
      for (let t = 0; t < 8; t++) {
        const pool = [...names];
        const pick: string[] = [];
        for (let i = 0; i < k; i++) pick.push(pool.splice(Math.floor(rng.next() * pool.length), 1)[0]!);
        random.push(await sqnrWith(pick));
      }
      const sorted = [...random].sort((a, b) => a - b);
      for (const key of ['localSqnrDb', 'globalSqnrDb'] as const) {
        const top = await sqnrWith(rank(key).slice(0, k));
        assert.ok(top > mean(random), `k=${k} ${key}: top-k ${top.toFixed(2)} dB vs random mean ${mean(random).toFixed(2)} dB`);
        assert.ok(top >= sorted[Math.floor(sorted.length / 2)]!, `k=${k} ${key}: top-k ${top.toFixed(2)} dB below the random median`);
      }
    }
  });

  it('1 and 2 workers give the same numbers', async () => {
    const one = await analyzeModel({ model: file, calib, eval: evalSource, sensitivity: 'global', workers: 1, suggest: false });
    for (const [i, l] of one.layers.entries()) assert.equal(l.sensitivity.globalSqnrDb, report.layers[i]!.sensitivity.globalSqnrDb, l.name);
    assert.equal(one.global!.workers, 1);
    assert.equal(report.global!.workers, 2);
  });

  it('cancellation: aborting during global sensitivity rejects with an AbortError', async () => {
    const controller = new AbortController();
    let layers = 0;
    await assert.rejects(
      analyzeModel({
        model: file,
        calib,
        eval: evalSource,
        sensitivity: 'global',
        workers: 2,
        suggest: false,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.event === 'layer' && e.phase === 'global' && ++layers === 1) controller.abort();
        },
      }),
      (err: Error) => err.name === 'AbortError',
    );
    assert.equal(layers, 1);
  });
});

describe('local sensitivity against a double-precision simulation', () => {
  it('Gemm: input uint8 (asymmetric, calibrated range), weights int8 per channel, bias int32', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder({ opset: 17, seed: 12 });
      const x = b.input('x', DataType.FLOAT, [4, 24]);
      const y = b.gemm(x, 24, 6, { name: 'fc' });
      b.output(y, DataType.FLOAT, [4, 6]);
      const proto = b.build();
      const file = path.join(dir, 'fc.onnx');
      saveModel(proto, file);
      const rng = new Rng(3);
      const samples: Sample[] = Array.from({ length: 5 }, () => ({ x: new ort.Tensor('float32', Float32Array.from({ length: 96 }, () => rng.normal() * 2 + 0.5), [4, 24]) }));
      const source: SampleSource = {
        count: samples.length,
        synthetic: false,
        description: 'test samples',
        async *samples() {
          yield* samples;
        },
      };
      const r = await analyzeModel({ model: file, calib: source, sensitivity: 'local', suggest: false });
      const got = r.layers[0]!.sensitivity.local.int8!;

      // The reference: everything in doubles from the definitions.
      const g = proto.graph!;
      const W = new Float32Array(new Uint8Array(g.initializer[0]!.rawData!).slice().buffer); // [6, 24], transB
      const B = new Float32Array(new Uint8Array(g.initializer[1]!.rawData!).slice().buffer);
      let lo = 0;
      let hi = 0;
      for (const s of samples) for (const v of s.x!.data as Float32Array) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
      const rne = (v: number) => {
        const q = Math.round(v);
        return q - v === 0.5 && q % 2 !== 0 ? q - 1 : q;
      };
      const sIn = Math.fround((hi - lo) / 255);
      const zIn = Math.min(255, Math.max(0, rne(-lo / sIn)));
      const sW = Array.from({ length: 6 }, (_, n) => {
        let m = 0;
        for (let k = 0; k < 24; k++) m = Math.max(m, Math.abs(W[n * 24 + k]!));
        return Math.fround(m / 127);
      });
      let refSq = 0;
      let errSq = 0;
      for (const s of samples) {
        const xs = s.x!.data as Float32Array;
        for (let i = 0; i < 4; i++) {
          for (let n = 0; n < 6; n++) {
            let f = B[n]!;
            let q = Math.max(-2147483648, Math.min(2147483647, rne(B[n]! / Math.fround(sIn * sW[n]!)))) * Math.fround(sIn * sW[n]!);
            for (let k = 0; k < 24; k++) {
              const v = xs[i * 24 + k]!;
              const w = W[n * 24 + k]!;
              f += v * w;
              const vq = (Math.min(255, Math.max(0, rne(v / sIn) + zIn)) - zIn) * sIn;
              const wq = Math.min(127, Math.max(-128, rne(w / sW[n]!))) * sW[n]!;
              q += vq * wq;
            }
            refSq += f * f;
            errSq += (f - q) ** 2;
          }
        }
      }
      const want = 10 * Math.log10(refSq / errSq);
      assert.ok(Math.abs(got - want) < 0.05, `local int8 SQNR ${got} vs simulated ${want}`);
      // 16-bit activations: at least as good; int4 weight-only applies to Gemm.
      assert.ok(r.layers[0]!.sensitivity.local.int16! >= got);
      assert.ok(r.layers[0]!.sensitivity.local.int4! < got);
    } finally {
      cleanup();
    }
  });
});

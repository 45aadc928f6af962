/**
 * Activation statistics against values computed directly from the samples in double precision:
 * exact min/max, percentiles within one calibration-histogram bin of the inverse empirical CDF,
 * histogram totals, tail shares, dead channels and observed shapes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { analyzeModel } from '../../src/analysis/analyze';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { saveModel } from '../../src/onnx/save';
import type { Sample, SampleSource } from '../../src/runtime/samples';
import { tempDir } from '../helpers/ort';

/** The smallest value with at least p% of the values at or below it (numpy's method 'inverted_cdf'). */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((sorted.length * p) / 100) - 1)]!;
}

describe('activation statistics', () => {
  it('a layer input computed in JS from the samples: min/max, percentiles, histogram, tails; dead output channels', async () => {
    const { dir, cleanup } = tempDir();
    try {
      // y = Conv(x · s + t): s and t per channel, so the input distribution is known exactly.
      const b = new ModelBuilder({ opset: 17, seed: 8 });
      const x = b.input('x', DataType.FLOAT, [1, 4, 20, 20]);
      const s = Float32Array.from([1, 3, 0.5, 2]);
      const t = Float32Array.from([0, 1, -2, 0.25]);
      const scaled = b.node('Mul', [x, b.initializer('s', DataType.FLOAT, [1, 4, 1, 1], s)]);
      const shifted = b.node('Add', [scaled, b.initializer('t', DataType.FLOAT, [1, 4, 1, 1], t)], {}, { name: 'shift', outputs: ['layer_in'] });
      const w = new Rng(2).normals(6 * 4 * 9, 0.3);
      w.fill(0, 3 * 36, 4 * 36); // output channel 3: zero weights and bias → dead
      const bias = Float32Array.from([0.1, -0.1, 0.2, 0, 0.05, 0.3]);
      const y = b.node('Conv', [shifted, b.initializer('w', DataType.FLOAT, [6, 4, 3, 3], w), b.initializer('bias', DataType.FLOAT, [6], bias)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { name: 'conv' });
      b.output(y, DataType.FLOAT, [1, 6, 20, 20]);
      const file = path.join(dir, 'act.onnx');
      saveModel(b.build(), file);

      const rng = new Rng(5);
      const samples: Sample[] = Array.from({ length: 6 }, () => ({ x: new ort.Tensor('float32', rng.normals(1600), [1, 4, 20, 20]) }));
      const source: SampleSource = { count: samples.length, synthetic: false, description: 'test', async *samples() { yield* samples; } };
      const r = await analyzeModel({ model: file, calib: source, sensitivity: 'none' });
      const a = r.layers[0]!.activation!.input!;
      assert.equal(a.tensor, 'layer_in');
      assert.deepEqual(a.dims, [1, 4, 20, 20]);

      const values: number[] = [];
      for (const smp of samples) {
        const d = smp.x!.data as Float32Array;
        for (let i = 0; i < d.length; i++) {
          const c = Math.floor(i / 400);
          values.push(Math.fround(Math.fround(d[i]! * s[c]!) + t[c]!));
        }
      }
      const sorted = [...values].sort((p, q) => p - q);
      assert.equal(a.min, sorted[0]);
      assert.equal(a.max, sorted[sorted.length - 1]);
      const bin = (a.max - a.min) / 2048 + 1e-12;
      for (const p of [0.01, 1, 50, 99, 99.99]) {
        const want = percentile(sorted, p);
        assert.ok(Math.abs(a.percentiles[`p${p}`]! - want) <= bin, `p${p}: ${a.percentiles[`p${p}`]} vs ${want} (bin ${bin})`);
      }
      assert.equal(a.histogram.counts.length, 64);
      assert.equal(a.histogram.counts.reduce((p, c) => p + c, 0), values.length);
      const lo = a.percentiles['p0.01']!;
      const hi = a.percentiles['p99.99']!;
      const outside = values.filter((v) => v < lo || v > hi).length / values.length;
      assert.ok(Math.abs(a.beyondP9999.valueShare - outside) < 2e-3, `${a.beyondP9999.valueShare} vs ${outside}`);
      assert.ok(Math.abs(a.beyondP9999.rangeShare - (1 - (hi - lo) / (a.max - a.min))) < 1e-12);

      const out = r.layers[0]!.activation!.output!;
      assert.deepEqual(out.deadChannels, [3]);
      assert.equal(out.channels, 6);
      assert.equal(out.channelAxis, 1);
      assert.equal(r.layers[0]!.macs, 6 * 400 * 4 * 9, 'MACs: output elements × C·kH·kW');
      assert.equal(a.channels, 4);
      assert.deepEqual(a.deadChannels, []);
    } finally {
      cleanup();
    }
  });
});

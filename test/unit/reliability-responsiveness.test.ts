/**
 * The event loop stays responsive while a 40 MB model is analysed in this process (the extension
 * host's situation): no stall of 100 ms or more, measured with perf_hooks.monitorEventLoopDelay and
 * a 5 ms setInterval drift probe (bench/responsiveness.ts measures the 176 MB model).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { analyzeModel } from '../../src/analysis/analyze';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { syntheticSource } from '../../src/runtime/data';
import { tempDir } from '../helpers/ort';

const MAX_STALL_MS = 100;

/** Longest event-loop stall (ms) and p99 delay while `work` runs. */
async function stalls(work: () => Promise<unknown>): Promise<{ maxMs: number; p99Ms: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  let last = performance.now();
  let maxGap = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last - 5);
    last = now;
  }, 5);
  h.enable();
  try {
    await work();
  } finally {
    await new Promise((r) => setTimeout(r, 15));
    h.disable();
    clearInterval(probe);
  }
  return { maxMs: Math.max(maxGap, h.max / 1e6 - 10), p99Ms: h.percentile(99) / 1e6 - 10 };
}

/** About 40 MB: a stem and four 512-channel 3×3 convolutions, on 8×8 inputs. */
function buildModel(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 11 });
  let x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  x = b.relu(b.conv(x, 3, 512, 3));
  for (let i = 0; i < 4; i++) x = b.relu(b.conv(x, 512, 512, 3));
  x = b.node('Flatten', [b.node('GlobalAveragePool', [x])]);
  b.output(b.gemm(x, 512, 1000), DataType.FLOAT, [1, 1000]);
  saveModel(b.build(), file);
}

describe('event loop during analysis', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;

  before(() => {
    ({ dir, cleanup } = tempDir());
    file = path.join(dir, 'cnn-40mb.onnx');
    buildModel(file);
    assert.ok(fs.statSync(file).size > 35e6);
  });
  after(() => cleanup());

  it('weights-only analysis of a 40 MB model never stalls it for 100 ms', { timeout: 120_000 }, async () => {
    await analyzeModel({ model: file, sensitivity: 'none' }); // warm-up: the kernels compile
    const s = await stalls(() => analyzeModel({ model: file, sensitivity: 'none' }));
    console.log(`weights-only analysis of 40 MB: longest stall ${s.maxMs.toFixed(1)} ms, p99 ${s.p99Ms.toFixed(1)} ms`);
    assert.ok(s.maxMs < MAX_STALL_MS, `longest stall ${s.maxMs.toFixed(0)} ms`);
  });

  it(
    'analysis with calibration and local sensitivity never stalls it for 100 ms',
    {
      timeout: 120_000,
      todo: 'onnxruntime-node 1.30 creates sessions and runs them synchronously on the calling thread (≈300 ms to create a 40 MB model’s session): the analysis has to run in a worker thread',
    },
    async () => {
      const model = OnnxModel.load(file);
      const calib = syntheticSource(model, { count: 2, seed: 1 });
      model.close();
      const s = await stalls(() => analyzeModel({ model: file, calib, sensitivity: 'local', suggest: false }));
      console.log(`calibrated analysis of 40 MB: longest stall ${s.maxMs.toFixed(1)} ms, p99 ${s.p99Ms.toFixed(1)} ms`);
      assert.ok(s.maxMs < MAX_STALL_MS, `longest stall ${s.maxMs.toFixed(0)} ms`);
    },
  );
});

/**
 * Event-loop responsiveness during analysis (issue "reliability"): run on the extension host's own
 * event loop, every synchronous stretch of `analyzeModel` freezes the UI, so the extension runs it
 * in the job worker (src/runtime/worker); both are measured here. Measured with
 * perf_hooks.monitorEventLoopDelay (10 ms resolution) and a 5 ms setInterval drift probe; the
 * figure is the longest stall either saw, and the p99 of the delay histogram. Target: < 100 ms.
 *
 * - weights only: the 176 MB CNN of bench/inspect.ts read from its path (what analysis does with
 *   no data: read, decode, weight statistics, findings);
 * - with activations: the same 176 MB of weights on 8×8 inputs (so inference is affordable) with
 *   synthetic calibration and local sensitivity, as the extension's Analyze Model command runs it;
 *   onnxruntime-node's own session creation, which runs synchronously on the calling thread, is
 *   timed alone for comparison.
 * Each case runs in this process, then through runJobInWorker (the bundle dist/job-worker.js when
 * built), this thread only receiving the progress events and the report, as the extension host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { analyzeModel } from '../src/analysis/analyze';
import { ModelBuilder } from '../src/onnx/builder';
import { DataType } from '../src/onnx/dtypes';
import { OnnxModel } from '../src/onnx/model';
import { saveModel } from '../src/onnx/save';
import { syntheticSource } from '../src/runtime/data';
import { runJobInWorker } from '../src/runtime/worker/job-host';
import type { Job } from '../src/runtime/worker/job-protocol';
import { DATA, mb } from './lib';
import { bigCnn } from './models';

export interface Stalls {
  /** Longest time the event loop could not run a timer, ms. */
  maxMs: number;
  /** 99th percentile of the event-loop delay, ms. */
  p99Ms: number;
  seconds: number;
}

/** Runs `work` while probing the event loop; the probe keeps going until the work has settled. */
export async function measureStalls(work: () => Promise<unknown>): Promise<Stalls> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  let last = performance.now();
  let maxGap = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last - 5);
    last = now;
  }, 5);
  h.enable();
  const t0 = performance.now();
  try {
    await work();
  } finally {
    // One more turn so that a stall just before the end is seen too.
    await new Promise((r) => setTimeout(r, 15));
    h.disable();
    clearInterval(probe);
  }
  return { maxMs: Math.max(maxGap, h.max / 1e6 - 10), p99Ms: h.percentile(99) / 1e6 - 10, seconds: (performance.now() - t0) / 1000 };
}

/** The layers of bench/models.ts's 176 MB CNN on small inputs: the same weights, cheap inference. */
function bigCnnSmallInput(file: string): string {
  if (fs.existsSync(file)) return file;
  const b = new ModelBuilder({ opset: 17, seed: 11 });
  let x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  x = b.relu(b.conv(x, 3, 512, 3));
  for (let i = 0; i < 18; i++) x = b.relu(b.conv(x, 512, 512, 3));
  x = b.node('Flatten', [b.node('GlobalAveragePool', [x])]);
  x = b.relu(b.gemm(x, 512, 1000));
  b.output(b.gemm(x, 1000, 1000), DataType.FLOAT, [1, 1000]);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveModel(b.build(), file);
  return file;
}

const fmt = (s: Stalls) => `longest stall ${s.maxMs.toFixed(0)} ms, p99 ${s.p99Ms.toFixed(0)} ms over ${s.seconds.toFixed(1)} s ${s.maxMs < 100 ? '✓' : '✗'}`;

/** The job worker the extension starts: the bundle when built, else the TypeScript entry through tsx. */
function workerScript(): string {
  const bundle = path.join(__dirname, '..', 'dist', 'job-worker.js');
  return fs.existsSync(bundle) ? bundle : path.join(__dirname, '..', 'src', 'runtime', 'worker', 'job-worker.ts');
}

/** The analysis as the extension runs it: in the job worker, this thread only receiving events. */
function inWorker(job: Job): () => Promise<unknown> {
  return () => runJobInWorker(job, { workerScript: workerScript() });
}

export async function benchResponsiveness(): Promise<string[]> {
  const lines = ['event loop during analysis (extension host situation; target: no stall ≥ 100 ms):'];
  const cnn = bigCnn(path.join(DATA, 'cnn-176mb.onnx'));
  const weights = await measureStalls(() => analyzeModel({ model: cnn, sensitivity: 'none' }));
  const weightsWorker = await measureStalls(inWorker({ kind: 'analyze', input: cnn, settings: {}, sensitivity: 'none', suggest: false, weightsOnly: true }));
  lines.push(`  176 MB CNN, weights only (${mb(fs.statSync(cnn).size)} file)`);
  lines.push(`    in-process:    ${fmt(weights)}`);
  lines.push(`    in the worker: ${fmt(weightsWorker)}`);

  const small = bigCnnSmallInput(path.join(DATA, 'cnn-176mb-8px.onnx'));
  const model = OnnxModel.load(small);
  const calib = syntheticSource(model, { count: 4, seed: 1 });
  const full = await measureStalls(() => analyzeModel({ model: small, calib, sensitivity: 'local', suggest: false }));
  model.close();
  const fullWorker = await measureStalls(inWorker({ kind: 'analyze', input: small, settings: { samples: 4 }, sensitivity: 'local', suggest: false }));
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(small, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const createMs = performance.now() - t0;
  await session.release();
  lines.push('  same weights on 8×8 inputs, synthetic calibration + local sensitivity');
  lines.push(`    in-process:    ${fmt(full)}`);
  lines.push(`    in the worker: ${fmt(fullWorker)} (what Analyze Model and the analysis commands do)`);
  lines.push(`    (onnxruntime-node creates a session of this model synchronously on the calling thread: ${createMs.toFixed(0)} ms alone)`);
  return lines;
}

if (require.main === module) {
  void benchResponsiveness().then((lines) => {
    for (const l of lines) console.log(l);
  });
}

/**
 * Benchmarks of `onnx-quant analyze` (issue "analyze"), each against a baseline measured in the
 * same run:
 * - weight statistics throughput on float32 weights (GB/s, one core) vs a straightforward
 *   reference computing the same statistics with the src/quant building blocks;
 * - peak RSS of the weight analysis of the 176 MB CNN of bench/inspect.ts, relative to its file
 *   size and to a plain fs.readFileSync of it (fresh process each, median of three);
 * - global sensitivity of a ResNet-style network with 1 and 2 worker threads: the speed-up.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analyzeModel } from '../src/analysis/analyze';
import { allocateHeap } from '../src/analysis/weight-kernels';
import { weightLayout, weightStats, weightStatsOfBytes } from '../src/analysis/weight-stats';
import { Rng } from '../src/onnx/builder';
import { OnnxModel } from '../src/onnx/model';
import { DEFAULT_CONFIG } from '../src/quant/config';
import { sqnrDb } from '../src/quant/metrics';
import { computePerChannelQParams, computeQParams } from '../src/quant/params';
import { channelMinMax, computeBlockwiseQParams, dequantize, dequantizeBlockwise, dequantizePerChannel, quantizeBlockwise, quantizePerChannel, quantizeTensor } from '../src/quant/quantize';
import { syntheticSource } from '../src/runtime/data';
import { DATA, isChild, mb, median, peakRssBytes, runChild } from './lib';
import { bigCnn, resnet } from './models';

const CNN = path.join(DATA, 'cnn-176mb.onnx');

/** A ResNet-style network at 96×96 for the worker benchmark: 13 Conv layers and a Gemm. */
function resnetSmall(file = path.join(DATA, 'analysis-resnet-small.onnx')): string {
  return resnet(file, { seed: 23, size: 96, stem: { channels: 32, kernel: 3, stride: 2, pool: false }, stages: [[32, 1], [64, 2], [128, 2]], classes: 100 });
}

/**
 * The straightforward way: the same statistics from the src/quant functions and plain loops —
 * min/max and per-channel ranges, mean/std, a histogram, the 99.9th percentile of |w| by sorting,
 * and each SQNR by quantizing, dequantizing and comparing whole tensors.
 */
export function referenceWeightStats(x: Float32Array, dims: number[], cAxis: number, kAxis: number): Record<string, number> {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
  }
  const { mins, maxs } = channelMinMax(x, dims, cAxis);
  const hist = new Float64Array(128);
  for (let i = 0; i < x.length; i++) hist[Math.min(127, Math.floor(((x[i]! - min) / (max - min)) * 128))]!++;
  const abs = Float64Array.from(x, Math.abs).sort();
  const h = (abs.length - 1) * 0.999;
  const p999 = abs[Math.floor(h)]! + (h - Math.floor(h)) * (abs[Math.min(abs.length - 1, Math.floor(h) + 1)]! - abs[Math.floor(h)]!);
  const pt = computeQParams(min, max, 'int8', { symmetric: true });
  const t = sqnrDb(x, dequantize(quantizeTensor(x, pt), pt));
  const pc = computePerChannelQParams(mins, maxs, 'int8', cAxis, { symmetric: true });
  const c = sqnrDb(x, dequantizePerChannel(quantizePerChannel(x, dims, pc), dims, pc));
  const pb = computeBlockwiseQParams(x, dims, kAxis, 32, 'int4', { symmetric: true });
  const b = sqnrDb(x, dequantizeBlockwise(quantizeBlockwise(x, dims, pb), dims, pb));
  return { min, max, mean: sum / x.length, std: Math.sqrt(sumSq / x.length - (sum / x.length) ** 2), p999, t, c, b, bins: hist.length };
}

export function throughput(): string[] {
  const cases: { name: string; dims: number[]; opType: string; cAxis: number; kAxis: number }[] = [
    { name: 'Conv [512, 512, 3, 3]', dims: [512, 512, 3, 3], opType: 'Conv', cAxis: 0, kAxis: 1 },
    { name: 'MatMul [1024, 4096]', dims: [1024, 4096], opType: 'MatMul', cAxis: 1, kAxis: 0 },
  ];
  const lines = [
    'weight statistics, one core (histogram, per-channel ranges, p99.9 |w|, int8 / int8 per-channel / int4 SQNR);',
    '  in place = tensor bytes in the kernels\' memory, as analyze loads a model; array = a Float32Array copied in by chunks:',
  ];
  const gbs = (n: number, ms: number) => ((n * 4) / ms / 1e6).toFixed(2);
  for (const c of cases) {
    const n = c.dims.reduce((a, b) => a * b, 1);
    const x = new Rng(5).normals(n, 0.02);
    const layout = weightLayout(c.opType, c.dims);
    const heap = allocateHeap(n * 4 + 8, 16 << 20)!;
    heap.bytes.set(new Uint8Array(x.buffer), 0);
    const inPlace = heap.bytes.subarray(0, n * 4);
    // Conv weights flatten to [M, K] for the reference's blocks along K.
    const refDims = c.opType === 'Conv' ? [c.dims[0]!, n / c.dims[0]!] : c.dims;
    // Wall time, and CPU time (this process's): on a busy machine the wall clock also counts the
    // time other processes hold the core, CPU time only ours — GB per CPU-second is per core.
    const time = (f: () => unknown, runs: number) => {
      const t: number[] = [];
      const cpu: number[] = [];
      for (let r = 0; r < runs; r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        f();
        t.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
      }
      return { median: median(t), best: Math.min(...t), cpu: median(cpu) };
    };
    time(() => weightStatsOfBytes(inPlace, layout), 3); // warm-up: the kernels tier up
    const fast = time(() => weightStatsOfBytes(inPlace, layout), 15);
    time(() => weightStats(x, layout), 3); // warm-up: the kernels' own memory grows on the first call
    const arr = time(() => weightStats(x, layout), 9);
    const ref = time(() => referenceWeightStats(x, refDims, c.cAxis, c.kAxis), 3);
    const s = weightStatsOfBytes(inPlace, layout);
    const q = referenceWeightStats(x, refDims, c.cAxis, c.kAxis);
    if (Math.abs(q.c! - s.sqnrDb.int8PerChannel) > 0.01 || Math.abs(q.b! - s.sqnrDb.int4) > 0.01) lines.push(`  WARNING: ${c.name}: reference SQNR ${q.c}/${q.b} vs ${s.sqnrDb.int8PerChannel}/${s.sqnrDb.int4}`);
    lines.push(
      `  ${c.name} (${mb(n * 4)}): in place ${gbs(n, fast.median)} GB/s (median wall; ${gbs(n, fast.cpu)} per CPU-second, best ${gbs(n, fast.best)}); from an array ${gbs(n, arr.median)}; reference ${gbs(n, ref.median)} → ${(ref.median / fast.median).toFixed(0)}× faster (target ≥ 1 GB/s)`,
    );
  }
  return lines;
}

interface ChildMeasure {
  ms: number;
  maxRssBytes: number;
  detail: string;
}

function childMain(mode: string, file: string): void {
  const t0 = performance.now();
  let detail = '';
  const done = () => {
    const ms = performance.now() - t0;
    process.stdout.write(JSON.stringify({ ms, maxRssBytes: peakRssBytes(), detail }) + '\n');
  };
  if (mode === 'read') {
    detail = `${fs.readFileSync(file).length} bytes`;
    done();
    return;
  }
  void analyzeModel({ model: file, sensitivity: 'none' }).then((r) => {
    detail = `${r.layers.length} layers, ${r.layers.reduce((a, l) => a + (l.weight?.elements ?? 0), 0)} weights`;
    done();
  });
}

export function memory(): string[] {
  const file = bigCnn(CNN); // the 176 MB CNN of bench/inspect.ts, built if that benchmark has not made it yet
  const size = fs.statSync(file).size;
  const med = (mode: string): ChildMeasure => {
    const runs = [0, 1, 2].map(() => runChild<ChildMeasure>(__filename, [mode, file]));
    return { ms: median(runs.map((r) => r.ms)), maxRssBytes: median(runs.map((r) => r.maxRssBytes)), detail: runs[0]!.detail };
  };
  const read = med('read');
  const weights = med('weights');
  return [
    `weight analysis of a ${mb(size)} float32 CNN (${weights.detail}), fresh process each, median of 3:`,
    `  fs.readFileSync   ${read.ms.toFixed(0)} ms, peak RSS ${mb(read.maxRssBytes)}`,
    `  analyze (weights) ${weights.ms.toFixed(0)} ms = ${((size / weights.ms) * 1e-6).toFixed(2)} GB/s end to end, peak RSS ${mb(weights.maxRssBytes)} = ${(weights.maxRssBytes / size).toFixed(2)}× file size (target < 1.5×), ${(weights.maxRssBytes / read.maxRssBytes).toFixed(2)}× readFileSync's`,
  ];
}

export async function workers(): Promise<string[]> {
  const file = resnetSmall();
  const model = OnnxModel.load(file);
  const calib = syntheticSource(model, { count: 4, seed: 1 });
  const evalSource = syntheticSource(model, { count: 8, seed: 2 });
  model.close();
  // The global phase's wall time (from the report) and the CPU time of the whole process over the
  // analysis (workers included): how many cores' worth the phase could use on this machine.
  const run = async (w: number) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await analyzeModel({ model: file, config: { ...DEFAULT_CONFIG }, calib, eval: evalSource, sensitivity: 'global', suggest: false, workers: w, globalSamples: 8 });
    const c = process.cpuUsage(c0);
    return { seconds: r.global!.seconds, layers: r.layers.length, cores: (c.user + c.system) / 1000 / (performance.now() - t0) };
  };
  const one: { seconds: number; cores: number }[] = [];
  const two: { seconds: number; cores: number }[] = [];
  let layers = 0;
  for (let i = 0; i < 3; i++) {
    one.push(await run(1));
    const r = await run(2);
    two.push(r);
    layers = r.layers;
  }
  const best = (xs: { seconds: number; cores: number }[]) => xs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const a = best(one);
  const b = best(two);
  return [
    `global sensitivity of a small ResNet-style network (${layers} layers + the all-int8 model, 8 samples, one session per model, intra-op threads 1):`,
    `  1 worker ${a.seconds.toFixed(2)} s, 2 workers ${b.seconds.toFixed(2)} s: speed-up ${(a.seconds / b.seconds).toFixed(2)}× (best of 3 each; cores used over the whole analysis: ${a.cores.toFixed(2)} vs ${b.cores.toFixed(2)}, load average ${os.loadavg()[0]!.toFixed(1)})`,
  ];
}

export async function benchAnalysis(): Promise<string[]> {
  const load = os.loadavg()[0]!.toFixed(1);
  return [`(load average ${load} on ${os.availableParallelism()} cores at start)`, ...throughput(), '', ...memory(), '', ...(await workers())];
}

if (isChild()) {
  childMain(process.argv[3]!, process.argv[4]!);
} else if (require.main === module) {
  void benchAnalysis().then((lines) => {
    for (const l of lines) console.log(l);
  });
}

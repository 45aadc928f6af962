/**
 * Benchmarks of the PTQ engine (issue "PTQ engine"), each against a baseline measured in the same run:
 * - calibration cost per sample vs one float inference of that sample (every method);
 * - peak memory of histogram calibration with 128 vs 32 samples (fresh process each);
 * - static int8 of a ResNet-style Conv network: file size and median latency vs float.
 * The network is ResNet-18-style at the usual 224×224; the calibration cost is also measured at
 * 112×112, where one inference takes ~2 ms and calibration's fixed per-tensor costs weigh more.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../src/onnx/model';
import { DEFAULT_CONFIG, type CalibrationMethod, type QuantConfig } from '../src/quant/config';
import { calibrate } from '../src/runtime/calibrate';
import { syntheticSource } from '../src/runtime/data';
import { calibrationTensors, quantizeModel } from '../src/runtime/quantize-model';
import type { Sample, SampleSource } from '../src/runtime/samples';
import { calibrationMsPerSample, DATA, inferenceMsPerSample, isChild, mb, median, peakRssBytes, runChild } from './lib';
import { resnet } from './models';

const RESNET = path.join(DATA, 'resnet-ish-224.onnx');
const RESNET_112 = path.join(DATA, 'resnet-ish.onnx');

/** A ResNet-18-style network: 7×7 stem and max pool, 3 stages of residual 3×3 blocks; 224×224 input unless told. */
export function buildResnetIsh(file = RESNET, size = 224): string {
  return resnet(file, { seed: 21, size, stem: { channels: 64, kernel: 7, stride: 2, pool: true }, stages: [[64, 1], [128, 2], [256, 2]], classes: 1000 });
}

/**
 * Seconds per sample: plain inference vs calibration, same samples, same thread count. The samples
 * are generated once, before either is timed: producing a synthetic sample (about 40 ns per input
 * value for N(0,1)) is data loading, which the inference baseline does not include either; with
 * `includeLoading` calibration reads from the generator as it goes (the older figure).
 *
 * `rounds` alternates an inference pass and a calibration pass over the samples that many times
 * and reports the round with the median ratio: with other jobs on the 2 cores, load shifts between
 * two back-to-back passes often enough to move a single ratio by ±0.2.
 */
export async function calibrationCost(
  method: CalibrationMethod,
  samples: number,
  includeLoading = false,
  rounds = 1,
  histogramValues = DEFAULT_CONFIG.histogramValues,
  workers?: number,
  file = RESNET,
): Promise<{ infer: number; calib: number; ratios: number[] }> {
  const model = OnnxModel.load(file);
  const generated = syntheticSource(model, { count: samples, seed: 3 });
  const cached: Sample[] = [];
  for await (const s of generated.samples()) cached.push(s);
  const source: SampleSource = includeLoading
    ? generated
    : {
        count: cached.length,
        synthetic: true,
        description: generated.description,
        async *samples() {
          yield* cached;
        },
      };
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, logSeverityLevel: 3 });
  const results: { infer: number; calib: number }[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const infer = await inferenceMsPerSample(session, cached);
      const perSample = await calibrationMsPerSample((onProgress) => calibrate(model, calibrationTensors(model.proto, DEFAULT_CONFIG), source, { method, threads: 2, histogramValues, workers, onProgress }));
      // The first samples warm up both; compare steady state, per sample over the same samples.
      results.push({ infer: infer / 1000, calib: perSample / 1000 });
    }
  } finally {
    await session.release();
  }
  return medianRound(results);
}

async function childMain(mode: string, arg: string): Promise<void> {
  if (mode === 'calib-memory') {
    const model = OnnxModel.load(RESNET);
    // argv: samples, values binned per tensor and sample (quantize's default unless given; 0: every value).
    const histogramValues = process.argv[5] !== undefined ? Number(process.argv[5]) : DEFAULT_CONFIG.histogramValues;
    const r = await calibrate(model, calibrationTensors(model.proto, DEFAULT_CONFIG), syntheticSource(model, { count: Number(arg), seed: 5 }), { method: 'entropy', threads: 2, histogramValues });
    process.stdout.write(JSON.stringify({ maxRssBytes: peakRssBytes(), samples: r.samples }) + '\n');
  }
}

/** The round with the median ratio, and every round's ratio from lowest to highest. */
function medianRound(list: { infer: number; calib: number }[]): { infer: number; calib: number; ratios: number[] } {
  const byRatio = [...list].sort((a, b) => a.calib / a.infer - b.calib / b.infer);
  return { ...byRatio[(byRatio.length - 1) >> 1]!, ratios: byRatio.map((x) => x.calib / x.infer) };
}

/** calibrationCost of each method on `file`, 5 rounds taken in turn across the methods; each method's median round. */
async function interleavedCosts(methods: readonly CalibrationMethod[], file: string): Promise<Map<CalibrationMethod, ReturnType<typeof medianRound>>> {
  const rounds = new Map<CalibrationMethod, { infer: number; calib: number }[]>(methods.map((m) => [m, []]));
  for (let r = 0; r < 5; r++) for (const method of methods) rounds.get(method)!.push(await calibrationCost(method, 48, false, 1, undefined, undefined, file));
  return new Map(methods.map((m) => [m, medianRound(rounds.get(m)!)]));
}

/** The rounds' ratios, lowest to highest: the machine's noise, next to the median. */
function spread(ratios: readonly number[]): string {
  return `rounds ${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)}×`;
}

export async function benchQuantize(): Promise<string[]> {
  buildResnetIsh();
  buildResnetIsh(RESNET_112, 112);
  const lines: string[] = [];
  const size = fs.statSync(RESNET).size;
  lines.push(`PTQ engine on a ResNet-18-style CNN (${mb(size)}, 1×3×224×224), 2 threads:`);

  // Rounds interleaved across the methods: a stretch of load on the machine (or the garbage a
  // previous measurement left) then weighs on every method alike rather than on one.
  for (const [method, c] of await interleavedCosts(['minmax', 'mse', 'entropy', 'percentile'], RESNET)) {
    const one = await calibrationCost(method, 48, false, 5, undefined, 1);
    const l = await calibrationCost(method, 48, true);
    lines.push(
      `  calibration (${method}) per sample: ${(c.calib * 1000).toFixed(1)} ms vs one float inference ${(c.infer * 1000).toFixed(1)} ms = ${(c.calib / c.infer).toFixed(2)}× (median of 5 rounds interleaved with the other methods, ${spread(c.ratios)}; target ≤ 1.3×); ` +
        `one session on the calling thread (before): ${(one.calib / one.infer).toFixed(2)}×; with synthetic-sample generation in the loop ${(l.calib / l.infer).toFixed(2)}×`,
    );
  }
  // The histogram methods bin a strided subset of each large activation by default; every value, for comparison.
  const every = await calibrationCost('mse', 48, false, 5, 0);
  lines.push(`  calibration (mse, every value binned: --histogram-values 0) per sample: ${(every.calib / every.infer).toFixed(2)}× one float inference`);
  for (const [method, small] of await interleavedCosts(['minmax', 'mse'], RESNET_112)) {
    lines.push(`  the same network at 1×3×112×112, calibration (${method}) per sample: ${(small.calib * 1000).toFixed(1)} ms vs ${(small.infer * 1000).toFixed(1)} ms = ${(small.calib / small.infer).toFixed(2)}× (${spread(small.ratios)})`);
  }

  // Three fresh children each: with worker threads the peak moves by tens of MB with garbage-collection timing.
  const peaks = (n: number, values: number) => median([0, 1, 2].map(() => runChild<{ maxRssBytes: number }>(__filename, ['calib-memory', String(n), String(values)]).maxRssBytes));
  for (const values of [DEFAULT_CONFIG.histogramValues, 0]) {
    const m32 = peaks(32, values);
    const m128 = peaks(128, values);
    const what = values ? `${values} values a tensor and sample (the default)` : 'every value (--histogram-values 0)';
    lines.push(`  entropy calibration peak RSS, ${what} (median of 3 runs each): 32 samples ${mb(m32)}, 128 samples ${mb(m128)} = ${(m128 / m32).toFixed(3)}× (target ≤ 1.1×)`);
  }

  const out = path.join(DATA, 'resnet-ish-224.int8.onnx');
  const model = OnnxModel.load(RESNET);
  const quantizeResnet = (config: QuantConfig) =>
    quantizeModel({
      input: RESNET,
      output: out,
      config,
      calib: syntheticSource(model, { count: 32, seed: 1 }),
      eval: syntheticSource(model, { count: 4, seed: 2 }),
      evalNote: 'synthetic',
      threads: 2,
      latencyRuns: 40,
    });
  const report = await quantizeResnet({ ...DEFAULT_CONFIG });
  const l = report.eval.latencyMs!;
  lines.push(`  static int8 (uint8 activations, int8 per-channel weights): file ${mb(report.sizeBytes.before)} → ${mb(report.sizeBytes.after)} = ${report.sizeBytes.ratio.toFixed(2)}× smaller (target ≥ 3.9×)`);
  lines.push(`  median latency: float ${l.float.toFixed(2)} ms, int8 ${l.quantized.toFixed(2)} ms = ${l.ratio.toFixed(2)}× (target ≤ 0.7×); output SQNR ${report.eval.outputs[0]!.sqnrDb.toFixed(1)} dB`);
  const stemNote = report.preprocessing.find((p) => /reading the model input/.test(p));
  if (stemNote) lines.push(`  (${stemNote})`);
  // The same with 8 bits everywhere, nothing measured (the default tries the stem at 16 bits).
  const all8 = await quantizeResnet({ ...DEFAULT_CONFIG, activationTypeAuto: false });
  const l8 = all8.eval.latencyMs!;
  lines.push(`  … with 8 bits everywhere (--activation-type uint8): ${l8.ratio.toFixed(2)}× the float latency, output SQNR ${all8.eval.outputs[0]!.sqnrDb.toFixed(1)} dB`);
  return lines;
}

if (isChild()) {
  void childMain(process.argv[3]!, process.argv[4]!);
} else if (require.main === module) {
  void benchQuantize().then((lines) => console.log(lines.join('\n')));
}

/**
 * Calibration cost per sample on the real models from npm (PP-OCRv4 detector and recognizer, on
 * the pages and lines the tests render), against one float inference of the same sample measured
 * in the same run: min-max, and MSE (the default method) binning every value or a strided subset
 * (`--histogram-values`). The tensors are those quantize calibrates (after its preparation).
 *
 *   npm run bench -- calibration-real [--samples N] [--rounds R]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../src/onnx/model';
import { DEFAULT_CONFIG, type CalibrationMethod } from '../src/quant/config';
import { calibrate } from '../src/runtime/calibrate';
import { openSampleFolder } from '../src/runtime/data';
import { calibrationTensors, prepareStatic } from '../src/runtime/quantize-model';
import type { Sample, SampleSource } from '../src/runtime/samples';
import { REAL_MODELS } from '../test/helpers/ort';
import { calibrationMsPerSample, inferenceMsPerSample, median } from './lib';
import { writeTaskFolder, type Task } from '../test/helpers/tasks';

interface Variant {
  label: string;
  method: CalibrationMethod;
  histogramValues: number;
  /** Calibration worker threads; default: calibrate's own choice. */
  workers?: number;
}

const VARIANTS: Variant[] = [
  { label: 'min-max', method: 'minmax', histogramValues: 0 },
  { label: 'MSE, every value binned', method: 'mse', histogramValues: 0 },
  { label: 'MSE, --histogram-values 16384 (the default)', method: 'mse', histogramValues: 16384 },
  { label: 'MSE, --histogram-values 8192', method: 'mse', histogramValues: 8192 },
  // The same on one session on the calling thread, as calibration ran before it used worker threads.
  { label: 'min-max, one session', method: 'minmax', histogramValues: 0, workers: 1 },
  { label: 'MSE, --histogram-values 16384, one session', method: 'mse', histogramValues: 16384, workers: 1 },
];

async function costs(task: Task, dir: string, samples: number, rounds: number): Promise<string[]> {
  const model = OnnxModel.load(REAL_MODELS[task]);
  const source = openSampleFolder(dir, model);
  const cached: Sample[] = [];
  for await (const s of source.samples()) cached.push(s);
  const memory: SampleSource = { count: cached.length, synthetic: false, description: source.description, samples: async function* () { yield* cached; } };
  // The graph quantize calibrates (opset upgrade, BatchNorm folding), and its tensors.
  const plan = await prepareStatic(model, DEFAULT_CONFIG, memory, { threads: 2 });
  const calibModel = OnnxModel.fromProto(plan.calibProto, model.file);
  const tensors = calibrationTensors(plan.calibProto, DEFAULT_CONFIG);
  const float = await ort.InferenceSession.create(REAL_MODELS[task], { intraOpNumThreads: 2, logSeverityLevel: 3 });
  const ratios = new Map<string, number[]>();
  let inferMs = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      for (const v of VARIANTS) {
        // Inference right before each calibration pass: load shifts between passes on 2 shared cores.
        inferMs = await inferenceMsPerSample(float, cached);
        const per = await calibrationMsPerSample((onProgress) => calibrate(calibModel, tensors, memory, { method: v.method, histogramValues: v.histogramValues, workers: v.workers, threads: 2, onProgress }));
        const list = ratios.get(v.label) ?? [];
        list.push(per / inferMs);
        ratios.set(v.label, list);
      }
    }
  } finally {
    await float.release();
    model.close();
  }
  const lines = [`  ${task} (${tensors.length} calibrated tensors, ${samples} samples, one float inference ≈ ${inferMs.toFixed(1)} ms):`];
  for (const v of VARIANTS) lines.push(`    ${v.label}: ${median(ratios.get(v.label)!).toFixed(2)}× one float inference per sample (median of ${rounds} rounds)`);
  return lines;
}

export async function benchCalibrationReal(args: string[]): Promise<string[]> {
  const opt = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const samples = opt('--samples', 24);
  const rounds = opt('--rounds', 3);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-calib-bench-'));
  const lines = ['Calibration cost per sample on the real models (2 threads; target ≤ 1.3×):'];
  try {
    for (const task of ['ocrDet', 'ocrRec'] as const) {
      const dir = path.join(work, task);
      await writeTaskFolder(dir, task, samples, { seed: 1 });
      lines.push(...(await costs(task, dir, samples, rounds)));
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return lines;
}

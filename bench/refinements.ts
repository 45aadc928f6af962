/**
 * Evidence for the post-training refinements (issue #7): on the real models from npm, static int8
 * with the baseline settings (every refinement off) and with each refinement on (`defaults`: the
 * ones the defaults turn on), printing the
 * output SQNR, task-level agreement with the float model and the seconds each refinement costs.
 *
 *   npm run bench -- refinements [ocrCls|ocrRec|ocrDet|vad …] [--variants cle,bc,sq,sqauto,ar,arbc] [--calib N] [--lines N]
 *
 * Task agreement: angle classifier — same 0°/180° decision per line; recognizer — identical decoded
 * text per line; detector — text-map pixels agreeing at 0.3 and map SQNR; VAD — same
 * speech/non-speech decision per 32 ms chunk.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../src/onnx/model';
import { DEFAULT_CONFIG, QuantConfig } from '../src/quant/config';
import { openSampleFolder } from '../src/runtime/data';
import { quantizeModel } from '../src/runtime/quantize-model';
import { REAL_MODELS } from '../test/helpers/ort';
import { decodeRecOutput, renderClsSamples, renderDetPages, renderRecSamples, runVad, synthesizeVadAudio, vadDecisions, writeTaskFolder, type Task } from '../test/helpers/tasks';

// Plain 8-bit: refinements off, no 16-bit activations for recurrent-state models and activations
// quantized wherever an integer kernel reads them (defaults, not refinements).
const BASE: Partial<QuantConfig> = { crossLayerEqualization: false, depthwiseEqualization: false, biasCorrection: false, smoothQuant: false, adaround: false, activationTypeAuto: false, activationQdq: 'integer-kernels' };
const VARIANTS: Record<string, Partial<QuantConfig>> = {
  base: {},
  dweq: { depthwiseEqualization: true },
  // The defaults: depthwise equalization, learned rounding, 16-bit activations for recurrent state,
  // activations quantized only where integer kernels carry the work.
  defaults: { depthwiseEqualization: true, adaround: true, activationTypeAuto: true, activationQdq: 'auto' },
  defbc: { depthwiseEqualization: true, adaround: true, activationTypeAuto: true, activationQdq: 'auto', biasCorrection: true },
  // The defaults with int8 activations wherever an integer kernel reads them (--activation-qdq integer-kernels).
  int8act: { depthwiseEqualization: true, adaround: true, activationTypeAuto: true, activationQdq: 'integer-kernels' },
  // The defaults with float activations: int8 weights only (--activation-qdq none).
  weights: { depthwiseEqualization: true, adaround: true, activationTypeAuto: true, activationQdq: 'none' },
  cle: { crossLayerEqualization: true },
  bc: { biasCorrection: true },
  sq: { smoothQuant: true, smoothQuantAlpha: 0.5 },
  sqauto: { smoothQuant: true, smoothQuantAlpha: 'auto' },
  ar: { adaround: true },
  arbc: { adaround: true, biasCorrection: true },
  // All-16-bit activations: int8 weight rounding is then the main error (recognizer: ~17 dB).
  a16: { activationType: 'uint16' },
  a16ar: { activationType: 'uint16', adaround: true },
};

const first = (o: ort.InferenceSession.OnnxValueMapType) => Object.values(o)[0]! as ort.Tensor;

/** Task-level agreement of the quantized model with the float model, as a number and in words. */
async function agreement(task: Task, float: ort.InferenceSession, quant: ort.InferenceSession, n: number): Promise<string> {
  if (task === 'ocrCls') {
    let same = 0;
    const lines = renderClsSamples(n, { seed: 3 });
    for (const l of lines) {
      const a = first(await float.run(l.feeds)).data as Float32Array;
      const b = first(await quant.run(l.feeds)).data as Float32Array;
      if (a[0]! > a[1]! === b[0]! > b[1]!) same++;
    }
    return `same angle ${same}/${lines.length}`;
  }
  if (task === 'ocrRec') {
    let same = 0;
    const lines = renderRecSamples(n, { seed: 3 });
    for (const l of lines) if (decodeRecOutput(first(await float.run(l.feeds))) === decodeRecOutput(first(await quant.run(l.feeds)))) same++;
    return `identical text ${same}/${lines.length}`;
  }
  if (task === 'ocrDet') {
    let agree = 0;
    let total = 0;
    let sig = 0;
    let err = 0;
    for (const p of renderDetPages(Math.max(2, Math.round(n / 20)), { seed: 3 })) {
      const a = first(await float.run(p.feeds)).data as Float32Array;
      const b = first(await quant.run(p.feeds)).data as Float32Array;
      for (let i = 0; i < a.length; i++, total++) {
        if (a[i]! > 0.3 === b[i]! > 0.3) agree++;
        sig += a[i]! ** 2;
        err += (a[i]! - b[i]!) ** 2;
      }
    }
    return `pixels ${((100 * agree) / total).toFixed(2)}%, map SQNR ${(10 * Math.log10(sig / err)).toFixed(1)} dB`;
  }
  const audio = synthesizeVadAudio({ seed: 3, seconds: Math.max(10, n / 3) }).audio;
  const a = vadDecisions(await runVad(float, audio));
  const b = vadDecisions(await runVad(quant, audio));
  const same = a.filter((d, i) => d === b[i]).length;
  return `same decisions ${same}/${a.length} (${((100 * same) / a.length).toFixed(1)}%)`;
}

export async function benchRefinements(args: string[] = []): Promise<string[]> {
  const opt = (name: string, dflt: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1]! : dflt;
  };
  const tasks = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) as Task[];
  const variants = opt('variants', 'base,cle,bc,sq,sqauto,ar').split(',');
  const calibN = Number(opt('calib', '24'));
  const evalN = Number(opt('lines', '60'));
  const threads = Number(opt('threads', '2'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-refine-bench-'));
  const lines: string[] = [`Refinements on the real models (static int8 defaults, refinements off unless named; ${calibN} calibration samples, ${threads} threads):`];
  try {
    for (const task of tasks.length ? tasks : (['ocrCls', 'ocrRec', 'ocrDet', 'vad'] as Task[])) {
      const dir = path.join(work, task);
      const n = task === 'ocrDet' ? Math.min(calibN, 12) : calibN;
      await writeTaskFolder(path.join(dir, 'calib'), task, n, { seed: 1 });
      await writeTaskFolder(path.join(dir, 'eval'), task, 6, { seed: 2 });
      const input = REAL_MODELS[task];
      const float = await ort.InferenceSession.create(input, { logSeverityLevel: 3, intraOpNumThreads: threads });
      for (const v of variants) {
        const model = OnnxModel.load(input);
        const out = path.join(dir, `${v}.onnx`);
        const t0 = performance.now();
        const r = await quantizeModel({
          input,
          output: out,
          config: { ...DEFAULT_CONFIG, ...BASE, ...VARIANTS[v]! },
          calib: openSampleFolder(path.join(dir, 'calib'), model),
          eval: openSampleFolder(path.join(dir, 'eval'), model),
          evalNote: 'generated',
          latencyRuns: 0,
          threads,
        });
        const seconds = (performance.now() - t0) / 1000;
        model.close();
        const quant = await ort.InferenceSession.create(out, { logSeverityLevel: 3, intraOpNumThreads: threads });
        const task_ = await agreement(task, float, quant, evalN);
        await quant.release();
        const ref = r.refinements.map((f) => `${f.name} ${f.seconds.toFixed(1)} s: ${f.summary}`).join('; ');
        const line = `  ${task.padEnd(6)} ${v.padEnd(6)} SQNR ${r.eval.outputs[0]!.sqnrDb.toFixed(1).padStart(5)} dB | ${task_} | total ${seconds.toFixed(1)} s${ref ? ` | ${ref}` : ''}`;
        console.error(line);
        lines.push(line);
      }
      await float.release();
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return lines;
}

if (require.main === module) {
  void benchRefinements(process.argv.slice(2)).then((lines) => console.log(lines.join('\n')));
}

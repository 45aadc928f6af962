/**
 * Static int8 with the default settings on the published models, calibrated and judged on
 * realistic data the tests generate (rendered text lines and pages, synthesized speech and noise):
 * task-level agreement between the float and the quantized model, run by onnxruntime-node.
 *
 * Thresholds are what the defaults achieve today (README, "Accuracy on real models"); some are
 * below the product targets, which the analysis and accuracy-loop work is for.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import * as path from 'node:path';
import { OnnxModel } from '../../src/onnx/model';
import { DataType } from '../../src/onnx/dtypes';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { openSampleFolder } from '../../src/runtime/data';
import { quantizeModel, QuantizeReport } from '../../src/runtime/quantize-model';
import { REAL_MODELS, tempDir } from '../helpers/ort';
import { decodeRecOutput, renderClsSamples, renderDetPages, renderRecSamples, runVad, synthesizeVadAudio, vadDecisions, writeTaskFolder, type Task } from '../helpers/tasks';

const work = tempDir('onnx-quant-real-');

async function quantizeTask(task: Task, calibSamples: number, extra: Partial<Parameters<typeof quantizeModel>[0]> = {}): Promise<{ report: QuantizeReport; float: ort.InferenceSession; quant: ort.InferenceSession }> {
  const dir = path.join(work.dir, task);
  await writeTaskFolder(path.join(dir, 'calib'), task, calibSamples, { seed: 1 });
  await writeTaskFolder(path.join(dir, 'eval'), task, 6, { seed: 2 });
  const input = REAL_MODELS[task];
  const model = OnnxModel.load(input);
  const output = extra.output ?? path.join(dir, 'int8.onnx');
  const report = await quantizeModel({
    input,
    output,
    config: { ...DEFAULT_CONFIG },
    calib: openSampleFolder(path.join(dir, 'calib'), model),
    eval: openSampleFolder(path.join(dir, 'eval'), model),
    evalNote: 'generated',
    latencyRuns: 0,
    ...extra,
  });
  model.close();
  const options = { logSeverityLevel: 3 as const };
  return { report, float: await ort.InferenceSession.create(input, options), quant: await ort.InferenceSession.create(output, options) };
}

/** The range a quantized model's QuantizeLinear gives a graph input: [lo, hi] and the scale. */
function inputQuantizer(file: string, input: string): { lo: number; hi: number; scale: number } {
  const m = OnnxModel.load(file);
  try {
    const q = m.proto.graph!.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === input);
    assert.ok(q, `no QuantizeLinear reads "${input}"`);
    const init = (name: string) => m.proto.graph!.initializer.find((t) => t.name === name)!;
    const scale = tensorToFloat32(init(q.input[1]!))[0]!;
    const zp = init(q.input[2]!);
    const zero = Number(tensorToFloat32(zp)[0]!);
    const [qmin, qmax] = zp.dataType === DataType.UINT8 ? [0, 255] : zp.dataType === DataType.INT8 ? [-128, 127] : zp.dataType === DataType.UINT16 ? [0, 65535] : [-32768, 32767];
    return { lo: (qmin - zero) * scale, hi: (qmax - zero) * scale, scale };
  } finally {
    m.close();
  }
}

/**
 * Every Conv of the model runs on int8 weights, but for the float kernels (convs whose output only
 * float ops read) that --float-kernel-weights keeps in float: those must say so, and stay within
 * the default budget (their extra bytes ≤ 0.125 × the quantized weights').
 */
function assertEveryConvQuantized(report: QuantizeReport, task: Task): void {
  const m = OnnxModel.load(REAL_MODELS[task]);
  const convs = m.proto.graph!.node.filter((n) => n.opType === 'Conv').map((n) => n.name);
  m.close();
  const quantized = new Set(report.quantized.map((q) => q.name));
  const reasons = new Map(report.skippedNodes.map((s) => [s.name, s.reason]));
  let floatWeights = 0;
  const missing = convs.filter((c) => {
    if (quantized.has(c)) return false;
    const kept = /float kernel .* its (\d+) weights stay float/.exec(reasons.get(c) ?? '');
    if (kept) floatWeights += Number(kept[1]);
    return !kept;
  });
  assert.deepEqual(missing, [], `Conv nodes kept in float: ${missing.join(', ')}`);
  assert.ok(3 * floatWeights <= 0.125 * report.sizeBytes.after, `${floatWeights} float weights in a ${report.sizeBytes.after}-byte model`);
}

const first = (o: ort.InferenceSession.OnnxValueMapType) => Object.values(o)[0]! as ort.Tensor;

describe('static int8 with default settings on real models', { concurrency: false }, () => {

  it('PP-OCR angle classifier: head SQNR ≥ 25 dB and the same 0°/180° decision on every line', async () => {
    const { report, float, quant } = await quantizeTask('ocrCls', 32);
    assertEveryConvQuantized(report, 'ocrCls');
    assert.ok(report.eval.outputs[0]!.sqnrDb >= 25, `SQNR ${report.eval.outputs[0]!.sqnrDb}`);
    let same = 0;
    const lines = renderClsSamples(60, { seed: 3 });
    for (const l of lines) {
      const a = first(await float.run(l.feeds)).data as Float32Array;
      const b = first(await quant.run(l.feeds)).data as Float32Array;
      if (a[0]! > a[1]! === b[0]! > b[1]!) same++;
    }
    assert.equal(same, lines.length);
    await float.release();
    await quant.release();
  });

  it('PP-OCRv4 recognizer with the defaults: the 98% target (its integer kernels would carry 8% of the work, so activations stay float)', async () => {
    const { report, float, quant } = await quantizeTask('ocrRec', 32);
    assert.equal(report.settings.activationQdq, 'none');
    assert.ok(report.preprocessing.some((p) => /^activations stay float, weights int8: integer kernels would carry only 7\.\d% of the 70\d\.\d M multiply-adds/.test(p)), report.preprocessing.join('\n'));
    assert.ok(report.quantized.some((q) => q.opType === 'MatMul') && report.quantized.some((q) => q.opType === 'Conv'));
    assert.equal(report.calibration?.unobserved ?? 0, 0);
    let same = 0;
    const lines = renderRecSamples(100, { seed: 3 });
    for (const l of lines) if (decodeRecOutput(first(await float.run(l.feeds))) === decodeRecOutput(first(await quant.run(l.feeds)))) same++;
    // Measured 97/100 here; 784, 789 and 785 of 800 other lines with three calibration sets (with
    // int8 activations: 775, 777 and 779). One line of slack: learned rounding is time-bounded, so a slow machine rounds differently.
    console.log(`# recognizer, defaults: identical text on ${same}/${lines.length} lines`);
    assert.ok(same / lines.length >= 0.96, `identical text on ${same}/${lines.length} lines`);
    await float.release();
    await quant.release();
  });

  it('PP-OCRv4 recognizer with --activation-qdq integer-kernels: most lines decode to the same text', async () => {
    const { report, float, quant } = await quantizeTask('ocrRec', 32, { output: path.join(work.dir, 'ocrRec', 'integer-kernels.onnx'), config: { ...DEFAULT_CONFIG, activationQdq: 'integer-kernels' } });
    assertEveryConvQuantized(report, 'ocrRec');
    let same = 0;
    const lines = renderRecSamples(60, { seed: 3 });
    for (const l of lines) if (decodeRecOutput(first(await float.run(l.feeds))) === decodeRecOutput(first(await quant.run(l.feeds)))) same++;
    // Measured 96–97/100 (86/100 before depthwise equalization and learned rounding; most lines
    // that differ are near-ties of the float model, README).
    assert.ok(same / lines.length >= 0.9, `identical text on ${same}/${lines.length} lines`);
    await float.release();
    await quant.release();
  });

  it('PP-OCRv4 detector: the product target, SQNR ≥ 25 dB, with the defaults (affine folds kept where they measure better, the input\'s observed range); the text map agrees on ≥ 99% of pixels', async () => {
    const { report, float, quant } = await quantizeTask('ocrDet', 12);
    assertEveryConvQuantized(report, 'ocrDet');
    // Its first depthwise conv reads a HardSwish + affine block: that fold is kept (17.2 dB without
    // any depthwise equalization, 18.2 with learned rounding alone, 20.3 measured with the folds).
    const folds = report.refinements.find((r) => r.name === 'depthwise-equalization' && /affine-block/.test(r.summary));
    assert.ok(folds?.layers.includes('p2o.Conv.3'), report.refinements.map((r) => r.summary).join('\n'));
    // 21.6 dB with no Q/DQ in front of convs that run in float. The model input keeps the range it
    // was observed to have: MSE clipped the darkest text pixels, and with another calibration set
    // the eval pages measured 22.2 dB (24.8 with the observed range).
    const x = inputQuantizer(report.output, 'x');
    const model = OnnxModel.load(REAL_MODELS.ocrDet);
    let [min, max] = [Infinity, -Infinity];
    for await (const s of openSampleFolder(path.join(work.dir, 'ocrDet', 'calib'), model).samples()) for (const v of s.x!.data as Float32Array) [min, max] = [Math.min(min, v), Math.max(max, v)];
    model.close();
    // Asymmetric uint8: the zero point is rounded, so each end may move by up to a step.
    assert.ok(Math.abs(x.lo - min) <= x.scale && Math.abs(x.hi - max) <= x.scale, `input range [${x.lo}, ${x.hi}] vs observed [${min}, ${max}]`);
    assert.ok(report.eval.outputs[0]!.sqnrDb >= 25, `SQNR ${report.eval.outputs[0]!.sqnrDb}`);
    let agree = 0;
    let total = 0;
    for (const p of renderDetPages(3, { seed: 3 })) {
      const a = first(await float.run(p.feeds)).data as Float32Array;
      const b = first(await quant.run(p.feeds)).data as Float32Array;
      for (let i = 0; i < a.length; i++, total++) if (a[i]! > 0.3 === b[i]! > 0.3) agree++;
    }
    assert.ok(agree / total >= 0.99, `pixel agreement ${agree / total}`);
    await float.release();
    await quant.release();
  });

  it('Silero VAD: 16-bit activations by default (recurrent state); speech/non-speech decisions agree on ≥ 99% of chunks', async () => {
    const { report, float, quant } = await quantizeTask('vad', 32);
    assert.ok(report.quantizedNodes > 5);
    assert.equal(report.settings.activationType, 'uint16');
    assert.ok(report.preprocessing.some((p) => /state carries recurrent state/.test(p)), report.preprocessing.join('\n'));
    const audio = synthesizeVadAudio({ seed: 3, seconds: 20 }).audio;
    const a = vadDecisions(await runVad(float, audio));
    const b = vadDecisions(await runVad(quant, audio));
    const same = a.filter((d, i) => d === b[i]).length;
    // Measured 99.5% over 33 s of audio (98.1% with 8-bit activations).
    assert.ok(same / a.length >= 0.99, `same decisions on ${same}/${a.length} chunks`);
    await float.release();
    await quant.release();
  });

  it('Silero VAD, 8-bit activations with the accuracy loop (--activation-type uint8 --target-sqnr 30): ≥ 99% of decisions agree', async () => {
    const { report, float, quant } = await quantizeTask('vad', 32, { output: path.join(work.dir, 'vad', 'loop.onnx'), accuracyTarget: { kind: 'sqnr', minDb: 30 }, config: { ...DEFAULT_CONFIG, activationTypeAuto: false } });
    assert.ok(report.accuracyLoop?.met, JSON.stringify(report.accuracyLoop?.steps));
    const audio = synthesizeVadAudio({ seed: 3, seconds: 20 }).audio;
    const a = vadDecisions(await runVad(float, audio));
    const b = vadDecisions(await runVad(quant, audio));
    const same = a.filter((d, i) => d === b[i]).length;
    assert.ok(same / a.length >= 0.99, `same decisions on ${same}/${a.length} chunks`);
    await float.release();
    await quant.release();
  });

  it('cleanup', () => work.cleanup());
});

/**
 * The generated task data (test/helpers/tasks) is realistic enough that the FLOAT published models
 * do their job on it: the recognizer reads the rendered lines, the angle classifier sees which are
 * upside down, the detector finds the placed lines, and Silero VAD calls the synthesized speech
 * speech and the noises, tones and silence not. Quantization tests compare quantized against float
 * on this data, which only means something if the float model works on it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../../src/onnx/model';
import { openSampleFolder } from '../../src/runtime/data/folder';
import type { Sample } from '../../src/runtime/samples';
import { REAL_MODELS, tempDir } from '../helpers/ort';
import {
  ctcGreedyDecode,
  decodeRecOutput,
  generateTextLines,
  loadOcrDictionary,
  renderClsSamples,
  renderDetPages,
  renderRecSamples,
  runVad,
  scoreDetection,
  synthesizeVadAudio,
  taskSamples,
  vadDecisions,
  vadSeparation,
  writeSampleFolder,
  writeTaskFolder,
} from '../helpers/tasks';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

async function withSession<T>(model: string, f: (s: ort.InferenceSession) => Promise<T>): Promise<T> {
  const s = await ort.InferenceSession.create(model);
  try {
    return await f(s);
  } finally {
    await s.release();
  }
}

describe('OCR task data (PaddleOCR PP-OCRv4)', () => {
  test('the dictionary and greedy CTC decoding', () => {
    const dict = loadOcrDictionary();
    assert.equal(dict.length, 6623);
    const classes = dict.length + 2; // blank + dictionary + space = 6625, the recognizer's output size
    const idx = (ch: string) => (ch === ' ' ? classes - 1 : dict.indexOf(ch) + 1);
    // "aa b": a a blank a space b b → "aa b" (repeats merge, a blank separates the two a's).
    const path = [idx('a'), idx('a'), 0, idx('a'), idx(' '), idx('b'), idx('b'), 0];
    const scores = new Float32Array(path.length * classes);
    path.forEach((c, t) => (scores[t * classes + c] = 1));
    assert.equal(ctcGreedyDecode(scores, path.length, classes, dict), 'aa b');
    for (const line of generateTextLines(200, 9)) for (const ch of line) assert.ok(ch === ' ' || dict.includes(ch), `"${ch}" of "${line}" is not in the dictionary`);
  });

  test('generation is deterministic', () => {
    const a = renderRecSamples(2, { seed: 4 });
    const b = renderRecSamples(2, { seed: 4 });
    const c = renderRecSamples(2, { seed: 5 });
    assert.deepEqual(
      a.map((s) => s.text),
      b.map((s) => s.text),
    );
    assert.deepEqual(a[1]!.feeds.x.data, b[1]!.feeds.x.data);
    assert.notDeepEqual(a[0]!.feeds.x.data, c[0]!.feeds.x.data);
  });

  test('the float recognizer reads ≥ 80% of rendered lines exactly', async (t) => {
    const started = performance.now();
    const lines = renderRecSamples(40, { seed: 11 });
    const generated = performance.now() - started;
    const dict = loadOcrDictionary();
    const misses: string[] = [];
    let exact = 0;
    await withSession(REAL_MODELS.ocrRec, async (s) => {
      for (const line of lines) {
        assert.deepEqual(line.feeds.x.dims, [1, 3, 48, 320]);
        const out = await s.run(line.feeds);
        const text = decodeRecOutput(out[s.outputNames[0]!]!, dict);
        if (text === line.text) exact++;
        else misses.push(`${JSON.stringify(line.text)} → ${JSON.stringify(text)}`);
      }
    });
    const rate = exact / lines.length;
    t.diagnostic(`rec: ${exact}/${lines.length} lines exact (${pct(rate)}); generated in ${generated.toFixed(0)} ms`);
    for (const m of misses) t.diagnostic(`rec miss: ${m}`);
    assert.ok(rate >= 0.8, `only ${pct(rate)} of lines read exactly`);
    assert.ok(lines.some((l) => l.style.inverted) && lines.some((l) => !l.style.inverted), 'both polarities');
  });

  test('the float angle classifier tells upright from upside-down lines', async (t) => {
    const lines = renderClsSamples(40, { seed: 12 });
    let correct = 0;
    await withSession(REAL_MODELS.ocrCls, async (s) => {
      for (const line of lines) {
        const p = (await s.run(line.feeds))[s.outputNames[0]!]!.data as Float32Array;
        if ((p[1]! > p[0]! ? 1 : 0) === line.label) correct++;
      }
    });
    const flipped = lines.filter((l) => l.label === 1).length;
    assert.ok(flipped >= 10 && flipped <= 30, `${flipped} of 40 lines upside down`);
    t.diagnostic(`cls: ${correct}/${lines.length} correct (${pct(correct / lines.length)}), ${flipped} upside down`);
    assert.ok(correct / lines.length >= 0.9, `cls accuracy ${pct(correct / lines.length)}`);
  });

  test('the float detector finds the placed lines', async (t) => {
    const pages = renderDetPages(4, { seed: 13 });
    const boxIoUs: number[] = [];
    await withSession(REAL_MODELS.ocrDet, async (s) => {
      for (const [i, page] of pages.entries()) {
        const out = (await s.run(page.feeds))[s.outputNames[0]!]!;
        assert.deepEqual(out.dims, [1, 1, page.height, page.width]);
        const score = scoreDetection(out.data as Float32Array, page);
        boxIoUs.push(...score.boxIoUs);
        t.diagnostic(
          `det page ${i}: ${page.lines.length} lines, ${score.detected.length} boxes; IoU with the true boxes: unclipped boxes ${score.boxMaskIoU.toFixed(2)}, ` +
            `raw map > 0.3 ${score.mapIoU.toFixed(2)}; per line ${score.boxIoUs.map((v) => v.toFixed(2)).join(' ')}`,
        );
        assert.ok(score.boxMaskIoU > 0.5, `page ${i}: detected boxes cover the true boxes with IoU ${score.boxMaskIoU.toFixed(2)}`);
        // DB maps are shrunk text kernels: the raw map sits inside the boxes, at a fraction of their area.
        assert.ok(score.mapIoU > 0.2, `page ${i}: raw map IoU ${score.mapIoU.toFixed(2)}`);
      }
    });
    const found = boxIoUs.filter((v) => v > 0.5).length;
    t.diagnostic(`det: ${found}/${boxIoUs.length} lines found with box IoU > 0.5`);
    assert.ok(found / boxIoUs.length >= 0.8, `${found}/${boxIoUs.length} lines found`);
  });
});

describe('VAD task data (Silero VAD 16 kHz)', () => {
  test('the float model calls synthesized speech speech and the rest not', async (t) => {
    const started = performance.now();
    const data = synthesizeVadAudio({ seed: 21, seconds: 40 });
    const generated = performance.now() - started;
    assert.equal(data.audio.length % 512, 0);
    assert.equal(data.speech.length, data.audio.length / 512);
    const probs = await runVad(REAL_MODELS.vad, data.audio);
    const sep = vadSeparation(data, probs, { threshold: 0.5, settle: 2 });
    // Per kind, past Silero's hold after speech stops (~320 ms).
    const byKind = vadSeparation(data, probs, { threshold: 0.5, settle: 2, release: 10 }).falseAlarmByKind;
    const decisions = vadDecisions(probs, 0.5);
    t.diagnostic(
      `vad: ${data.segments.length} segments, ${data.speech.length} chunks (${decisions.filter(Boolean).length} called speech); generated in ${generated.toFixed(0)} ms`,
    );
    t.diagnostic(
      `vad: speech chunks ≥ 0.5: ${pct(sep.speechRate)} of ${sep.scoredSpeech}; non-speech chunks < 0.5: ${pct(sep.nonSpeechRate)} of ${sep.scoredNonSpeech}`,
    );
    t.diagnostic(`vad: called speech by kind (from 320 ms after speech): ${Object.entries(byKind).map(([k, v]) => `${k} ${pct(v!)}`).join(', ')}`);
    assert.ok(sep.speechRate >= 0.9, `speech chunks called speech: ${pct(sep.speechRate)}`);
    assert.ok(sep.nonSpeechRate >= 0.9, `non-speech chunks called non-speech: ${pct(sep.nonSpeechRate)}`);
    for (const [kind, rate] of Object.entries(byKind)) assert.ok(rate! <= 0.25, `${kind} called speech in ${pct(rate!)} of its chunks`);
    assert.equal(Object.keys(byKind).length, 8, 'every non-speech kind occurs');

    // Silero needs the 64 samples of context its wrappers prepend: fed bare 512-sample windows, it
    // calls (almost) nothing speech. Kept as a diagnostic so the difference stays visible.
    const bare = vadSeparation(data, await runVad(REAL_MODELS.vad, data.audio, { context: 0 }));
    t.diagnostic(`vad without context ([1,512] windows): speech ${pct(bare.speechRate)}, non-speech ${pct(bare.nonSpeechRate)}`);
  });

  test('generation is deterministic', () => {
    const a = synthesizeVadAudio({ seed: 3, seconds: 4 });
    const b = synthesizeVadAudio({ seed: 3, seconds: 4 });
    assert.deepEqual(a.audio, b.audio);
    assert.deepEqual(a.segments, b.segments);
    let peak = 0;
    for (const v of a.audio) peak = Math.max(peak, Math.abs(v));
    assert.ok(peak > 0.01 && peak < 1, `peak ${peak}`);
  });
});

describe('task data as .npy folders for the CLI', () => {
  async function readBack(dir: string, model: string): Promise<{ layout: string; samples: Sample[] }> {
    const source = openSampleFolder(dir, OnnxModel.load(model));
    const samples: Sample[] = [];
    for await (const s of source.samples()) samples.push(s);
    return { layout: source.layout, samples };
  }

  test('single-input model: sample_<k>.npy', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const samples = await taskSamples('ocrCls', 3, { seed: 2 });
      const written = writeSampleFolder(dir, samples);
      assert.equal(written.layout, 'npy');
      assert.deepEqual(fs.readdirSync(dir).sort(), ['sample_0.npy', 'sample_1.npy', 'sample_2.npy']);
      const back = await readBack(dir, REAL_MODELS.ocrCls);
      assert.equal(back.layout, 'npy');
      assert.equal(back.samples.length, 3);
      for (let k = 0; k < 3; k++) {
        assert.deepEqual(back.samples[k]!.x!.dims, [1, 3, 48, 192]);
        assert.deepEqual(back.samples[k]!.x!.data, samples[k]!.x!.data);
      }
    } finally {
      cleanup();
    }
  });

  test('multi-input model (VAD): sample_<k>/<input>.npy, optionally shared sr.npy', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const written = await writeTaskFolder(path.join(dir, 'a'), 'vad', 4, { seed: 5, vadEvery: 3 });
      assert.equal(written.layout, 'npy-dirs');
      assert.deepEqual(fs.readdirSync(path.join(dir, 'a', 'sample_0')).sort(), ['input.npy', 'sr.npy', 'state.npy']);
      const back = await readBack(path.join(dir, 'a'), REAL_MODELS.vad);
      assert.equal(back.layout, 'npy-dirs');
      assert.equal(back.samples.length, 4);
      const s = back.samples[2]!;
      assert.deepEqual(s.input!.dims, [1, 576]);
      assert.deepEqual(s.state!.dims, [2, 1, 128]);
      assert.equal(s.sr!.type, 'int64');
      assert.deepEqual(Array.from(s.sr!.data as BigInt64Array), [16000n]);
      // The state is the float model's own, carried from earlier chunks (not zeros after the first).
      assert.ok((s.state!.data as Float32Array).some((v) => v !== 0));

      await writeTaskFolder(path.join(dir, 'b'), 'vad', 2, { seed: 5, shared: ['sr'] });
      assert.ok(fs.existsSync(path.join(dir, 'b', 'sr.npy')));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'b', 'sample_1')).sort(), ['input.npy', 'state.npy']);
      const shared = await readBack(path.join(dir, 'b'), REAL_MODELS.vad);
      assert.equal(shared.samples.length, 2);
      assert.deepEqual(Array.from(shared.samples[1]!.sr!.data as BigInt64Array), [16000n]);
    } finally {
      cleanup();
    }
  });
});

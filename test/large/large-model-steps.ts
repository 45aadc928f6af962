/**
 * Steps of the over-2-GB model test, each run in a fresh process by large-model.test.ts so that its
 * peak RSS (`process.resourceUsage().maxRSS`) is its own. Every step prints one JSON line on stdout.
 *
 *   build <file> [layers] [size]   a MatMul/Gemm chain whose float32 weights (layers × size² × 4
 *                                  bytes, default 34 × 4096² = 2.28 GB) live in external data. The
 *                                  weights are generated one tensor at a time into a staging data
 *                                  file; the model proto (built with ModelBuilder, initializers
 *                                  referring to the staging file) is then written by
 *                                  saveModel(..., { externalData: 'always' }), which copies the
 *                                  tensors into `<file>.data` one at a time.
 *   weights <file>                 the weight-reading path: every weight read (model.rawBytes) and
 *                                  reduced (min, max, sum of squares) as float32, one at a time
 *   run <file> [size]              creates an onnxruntime-node session from the file path and
 *                                  runs one input
 *   resave <file> <out>            saveModel(..., { externalData: 'always' }) of a loaded model
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { emptyTensor, TensorDataLocation, TensorProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';

function maxRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Uniform values with variance 1/fanIn (so activations keep their scale through the chain). */
function fillWeights(out: Float32Array, seed: number, fanIn: number): void {
  let s = seed >>> 0;
  const a = Math.sqrt(3 / fanIn);
  for (let i = 0; i < out.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * a;
  }
}

function externalTensor(name: string, dims: number[], location: string, offset: number, length: number): TensorProto {
  const t = emptyTensor(name);
  t.dataType = DataType.FLOAT;
  t.dims = dims;
  t.dataLocation = TensorDataLocation.External;
  t.externalData = [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ];
  return t;
}

function build(file: string, layers: number, size: number): void {
  const start = performance.now();
  const staging = fs.mkdtempSync(path.join(path.dirname(file), '.staging-'));
  try {
    const stagingData = path.join(staging, 'weights.bin');
    const fd = fs.openSync(stagingData, 'w');
    const b = new ModelBuilder({ opset: 17, producer: 'onnx-quant large-model test' });
    let x = b.input('x', DataType.FLOAT, [1, size]);
    const w = new Float32Array(size * size);
    const bias = new Float32Array(size);
    let offset = 0;
    const put = (name: string, dims: number[], values: Float32Array): string => {
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, offset + done);
      b.graph.initializer.push(externalTensor(name, dims, 'weights.bin', offset, bytes.length));
      offset += bytes.length;
      return name;
    };
    for (let i = 0; i < layers; i++) {
      fillWeights(w, 1000 + i, size);
      if (i % 2 === 0) {
        x = b.node('MatMul', [x, put(`w${i}`, [size, size], w)], {}, { name: `matmul${i}` });
      } else {
        // Gemm with transB = 1 and a bias: the other weight layout the quantizer handles.
        fillWeights(bias, 5000 + i, 400);
        x = b.node('Gemm', [x, put(`w${i}`, [size, size], w), put(`b${i}`, [size], bias)], { transB: 1 }, { name: `gemm${i}` });
      }
    }
    b.output(b.node('Identity', [x], {}, { outputs: ['y'] }), DataType.FLOAT, [1, size]);
    fs.closeSync(fd);
    // The staging model is never written: it only serves as the reader of the staging data.
    const source = OnnxModel.fromProto(b.build(), path.join(staging, 'staging.onnx'));
    try {
      const saved = saveModel(source.proto, file, { externalData: 'always', readExternal: (t) => source.rawBytes(t)! });
      console.log(JSON.stringify({ step: 'build', file, bytes: saved.bytes, externalBytes: saved.externalBytes, weightBytes: offset, seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() }));
    } finally {
      source.close();
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function weights(file: string): void {
  const start = performance.now();
  const model = OnnxModel.load(file);
  let tensors = 0;
  let elements = 0;
  let external = 0;
  let min = Infinity;
  let max = -Infinity;
  let sumSq = 0;
  try {
    for (const w of model.weights()) {
      if (w.external) external++;
      const v = tensorToFloat32(w.tensor, model.rawBytes(w.tensor), model.file);
      for (let i = 0; i < v.length; i++) {
        const x = v[i]!;
        if (x < min) min = x;
        if (x > max) max = x;
        sumSq += x * x;
      }
      tensors++;
      elements += v.length;
    }
  } finally {
    model.close();
  }
  console.log(JSON.stringify({ step: 'weights', tensors, external, elements, min, max, rms: Math.sqrt(sumSq / elements), seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() }));
}

async function run(file: string, size: number): Promise<void> {
  const start = performance.now();
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  try {
    const x = new Float32Array(size);
    for (let i = 0; i < size; i++) x[i] = Math.sin(i * 0.37);
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [1, size]) });
    const y = out[session.outputNames[0]!]!.data as Float32Array;
    let sumSq = 0;
    let finite = true;
    for (const v of y) {
      sumSq += v * v;
      if (!Number.isFinite(v)) finite = false;
    }
    const sha256 = createHash('sha256').update(new Uint8Array(y.buffer, y.byteOffset, y.byteLength)).digest('hex');
    console.log(JSON.stringify({ step: 'run', outputs: y.length, finite, rms: Math.sqrt(sumSq / y.length), sha256, seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() }));
  } finally {
    await session.release();
  }
}

/** Loads a model and saves it again with every tensor of 1 KB or more in external data. */
function resave(file: string, out: string): void {
  const start = performance.now();
  const model = OnnxModel.load(file);
  try {
    const saved = saveModel(model.proto, out, { externalData: 'always', readExternal: (t) => model.rawBytes(t)!, inputFile: file });
    console.log(JSON.stringify({ step: 'resave', bytes: saved.bytes, externalBytes: saved.externalBytes, seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() }));
  } finally {
    model.close();
  }
}

async function stepMain(): Promise<void> {
  const [step, file, a, b] = process.argv.slice(2);
  if (!file) throw new Error('usage: large-model-steps.ts build|weights|run <file> [args]');
  if (step === 'build') build(path.resolve(file), Number(a ?? 34), Number(b ?? 4096));
  else if (step === 'weights') weights(path.resolve(file));
  else if (step === 'run') await run(path.resolve(file), Number(a ?? 4096));
  else if (step === 'resave' && a) resave(path.resolve(file), path.resolve(a));
  else throw new Error(`unknown step ${step}`);
}

stepMain().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});

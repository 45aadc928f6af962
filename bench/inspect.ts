/**
 * Benchmarks of model reading (issue "Foundation"): `inspect` of a 176 MB float32 CNN against a
 * plain fs.readFileSync of the same file, and decoding a graph of 200,000 small nodes.
 *
 * Each measurement runs in a fresh child process so that peak RSS (VmHWM, see peakRssBytes) belongs to it alone.
 * Figures are printed as ratios against the baseline measured in the same run.
 */
import { execFileSync } from 'node:child_process';
import { buildSync } from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelBuilder } from '../src/onnx/builder';
import { DataType } from '../src/onnx/dtypes';
import { OnnxModel } from '../src/onnx/model';
import { saveModel } from '../src/onnx/save';
import { bigCnn } from './models';
import { summarizeModel } from '../src/onnx/summary';
import { peakRssBytes } from './lib';

const DATA = path.join(__dirname, '.data');

interface Measure {
  ms: number;
  maxRssBytes: number;
  detail?: string;
}

/** A chain of 200,000 Relu/Neg nodes: many small protobuf messages, no weights. */
function manyNodes(file: string): void {
  if (fs.existsSync(file)) return;
  const b = new ModelBuilder({ opset: 17 });
  let x = b.input('x', DataType.FLOAT, [1, 8]);
  for (let i = 0; i < 200_000; i++) x = b.node(i % 2 ? 'Relu' : 'Neg', [x]);
  b.output(x, DataType.FLOAT, [1, 8]);
  saveModel(b.build(), file);
}

/**
 * Bundles this file with esbuild, as the shipped CLI is bundled, so children run with plain node:
 * a TypeScript loader in the child would add its own memory to every figure.
 */
function childScript(): string {
  const out = path.join(DATA, 'bench-child.js');
  buildSync({ entryPoints: [__filename], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: out, external: ['onnxruntime-node'], logLevel: 'error' });
  return out;
}

let script: string | undefined;

/** Runs one measurement in a child process; the child prints a JSON Measure. */
function child(mode: string, file: string): Measure {
  script ??= childScript();
  const out = execFileSync(process.execPath, [script, '--child', mode, file], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as Measure;
}

function childMain(mode: string, file: string): void {
  const t0 = performance.now();
  let detail = '';
  if (mode === 'read') {
    detail = `${fs.readFileSync(file).length} bytes`;
  } else if (mode === 'inspect') {
    const s = summarizeModel(OnnxModel.load(file));
    detail = `${s.nodes} nodes, ${s.weights.count} weights, ${s.weights.bytes} bytes`;
  } else if (mode === 'decode') {
    const m = OnnxModel.load(file);
    detail = `${m.proto.graph!.node.length} nodes`;
  }
  const ms = performance.now() - t0;
  const maxRssBytes = peakRssBytes();
  process.stdout.write(JSON.stringify({ ms, maxRssBytes, detail }) + '\n');
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export function benchInspect(): string[] {
  fs.mkdirSync(DATA, { recursive: true });
  const cnn = path.join(DATA, 'cnn-176mb.onnx');
  const chain = path.join(DATA, 'chain-200k.onnx');
  bigCnn(cnn);
  manyNodes(chain);
  const size = fs.statSync(cnn).size;

  // Median of three runs, for time and for peak RSS separately.
  const median = (mode: string, file: string): Measure => {
    const runs = [child(mode, file), child(mode, file), child(mode, file)];
    const mid = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    return { ms: mid(runs.map((r) => r.ms)), maxRssBytes: mid(runs.map((r) => r.maxRssBytes)), detail: runs[0]!.detail };
  };
  const read = median('read', cnn);
  const inspect = median('inspect', cnn);
  const decode = median('decode', chain);
  const lines = [
    `inspect of a ${mb(size)} float32 CNN (${inspect.detail}):`,
    `  fs.readFileSync  ${read.ms.toFixed(0)} ms, peak RSS ${mb(read.maxRssBytes)}`,
    `  inspect          ${inspect.ms.toFixed(0)} ms, peak RSS ${mb(inspect.maxRssBytes)} = ${(inspect.maxRssBytes / size).toFixed(2)}× file size (target < 1.5×)`,
    `  ratio inspect / readFileSync: time ${(inspect.ms / read.ms).toFixed(2)}×, peak RSS ${(inspect.maxRssBytes / read.maxRssBytes).toFixed(2)}×  (wall target < 1000 ms)`,
    `decode of a graph of 200,000 nodes (${mb(fs.statSync(chain).size)}): ${decode.ms.toFixed(0)} ms (target < 1000 ms), peak RSS ${mb(decode.maxRssBytes)}`,
  ];
  return lines;
}

if (process.argv[2] === '--child') {
  childMain(process.argv[3]!, process.argv[4]!);
} else if (require.main === module && !process.argv[1]?.endsWith('bench-child.js')) {
  for (const line of benchInspect()) console.log(line);
}

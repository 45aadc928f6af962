/**
 * Real published models (pinned devDependencies): our reader's counts against figures computed by
 * the official onnx Python package, and decode → encode round trips run by onnxruntime-node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OnnxModel } from '../../src/onnx/model';
import { summarizeModel } from '../../src/onnx/summary';
import { encodeModel } from '../../src/onnx/encode';
import { saveModel } from '../../src/onnx/save';
import { dataTypeName } from '../../src/onnx/dtypes';
import { outputBytes, REAL_MODELS, realModelFeeds, runModel, tempDir } from '../helpers/ort';

interface Reference {
  file: string;
  ir: number;
  opsets: Record<string, number>;
  nodes: number;
  nodesTotal: number;
  subgraphs: number;
  initializers: number;
  constants: number;
  elements: number;
  bytes: number;
  inputs: [string, number, (number | string)[] | null][];
  outputs: [string, number, (number | string)[] | null][];
  ops: Record<string, number>;
}

const references: Reference[] = fs
  .readFileSync(path.join(__dirname, '../fixtures/real-models-reference.ndjson'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as Reference);

const byFile = new Map(references.map((r) => [r.file, r]));
const kinds = Object.keys(REAL_MODELS) as (keyof typeof REAL_MODELS)[];

describe('real models: inspect counts match the onnx package', () => {
  for (const kind of kinds) {
    const file = REAL_MODELS[kind];
    it(path.basename(file), () => {
      const ref = byFile.get(path.basename(file));
      assert.ok(ref, `reference for ${file}`);
      const model = OnnxModel.load(file);
      const s = summarizeModel(model);
      assert.equal(s.irVersion, ref.ir);
      assert.deepEqual(s.opsets, ref.opsets);
      assert.equal(s.nodes, ref.nodes);
      assert.equal(s.nodesTotal, ref.nodesTotal);
      assert.equal(s.subgraphs, ref.subgraphs);
      assert.deepEqual(s.opTypes, ref.ops);
      assert.equal(s.weights.byLocation.initializer, ref.initializers);
      assert.equal(s.weights.byLocation.constant, ref.constants);
      assert.equal(s.weights.byLocation.external, 0);
      assert.equal(s.weights.count, ref.initializers + ref.constants);
      assert.equal(s.weights.elements, ref.elements);
      assert.equal(s.weights.bytes, ref.bytes);
      assert.deepEqual(
        s.inputs.map((i) => [i.name, i.type, i.shape]),
        ref.inputs.map(([n, t, sh]) => [n, dataTypeName(t), sh]),
      );
      assert.deepEqual(
        s.outputs.map((i) => [i.name, i.type, i.shape]),
        ref.outputs.map(([n, t, sh]) => [n, dataTypeName(t), sh]),
      );
    });
  }
});

describe('real models: round trip through our writer', () => {
  for (const kind of kinds) {
    const file = REAL_MODELS[kind];
    it(`${path.basename(file)}: onnxruntime gives bit-identical outputs`, async () => {
      const original = fs.readFileSync(file);
      const reencoded = encodeModel(OnnxModel.fromBuffer(original, file).proto);
      const feeds = realModelFeeds(kind);
      const a = outputBytes(await runModel(original, feeds));
      const b = outputBytes(await runModel(reencoded, feeds));
      assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
      for (const name of Object.keys(a)) assert.ok(a[name]!.equals(b[name]!), `output ${name} differs`);
      // Re-encoding is a fixed point.
      assert.ok(Buffer.from(encodeModel(OnnxModel.fromBuffer(reencoded).proto)).equals(Buffer.from(reencoded)));
    });
  }

  // proto2 presence of empty strings is not modelled, so files whose exporter left the default
  // domain out (silero 16k) re-encode one field longer; these exporters wrote it, as we do.
  for (const kind of ['ocrDet', 'ocrRec', 'ocrCls', 'vadIfless'] as const) {
    it(`${path.basename(REAL_MODELS[kind])} re-encodes byte for byte`, () => {
      const original = fs.readFileSync(REAL_MODELS[kind]);
      assert.ok(Buffer.from(encodeModel(OnnxModel.fromBuffer(original).proto)).equals(original));
    });
  }

  it('weights moved to external data: onnxruntime loads it, outputs identical, our reader agrees', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const model = OnnxModel.load(REAL_MODELS.vadIfless);
      const out = path.join(dir, 'vad-external.onnx');
      const result = saveModel(model.proto, out, { externalData: 'always', externalThreshold: 256 });
      assert.equal(result.externalDataFile, `${out}.data`);
      // 2.18 MB of weights move out; what stays is graph structure and the exporter's metadata.
      const originalSize = fs.statSync(REAL_MODELS.vadIfless).size;
      assert.ok(result.externalBytes > 2_100_000, `external bytes ${result.externalBytes}`);
      assert.ok(result.bytes < originalSize - 2_100_000, `model proto is small: ${result.bytes}`);
      const feeds = realModelFeeds('vadIfless');
      const a = outputBytes(await runModel(REAL_MODELS.vadIfless, feeds));
      const b = outputBytes(await runModel(out, feeds));
      for (const name of Object.keys(a)) assert.ok(a[name]!.equals(b[name]!), `output ${name} differs`);

      const reread = OnnxModel.load(out);
      const s = summarizeModel(reread);
      const s0 = summarizeModel(model);
      assert.equal(s.weights.count, s0.weights.count);
      assert.equal(s.weights.elements, s0.weights.elements);
      assert.ok(s.weights.byLocation.external > 0);
      // Inlining it again restores the original bytes of every weight.
      const back = path.join(dir, 'vad-inline.onnx');
      saveModel(reread.proto, back, { externalData: 'never', readExternal: (t) => reread.rawBytes(t)! });
      const c = outputBytes(await runModel(back, feeds));
      for (const name of Object.keys(a)) assert.ok(a[name]!.equals(c[name]!), `output ${name} differs after inlining`);
      reread.close();
    } finally {
      cleanup();
    }
  });
});

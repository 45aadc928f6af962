/**
 * A real published model (Silero VAD: inputs `input` float32 [batch, sequence], `state` float32
 * [2, batch, 128], `sr` int64 scalar) fed from a folder of .npy files and from synthetic data, and
 * run by onnxruntime-node: the loaded tensors must give the very outputs that tensors built
 * directly give (so views into file buffers, shared inputs and int64 scalars are all valid).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../../src/onnx/model';
import { writeNpy } from '../../src/runtime/data/npy';
import { openSampleFolder, splitSource } from '../../src/runtime/data/folder';
import { syntheticSource } from '../../src/runtime/data/synthetic';
import { outputBytes, REAL_MODELS, tempDir } from '../helpers/ort';

const chunk = (k: number) => Float32Array.from({ length: 512 }, (_, i) => 0.4 * Math.sin((i + 37 * k) * (0.05 + 0.01 * k)));

describe('data for a real model (Silero VAD)', () => {
  let session: ort.InferenceSession;
  let model: OnnxModel;
  before(async () => {
    session = await ort.InferenceSession.create(REAL_MODELS.vad);
    model = OnnxModel.load(REAL_MODELS.vad);
  });
  after(async () => {
    await session.release();
  });

  it('a folder of <input>_<k>.npy files with shared state and sample rate runs as direct tensors do', async () => {
    const { dir, cleanup } = tempDir();
    try {
      for (let k = 0; k < 4; k++) {
        // Half the chunks as float64, as numpy writes by default: converted to float32 on load.
        const data = chunk(k);
        fs.writeFileSync(path.join(dir, `input_${k}.npy`), k % 2 ? writeNpy(Float64Array.from(data), [1, 512]) : writeNpy(data, [1, 512]));
      }
      fs.writeFileSync(path.join(dir, 'state.npy'), writeNpy(new Float32Array(2 * 128), [2, 1, 128]));
      fs.writeFileSync(path.join(dir, 'sr.npy'), writeNpy(BigInt64Array.from([16000n]), []));
      const source = openSampleFolder(dir, model);
      assert.equal(source.layout, 'npy-inputs');
      assert.equal(source.count, 4);
      let k = 0;
      for await (const feeds of source.samples()) {
        const got = await session.run(feeds);
        const want = await session.run({
          input: new ort.Tensor('float32', chunk(k), [1, 512]),
          state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]),
          sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []),
        });
        assert.deepEqual(outputBytes(got), outputBytes(want), `sample ${k}`);
        const p = (got.output!.data as Float32Array)[0]!;
        assert.ok(p >= 0 && p <= 1, `speech probability ${p}`);
        k++;
      }
      assert.equal(k, 4);
      const { calib, eval: held } = splitSource(source, 0.25);
      assert.equal(calib.count + held.count, 4);
      assert.equal(held.count, 1);
    } finally {
      cleanup();
    }
  });

  it('synthetic samples (sequence size and sr given, state fixed) run', async () => {
    const source = syntheticSource(model, { count: 3, seed: 1, dims: { sequence: 512 }, fixed: { sr: [16000], state: [0] } });
    assert.equal(source.synthetic, true);
    assert.equal(source.description, 'synthetic: 3 samples, seed 1; input [1,512] N(0,1); state [2,1,128] all 0; sr [] all 16000');
    let n = 0;
    for await (const feeds of source.samples()) {
      const out = await session.run(feeds);
      assert.deepEqual(out.output!.dims, [1, 1]);
      assert.ok(Number.isFinite((out.output!.data as Float32Array)[0]));
      n++;
    }
    assert.equal(n, 3);
    // Without the sequence size, the error says which dim to set.
    assert.throws(() => syntheticSource(model, { count: 1 }), /set the size of dim 1 "sequence" with dims: \{"sequence": <size>\}/);
  });
});

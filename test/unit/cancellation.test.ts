/**
 * Cancelling quantization at random points: the run rejects with an AbortError (or finishes, when
 * the abort comes too late), no partial or temporary output file is left, and the input is unchanged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/onnx/builder';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { buildDemoModel } from '../../src/cli/demo-model';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { syntheticSource } from '../../src/runtime/data';
import { PipelineProgress, quantizeModel } from '../../src/runtime/quantize-model';
import { tempDir } from '../helpers/ort';

describe('cancellation', () => {
  it('aborting quantize at random points leaves nothing behind', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    try {
      const input = path.join(dir, 'in.onnx');
      saveModel(buildDemoModel(), input);
      const before = fs.readFileSync(input);
      const model = OnnxModel.load(input);
      const run = (signal?: AbortSignal, onProgress?: (p: PipelineProgress) => void) =>
        quantizeModel({
          input,
          output: path.join(dir, 'out.onnx'),
          config: { ...DEFAULT_CONFIG },
          calib: syntheticSource(model, { count: 16, seed: 1, dims: { N: 1 } }),
          eval: syntheticSource(model, { count: 4, seed: 2, dims: { N: 1 } }),
          evalNote: 'synthetic',
          latencyRuns: 5,
          signal,
          onProgress,
        });
      // Progress events of an uncancelled run: each round aborts at a random one of them, so every
      // phase (calibration, transform, check, save, evaluation) gets cancelled somewhere.
      const phases: string[] = [];
      await run(undefined, (p) => phases.push(p.phase));
      fs.rmSync(path.join(dir, 'out.onnx'));

      const rng = new Rng(42);
      let aborted = 0;
      for (let i = 0; i < 12; i++) {
        const controller = new AbortController();
        const at = Math.floor(rng.next() * phases.length);
        let seen = 0;
        const onProgress = () => {
          if (seen++ === at) controller.abort();
        };
        const delay = at;
        try {
          await run(controller.signal, onProgress);
          // Finished before the abort: a complete output, removed for the next round.
          assert.ok(OnnxModel.load(path.join(dir, 'out.onnx')).proto.graph!.node.length > 0);
        } catch (err) {
          assert.equal((err as Error).name, 'AbortError', `abort at progress event ${delay} (${phases[delay]}): ${String(err)}`);
          aborted++;
          // Cancelled before saving: no output. During the comparison: the output was already
          // verified and renamed into place whole, so it loads.
          const out = path.join(dir, 'out.onnx');
          if (fs.existsSync(out)) assert.ok(OnnxModel.load(out).proto.graph!.node.length > 0);
        }
        const left = fs.readdirSync(dir).filter((f) => f !== 'in.onnx' && f !== 'out.onnx');
        assert.deepEqual(left, [], `no temporary files after an abort at progress event ${delay} (${phases[delay]})`);
        fs.rmSync(path.join(dir, 'out.onnx'), { force: true });
      }
      assert.ok(aborted >= 10, `${aborted} of 12 runs were cancelled`);
      assert.ok(fs.readFileSync(input).equals(before), 'the input is unchanged');
      model.close();
    } finally {
      cleanup();
    }
  });
});

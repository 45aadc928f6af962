/**
 * Endurance: 20 analyses of the same model back to back in one process (calibration, local and
 * global sensitivity on worker threads) do not grow memory, and leave no onnxruntime session and
 * no worker thread behind. What an extension host does when a user re-analyses a model all day.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { analyzeModel } from '../../src/analysis/analyze';
import { liveWorkerCount } from '../../src/analysis/sensitivity-global';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { syntheticSource } from '../../src/runtime/data';
import { liveSessionCount } from '../../src/runtime/session';
import { tempDir } from '../helpers/ort';

// A full collection before each reading, also when node was started without --expose-gc.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const RUNS = 20;
const WARM_UP = 2;

/** About 4 MB of float weights: a stem and six 128-channel 3×3 convolutions on 16×16 inputs. */
function buildModel(file: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 21 });
  let x = b.input('x', DataType.FLOAT, [1, 3, 16, 16]);
  x = b.relu(b.conv(x, 3, 128, 3));
  for (let i = 0; i < 6; i++) x = b.relu(b.conv(x, 128, 128, 3));
  x = b.node('Flatten', [b.node('GlobalAveragePool', [x])]);
  b.output(b.gemm(x, 128, 10), DataType.FLOAT, [1, 10]);
  saveModel(b.build(), file);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;

describe('endurance', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;

  before(() => {
    ({ dir, cleanup } = tempDir());
    file = path.join(dir, 'model.onnx');
    buildModel(file);
  });
  after(() => cleanup());

  it(`${RUNS} analyses in one process do not grow memory or leave sessions and threads`, { timeout: 600_000 }, async () => {
    assert.ok(fs.statSync(file).size > 3e6, 'a model of a few MB');
    const model = OnnxModel.load(file);
    const calib = syntheticSource(model, { count: 2, seed: 1 });
    model.close();
    const heap: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < WARM_UP + RUNS; i++) {
      const r = await analyzeModel({ model: file, calib, sensitivity: 'global', workers: 2, globalSamples: 2, suggest: false });
      assert.equal(r.layers.length, 8);
      assert.equal(liveSessionCount(), 0, `no session left after analysis ${i + 1}`);
      assert.equal(liveWorkerCount(), 0, `no worker left after analysis ${i + 1}`);
      assert.deepEqual(process.getActiveResourcesInfo().filter((h) => h === 'MessagePort' || h === 'Worker'), [], `no thread handle left after analysis ${i + 1}`);
      gc();
      gc();
      const m = process.memoryUsage();
      if (i >= WARM_UP) {
        heap.push(m.heapUsed);
        rss.push(m.rss);
      }
    }
    const heapFirst = mean(heap.slice(0, 5));
    const heapLast = mean(heap.slice(-5));
    const rssFirst = mean(rss.slice(0, 5));
    const rssLast = mean(rss.slice(-5));
    console.log(`endurance: heapUsed first 5 ${mb(heapFirst)} → last 5 ${mb(heapLast)}; RSS ${mb(rssFirst)} → ${mb(rssLast)} (max ${mb(Math.max(...rss))})`);
    assert.ok(heapLast <= heapFirst * 1.1 + 2 * 2 ** 20, `heapUsed does not grow: ${mb(heapFirst)} → ${mb(heapLast)}`);
    // RSS moves with the allocator (freed native memory is not always returned): bounded, not flat.
    assert.ok(rssLast <= rssFirst * 1.25 + 64 * 2 ** 20, `RSS stays bounded: ${mb(rssFirst)} → ${mb(rssLast)}`);
  });
});

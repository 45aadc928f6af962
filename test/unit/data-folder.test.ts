/**
 * Sample folders: layout detection (npy, <input>_<k>.npy, subfolders, npz, images), natural order,
 * shared inputs, the checks against the model's inputs with errors that name the file and the
 * input, limit/offset and the held-out split, and memory that does not grow with the sample count.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { zipSync } from 'fflate';
import { PNG } from 'pngjs';
import { Tensor } from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { Sample, SampleDataError, SampleSource } from '../../src/runtime/samples';
import { checkSample, modelInputSpecs } from '../../src/runtime/data/model-inputs';
import { NpyValues, writeNpy } from '../../src/runtime/data/npy';
import { openSampleFolder, sliceSource, splitSource } from '../../src/runtime/data/folder';
import { tempDir } from '../helpers/ort';

type InputDecl = [name: string, type: DataType, shape: (number | string)[]];

/** A model with these inputs, each passed through an Identity node. */
function model(inputs: InputDecl[], opts: { initializerInput?: string } = {}): OnnxModel {
  const b = new ModelBuilder();
  for (const [name, type, shape] of inputs) {
    b.input(name, type, shape);
    b.output(b.node('Identity', [name]), type);
  }
  if (opts.initializerInput) {
    // Old IR: an initializer also listed as a graph input is not a real input.
    b.input(opts.initializerInput, DataType.FLOAT, [1]);
    b.initializer(opts.initializerInput, DataType.FLOAT, [1], Float32Array.from([1]));
  }
  return OnnxModel.fromProto(b.build(), 'model.onnx');
}

function npy(dir: string, file: string, values: NpyValues, shape: number[], dtype?: 'bool' | 'float16'): string {
  const full = path.join(dir, file);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, writeNpy(values, shape, dtype ? { dtype } : {}));
  return full;
}

const floats = (n: number, f: (i: number) => number = (i) => i) => Float32Array.from({ length: n }, (_, i) => f(i));

async function collect(source: SampleSource): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of source.samples()) out.push(s);
  return out;
}

/** Iterates and expects a SampleDataError with exactly this message (or matching the pattern). */
async function failsWith(source: SampleSource, expected: string | RegExp): Promise<void> {
  await assert.rejects(collect(source), (e: unknown) => {
    assert.ok(e instanceof SampleDataError, String(e));
    if (typeof expected === 'string') assert.equal(e.message, expected);
    else assert.match(e.message, expected);
    return true;
  });
}

function openFails(fn: () => unknown, expected: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SampleDataError, String(e));
    if (typeof expected === 'string') assert.equal(e.message, expected);
    else assert.match(e.message, expected);
    return true;
  });
}

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const { dir, cleanup } = tempDir('onnx-quant-data-');
    try {
      await fn(dir);
    } finally {
      cleanup();
    }
  };
}

describe('model inputs', () => {
  it('lists real inputs with onnxruntime types and symbolic dims; initializer-inputs are left out', () => {
    const m = model(
      [
        ['x', DataType.FLOAT, [1, 3, 'H', 32]],
        ['ids', DataType.INT64, ['batch', '?']],
      ],
      { initializerInput: 'w' },
    );
    assert.deepEqual(modelInputSpecs(m), [
      { name: 'x', elemType: DataType.FLOAT, dtype: 'float32', shape: [1, 3, 'H', 32] },
      { name: 'ids', elemType: DataType.INT64, dtype: 'int64', shape: ['batch', '?'] },
    ]);
    openFails(() => modelInputSpecs(model([['b', DataType.BFLOAT16, [1]]])), 'model.onnx: input "b" has type bfloat16, which onnxruntime-node cannot feed');
  });

  it('checkSample: missing, extra, type, rank, fixed dims, shared symbolic dims, non-finite values', () => {
    const specs = modelInputSpecs(
      model([
        ['x', DataType.FLOAT, [1, 3, 'H', 32]],
        ['m', DataType.FLOAT, ['H']],
      ]),
    );
    const f32 = (dims: number[], fill = 0) => new Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(fill), dims);
    const ok = { x: f32([1, 3, 30, 32]), m: f32([30]) };
    checkSample(ok, specs, 'calib/x_3.npy');
    checkSample({ x: f32([1, 3, 7, 32]), m: f32([7]) }, specs, 'calib/x_4.npy'); // sizes may vary between samples
    const fails = (sample: Sample, message: string) =>
      assert.throws(() => checkSample(sample, specs, 'calib/x_3.npy'), (e: unknown) => e instanceof SampleDataError && e.message === message && e.file === 'calib/x_3.npy');
    fails({ x: f32([1, 3, 30, 30]), m: f32([30]) }, 'calib/x_3.npy: input "x" has shape [1,3,30,30] but the model expects [1,3,"H",32]');
    fails({ x: f32([3, 30, 32]), m: f32([30]) }, 'calib/x_3.npy: input "x" has shape [3,30,32] but the model expects [1,3,"H",32]');
    fails({ x: f32([1, 3, 30, 32]) }, 'calib/x_3.npy: input "m" is missing (the model\'s inputs: "x", "m")');
    fails({ ...ok, y: f32([1]) }, 'calib/x_3.npy: "y" is not an input of the model (its inputs: "x", "m")');
    fails({ x: new Tensor('float64', new Float64Array(3 * 30 * 32), [1, 3, 30, 32]), m: f32([30]) }, 'calib/x_3.npy: input "x" has type float64 but the model expects float32');
    fails(
      { x: f32([1, 3, 30, 32]), m: f32([31]) },
      'calib/x_3.npy: input "m" has shape [31], so dim "H" is 31, but it is 30 in input "x" (the model expects ["H"])',
    );
    const nan = f32([1, 3, 30, 32]);
    (nan.data as Float32Array)[17] = NaN;
    fails({ x: nan, m: f32([30]) }, 'calib/x_3.npy: input "x" contains NaN at element 17; calibration needs finite values');
    fails({ x: f32([1, 3, 30, 32]), m: f32([30], -Infinity) }, 'calib/x_3.npy: input "m" contains -Infinity at element 0; calibration needs finite values');
    const halfSpecs = modelInputSpecs(model([['h', DataType.FLOAT16, [2]]]));
    assert.throws(() => checkSample({ h: new Tensor('float16', Uint16Array.from([0x3c00, 0x7c00]), [2]) }, halfSpecs, 'h.npy'), /input "h" contains a NaN or infinite value at element 1/);
  });
});

describe('sample folders: npy', () => {
  const single = () => model([['x', DataType.FLOAT, [1, 3, 'H', 32]]]);

  it(
    'single input: every .npy file is a sample, in natural order; errors name the file',
    withDir(async (dir) => {
      for (const k of [10, 2, 1]) npy(dir, `x_${k}.npy`, floats(3 * 4 * 32, () => k), [1, 3, 4, 32]);
      fs.writeFileSync(path.join(dir, 'labels.txt'), 'not data');
      fs.writeFileSync(path.join(dir, '.DS_Store'), '');
      const source = openSampleFolder(dir, single());
      assert.equal(source.layout, 'npy');
      assert.equal(source.count, 3);
      assert.equal(source.synthetic, false);
      assert.deepEqual(
        source.entries.map((e) => e.id),
        ['x_1.npy', 'x_2.npy', 'x_10.npy'],
      );
      assert.deepEqual(source.ignored, ['labels.txt']);
      assert.equal(source.description, `3 .npy files in ${dir} (one per sample, input "x"); not data, ignored: labels.txt`);
      const samples = await collect(source);
      assert.deepEqual(
        samples.map((s) => (s.x!.data as Float32Array)[0]),
        [1, 2, 10],
      );
      // A second pass starts over.
      assert.equal((await collect(source)).length, 3);

      npy(dir, 'x_3.npy', floats(3 * 30 * 30), [1, 3, 30, 30]);
      await failsWith(openSampleFolder(dir, single()), `${path.join(dir, 'x_3.npy')}: input "x" has shape [1,3,30,30] but the model expects [1,3,"H",32]`);
    }),
  );

  it(
    'float64 files feed float32 inputs; other type mismatches are errors',
    withDir(async (dir) => {
      npy(dir, 'a.npy', Float64Array.from({ length: 3 * 32 }, (_, i) => i / 3), [1, 3, 1, 32]);
      const [s] = await collect(openSampleFolder(dir, single()));
      assert.equal(s!.x!.type, 'float32');
      assert.ok(Math.abs((s!.x!.data as Float32Array)[1]! - 1 / 3) < 1e-7);
      npy(dir, 'b.npy', Int32Array.from({ length: 3 * 32 }), [1, 3, 1, 32]);
      await failsWith(openSampleFolder(dir, single()), `${path.join(dir, 'b.npy')}: input "x" has type int32 but the model expects float32`);
      const ids = model([['ids', DataType.INT64, [1, 'n']]]);
      fs.rmSync(path.join(dir, 'a.npy'));
      await failsWith(openSampleFolder(dir, ids), `${path.join(dir, 'b.npy')}: input "ids" has type int32 but the model expects int64 (in numpy: a.astype(np.int64))`);
    }),
  );

  it(
    'NaN in a sample names the file and the input',
    withDir(async (dir) => {
      npy(dir, 's0.npy', floats(96), [1, 3, 1, 32]);
      npy(
        dir,
        's1.npy',
        floats(96, (i) => (i === 5 ? NaN : i)),
        [1, 3, 1, 32],
      );
      await failsWith(openSampleFolder(dir, single()), `${path.join(dir, 's1.npy')}: input "x" contains NaN at element 5; calibration needs finite values`);
    }),
  );

  it(
    'multi-input: <input>_<k>.npy per input of sample k, <input>.npy shared by every sample',
    withDir(async (dir) => {
      const m = model([
        ['input:0', DataType.FLOAT, ['batch', 4]],
        ['state', DataType.FLOAT, [2, 'batch']],
        ['sr', DataType.INT64, []],
      ]);
      for (const k of [0, 1, 2]) {
        npy(dir, `input_0_${k}.npy`, floats(4, () => k), [1, 4]);
        npy(dir, `state_${k}.npy`, floats(2, () => -k), [2, 1]);
      }
      npy(dir, 'sr.npy', BigInt64Array.from([16000n]), []);
      const source = openSampleFolder(dir, m);
      assert.equal(source.layout, 'npy-inputs');
      assert.deepEqual(source.shared, { sr: path.join(dir, 'sr.npy') });
      assert.deepEqual(
        source.entries.map((e) => e.id),
        ['0', '1', '2'],
      );
      assert.deepEqual(source.entries[1]!.files, [path.join(dir, 'input_0_1.npy'), path.join(dir, 'state_1.npy')]);
      assert.equal(source.description, `3 samples in ${dir} (<input>_<k>.npy files); shared: sr.npy`);
      const samples = await collect(source);
      assert.deepEqual(
        samples.map((s) => [(s['input:0']!.data as Float32Array)[0], (s.state!.data as Float32Array)[0], (s.sr!.data as BigInt64Array)[0]]),
        [
          [0, -0, 16000n],
          [1, -1, 16000n],
          [2, -2, 16000n],
        ],
      );

      // A symbolic dim must have one size within a sample; the error names the input's file.
      npy(dir, 'state_1.npy', floats(4), [2, 2]);
      await failsWith(
        openSampleFolder(dir, m),
        `${path.join(dir, 'state_1.npy')}: input "state" has shape [2,2], so dim "batch" is 2, but it is 1 in input "input:0" (the model expects [2,"batch"])`,
      );
      fs.rmSync(path.join(dir, 'state_1.npy'));
      openFails(() => openSampleFolder(dir, m), `${dir}: sample 1 has no file for input "state" (expected state_1.npy)`);
      npy(dir, 'other_1.npy', floats(2), [2, 1]);
      openFails(() => openSampleFolder(dir, m), new RegExp(`^${escape(path.join(dir, 'other_1.npy'))}: with a multi-input model, top-level \\.npy files are named <input>_<k>\\.npy`));
    }),
  );

  it(
    'one subfolder per sample holding <input>.npy',
    withDir(async (dir) => {
      const m = model([
        ['a', DataType.FLOAT, [2]],
        ['b', DataType.INT32, [1]],
      ]);
      for (const s of ['s10', 's9']) {
        npy(dir, `${s}/a.npy`, floats(2, () => Number(s.slice(1))), [2]);
        npy(dir, `${s}/b.npy`, Int32Array.from([Number(s.slice(1))]), [1]);
      }
      fs.mkdirSync(path.join(dir, 'empty'));
      const source = openSampleFolder(dir, m);
      assert.equal(source.layout, 'npy-dirs');
      assert.deepEqual(
        source.entries.map((e) => e.id),
        ['s9', 's10'],
      );
      assert.deepEqual(source.ignored, ['empty/']);
      const samples = await collect(source);
      assert.deepEqual(
        samples.map((s) => (s.b!.data as Int32Array)[0]),
        [9, 10],
      );
      fs.rmSync(path.join(dir, 's9', 'b.npy'));
      await failsWith(openSampleFolder(dir, m), `${path.join(dir, 's9')}: input "b" is missing (the model's inputs: "a", "b")`);
      npy(dir, 's9/c.npy', floats(1), [1]);
      openFails(() => openSampleFolder(dir, m), /s9[/\\]c\.npy: not named after a model input \(inputs: a\.npy, b\.npy\)/);
    }),
  );
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('sample folders: npz, images, layouts', () => {
  it(
    'npz: one archive per sample, keys are input names',
    withDir(async (dir) => {
      const m = model([
        ['x', DataType.FLOAT, [1, 2]],
        ['sr', DataType.INT64, []],
      ]);
      for (let k = 0; k < 2; k++) {
        fs.writeFileSync(path.join(dir, `s${k}.npz`), zipSync({ 'x.npy': writeNpy(Float64Array.from([k, k]), [1, 2]), 'sr.npy': writeNpy(BigInt64Array.from([8000n]), []) }));
      }
      const source = openSampleFolder(dir, m);
      assert.equal(source.layout, 'npz');
      assert.equal(source.description, `2 .npz archives in ${dir}`);
      const samples = await collect(source);
      assert.deepEqual(
        samples.map((s) => [...(s.x!.data as Float32Array)]),
        [
          [0, 0],
          [1, 1],
        ],
      );
      fs.writeFileSync(path.join(dir, 's2.npz'), zipSync({ 'x.npy': writeNpy(Float32Array.from([1, 1]), [1, 2]), 'y.npy': writeNpy(Float32Array.from([1]), [1]) }));
      await failsWith(openSampleFolder(dir, m), `${path.join(dir, 's2.npz')}: "y" is not an input of the model (its inputs: "x", "sr")`);
    }),
  );

  it(
    'images, with the other inputs of the model as shared .npy files',
    withDir(async (dir) => {
      const m = model([
        ['image', DataType.FLOAT, ['N', 3, 4, 4]],
        ['scale', DataType.FLOAT, [1]],
      ]);
      for (const name of ['b.png', 'a.PNG']) {
        const img = new PNG({ width: 8, height: 8 });
        img.data.fill(name === 'b.png' ? 255 : 0);
        fs.writeFileSync(path.join(dir, name), PNG.sync.write(img));
      }
      npy(dir, 'scale.npy', Float32Array.from([2]), [1]);
      const source = openSampleFolder(dir, m, { image: { resize: 'model', mean: [0.5], std: [0.5] } });
      assert.equal(source.layout, 'images');
      assert.equal(
        source.description,
        `2 images in ${dir} → input "image": NCHW RGB float32, resized to 4×4 (bilinear), (x·0.00392157 − mean)/std with mean [0.5,0.5,0.5], std [0.5,0.5,0.5]; shared: scale.npy`,
      );
      const samples = await collect(source);
      assert.deepEqual(samples[0]!.image!.dims, [1, 3, 4, 4]);
      assert.deepEqual(
        samples.map((s) => (s.image!.data as Float32Array)[0]),
        [-1, 1],
      );
      assert.deepEqual([...(samples[1]!.scale!.data as Float32Array)], [2]);
      fs.rmSync(path.join(dir, 'scale.npy'));
      openFails(() => openSampleFolder(dir, m), `${dir}: images feed one input, but the model has 2 to fill ("image", "scale"); give the others as shared <input>.npy files in the folder`);
      for (const name of ['a.PNG', 'b.png']) fs.rmSync(path.join(dir, name));
      npy(dir, 'image.npy', floats(48), [1, 3, 4, 4]);
      npy(dir, 'scale.npy', Float32Array.from([2]), [1]);
      openFails(() => openSampleFolder(dir, m), `${dir}: no samples found, only values every sample shares (image.npy, scale.npy); name one file per input of sample k <input>_<k>.npy`);
    }),
  );

  it(
    'empty, missing and mixed folders',
    withDir(async (dir) => {
      const m = model([['x', DataType.FLOAT, [1]]]);
      fs.writeFileSync(path.join(dir, 'README.md'), '# notes');
      openFails(
        () => openSampleFolder(dir, m),
        `${dir}: no samples found: expected .npy files, .npz archives, PNG/JPEG images, test_data_set_* folders, or one subfolder of <input>.npy files per sample`,
      );
      openFails(() => openSampleFolder(path.join(dir, 'nope'), m), `${path.join(dir, 'nope')}: no such folder`);
      openFails(() => openSampleFolder(path.join(dir, 'README.md'), m), `${path.join(dir, 'README.md')}: not a folder`);
      npy(dir, 'a.npy', floats(1), [1]);
      npy(dir, 'b.npy', floats(1), [1]);
      fs.writeFileSync(path.join(dir, 'c.jpg'), 'x');
      openFails(() => openSampleFolder(dir, m), `${dir}: mixed layouts: 2 .npy files and 1 image; keep one kind of sample per folder`);
    }),
  );
});

describe('sample folders: limit, offset and split', () => {
  const m = model([['x', DataType.FLOAT, [1]]]);
  const setup = (dir: string, n: number) => {
    for (let k = 0; k < n; k++) npy(dir, `s_${k}.npy`, Float32Array.from([k]), [1]);
  };
  const ids = (s: { entries: readonly { id: string }[] }) => s.entries.map((e) => e.id);

  it(
    'offset and limit select from the sorted samples',
    withDir(async (dir) => {
      setup(dir, 10);
      const s = openSampleFolder(dir, m, { offset: 2, limit: 3 });
      assert.deepEqual(ids(s), ['s_2.npy', 's_3.npy', 's_4.npy']);
      assert.equal(s.count, 3);
      assert.equal(s.description, `3 .npy files in ${dir} (one per sample, input "x") — samples 3–5 of 10`);
      assert.deepEqual(
        (await collect(s)).map((x) => (x.x!.data as Float32Array)[0]),
        [2, 3, 4],
      );
      assert.deepEqual(ids(openSampleFolder(dir, m, { offset: 8, limit: 5 })), ['s_8.npy', 's_9.npy']);
      openFails(() => openSampleFolder(dir, m, { offset: 10 }), `${dir}: offset 10 skips all 10 samples`);
      assert.deepEqual(ids(sliceSource(openSampleFolder(dir, m), 9)), ['s_9.npy']);
    }),
  );

  it(
    'splitSource: a deterministic partition, independent of file order, stable when samples are added',
    withDir(async (dir) => {
      setup(dir, 50);
      const source = openSampleFolder(dir, m);
      const a = splitSource(source, 0.2);
      const b = splitSource(openSampleFolder(dir, m), 0.2);
      assert.equal(a.eval.count, 10);
      assert.equal(a.calib.count, 40);
      assert.deepEqual(ids(a.eval), ids(b.eval));
      assert.deepEqual([...ids(a.calib), ...ids(a.eval)].sort(), ids(source).sort());
      assert.equal(new Set([...ids(a.calib), ...ids(a.eval)]).size, 50);
      // Not simply the last (or first) files.
      assert.notDeepEqual(ids(a.eval), ids(source).slice(40));
      assert.notDeepEqual(ids(a.eval), ids(source).slice(0, 10));
      // Each part keeps file order.
      assert.deepEqual(ids(a.eval), [...ids(source)].filter((id) => ids(a.eval).includes(id)));
      assert.match(a.eval.description, /held-out evaluation part: 10 of 50 samples$/);
      assert.match(a.calib.description, /calibration part: 40 of 50 samples$/);
      // Yielded samples are the files listed.
      const evalValues = (await collect(a.eval)).map((s) => `s_${(s.x!.data as Float32Array)[0]}.npy`);
      assert.deepEqual(evalValues, ids(a.eval));
      // Another seed, another split.
      assert.notDeepEqual(ids(splitSource(source, 0.2, 'other').eval), ids(a.eval));
      // Adding samples keeps the old ones on their side (up to the ones the new files displace).
      setup(dir, 55);
      const c = splitSource(openSampleFolder(dir, m), 0.2);
      const moved = ids(c.calib).filter((id) => ids(a.eval).includes(id));
      assert.ok(moved.length <= 1, `moved: ${moved}`);
      openFails(() => splitSource(source, 1.5), `${dir}: the evaluation fraction must be between 0 and 1, got 1.5`);
      openFails(() => splitSource(openSampleFolder(dir, m, { limit: 2 }), 0.1), `${dir}: cannot hold out 10% of 2 samples: one part would be empty`);
    }),
  );

  it(
    'an abort signal stops iteration',
    withDir(async (dir) => {
      setup(dir, 5);
      const controller = new AbortController();
      let seen = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of openSampleFolder(dir, m).samples(controller.signal)) {
            if (++seen === 2) controller.abort();
          }
        })(),
        { name: 'AbortError' },
      );
      assert.equal(seen, 2);
    }),
  );
});

describe('sample folders: memory', () => {
  it(
    'iterating 200 samples keeps no reference to earlier samples',
    withDir(async (dir) => {
      const n = 16384; // 64 KB per sample, 12.8 MB for all of them
      const m = model([['x', DataType.FLOAT, [1, n]]]);
      for (let k = 0; k < 200; k++) npy(dir, `s_${k}.npy`, floats(n, () => k), [1, n]);
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      const refs: WeakRef<object>[] = [];
      let count = 0;
      gc();
      const before = process.memoryUsage().arrayBuffers;
      let peak = 0;
      for await (const sample of openSampleFolder(dir, m).samples()) {
        refs.push(new WeakRef(sample.x!.data as Float32Array));
        count++;
        if (count % 50 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
        }
      }
      assert.equal(count, 200);
      await new Promise((r) => setImmediate(r));
      gc();
      await new Promise((r) => setImmediate(r));
      gc();
      const alive = refs.filter((r) => r.deref() !== undefined).length;
      assert.ok(alive <= 2, `${alive} of 200 samples still reachable`);
      assert.ok(peak < 4 * 1024 * 1024, `array buffers grew by ${peak} bytes while iterating`);
    }),
  );
});

/**
 * Hostile and corrupt model files: a quick run of the fuzzer (scripts/fuzz.ts; `npm run fuzz` is the
 * long run) and a regression test for every crash it found. Every case must end in success or a
 * clear error (exit code 2, one line naming the file) in bounded time and memory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deepModel, formatReport, runFuzz } from '../../scripts/fuzz';
import { cli } from '../helpers/cli';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxFormatError } from '../../src/onnx/errors';
import { OnnxModel } from '../../src/onnx/model';
import { ModelProto, TensorDataLocation, TensorProto } from '../../src/onnx/proto';
import { saveModel } from '../../src/onnx/save';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { tempDir } from '../helpers/ort';

/** A clear error: exit code 2, nothing on stdout, one line on stderr naming the file. */
function assertCleanError(r: { code: number; out: string; err: string }, file: string, expected: RegExp): void {
  assert.equal(r.code, 2, r.err);
  assert.equal(r.out, '');
  assert.equal(r.err.split('\n').length, 1, `one line: ${r.err}`);
  assert.ok(r.err.includes(file), `names the file: ${r.err}`);
  assert.match(r.err, expected);
}

/** Every weight read and converted, as the weight statistics do. */
function readAllWeights(file: string): void {
  const model = OnnxModel.load(file);
  try {
    for (const w of model.weights()) tensorToFloat32(w.tensor, model.rawBytes(w.tensor), model.file);
  } finally {
    model.close();
  }
}

function modelWithWeight(dims: number[] = [300]): ModelProto {
  const b = new ModelBuilder();
  const x = b.input('x', DataType.FLOAT, [300]);
  b.initializer('w', DataType.FLOAT, dims, new Float32Array(dims.reduce((a, d) => a * d, 1)).fill(1));
  b.output(b.node('Add', [x, 'w'], {}, { outputs: ['y'] }), DataType.FLOAT);
  return b.build();
}

/** The model with its weight "w" pointing at external data `entries`. */
function withExternal(proto: ModelProto, entries: Record<string, string>, dims?: number[]): ModelProto {
  const w = proto.graph!.initializer[0]!;
  const t: TensorProto = {
    ...w,
    dims: dims ?? w.dims,
    rawData: undefined,
    dataLocation: TensorDataLocation.External,
    externalData: Object.entries(entries).map(([key, value]) => ({ key, value })),
  };
  return { ...proto, graph: { ...proto.graph!, initializer: [t] } };
}

/** Whether `onnx-quant analyze --sensitivity none` runs on a small valid model. */
async function analyzeAvailable(): Promise<boolean> {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'probe.onnx');
    const b = new ModelBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 16]);
    b.output(b.matMul(b.relu(b.gemm(x, 16, 32)), 32, 8), DataType.FLOAT, [1, 8]);
    fs.writeFileSync(f, encodeModel(b.build()));
    return (await cli(['analyze', f, '--sensitivity', 'none', '--json'])).code === 0;
  } finally {
    cleanup();
  }
}

describe('fuzz: quick run', () => {
  const seed = Number(process.env.ONNX_QUANT_FUZZ_SEED ?? 20240601);

  it('2,500 mutated real and generated models: inspect and the weight-reading path end in a result or a clear error', { timeout: 120_000 }, async () => {
    const report = await runFuzz({ cases: 2500, seed, corpus: 'quick', workers: 2, timeBoundMs: 2000, ops: ['inspect', 'weights'] });
    console.log(formatReport(report).replace(/^/gm, '# '));
    assert.equal(report.cases, 2500);
    assert.equal(report.counts.failure, 0, formatReport(report));
    // The mix reaches both outcomes: the mutations are neither all fatal nor all harmless.
    assert.ok(report.counts.ok > 100 && report.counts['clean-error'] > 1000, JSON.stringify(report.counts));
  });

  it('500 of them through analyze --sensitivity none', { timeout: 120_000 }, async (t) => {
    if (!(await analyzeAvailable())) return t.skip('onnx-quant analyze --sensitivity none does not run yet');
    // analyze runs onnxruntime on each model that loads: fewer cases than the run above.
    const report = await runFuzz({ cases: 500, seed, corpus: 'quick', workers: 2, timeBoundMs: 2000, ops: ['analyze'] });
    console.log(formatReport(report).replace(/^/gm, '# '));
    assert.equal(report.counts.failure, 0, formatReport(report));
  });
});

describe('fuzz regressions', () => {
  const { dir, cleanup } = tempDir('onnx-quant-fuzz-regress-');
  const file = (name: string) => path.join(dir, name);

  it('external data location that is a folder: clear error, not EISDIR as an internal error', async () => {
    fs.mkdirSync(file('sub'), { recursive: true });
    for (const location of ['sub', '.', './']) {
      const f = file('folder.onnx');
      fs.writeFileSync(f, encodeModel(withExternal(modelWithWeight(), { location, offset: '0', length: '1200' })));
      // inspect only checks the range: the folder is refused before its size (4096) is used.
      assertCleanError(await cli(['inspect', f, '--json']), f, /external data location ".*" is not a regular file/);
      assert.throws(() => readAllWeights(f), (e: unknown) => e instanceof OnnxFormatError && /not a regular file/.test(e.message) && e.message.includes(f));
    }
  });

  it('external data location that is a FIFO: refused at once instead of blocking forever', { skip: process.platform === 'win32' }, async () => {
    const fifo = file('pipe.bin');
    execFileSync('mkfifo', [fifo]);
    const f = file('fifo.onnx');
    fs.writeFileSync(f, encodeModel(withExternal(modelWithWeight(), { location: 'pipe.bin', offset: '0', length: '1200' })));
    const start = performance.now();
    assertCleanError(await cli(['inspect', f, '--json']), f, /"pipe\.bin" is not a regular file/);
    assert.throws(() => readAllWeights(f), /not a regular file/);
    assert.ok(performance.now() - start < 2000);
  });

  it('absurd or negative dims of a weight: the error names the file and the tensor', async () => {
    for (const [dims, expected] of [
      [[2 ** 40, 2 ** 40], /tensor "w": dims \[1099511627776, 1099511627776\] describe more than 2\^53 elements/],
      [[-5, 3], /tensor "w": dims \[-5, 3\] contain invalid dimension -5/],
      [[2 ** 62], /tensor "w": dims \[\d+\] contain invalid dimension/],
    ] as const) {
      const proto = modelWithWeight();
      proto.graph!.initializer[0]!.dims = [...dims];
      const f = file('dims.onnx');
      fs.writeFileSync(f, encodeModel(proto));
      // Before the fix: "onnx-quant: dims [-5, 3] contain invalid dimension -5", without the file.
      assertCleanError(await cli(['inspect', f, '--json']), f, expected);
    }
    // The same in a Constant node inside a subgraph.
    const b = new ModelBuilder();
    const cond = b.input('c', DataType.BOOL, []);
    const branch = b.subgraph('then', (g) => g.output(g.constant('k', DataType.FLOAT, [2], new Float32Array(2)), DataType.FLOAT));
    b.output(b.node('If', [cond], { then_branch: branch, else_branch: branch }), DataType.FLOAT);
    const proto = b.build();
    proto.graph!.node[0]!.attribute[0]!.g!.node[0]!.attribute[0]!.t!.dims = [-1];
    const f = file('const-dims.onnx');
    fs.writeFileSync(f, encodeModel(proto));
    assertCleanError(await cli(['inspect', f, '--json']), f, /tensor "k": dims \[-1\] contain invalid dimension -1/);
  });

  it('names with a newline (or quotes) keep error messages on one line', async () => {
    const f = file('newline.onnx');
    fs.writeFileSync(f, encodeModel(withExternal(modelWithWeight(), { location: 'm.o\nnx.data', offset: '0', length: '1200' })));
    // Before the fix the message was split over three lines by the location's newline.
    assertCleanError(await cli(['inspect', f, '--json']), f, /external data location "m\.o\\nnx\.data" does not exist/);
    const proto = modelWithWeight();
    const w = proto.graph!.initializer[0]!;
    w.name = 'bad\n"name"';
    w.rawData = w.rawData!.subarray(0, 8);
    fs.writeFileSync(f, encodeModel(proto));
    assert.throws(() => readAllWeights(f), (e: unknown) => e instanceof OnnxFormatError && !e.message.includes('\n') && e.message.includes('"bad\\n\\"name\\""'));
  });

  it('external data whose length disagrees with dims is refused before anything is allocated', () => {
    // A sparse 1 TiB file: every range inside it passes the file-size check.
    const huge = file('huge.bin');
    const fd = fs.openSync(huge, 'w');
    fs.ftruncateSync(fd, 2 ** 40);
    fs.closeSync(fd);
    const f = file('huge.onnx');
    const cases: [Record<string, string>, number[] | undefined, RegExp][] = [
      [{ location: 'huge.bin' }, undefined, /external data has 1099511627776 bytes, expected 1200 for dims \[300\]/],
      [{ location: 'huge.bin', offset: '0', length: String(2 ** 32) }, undefined, /has 4294967296 bytes, expected 1200/],
      // Dims that agree with a range too large for one buffer.
      [{ location: 'huge.bin', offset: '0', length: String(2 ** 34) }, [2 ** 32], /too large to read into memory at once/],
    ];
    for (const [entries, dims, expected] of cases) {
      fs.writeFileSync(f, encodeModel(withExternal(modelWithWeight(), entries, dims)));
      assert.throws(() => readAllWeights(f), (e: unknown) => e instanceof OnnxFormatError && expected.test(e.message) && e.message.includes(f));
    }
  });

  it('graphs nested 10,000 deep: a clear error, not a stack overflow', async () => {
    for (const kind of ['if-graph', 'graphs-list', 'sequence-type'] as const) {
      const f = file(`deep-${kind}.onnx`);
      fs.writeFileSync(f, deepModel(kind, 10_000));
      assertCleanError(await cli(['inspect', f, '--json']), f, /corrupt ONNX protobuf at byte \d+: message nesting deeper than 64/);
    }
    // Nesting that stays inside the limit loads.
    const f = file('deep-ok.onnx');
    fs.writeFileSync(f, deepModel('if-graph', 15));
    const r = await cli(['inspect', f, '--json']);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).subgraphs, 15);
  });

  it('hostile locations are refused: absolute, .., symlinks out of the folder', async () => {
    const outside = tempDir('onnx-quant-outside-');
    try {
      fs.writeFileSync(path.join(outside.dir, 'secret.bin'), new Uint8Array(1200));
      fs.symlinkSync(path.join(outside.dir, 'secret.bin'), file('link-out.bin'));
      fs.symlinkSync(outside.dir, file('link-dir'));
      for (const [location, expected] of [
        [path.join(outside.dir, 'secret.bin'), /is an absolute path/],
        ['../secret.bin', /leaves the model folder/],
        ['sub/../../secret.bin', /leaves the model folder/],
        ['link-out.bin', /is a link that leaves the model folder/],
        ['link-dir/secret.bin', /is a link that leaves the model folder/],
      ] as const) {
        const f = file('hostile.onnx');
        fs.writeFileSync(f, encodeModel(withExternal(modelWithWeight(), { location, offset: '0', length: '1200' })));
        assertCleanError(await cli(['inspect', f, '--json']), f, expected);
      }
    } finally {
      outside.cleanup();
    }
  });

  it('a model saved with external data still round-trips', async () => {
    const f = file('ok.onnx');
    saveModel(modelWithWeight(), f, { externalData: 'always' });
    const r = await cli(['inspect', f, '--json']);
    assert.equal(r.code, 0, r.err);
    readAllWeights(f);
  });

  it('cleanup', () => cleanup());
});

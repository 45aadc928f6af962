/**
 * Model I/O on models the tests build: builder → writer → onnxruntime-node, checked against
 * independent references (outputs computed by hand in double precision), plus the graph API,
 * external data, lossless writing and atomic saves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBuilder, Rng } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxFormatError } from '../../src/onnx/errors';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { summarizeModel } from '../../src/onnx/summary';
import { makeTensor, tensorToFloat32 } from '../../src/onnx/tensor-data';
import { TensorDataLocation } from '../../src/onnx/proto';
import { floatTensor, runModel, tempDir } from '../helpers/ort';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol * (1 + Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('builder + writer + onnxruntime', () => {
  it('Gemm (transB) matches a hand-computed product', async () => {
    const b = new ModelBuilder({ opset: 13 });
    const x = b.input('x', DataType.FLOAT, [2, 3]);
    // W is [out=2, in=3]; y = x·Wᵀ + bias.
    b.initializer('W', DataType.FLOAT, [2, 3], new Float32Array([1, 2, 3, -1, 0.5, 0.25]));
    b.initializer('bias', DataType.FLOAT, [2], new Float32Array([0.5, -1]));
    b.output(b.node('Gemm', [x, 'W', 'bias'], { transB: 1 }, { outputs: ['y'] }), DataType.FLOAT, [2, 2]);
    const bytes = encodeModel(b.build());
    const out = await runModel(bytes, { x: new ort.Tensor('float32', new Float32Array([1, 1, 1, 2, 0, -1]), [2, 3]) });
    // Row 1: [1+2+3+0.5, -1+0.5+0.25-1] = [6.5, -1.25]; row 2: [2-3+0.5, -2-0.25-1] = [-0.5, -3.25].
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [6.5, -1.25, -0.5, -3.25]);
  });

  it('Conv with weights in Constant nodes matches a direct convolution', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 7 });
    b.weightPlacement = 'constant';
    const x = b.input('x', DataType.FLOAT, [1, 2, 5, 5]);
    const y = b.conv(x, 2, 3, 3, { name: 'conv1' });
    b.output(y, DataType.FLOAT);
    const proto = b.build();
    const model = OnnxModel.fromProto(proto);
    const weights = model.weights();
    assert.equal(weights.length, 2);
    assert.ok(weights.every((w) => w.kind === 'constant'));
    const W = tensorToFloat32(weights[0]!.tensor);
    const B = tensorToFloat32(weights[1]!.tensor);
    const input = floatTensor([1, 2, 5, 5], (i) => Math.sin(i));
    const xs = input.data as Float32Array;
    const out = await runModel(encodeModel(proto), { x: input });
    // Reference: 3×3 convolution, padding 1, stride 1, in double precision.
    const ref = new Float64Array(3 * 25);
    for (let o = 0; o < 3; o++)
      for (let r = 0; r < 5; r++)
        for (let c = 0; c < 5; c++) {
          let s = B[o]!;
          for (let i = 0; i < 2; i++)
            for (let kr = 0; kr < 3; kr++)
              for (let kc = 0; kc < 3; kc++) {
                const rr = r + kr - 1;
                const cc = c + kc - 1;
                if (rr < 0 || rr >= 5 || cc < 0 || cc >= 5) continue;
                s += W[((o * 2 + i) * 3 + kr) * 3 + kc]! * xs[(i * 5 + rr) * 5 + cc]!;
              }
          ref[(o * 5 + r) * 5 + c] = s;
        }
    close(out[y]!.data as Float32Array, ref, 1e-5, 'conv');
  });

  it('If branches read weights of the enclosing graph and hold their own Constant weights', async () => {
    const b = new ModelBuilder({ opset: 13 });
    const x = b.input('x', DataType.FLOAT, [3]);
    const cond = b.input('cond', DataType.BOOL, []);
    b.initializer('outer_w', DataType.FLOAT, [3], new Float32Array([10, 20, 30]));
    const thenG = b.subgraph('then', (g) => {
      g.output(g.node('Add', [x, 'outer_w'], {}, { outputs: ['then_y'] }), DataType.FLOAT, [3]);
    });
    const elseG = b.subgraph('else', (g) => {
      g.constant('inner_c', DataType.FLOAT, [3], new Float32Array([2, 3, 4]));
      g.output(g.node('Mul', [x, 'inner_c'], {}, { outputs: ['else_y'] }), DataType.FLOAT, [3]);
    });
    const y = b.node('If', [cond], { then_branch: thenG, else_branch: elseG }, { name: 'branch' });
    b.output(y, DataType.FLOAT, [3]);
    const proto = b.build();
    const model = OnnxModel.fromProto(proto);

    const s = summarizeModel(model);
    assert.equal(s.nodes, 1);
    assert.equal(s.nodesTotal, 4); // If, Add, Constant, Mul
    assert.equal(s.subgraphs, 2);
    assert.deepEqual(s.weights.byLocation, { initializer: 1, constant: 1, external: 0 });

    const [thenView, elseView] = model.graph.subgraphsOf(model.graph.proto.node[0]!).map((r) => r.graph);
    assert.equal(thenView!.findInitializer('outer_w')?.name, 'outer_w');
    assert.equal(elseView!.findInitializer('outer_w')?.name, 'outer_w');
    assert.deepEqual([...thenView!.outerReferences()].sort(), ['outer_w', 'x']);
    assert.deepEqual(model.graph.consumers('outer_w').map((n) => n.name), ['branch']);
    assert.equal(elseView!.producer('inner_c')?.opType, 'Constant');

    const bytes = encodeModel(proto);
    const xs = new ort.Tensor('float32', new Float32Array([1, 2, 3]), [3]);
    const t = await runModel(bytes, { x: xs, cond: new ort.Tensor('bool', new Uint8Array([1]), []) });
    const f = await runModel(bytes, { x: xs, cond: new ort.Tensor('bool', new Uint8Array([0]), []) });
    assert.deepEqual(Array.from(t[y]!.data as Float32Array), [11, 22, 33]);
    assert.deepEqual(Array.from(f[y]!.data as Float32Array), [2, 6, 12]);
  });

  it('Scan body computes a running sum; Loop body repeats an Add', async () => {
    const b = new ModelBuilder({ opset: 16 });
    const init = b.input('init', DataType.FLOAT, [2]);
    const seq = b.input('seq', DataType.FLOAT, [3, 2]);
    const body = b.subgraph('scan_body', (g) => {
      g.input('acc_in', DataType.FLOAT, [2]);
      g.input('elem', DataType.FLOAT, [2]);
      const sum = g.node('Add', ['acc_in', 'elem'], {}, { outputs: ['acc_out'] });
      g.node('Identity', [sum], {}, { outputs: ['scan_out'] });
      g.output('acc_out', DataType.FLOAT, [2]);
      g.output('scan_out', DataType.FLOAT, [2]);
    });
    const [final, partial] = b.nodeOutputs('Scan', [init, seq], { body, num_scan_inputs: 1 }, { outputs: ['final', 'partial'] });
    b.output(final!, DataType.FLOAT, [2]);
    b.output(partial!, DataType.FLOAT, [3, 2]);

    const trip = b.input('trip', DataType.INT64, []);
    b.initializer('step', DataType.FLOAT, [2], new Float32Array([0.5, -0.5]));
    const loopBody = b.subgraph('loop_body', (g) => {
      g.input('i', DataType.INT64, []);
      g.input('cond_in', DataType.BOOL, []);
      g.input('v_in', DataType.FLOAT, [2]);
      g.node('Identity', ['cond_in'], {}, { outputs: ['cond_out'] });
      g.node('Add', ['v_in', 'step'], {}, { outputs: ['v_out'] });
      g.output('cond_out', DataType.BOOL, []);
      g.output('v_out', DataType.FLOAT, [2]);
    });
    const keepGoing = b.constant('keep_going', DataType.BOOL, [], new Uint8Array([1]));
    b.output(b.node('Loop', [trip, keepGoing, init], { body: loopBody }, { outputs: ['looped'] }), DataType.FLOAT, [2]);

    const out = await runModel(encodeModel(b.build()), {
      init: new ort.Tensor('float32', new Float32Array([1, 1]), [2]),
      seq: new ort.Tensor('float32', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]),
      trip: new ort.Tensor('int64', BigInt64Array.from([4n]), []),
    });
    assert.deepEqual(Array.from(out.final!.data as Float32Array), [10, 13]);
    assert.deepEqual(Array.from(out.partial!.data as Float32Array), [2, 3, 5, 7, 10, 13]);
    assert.deepEqual(Array.from(out.looped!.data as Float32Array), [3, -1]);
  });

  it('LSTM with initializer weights runs, and the zero-weight case gives the analytic answer', async () => {
    // With all weights and biases zero, every gate is sigmoid(0) = 0.5 and the candidate is tanh(0) = 0,
    // so the cell stays 0 and h = 0.5·tanh(0) = 0.
    const hidden = 4;
    for (const zero of [true, false]) {
      const b = new ModelBuilder({ opset: 14, seed: 3 });
      const x = b.input('x', DataType.FLOAT, [5, 1, 3]);
      const rng = new Rng(5);
      const values = (n: number) => (zero ? new Float32Array(n) : rng.normals(n, 0.3));
      b.initializer('W', DataType.FLOAT, [1, 4 * hidden, 3], values(4 * hidden * 3));
      b.initializer('R', DataType.FLOAT, [1, 4 * hidden, hidden], values(4 * hidden * hidden));
      b.initializer('B', DataType.FLOAT, [1, 8 * hidden], values(8 * hidden));
      const [Y, Yh] = b.nodeOutputs('LSTM', [x, 'W', 'R', 'B'], { hidden_size: hidden }, { outputs: ['Y', 'Y_h'] });
      b.output(Y!, DataType.FLOAT);
      b.output(Yh!, DataType.FLOAT);
      const out = await runModel(encodeModel(b.build()), { x: floatTensor([5, 1, 3], (i) => Math.cos(i)) });
      assert.deepEqual(out.Y!.dims, [5, 1, 1, hidden]);
      const ys = out.Y!.data as Float32Array;
      if (zero) assert.ok(ys.every((v) => v === 0));
      else assert.ok(ys.every((v) => Number.isFinite(v) && Math.abs(v) < 1) && ys.some((v) => v !== 0));
    }
  });
});

describe('graph API', () => {
  it('topological order repairs a shuffled graph and keeps a sorted one as it is', () => {
    const b = new ModelBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 4]);
    let h = x;
    for (let i = 0; i < 6; i++) h = b.node('Relu', [h], {}, { name: `n${i}` });
    b.output(h, DataType.FLOAT);
    const proto = b.build();
    const sorted = OnnxModel.fromProto(proto).graph.topologicalNodes();
    assert.deepEqual(sorted.map((n) => n.name), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
    proto.graph!.node.reverse();
    const repaired = OnnxModel.fromProto(proto).graph.topologicalNodes();
    assert.deepEqual(repaired.map((n) => n.name), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  });

  it('producers, consumers and declared types', () => {
    const b = new ModelBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 'N']);
    const a = b.node('Relu', [x], {}, { name: 'a' });
    b.node('Neg', [a], {}, { name: 'c1', outputs: ['o1'] });
    b.node('Abs', [a], {}, { name: 'c2', outputs: ['o2'] });
    b.output('o1', DataType.FLOAT);
    b.output('o2', DataType.FLOAT);
    const g = OnnxModel.fromProto(b.build()).graph;
    assert.equal(g.producer(a)?.name, 'a');
    assert.deepEqual(g.consumers(a).map((n) => n.name), ['c1', 'c2']);
    assert.deepEqual(g.valueType('x'), { elemType: DataType.FLOAT, shape: [1, 'N'], kind: 'tensor' });
    assert.equal(g.valueType(a), undefined);
  });
});

describe('external data', () => {
  function modelWithExternal(dir: string, location: string, offset = 0, length = 12): string {
    const b = new ModelBuilder();
    const x = b.input('x', DataType.FLOAT, [3]);
    b.initializer('w', DataType.FLOAT, [3], new Float32Array([1, 2, 3]));
    b.output(b.node('Add', [x, 'w'], {}, { outputs: ['y'] }), DataType.FLOAT, [3]);
    const proto = b.build();
    const w = proto.graph!.initializer[0]!;
    w.rawData = undefined;
    w.dataLocation = TensorDataLocation.External;
    w.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ];
    const file = path.join(dir, 'ext.onnx');
    fs.writeFileSync(file, encodeModel(proto));
    return file;
  }

  it('reads external data lazily and onnxruntime agrees', async () => {
    const { dir, cleanup } = tempDir();
    try {
      fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.concat([Buffer.alloc(8), Buffer.from(new Float32Array([1, 2, 3]).buffer)]));
      const file = modelWithExternal(dir, 'w.bin', 8);
      const model = OnnxModel.load(file);
      const w = model.weights()[0]!;
      assert.equal(w.external, true);
      assert.deepEqual(Array.from(tensorToFloat32(w.tensor, model.rawBytes(w.tensor))), [1, 2, 3]);
      assert.deepEqual(summarizeModel(model).weights.byLocation, { initializer: 0, constant: 0, external: 1 });
      model.close();
      const out = await runModel(file, { x: new ort.Tensor('float32', new Float32Array([1, 1, 1]), [3]) });
      assert.deepEqual(Array.from(out.y!.data as Float32Array), [2, 3, 4]);
    } finally {
      cleanup();
    }
  });

  it('refuses locations that leave the model folder', () => {
    const { dir, cleanup } = tempDir();
    const outside = tempDir();
    try {
      fs.writeFileSync(path.join(outside.dir, 'secret.bin'), Buffer.alloc(12));
      fs.symlinkSync(path.join(outside.dir, 'secret.bin'), path.join(dir, 'link.bin'));
      for (const [location, why] of [
        [path.join(outside.dir, 'secret.bin'), /absolute path/],
        ['../secret.bin', /leaves the model folder/],
        ['sub/../../secret.bin', /leaves the model folder/],
        ['link.bin', /link that leaves the model folder/],
        ['missing.bin', /does not exist/],
      ] as const) {
        const model = OnnxModel.load(modelWithExternal(dir, location));
        assert.throws(
          () => summarizeModel(model),
          (e: unknown) => e instanceof OnnxFormatError && why.test(e.message) && e.message.includes('ext.onnx') && e.message.includes('"w"'),
          location,
        );
        model.close();
      }
    } finally {
      cleanup();
      outside.cleanup();
    }
  });

  it('refuses ranges past the end of the data file', () => {
    const { dir, cleanup } = tempDir();
    try {
      fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.alloc(12));
      const model = OnnxModel.load(modelWithExternal(dir, 'w.bin', 8, 12));
      assert.throws(() => summarizeModel(model), /past the end of w\.bin \(12 bytes\)/);
      model.close();
    } finally {
      cleanup();
    }
  });
});

describe('writer', () => {
  it('preserves metadata, doc strings, functions, unknown opsets and unknown fields', () => {
    const b = new ModelBuilder({ opsets: { 'com.example.custom': 3 } });
    const x = b.input('x', DataType.FLOAT, [2]);
    b.output(b.node('MyOp', [x], { alpha: 0.5, mode: 'fast', big: 9223372036854775807n }, { domain: 'com.example.custom', outputs: ['y'] }), DataType.FLOAT);
    const proto = b.build();
    proto.docString = 'model docs';
    proto.metadataProps.push({ key: 'author', value: 'tests' });
    proto.graph!.docString = 'graph docs';
    proto.functions.push({
      name: 'MyOp',
      domain: 'com.example.custom',
      input: ['a'],
      output: ['b'],
      attribute: ['alpha'],
      attributeProto: [],
      node: [{ ...proto.graph!.node[0]!, opType: 'Relu', domain: '', input: ['a'], output: ['b'], attribute: [] }],
      docString: 'fn docs',
      opsetImport: [{ domain: '', version: 17 }],
      overload: '',
      valueInfo: [],
      metadataProps: [],
      unknownFields: [],
    });
    // A field from a future IR version (number 99, varint 42) must survive.
    proto.unknownFields.push(Uint8Array.from([0x98, 0x06, 42]));
    const bytes = encodeModel(proto);
    const back = OnnxModel.fromBuffer(bytes).proto;
    assert.equal(back.docString, 'model docs');
    assert.deepEqual(back.metadataProps, [{ key: 'author', value: 'tests' }]);
    assert.equal(back.graph!.docString, 'graph docs');
    assert.equal(back.functions[0]!.docString, 'fn docs');
    assert.deepEqual(back.opsetImport, [
      { domain: '', version: 17 },
      { domain: 'com.example.custom', version: 3 },
    ]);
    assert.equal(back.graph!.node[0]!.attribute.find((a) => a.name === 'big')!.i, 9223372036854775807n);
    assert.deepEqual(Array.from(back.unknownFields[0]!), [0x98, 0x06, 42]);
    assert.ok(Buffer.from(encodeModel(back)).equals(Buffer.from(bytes)));
  });

  it('refuses to overwrite the input, and leaves an earlier output intact when saving fails', () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder();
      const x = b.input('x', DataType.FLOAT, [4]);
      b.initializer('w', DataType.FLOAT, [4], new Float32Array([1, 2, 3, 4]));
      b.output(b.node('Add', [x, 'w'], {}, { outputs: ['y'] }), DataType.FLOAT);
      const proto = b.build();
      const input = path.join(dir, 'in.onnx');
      saveModel(proto, input);
      assert.throws(() => saveModel(proto, input, { inputFile: input }), /would overwrite the input/);
      assert.throws(() => saveModel(proto, path.join(dir, '.', 'in.onnx'), { inputFile: input }), /would overwrite the input/);

      const out = path.join(dir, 'out.onnx');
      fs.writeFileSync(out, 'earlier output');
      const external = { ...proto, graph: { ...proto.graph!, initializer: [{ ...proto.graph!.initializer[0]!, dataLocation: TensorDataLocation.External, rawData: undefined, externalData: [{ key: 'location', value: 'gone.bin' }] }] } };
      assert.throws(
        () =>
          saveModel(external, out, {
            externalData: 'always',
            readExternal: () => {
              throw new OnnxFormatError('simulated read failure', { file: 'gone.bin' });
            },
          }),
        /simulated read failure/,
      );
      assert.equal(fs.readFileSync(out, 'utf8'), 'earlier output');
      assert.deepEqual(fs.readdirSync(dir).sort(), ['in.onnx', 'out.onnx'], 'no temporary files left');
    } finally {
      cleanup();
    }
  });

  it('a read-only folder gives a clear error before any work', { skip: process.getuid?.() === 0 ? 'root can write anywhere' : false }, () => {
    const { dir, cleanup } = tempDir();
    try {
      fs.chmodSync(dir, 0o500);
      assert.throws(() => saveModel(new ModelBuilder().build(), path.join(dir, 'x.onnx')), /cannot write to folder/);
    } finally {
      fs.chmodSync(dir, 0o700);
      cleanup();
    }
  });

  it('makeTensor values survive a save and load', () => {
    const { dir, cleanup } = tempDir();
    try {
      const b = new ModelBuilder();
      b.input('x', DataType.FLOAT, [1]);
      b.graph.initializer.push(makeTensor('ints', DataType.INT64, [3], BigInt64Array.from([-1n, 0n, 9007199254740993n])));
      b.output('x', DataType.FLOAT);
      const file = path.join(dir, 'm.onnx');
      saveModel(b.build(), file);
      const t = OnnxModel.load(file).proto.graph!.initializer[0]!;
      assert.deepEqual(Array.from(new BigInt64Array(Uint8Array.from(t.rawData!).buffer)), [-1n, 0n, 9007199254740993n]);
    } finally {
      cleanup();
    }
  });
});

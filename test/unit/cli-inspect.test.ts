/**
 * `onnx-quant inspect`: JSON fields other tools read, and bad input → one-line error naming the
 * file (and the byte offset for corrupt protobuf), exit code 2, never an uncaught exception.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { saveModel } from '../../src/onnx/save';
import { REAL_MODELS, tempDir } from '../helpers/ort';

function smallModel(): ReturnType<ModelBuilder['build']> {
  const b = new ModelBuilder({ opset: 17, opsets: { 'com.microsoft': 1 }, producer: 'tests' });
  const x = b.input('x', DataType.FLOAT, [1, 3, 'H', 8]);
  const c = b.conv(x, 3, 4, 3);
  b.output(b.relu(c), DataType.FLOAT, [1, 4, 'H', 8]);
  return b.build();
}

describe('inspect --json', () => {
  it('has the documented fields', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'small.onnx');
      saveModel(smallModel(), file);
      const r = await cli(['inspect', file, '--json']);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      assert.equal(j.irVersion, 8);
      assert.deepEqual(j.opsets, { '': 17, 'com.microsoft': 1 });
      assert.equal(j.producer, 'tests builder');
      assert.deepEqual(j.inputs, [{ name: 'x', type: 'float32', shape: [1, 3, 'H', 8] }]);
      assert.equal(j.outputs[0].type, 'float32');
      assert.equal(j.nodes, 2);
      assert.equal(j.nodesTotal, 2);
      assert.deepEqual(j.opTypes, { Conv: 1, Relu: 1 });
      // Conv weight 4·3·3·3 = 108 floats and bias 4 floats.
      assert.deepEqual(j.weights, { count: 2, elements: 112, bytes: 448, byLocation: { initializer: 2, constant: 0, external: 0 } });
    } finally {
      cleanup();
    }
  });

  it('human-readable summary of a real model', async () => {
    const r = await cli(['inspect', REAL_MODELS.vad]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /IR version 8, opsets ai\.onnx 15/);
    assert.match(r.out, /nodes: 121 in the main graph, 350 in all \(24 subgraphs\)/);
    assert.match(r.out, /initializers 15, Constant nodes 160, external 0/);
  });
});

describe('inspect: bad input', () => {
  const { dir, cleanup } = tempDir();
  const good = path.join(dir, 'good.onnx');
  saveModel(smallModel(), good);
  const goodBytes = fs.readFileSync(good);

  const cases: [string, Buffer | string, RegExp][] = [
    ['empty.onnx', Buffer.alloc(0), /empty file, not an ONNX model/],
    ['text.onnx', 'this is not a model\n', /corrupt ONNX protobuf at byte \d+|not an ONNX model/],
    ['image.onnx', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), /corrupt ONNX protobuf at byte \d+|not an ONNX model/],
    ['truncated.onnx', goodBytes.subarray(0, Math.floor(goodBytes.length * 0.6)), /corrupt ONNX protobuf at byte \d+/],
    // Length prefixes of 2^31 − 1 and 2^31 right after the graph tag (ir_version 8, then field 7).
    ['huge-length.onnx', Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x07]), Buffer.alloc(16)]), /corrupt ONNX protobuf at byte 3: length 2147483647 at byte 3 runs past the end/],
    ['overlong-length.onnx', Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, 0x80, 0x80, 0x80, 0x80, 0x08]), Buffer.alloc(16)]), /corrupt ONNX protobuf at byte 3: invalid or truncated length/],
    // Wire type 7 does not exist.
    ['bad-wire.onnx', Buffer.from([0x08, 0x08, 0x3f, 0x01]), /corrupt ONNX protobuf at byte 2: field 7 has invalid wire type 7/],
    // ir_version (field 1) sent as a length-delimited field.
    ['wrong-wire.onnx', Buffer.from([0x08, 0x08, 0x0a, 0x01, 0x00]), /corrupt ONNX protobuf at byte 2: field 1 has unexpected wire type 2/],
  ];

  for (const [name, bytes, expected] of cases) {
    it(name, async () => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes);
      const r = await cli(['inspect', file]);
      assert.equal(r.code, 2);
      assert.equal(r.out, '');
      assert.equal(r.err.split('\n').length, 1, 'one line');
      assert.ok(r.err.includes(file), `names the file: ${r.err}`);
      assert.match(r.err, expected);
    });
  }

  it('every truncation and single-bit flip ends in a result or a clear error', async () => {
    // Small enough to try every prefix length and every byte.
    for (let len = 0; len < goodBytes.length; len += 7) {
      const r = await cli(['inspect', writeCase('t.onnx', goodBytes.subarray(0, len))]);
      assert.ok(r.code === 0 || (r.code === 2 && r.err.includes('t.onnx')), `prefix ${len}: ${r.err}`);
    }
    for (let i = 0; i < goodBytes.length; i += 3) {
      const flipped = Buffer.from(goodBytes);
      flipped[i] ^= 1 << i % 8;
      const r = await cli(['inspect', writeCase('f.onnx', flipped), '--json']);
      assert.ok(r.code === 0 || (r.code === 2 && r.err.includes('f.onnx')), `flip at ${i}: ${r.err}`);
    }
  });

  function writeCase(name: string, bytes: Uint8Array): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    return file;
  }

  it('a missing file', async () => {
    const r = await cli(['inspect', path.join(dir, 'nope.onnx')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /nope\.onnx: cannot read/);
  });

  it('a missing external data file', async () => {
    const b = new ModelBuilder();
    const x = b.input('x', DataType.FLOAT, [300]);
    b.initializer('w', DataType.FLOAT, [300], new Float32Array(300).fill(1));
    b.output(b.node('Add', [x, 'w'], {}, { outputs: ['y'] }), DataType.FLOAT);
    const file = path.join(dir, 'ext.onnx');
    saveModel(b.build(), file, { externalData: 'always' });
    fs.rmSync(`${file}.data`);
    const r = await cli(['inspect', file]);
    assert.equal(r.code, 2);
    assert.match(r.err, /ext\.onnx: tensor "w": external data location "ext\.onnx\.data" does not exist/);
  });

  it('usage errors', async () => {
    assert.equal((await cli([])).code, 2);
    assert.equal((await cli(['frobnicate'])).code, 2);
    assert.equal((await cli(['inspect'])).code, 2);
    assert.equal((await cli(['inspect', good, '--bogus'])).code, 2);
    assert.equal((await cli(['--help'])).code, 0);
  });

  it('cleanup', () => cleanup());
});

/** The shipped CLI bundle (dist/cli.js, built by `npm run build`) runs with plain node. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OnnxModel } from '../../src/onnx/model';
import { REAL_MODELS, tempDir } from '../helpers/ort';

const CLI = path.join(__dirname, '../../dist/cli.js');

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dist/cli.js', { skip: fs.existsSync(CLI) ? false : 'run `npm run build` first (npm test does)' }, () => {
  it('inspect --json of a real model', () => {
    const r = run(['inspect', REAL_MODELS.ocrCls, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.nodes, 471);
    assert.equal(j.weights.byLocation.constant, 250);
  });

  it('demo builds the default model and its calibration data, and quantizes it', () => {
    const { dir, cleanup } = tempDir();
    try {
      const r = run(['demo', '--out', dir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.mode, 'static');
      assert.equal(j.quantizedNodes, 12);
      assert.equal(j.calibration.synthetic, false);
      assert.ok(j.eval.outputs[0].sqnrDb > 30, `SQNR ${j.eval.outputs[0].sqnrDb}`);
      assert.ok(j.sizeBytes.ratio > 3.5, `size ratio ${j.sizeBytes.ratio}`);
      assert.ok(fs.existsSync(path.join(dir, 'demo-cnn.int8.onnx')));
    } finally {
      cleanup();
    }
  });

  it('quantize --activation-qdq none --float-kernel-weights 0: int8 weights on every conv, no activation Q/DQ, in the JSON report', () => {
    const { dir, cleanup } = tempDir();
    try {
      const out = path.join(dir, 'cls.weights.onnx');
      const r = run(['quantize', REAL_MODELS.ocrCls, '-o', out, '--activation-qdq', 'none', '--float-kernel-weights', '0', '--samples', '4', '--no-adaround', '--latency-runs', '0', '--json', '--dim', 'p2o.DynamicDimension.0=1', '--dim', 'p2o.DynamicDimension.1=48', '--dim', 'p2o.DynamicDimension.2=192']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.settings.activationQdq, 'none');
      assert.equal(j.settings.floatKernelWeights, 0);
      const model = OnnxModel.load(out);
      const nodes = model.proto.graph!.node;
      const convWeights = nodes.filter((n) => n.opType === 'Conv').map((n) => model.graph.producer(n.input[1]!)?.opType);
      model.close();
      assert.equal(nodes.filter((n) => n.opType === 'QuantizeLinear').length, 0);
      assert.ok(convWeights.length > 0 && convWeights.every((o) => o === 'DequantizeLinear'), 'every Conv reads int8 weights');
      assert.ok(j.eval.outputs[0].sqnrDb > 30, `SQNR ${j.eval.outputs[0].sqnrDb}`);
    } finally {
      cleanup();
    }
  });

  it('a corrupt file: exit code 2 and one line on stderr', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'bad.onnx');
      fs.writeFileSync(file, fs.readFileSync(REAL_MODELS.ocrCls).subarray(0, 1000));
      const r = run(['inspect', file]);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^onnx-quant: .*bad\.onnx: corrupt ONNX protobuf at byte \d+: .*\n$/);
    } finally {
      cleanup();
    }
  });

  it('--version prints the package version', () => {
    const r = run(['--version']);
    assert.equal(r.stdout.trim(), JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).version);
  });
});

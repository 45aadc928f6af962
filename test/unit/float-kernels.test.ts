/**
 * Quantized convs that onnxruntime still runs in float: found statically on the Q/DQ model, and
 * checked against onnxruntime's own profile of that model (which kernels it actually ran).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { DEFAULT_CONFIG } from '../../src/quant/config';
import { describeFloatKernels, floatKernels, integerKernels } from '../../src/quant/graph/float-kernels';
import { tempDir } from '../helpers/ort';
import { quantizeBuilt } from '../helpers/quantize';

/** Kernel op names onnxruntime ran per node, from its profile of a few runs. */
async function kernelsRun(file: string, dir: string, feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', new Float32Array(4 * 12 * 12).map((_, i) => Math.sin(i)), [1, 4, 12, 12]) }): Promise<Map<string, string>> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, logSeverityLevel: 3, enableProfiling: true, profileFilePrefix: path.join(dir, 'profile') });
  await s.run(feeds);
  await s.release();
  const prof = fs.readdirSync(dir).find((f) => f.startsWith('profile'))!;
  const events = JSON.parse(fs.readFileSync(path.join(dir, prof), 'utf8')) as { cat: string; name: string; args?: { op_name?: string } }[];
  const ran = new Map<string, string>();
  for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name) ran.set(e.name.replace(/_kernel_time$/, ''), e.args.op_name);
  return ran;
}

describe('float kernels', () => {
  it('a conv whose output feeds HardSigmoid, or the graph output, is reported; one whose output is quantized is not — as onnxruntime runs them', async () => {
    const tmp = tempDir();
    try {
      // conv0 → Relu → conv1 → x·HardSigmoid(x) (HardSwish) → conv2 → y
      const b = new ModelBuilder({ opset: 13, seed: 3 });
      const x = b.input('x', DataType.FLOAT, [1, 4, 12, 12]);
      const h0 = b.relu(b.conv(x, 4, 4, 3, { name: 'conv0' }));
      const h1 = b.conv(h0, 4, 4, 3, { name: 'conv1' });
      const hs = b.node('Mul', [h1, b.node('HardSigmoid', [h1], { alpha: 1 / 6, beta: 0.5 }, { name: 'hsig' })], {}, { name: 'hswish' });
      b.output(b.conv(hs, 4, 4, 3, { name: 'conv2' }), DataType.FLOAT, [1, 4, 12, 12]);
      // 8-bit everywhere: by default conv0, which reads the model input, would get 16-bit activations.
      const { report: r, output: out } = await quantizeBuilt(b.build(), tmp.dir, 'hswish', { ...DEFAULT_CONFIG, activationTypeAuto: false });

      assert.deepEqual(
        r.floatKernels.map((k) => [k.name, [...k.readers].sort()]),
        [
          // Mul has an integer kernel: conv1's output is quantized for it, but HardSigmoid reads it in float.
          ['conv1', ['HardSigmoid']],
          ['conv2', ['graph output']],
        ],
      );
      assert.ok(r.warnings.some((w) => /^2 of 3 quantized Conv\/ConvTranspose node\(s\) will run in float in onnxruntime: their outputs feed ops without integer kernels \(HardSigmoid ×1, graph output ×1\)/.test(w)), r.warnings.join('\n'));

      // The independent reference: what onnxruntime actually ran.
      const ran = await kernelsRun(out, tmp.dir);
      const kernelOf = (node: string) => [...ran].find(([n]) => n === node || n.startsWith(`${node}_`))?.[1];
      assert.equal(kernelOf('conv0'), 'QLinearConv', JSON.stringify([...ran]));
      for (const node of ['conv1', 'conv2']) assert.match(kernelOf(node) ?? '', /^(Fused)?Conv$/, `${node}: ${JSON.stringify([...ran])}`);
      const q = OnnxModel.load(out);
      assert.deepEqual([...integerKernels(q.proto)], ['conv0'], 'the integer kernels found statically');
      q.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('Gemm and MatMul with a float output still run integer kernels and are not reported; a conv that cannot reads its input in float', async () => {
    const tmp = tempDir();
    try {
      // x ─ Gemm → y1, x ─ MatMul → y2 (graph outputs); img ─ conv → HardSwish → y3
      const b = new ModelBuilder({ opset: 13, seed: 5 });
      const x = b.input('x', DataType.FLOAT, [4, 16]);
      b.output(b.gemm(x, 16, 8, { transB: true, name: 'gemm' }), DataType.FLOAT, [4, 8]);
      b.output(b.matMul(x, 16, 8, { name: 'mm' }), DataType.FLOAT, [4, 8]);
      const img = b.input('img', DataType.FLOAT, [1, 4, 12, 12]);
      const c = b.conv(img, 4, 4, 3, { name: 'conv' });
      b.output(b.node('Mul', [c, b.node('HardSigmoid', [c], { alpha: 1 / 6, beta: 0.5 }, { name: 'hsig' })], {}, { name: 'hswish' }), DataType.FLOAT, [1, 4, 12, 12]);
      // Integer kernels explicitly: 'auto' would leave activations float (the conv holds 95% of the work).
      const { report: r, output: out } = await quantizeBuilt(b.build(), tmp.dir, 'mixed', { ...DEFAULT_CONFIG, activationTypeAuto: false, activationQdq: 'integer-kernels' });

      assert.deepEqual(r.floatKernels.map((k) => k.name), ['conv']);
      const q = OnnxModel.load(out);
      const conv = q.proto.graph!.node.find((n) => n.name === 'conv')!;
      assert.equal(conv.input[0], img, 'the conv reads the graph input unquantized');
      assert.deepEqual([...integerKernels(q.proto)].sort(), ['gemm', 'mm']);
      q.close();

      const ran = await kernelsRun(out, tmp.dir, {
        x: new ort.Tensor('float32', new Float32Array(64).map((_, i) => Math.cos(i)), [4, 16]),
        img: new ort.Tensor('float32', new Float32Array(4 * 12 * 12).map((_, i) => Math.sin(i)), [1, 4, 12, 12]),
      });
      // Fused nodes are named after the node (plus a suffix); the weights' DQ nodes share its prefix.
      const kernelOf = (node: string) => ran.get(node) ?? [...ran].find(([n, op]) => n.startsWith(`${node}_`) && op !== 'DequantizeLinear' && op !== 'QuantizeLinear')?.[1];
      assert.equal(kernelOf('gemm'), 'QGemm', JSON.stringify([...ran]));
      assert.equal(kernelOf('mm'), 'MatMulIntegerToFloat', JSON.stringify([...ran]));
      assert.match(kernelOf('conv') ?? '', /^(Fused)?Conv$/);
    } finally {
      tmp.cleanup();
    }
  });

  it('describeFloatKernels: nothing to say without float kernels; counts readers once per node', () => {
    assert.equal(describeFloatKernels([], 10), undefined);
    const line = describeFloatKernels([{ name: 'a', opType: 'Conv', readers: ['Mul', 'Mul', 'Add'] }, { name: 'b', opType: 'MatMul', readers: ['Mul'] }], 5)!;
    assert.match(line, /^2 of 5 quantized .*\(Mul ×2, Add ×1\).*\(e\.g\. "a", "b"\)$/);
    assert.deepEqual(floatKernels({ ...new ModelBuilder({ opset: 13 }).build(), graph: undefined }), { kernels: [], quantizedCompute: 0 });
  });
});

/**
 * Opset upgrade (src/onnx/opset-upgrade.ts): every rewrite is checked by running the original and
 * the upgraded model in onnxruntime-node on the same inputs — the real published models (PaddleOCR
 * at opsets 9 and 11, Silero VAD at 15 and 18) and small builder models, one per rewrite.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Attr, AttrValue, GraphBuilder, ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel, walkGraphs } from '../../src/onnx/model';
import { FunctionProto, ModelProto, NodeProto } from '../../src/onnx/proto';
import { makeNode } from '../../src/quant/graph/edit';
import { canUpgrade, defaultOpset, OP_VERSIONS, OpsetUpgradeError, upgradeOpset } from '../../src/onnx/opset-upgrade';
import { Feeds, floatTensor, REAL_MODELS, realModelFeeds, runModel } from '../helpers/ort';

/** Largest |a − b| over every output (NaN-safe: NaN on one side only counts as infinite). */
function maxAbsDiff(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): number {
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  let max = 0;
  for (const [name, ta] of Object.entries(a)) {
    const tb = b[name]!;
    assert.deepEqual(tb.dims, ta.dims, `${name}: dims`);
    assert.equal(tb.type, ta.type, `${name}: type`);
    const da = ta.data as ArrayLike<number | bigint | boolean>;
    const db = tb.data as ArrayLike<number | bigint | boolean>;
    for (let i = 0; i < da.length; i++) {
      const x = Number(da[i]);
      const y = Number(db[i]);
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
      max = Math.max(max, Number.isNaN(x) || Number.isNaN(y) ? Infinity : Math.abs(x - y));
    }
  }
  return max;
}

function allNodes(model: ModelProto): NodeProto[] {
  const nodes = model.graph ? [...walkGraphs(model.graph)].flatMap((g) => g.node) : [];
  return [...nodes, ...model.functions.flatMap((f) => f.node)];
}

function opTypes(model: ModelProto): string[] {
  return allNodes(model).map((n) => n.opType);
}

function attrNames(model: ModelProto, opType: string): string[][] {
  return allNodes(model)
    .filter((n) => n.opType === opType)
    .map((n) => n.attribute.map((a) => a.name).sort());
}

/**
 * Runs `model` and its upgrade to each target on `feeds`; returns the upgrades. Outputs must agree
 * within `tol` (0 = bit-identical).
 */
async function checkUpgrade(model: ModelProto, targets: number[], feeds: Feeds, tol = 0): Promise<{ target: number; model: ModelProto; changes: string[]; diff: number }[]> {
  const before = encodeModel(model);
  const expected = await runModel(before, feeds);
  const results = [];
  for (const target of targets) {
    const r = upgradeOpset(model, target);
    assert.equal(defaultOpset(r.model), target);
    const actual = await runModel(encodeModel(r.model), feeds);
    const diff = maxAbsDiff(expected, actual);
    assert.ok(diff <= tol, `opset ${defaultOpset(model)} → ${target}: max abs diff ${diff} > ${tol}\n${r.changes.join('\n')}`);
    results.push({ target, model: r.model, changes: r.changes, diff });
  }
  assert.deepEqual(encodeModel(model), before, 'the input model must not change');
  return results;
}

/** A one-node model: input x of `shape`, node `op`, output y. */
function oneNode(opset: number, op: string, shape: number[], attrs: Record<string, AttrValue> = {}, extraInputs: (b: ModelBuilder) => string[] = () => []): ModelProto {
  const b = new ModelBuilder({ opset });
  const x = b.input('x', DataType.FLOAT, shape);
  b.output(b.node(op, [x, ...extraInputs(b)], attrs, { outputs: ['y'], name: `${op.toLowerCase()}_node` }), DataType.FLOAT);
  return b.build();
}

const wave = (i: number) => Math.sin(i * 0.7) * 2 + Math.cos(i * 0.13);
const xFeed = (shape: number[]): Feeds => ({ x: floatTensor(shape, wave) });

describe('opset upgrade: real models give the same outputs in onnxruntime', () => {
  const cases: [keyof typeof REAL_MODELS, number[]][] = [
    ['ocrDet', [13, 21]],
    ['ocrRec', [13, 21]],
    ['ocrCls', [13, 21]],
    ['vad', [21]],
    ['vadIfless', [21]],
  ];
  for (const [kind, targets] of cases) {
    it(`${kind} → ${targets.join(', ')}`, async (t) => {
      const model = OnnxModel.load(REAL_MODELS[kind]);
      const source = defaultOpset(model.proto)!;
      // onnxruntime picks different kernels and fusions per opset (e.g. ReduceMean-18 takes axes as
      // an input): a few float32 ulps are allowed, anything more is a semantic change.
      const results = await checkUpgrade(model.proto, targets, realModelFeeds(kind), 1e-5);
      for (const r of results) t.diagnostic(`${kind} opset ${source} → ${r.target}: max abs diff ${r.diff}; ${r.changes.slice(1).join('; ') || 'no rewrites'}`);
      assert.ok(canUpgrade(model.proto, 21).ok);
    });
  }

  it('ocrRec: Clip, Slice, Squeeze and ReduceMean take inputs, Softmax keeps its last axis', () => {
    const model = OnnxModel.load(REAL_MODELS.ocrRec).proto;
    const up = upgradeOpset(model, 21).model;
    assert.equal(up.irVersion, 10);
    for (const op of ['Clip', 'Slice', 'Squeeze', 'ReduceMean']) {
      assert.ok(attrNames(up, op).every((names) => !names.some((n) => ['min', 'max', 'starts', 'ends', 'axes'].includes(n))), op);
    }
    assert.deepEqual(attrNames(up, 'Softmax'), [['axis'], ['axis'], ['axis']]);
    assert.ok(!opTypes(up).includes('Flatten'), 'rank inference proves every Softmax works on its last axis');
    for (const n of allNodes(up).filter((n) => n.opType === 'Clip')) assert.equal(n.input.length, 3);
  });
});

describe('opset upgrade: Softmax family (axis semantics change at 13)', () => {
  for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) {
    it(`${op} axis=1 on a 3-D input at opset 11 → Flatten/${op}/Reshape`, async () => {
      const model = oneNode(11, op, [2, 3, 4], { axis: 1 });
      const feeds = xFeed([2, 3, 4]);
      const [r13, r21] = await checkUpgrade(model, [13, 21], feeds);
      assert.deepEqual(opTypes(r13!.model), ['Shape', 'Flatten', op, 'Reshape']);
      assert.deepEqual(opTypes(r21!.model), ['Shape', 'Flatten', op, 'Reshape']);
      // Bumping the opset number alone changes the result: this is what the rewrite prevents.
      const naive: ModelProto = { ...model, opsetImport: [{ domain: '', version: 13 }] };
      assert.ok(maxAbsDiff(await runModel(encodeModel(model), feeds), await runModel(encodeModel(naive), feeds)) > 1e-3);
    });
  }

  it('Softmax without axis (default 1) on a 4-D input at opset 9', async () => {
    await checkUpgrade(oneNode(9, 'Softmax', [2, 3, 2, 2]), [13], xFeed([2, 3, 2, 2]));
  });

  it('Softmax at axis 0 and at a negative non-last axis', async () => {
    await checkUpgrade(oneNode(9, 'Softmax', [2, 3, 4], { axis: 0 }), [13], xFeed([2, 3, 4]));
    await checkUpgrade(oneNode(11, 'Softmax', [2, 3, 4], { axis: -2 }), [13], xFeed([2, 3, 4]));
  });

  it('Softmax on the last axis (known rank, or axis=-1) stays one node', async () => {
    for (const axis of [2, -1]) {
      const [r] = await checkUpgrade(oneNode(11, 'Softmax', [2, 3, 4], { axis }), [13], xFeed([2, 3, 4]));
      assert.deepEqual(opTypes(r!.model), ['Softmax']);
      assert.equal(r!.model.graph!.node[0]!.attribute[0]!.i, BigInt(axis));
    }
  });

  it('Softmax whose input rank is unknown uses the general rewrite', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT); // no shape
    b.output(b.node('Softmax', [x], { axis: 2 }, { outputs: ['y'] }), DataType.FLOAT);
    const [r] = await checkUpgrade(b.build(), [13], xFeed([2, 3, 4]));
    assert.ok(opTypes(r!.model).includes('Flatten'));
  });
});

describe('opset upgrade: attributes that became inputs', () => {
  it('Squeeze / Unsqueeze with axes at opset 11 → 13', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT, [2, 1, 3, 1]);
    const s = b.node('Squeeze', [x], { axes: [1, -1] });
    const u = b.node('Unsqueeze', [s], { axes: [0, 3] }, { outputs: ['u'] });
    b.output(u, DataType.FLOAT);
    b.output(b.node('Squeeze', [u], {}, { outputs: ['y'] }), DataType.FLOAT); // no axes: every size-1 dim
    const [r] = await checkUpgrade(b.build(), [13, 21], xFeed([2, 1, 3, 1]));
    assert.deepEqual(attrNames(r!.model, 'Squeeze'), [[], []]);
    assert.deepEqual(attrNames(r!.model, 'Unsqueeze'), [[]]);
    assert.deepEqual(allNodes(r!.model).map((n) => n.input.length), [2, 2, 1]);
  });

  it('ReduceSum with axes at opset 11 → 13 (and keepdims=0)', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT, [2, 3, 4]);
    const r1 = b.node('ReduceSum', [x], { axes: [1], keepdims: 0 });
    const r2 = b.node('ReduceSum', [x], {}); // all axes
    b.output(b.node('Add', [r1, r2], {}, { outputs: ['y'] }), DataType.FLOAT);
    await checkUpgrade(b.build(), [13, 21], xFeed([2, 3, 4]));
  });

  it('ReduceMean at opset 13 → 18, ReduceMax/ReduceL2/ReduceProd at 11 → 21', async () => {
    const [r] = await checkUpgrade(oneNode(13, 'ReduceMean', [2, 3, 4], { axes: [-1, 0] }), [18], xFeed([2, 3, 4]));
    assert.equal(r!.model.graph!.node[0]!.input.length, 2);
    for (const op of ['ReduceMax', 'ReduceL2', 'ReduceProd']) {
      await checkUpgrade(oneNode(11, op, [2, 3, 4], { axes: [1], keepdims: 0 }), [18, 21], xFeed([2, 3, 4]));
    }
  });

  it('Split with a split attribute at opset 11 → 13, 18, 21', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT, [2, 6]);
    const [p, q] = b.nodeOutputs('Split', [x], { axis: 1, split: [2, 4] }, { outputs: 2 });
    b.output(b.node('ReduceSum', [p!], { axes: [1] }, { outputs: ['a'] }), DataType.FLOAT);
    b.output(b.node('Identity', [q!], {}, { outputs: ['b'] }), DataType.FLOAT);
    const results = await checkUpgrade(b.build(), [13, 18, 21], xFeed([2, 6]));
    for (const r of results) assert.deepEqual(attrNames(r.model, 'Split'), [['axis']]);
  });

  it('Split into equal parts at opset 11 → 18 gets num_outputs', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT, [2, 6]);
    const outs = b.nodeOutputs('Split', [x], { axis: -1 }, { outputs: 3 });
    outs.forEach((o, i) => b.output(b.node('Identity', [o], {}, { outputs: [`y${i}`] }), DataType.FLOAT));
    const [r13, r18] = await checkUpgrade(b.build(), [13, 18], xFeed([2, 6]));
    assert.deepEqual(attrNames(r13!.model, 'Split'), [['axis']]);
    assert.deepEqual(attrNames(r18!.model, 'Split'), [['axis', 'num_outputs']]);
  });

  it('Clip-6 (min/max attributes) at opset 9 → 11, 13, 21', async () => {
    const b = new ModelBuilder({ opset: 9 });
    const x = b.input('x', DataType.FLOAT, [3, 4]);
    const c1 = b.node('Clip', [x], { min: Attr.float(0), max: Attr.float(6) });
    const c2 = b.node('Clip', [x], { max: Attr.float(0.5) });
    const c3 = b.node('Clip', [x], { min: Attr.float(-0.25) });
    b.output(b.node('Sum', [c1, c2, c3], {}, { outputs: ['y'] }), DataType.FLOAT);
    const [r] = await checkUpgrade(b.build(), [11, 13, 21], { x: floatTensor([3, 4], (i) => wave(i) * 4) });
    assert.deepEqual(allNodes(r!.model).filter((n) => n.opType === 'Clip').map((n) => n.input.map((i) => i !== '')), [[true, true, true], [true, false, true], [true, true]]);
    assert.deepEqual(attrNames(r!.model, 'Clip'), [[], [], []]);
    // An opset-7, IR-3 model (the oldest source) gets the IR version of its new opset.
    const old = new ModelBuilder({ opset: 7, irVersion: 3 });
    old.output(old.node('Clip', [old.input('x', DataType.FLOAT, [3, 4])], { min: Attr.float(-1), max: Attr.float(1) }, { outputs: ['y'] }), DataType.FLOAT);
    const [r13] = await checkUpgrade(old.build(), [13], { x: floatTensor([3, 4], wave) });
    assert.equal(r13!.model.irVersion, 7);
  });

  it('Slice-1 (attributes) at opset 9 → 10, 13: negative starts, INT64_MAX ends, no axes', async () => {
    const b = new ModelBuilder({ opset: 9 });
    const x = b.input('x', DataType.FLOAT, [4, 5, 6]);
    const s1 = b.node('Slice', [x], { starts: [1, -4], ends: Attr.ints([3, 9223372036854775807n]), axes: [0, 2] });
    const s2 = b.node('Slice', [s1], { starts: [0, 1], ends: [2, -1] });
    b.output(b.node('Identity', [s2], {}, { outputs: ['y'] }), DataType.FLOAT);
    await checkUpgrade(b.build(), [10, 13], xFeed([4, 5, 6]));
  });

  it('Pad-2 at opset 9 → 11, 13, 21: constant (value 1.5), reflect, edge', async () => {
    for (const [mode, value] of [['constant', 1.5], ['constant', 0], ['reflect', 0], ['edge', 0]] as const) {
      const attrs: Record<string, AttrValue> = { pads: [0, 1, 2, 0, 2, 1], mode };
      if (value) attrs.value = Attr.float(value);
      const [r] = await checkUpgrade(oneNode(9, 'Pad', [2, 3, 4], attrs), [11, 13, 21], xFeed([2, 3, 4]));
      assert.deepEqual(attrNames(r!.model, 'Pad'), [['mode']]);
      assert.equal(r!.model.graph!.node[0]!.input.length, value ? 3 : 2);
    }
  });

  it('TopK-1 (k attribute) at opset 9 → 10, 13', async () => {
    const b = new ModelBuilder({ opset: 9 });
    const x = b.input('x', DataType.FLOAT, [3, 5]);
    const [v, i] = b.nodeOutputs('TopK', [x], { k: 2, axis: 1 }, { outputs: ['values', 'indices'] });
    b.output(v!, DataType.FLOAT);
    b.output(i!, DataType.INT64);
    await checkUpgrade(b.build(), [10, 13], xFeed([3, 5]));
  });
});

describe('opset upgrade: resampling', () => {
  const upsampleModel = (opset: number, mode: string, scales: number[]) => {
    const b = new ModelBuilder({ opset });
    const x = b.input('x', DataType.FLOAT, [1, 2, 3, 4]);
    if (opset < 9) {
      b.output(b.node('Upsample', [x], { mode, scales: Attr.floats(scales) }, { outputs: ['y'] }), DataType.FLOAT);
    } else {
      b.initializer('scales', DataType.FLOAT, [4], new Float32Array(scales));
      b.output(b.node('Upsample', [x, 'scales'], { mode }, { outputs: ['y'] }), DataType.FLOAT);
    }
    return b.build();
  };

  it('Upsample-9 (nearest, linear) → Resize at 10, 11, 13, 21', async () => {
    for (const [mode, scales] of [['nearest', [1, 1, 2, 3]], ['nearest', [1, 1, 1.5, 2.5]], ['linear', [1, 1, 2, 2]], ['linear', [1, 1, 1.5, 3]]] as const) {
      const results = await checkUpgrade(upsampleModel(9, mode, [...scales]), [10, 11, 13, 21], xFeed([1, 2, 3, 4]), 1e-6);
      for (const r of results) assert.deepEqual(opTypes(r.model), ['Resize']);
      assert.equal(results[1]!.model.graph!.node[0]!.input.length, 3, 'Resize-11 has a roi input');
      assert.equal(results[1]!.model.graph!.initializer.find((t) => t.name.endsWith('_roi'))?.dims[0], 0);
    }
  });

  it('Upsample-7 (scales attribute) at opset 8 → 9, 13', async () => {
    const [r9] = await checkUpgrade(upsampleModel(8, 'nearest', [1, 1, 2, 2]), [9, 13], xFeed([1, 2, 3, 4]));
    assert.deepEqual(opTypes(r9!.model), ['Upsample']);
    assert.equal(r9!.model.graph!.node[0]!.input.length, 2);
  });

  it('Resize-10 at opset 10 → 11, 13: nearest up/down-sampling, linear', async () => {
    for (const [mode, scales] of [
      ['nearest', [1, 1, 2, 3]],
      ['nearest', [1, 1, 0.6, 0.5]],
      ['nearest', [1, 1, 0.5, 2]],
      ['linear', [1, 1, 2, 1.5]],
      ['linear', [1, 1, 0.6, 0.75]],
    ] as const) {
      const b = new ModelBuilder({ opset: 10 });
      const x = b.input('x', DataType.FLOAT, [1, 2, 5, 6]);
      b.initializer('scales', DataType.FLOAT, [4], new Float32Array(scales));
      b.output(b.node('Resize', [x, 'scales'], { mode }, { outputs: ['y'] }), DataType.FLOAT);
      await checkUpgrade(b.build(), [11, 13], xFeed([1, 2, 5, 6]), 1e-6);
    }
  });
});

describe('opset upgrade: other definition changes', () => {
  it('Dropout (ratio attribute) at opset 9 → ratio input at 12, 13', async () => {
    const [r] = await checkUpgrade(oneNode(9, 'Dropout', [2, 3], { ratio: Attr.float(0.3) }), [10, 12, 13], xFeed([2, 3]));
    assert.deepEqual(attrNames(r!.model, 'Dropout'), [['ratio']], 'Dropout-10 still has the attribute');
    const [, r12] = await checkUpgrade(oneNode(9, 'Dropout', [2, 3], { ratio: Attr.float(0.3) }), [10, 12], xFeed([2, 3]));
    assert.deepEqual(attrNames(r12!.model, 'Dropout'), [[]]);
    assert.equal(r12!.model.graph!.node[0]!.input.length, 2);
  });

  it('a used Dropout mask (float at 9, bool at 10) becomes the constant onnxruntime computed', async () => {
    for (const opset of [9, 10]) {
      const b = new ModelBuilder({ opset });
      const x = b.input('x', DataType.FLOAT, [2, 3]);
      const [y, mask] = b.nodeOutputs('Dropout', [x], { ratio: Attr.float(0.3) }, { outputs: ['y', 'mask'] });
      b.output(y!, DataType.FLOAT);
      b.output(mask!, opset < 10 ? DataType.FLOAT : DataType.BOOL);
      const [r] = await checkUpgrade(b.build(), [12, 13], xFeed([2, 3]));
      assert.deepEqual(opTypes(r!.model), ['Identity', 'Shape', 'ConstantOfShape']);
    }
  });

  it('BatchNormalization-7 at opset 8 (spatial=1, and spatial=0 per-activation) → 9, 13, 15', async () => {
    for (const spatial of [1, 0]) {
      const b = new ModelBuilder({ opset: 8 });
      const x = b.input('x', DataType.FLOAT, [2, 3, 2, 2]);
      const dims = spatial ? [3] : [3, 2, 2];
      const n = dims.reduce((p, q) => p * q, 1);
      const param = (name: string, f: (i: number) => number) => b.initializer(name, DataType.FLOAT, dims, Float32Array.from({ length: n }, (_, i) => f(i)));
      const inputs = [x, param('scale', (i) => 1 + 0.1 * i), param('bias', (i) => 0.05 * i - 0.2), param('mean', (i) => Math.sin(i)), param('var', (i) => 0.5 + 0.1 * i)];
      b.output(b.node('BatchNormalization', inputs, { spatial, epsilon: Attr.float(1e-3) }, { outputs: ['y'] }), DataType.FLOAT);
      const results = await checkUpgrade(b.build(), [9, 13, 15], xFeed([2, 3, 2, 2]), 1e-5);
      for (const r of results) assert.ok(attrNames(r.model, 'BatchNormalization').every((names) => !names.includes('spatial')));
      if (!spatial) assert.ok(!opTypes(results[0]!.model).includes('BatchNormalization'));
    }
  });

  it('deprecated Scatter at opset 9 → ScatterElements at 11, 13', async () => {
    const b = new ModelBuilder({ opset: 9 });
    const x = b.input('x', DataType.FLOAT, [3, 3]);
    b.initializer('idx', DataType.INT64, [1, 2], BigInt64Array.from([2n, 0n]));
    b.initializer('upd', DataType.FLOAT, [1, 2], new Float32Array([10, 20]));
    b.output(b.node('Scatter', [x, 'idx', 'upd'], { axis: 1 }, { outputs: ['y'] }), DataType.FLOAT);
    const [r] = await checkUpgrade(b.build(), [11, 13], xFeed([3, 3]));
    assert.deepEqual(opTypes(r!.model), ['ScatterElements']);
  });

  it('GroupNormalization-18 (per-group scale/bias) → 21 (per-channel)', async () => {
    const b = new ModelBuilder({ opset: 18 });
    const x = b.input('x', DataType.FLOAT, [2, 6, 3]);
    b.initializer('scale', DataType.FLOAT, [3], new Float32Array([1, 0.5, -2]));
    b.initializer('bias', DataType.FLOAT, [3], new Float32Array([0.1, 0, -0.3]));
    b.output(b.node('GroupNormalization', [x, 'scale', 'bias'], { num_groups: 3, epsilon: Attr.float(1e-5) }, { outputs: ['y'] }), DataType.FLOAT);
    await checkUpgrade(b.build(), [21], xFeed([2, 6, 3]), 1e-5);
  });

  it('RoiAlign-10 → 16 keeps the output_half_pixel coordinates', async () => {
    const b = new ModelBuilder({ opset: 10 });
    const x = b.input('x', DataType.FLOAT, [1, 2, 6, 6]);
    b.initializer('rois', DataType.FLOAT, [2, 4], new Float32Array([0.5, 0.5, 4, 3.5, 1, 0, 5, 5]));
    b.initializer('batch', DataType.INT64, [2], BigInt64Array.from([0n, 0n]));
    b.output(b.node('RoiAlign', [x, 'rois', 'batch'], { output_height: 2, output_width: 3, sampling_ratio: 2 }, { outputs: ['y'] }), DataType.FLOAT);
    const [r] = await checkUpgrade(b.build(), [16], xFeed([1, 2, 6, 6]), 1e-6);
    assert.deepEqual(attrNames(r!.model, 'RoiAlign'), [['coordinate_transformation_mode', 'output_height', 'output_width', 'sampling_ratio']]);
  });

  it('DFT-17 (axis attribute) → 20 (axis input)', async () => {
    const [r] = await checkUpgrade(oneNode(17, 'DFT', [2, 8, 1], { onesided: 0 }), [20], xFeed([2, 8, 1]));
    assert.deepEqual(r!.model.graph!.node[0]!.input.map((i) => i !== ''), [true, false, true]);
  });

  it('Resize-11 tf_half_pixel_for_nn (deprecated at 13) → half_pixel with an equivalent nearest_mode', async () => {
    for (const nearest of ['round_prefer_floor', 'floor']) {
      for (const scales of [[1, 1, 2, 2], [1, 1, 1.5, 2.5], [1, 1, 0.6, 0.5]]) {
        const b = new ModelBuilder({ opset: 11 });
        const x = b.input('x', DataType.FLOAT, [1, 2, 5, 6]);
        b.initializer('roi', DataType.FLOAT, [0], new Float32Array([]));
        b.initializer('scales', DataType.FLOAT, [4], new Float32Array(scales));
        const attrs = { mode: 'nearest', coordinate_transformation_mode: 'tf_half_pixel_for_nn', nearest_mode: nearest };
        b.output(b.node('Resize', [x, 'roi', 'scales'], attrs, { outputs: ['y'] }), DataType.FLOAT);
        const [r] = await checkUpgrade(b.build(), [13], xFeed([1, 2, 5, 6]));
        const ctm = r!.model.graph!.node[0]!.attribute.find((a) => a.name === 'coordinate_transformation_mode')!;
        assert.equal(Buffer.from(ctm.s!).toString(), 'half_pixel');
      }
    }
  });

  it('experimental ops of opset 8 (ImageScaler, Affine, ScaledTanh, Crop) → plain ops at 10, 13', async () => {
    const cases: [string, Record<string, AttrValue>][] = [
      ['ImageScaler', { scale: Attr.float(0.5), bias: Attr.floats([1, 2, 3]) }],
      ['Affine', { alpha: Attr.float(0.7), beta: Attr.float(1.3) }],
      ['ScaledTanh', { alpha: Attr.float(0.7), beta: Attr.float(1.3) }],
      ['Crop', { border: [1, 0, 1, 2] }],
      ['Crop', { border: [1, 1, 0, 0], scale: [2, 2] }],
    ];
    for (const [op, attrs] of cases) {
      const results = await checkUpgrade(oneNode(8, op, [1, 3, 4, 5], attrs), [10, 13], xFeed([1, 3, 4, 5]), 1e-6);
      for (const r of results) assert.ok(!opTypes(r.model).includes(op));
    }
  });

  it('GridSample-16 (bilinear) → 20 (linear)', async () => {
    const b = new ModelBuilder({ opset: 16 });
    const x = b.input('x', DataType.FLOAT, [1, 1, 4, 4]);
    b.initializer('grid', DataType.FLOAT, [1, 2, 2, 2], new Float32Array([-0.5, -0.5, 0.3, 0.9, 0.1, -0.7, 0.9, 0.2]));
    b.output(b.node('GridSample', [x, 'grid'], { mode: 'bilinear' }, { outputs: ['y'] }), DataType.FLOAT);
    await checkUpgrade(b.build(), [20], xFeed([1, 1, 4, 4]), 1e-6);
  });
});

describe('opset upgrade: subgraphs and functions', () => {
  it('rewrites nodes inside If branches (opset 11 → 13)', async () => {
    const b = new ModelBuilder({ opset: 11 });
    const x = b.input('x', DataType.FLOAT, [2, 1, 3]);
    const cond = b.input('cond', DataType.BOOL, []);
    const branch = (name: string, axis: number) =>
      b.subgraph(name, (g: GraphBuilder) => {
        const s = g.node('Squeeze', [x], { axes: [1] });
        g.output(g.node('Softmax', [s], { axis }, { outputs: [`${name}_y`] }), DataType.FLOAT, [2, 3]);
      });
    b.output(b.node('If', [cond], { then_branch: branch('then', 1), else_branch: branch('else', 0) }, { outputs: ['y'] }), DataType.FLOAT);
    const model = b.build();
    for (const c of [true, false]) {
      const feeds: Feeds = { ...xFeed([2, 1, 3]), cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []) };
      const [r] = await checkUpgrade(model, [13], feeds);
      const types = opTypes(r!.model);
      assert.equal(types.filter((t) => t === 'Flatten').length, 1, 'only the else branch needs the 2-D rewrite');
      assert.ok(allNodes(r!.model).filter((n) => n.opType === 'Squeeze').every((n) => n.input.length === 2));
    }
  });

  it('rewrites nodes of model-local functions (Constant nodes for new tensors)', async () => {
    const b = new ModelBuilder({ opset: 11, irVersion: 8, opsets: { local: 1 } });
    const x = b.input('x', DataType.FLOAT, [2, 1, 3]);
    b.output(b.node('SqueezeSoftmax', [x], {}, { outputs: ['y'], domain: 'local' }), DataType.FLOAT);
    const model = b.build();
    const fn: FunctionProto = {
      name: 'SqueezeSoftmax',
      domain: 'local',
      overload: '',
      input: ['a'],
      output: ['b'],
      attribute: [],
      attributeProto: [],
      node: [makeNode('Squeeze', ['a'], ['s'], 'f_squeeze', { axes: [1] }), makeNode('Softmax', ['s'], ['b'], 'f_softmax', { axis: 0 })],
      docString: '',
      opsetImport: [{ domain: '', version: 11 }],
      valueInfo: [],
      metadataProps: [],
      unknownFields: [],
    };
    model.functions = [fn];
    const [r] = await checkUpgrade(model, [13], xFeed([2, 1, 3]));
    const f = r!.model.functions[0]!;
    assert.equal(f.opsetImport[0]!.version, 13);
    assert.deepEqual(f.node.map((n) => n.opType), ['Constant', 'Squeeze', 'Shape', 'Flatten', 'Softmax', 'Reshape']);
    assert.equal(model.functions[0]!.node.length, 2, 'the input function is untouched');
  });
});

describe('opset upgrade: what cannot be upgraded', () => {
  it('Scan-8 is a blocker naming the node; canUpgrade lists every blocker', () => {
    const b = new ModelBuilder({ opset: 8 });
    const x = b.input('x', DataType.FLOAT, [1, 3, 2]);
    const body = b.subgraph('body', (g) => {
      const s = g.input('s', DataType.FLOAT, [2]);
      const e = g.input('e', DataType.FLOAT, [2]);
      g.output(g.node('Add', [s, e], {}, { outputs: ['s_out'] }), DataType.FLOAT, [2]);
    });
    b.initializer('init', DataType.FLOAT, [1, 2], new Float32Array([0, 0]));
    b.output(b.node('Scan', ['', 'init', x], { body, num_scan_inputs: 1 }, { outputs: ['y'], name: 'my_scan' }), DataType.FLOAT);
    const unknown = b.node('FancyOp', [x], {}, { name: 'mystery' });
    b.output(unknown, DataType.FLOAT);
    const model = b.build();
    assert.throws(
      () => upgradeOpset(model, 13),
      (err: unknown) => err instanceof OpsetUpgradeError && err.nodeName === 'my_scan' && err.opType === 'Scan' && /"my_scan"/.test(err.message) && /Scan-8/.test(err.message) && err.blockers.length === 2,
    );
    const check = canUpgrade(model, 13);
    assert.equal(check.ok, false);
    assert.equal(check.blockers.length, 2);
    assert.match(check.blockers[1]!, /"mystery".*unknown default-domain operator FancyOp/);
    assert.ok(canUpgrade(model, 8).ok, 'nothing to do at the same opset');
  });

  it('training-mode BatchNormalization (5 outputs) → training_mode=1; a used saved mean is a blocker', async () => {
    const build = (outputs: string[]) => {
      const b = new ModelBuilder({ opset: 9 });
      const x = b.input('x', DataType.FLOAT, [3, 2, 2]);
      for (const p of ['scale', 'bias', 'mean', 'var']) b.initializer(p, DataType.FLOAT, [2], new Float32Array([0.5, 1.5]));
      const outs = b.nodeOutputs('BatchNormalization', [x, 'scale', 'bias', 'mean', 'var'], {}, { outputs: ['y', 'running_mean', 'running_var', 'saved_mean', 'saved_var'], name: 'bn' });
      for (const o of outputs) b.output(o, DataType.FLOAT);
      assert.equal(outs.length, 5);
      return b.build();
    };
    // Y itself uses batch statistics when the node has 5 outputs, used or not.
    for (const outputs of [['y'], ['y', 'running_mean', 'running_var']]) {
      const [r] = await checkUpgrade(build(outputs), [14, 15], xFeed([3, 2, 2]), 1e-6);
      const bn = r!.model.graph!.node[0]!;
      assert.deepEqual(bn.output, ['y', 'running_mean', 'running_var']);
      assert.equal(bn.attribute.find((a) => a.name === 'training_mode')?.i, 1n);
    }
    assert.throws(() => upgradeOpset(build(['y', 'saved_mean']), 14), (err: unknown) => err instanceof OpsetUpgradeError && err.nodeName === 'bn' && /output 4 \("saved_mean"/.test(err.message));
    assert.ok(canUpgrade(build(['y', 'saved_mean']), 13).ok);
  });

  it('Clip attributes on a value of unknown type are a blocker, not a guess', () => {
    const b = new ModelBuilder({ opset: 9, opsets: { custom: 1 } });
    const x = b.input('x', DataType.FLOAT, [2]);
    const c = b.node('Mystery', [x], {}, { domain: 'custom' });
    b.output(b.node('Clip', [c], { min: Attr.float(0) }, { outputs: ['y'], name: 'clip_it' }), DataType.FLOAT);
    const check = canUpgrade(b.build(), 13);
    assert.equal(check.ok, false);
    assert.match(check.blockers[0]!, /"clip_it".*element type/);
  });

  it('refuses downgrades, out-of-range targets and too-old sources', () => {
    const m = oneNode(13, 'Relu', [2]);
    assert.throws(() => upgradeOpset(m, 11), OpsetUpgradeError);
    assert.throws(() => upgradeOpset(m, 22), OpsetUpgradeError);
    assert.throws(() => upgradeOpset(oneNode(6, 'Relu', [2]), 13), /older than 7/);
    const same = upgradeOpset(m, 13);
    assert.deepEqual(same.changes, []);
    assert.notEqual(same.model, m);
  });

  it('the version table covers every operator of the real models', () => {
    for (const file of Object.values(REAL_MODELS)) {
      for (const n of allNodes(OnnxModel.load(file).proto)) assert.ok(OP_VERSIONS[n.opType], n.opType);
    }
  });
});

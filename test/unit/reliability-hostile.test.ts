/**
 * Hostile strings from the model file: node names, op types and the file name carrying HTML,
 * `</script>`, quotes, terminal escapes and bidi overrides go through a real analysis (onnxruntime
 * runs the model, so the names reach the activation statistics and the findings) into the HTML
 * report and the terminal report. The HTML must contain only the markup the report builds — its
 * tags and attributes are parsed and checked against what it writes — and no invisible character.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeModel } from '../../src/analysis/analyze';
import { formatReport, type AnalysisReport } from '../../src/analysis/report';
import { escapeHtml, formatReportHtml } from '../../src/analysis/report-html';
import { runAnalyze } from '../../src/cli/analyze';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { OnnxModel } from '../../src/onnx/model';
import { saveModel } from '../../src/onnx/save';
import { syntheticSource } from '../../src/runtime/data';
import { tempDir } from '../helpers/ort';

const HOSTILE = [
  '<img src=x onerror=alert(1)>',
  '</script><script>alert(1)</script>',
  `" onmouseover="alert(1)" x='y`,
  'evil\u202Egnp.exe\u2066x\u2069\u200F',
  'red\u001b[31mALERT\u001b[0m\u0007\u0085',
  'a&b<!--c-->',
];
const HOSTILE_OP = '<svg/onload=alert(2)>';
const FILE_NAME = `"><img src=x onerror=alert(3)>\u202E.onnx`;

/** Characters that must never reach a page or a terminal as themselves. */
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

const TAGS = new Set(['html', 'head', 'meta', 'title', 'style', 'body', 'h1', 'h2', 'p', 'code', 'table', 'tr', 'th', 'td', 'ul', 'li', 'b', 'br']);
const ATTRIBUTES = new Set(['lang', 'charset', 'http-equiv', 'content', 'class', 'title']);

/** Parses every tag of the page: only the report's own tags and attributes, nothing else. */
function assertOnlyOwnMarkup(page: string): void {
  assert.ok(page.startsWith('<!DOCTYPE html>\n'), 'starts with the doctype');
  const body = page.slice('<!DOCTYPE html>'.length);
  assert.ok(!/<script/i.test(body), 'no script element');
  assert.ok(!body.includes('<!--'), 'no comment');
  for (const m of body.matchAll(/<(\/?)([^\s>/]*)([^>]*)>/g)) {
    const [, , name, attrs] = m;
    assert.ok(TAGS.has(name!), `only the report's tags: <${name}${attrs}>`);
    // Attributes: name="value" pairs with no quote inside a value, covering the whole tag.
    const rest = attrs!.replace(/\s+([a-z-]+)="([^"<>]*)"/g, (_, a: string) => {
      assert.ok(ATTRIBUTES.has(a), `only the report's attributes: ${a} in <${name}${attrs}>`);
      return '';
    });
    assert.equal(rest.trim(), '', `nothing but quoted attributes in <${name}${attrs}>`);
  }
  // A "<" that does not start a tag would mean some text was not escaped.
  assert.equal(body.replace(/<(\/?)([^\s>/]*)([^>]*)>/g, '').includes('<'), false, 'no stray "<"');
  assert.ok(!INVISIBLE.test(page.replace(/\n/g, '')), 'no control or bidi character');
}

describe('hostile names in reports', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  let calibrated: AnalysisReport;
  let weightsOnly: AnalysisReport;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    const b = new ModelBuilder({ opset: 17, seed: 4 });
    let x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
    x = b.relu(b.conv(x, 3, 8, 3, { name: HOSTILE[0] }));
    x = b.relu(b.conv(x, 8, 8, 3, { name: HOSTILE[1] }));
    x = b.conv(x, 8, 8, 3, { name: HOSTILE[2] });
    x = b.conv(x, 8, 8, 1, { name: HOSTILE[3] });
    x = b.node('Flatten', [b.node('GlobalAveragePool', [x])]);
    b.output(b.gemm(x, 8, 4, { name: HOSTILE[4] }), DataType.FLOAT, [1, 4]);
    file = path.join(dir, FILE_NAME);
    saveModel(b.build(), file);
    const model = OnnxModel.load(file);
    calibrated = await analyzeModel({ model, calib: syntheticSource(model, { count: 4, seed: 1 }), sensitivity: 'local', maxRounds: 1 });
    model.close();

    // An op type no runtime knows: weights-only analysis reports it (finding OQ007).
    const h = new ModelBuilder({ opset: 17, seed: 5 });
    let y = h.input('y', DataType.FLOAT, [1, 8]);
    y = h.gemm(y, 8, 8, { name: HOSTILE[5] });
    y = h.node(HOSTILE_OP, [y], {}, { name: HOSTILE[0] + '2' });
    h.output(y, DataType.FLOAT, [1, 8]);
    const odd = path.join(dir, 'odd-op.onnx');
    saveModel(h.build(), odd);
    weightsOnly = await analyzeModel({ model: odd, sensitivity: 'none' });
  });
  after(() => cleanup());

  it('the analysis really carries the names into the report', () => {
    const names = calibrated.layers.map((l) => l.name);
    for (const n of HOSTILE.slice(0, 5)) assert.ok(names.includes(n), `layer ${JSON.stringify(n)} analysed`);
    assert.ok(calibrated.layers.some((l) => l.activation?.input), 'activations were measured by onnxruntime');
    assert.ok(weightsOnly.findings.some((f) => f.message.includes(HOSTILE_OP)), 'the odd op type is named in a finding');
  });

  it('the HTML report holds only its own markup and shows every name escaped', () => {
    for (const r of [calibrated, weightsOnly]) {
      const page = formatReportHtml(r);
      assertOnlyOwnMarkup(page);
      for (const l of r.layers) assert.ok(page.includes(escapeHtml(l.name)), `layer ${JSON.stringify(l.name)} shown (escaped)`);
    }
    const page = formatReportHtml(calibrated);
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(page.includes('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(page.includes('&quot; onmouseover=&quot;alert(1)&quot; x=&#39;y'));
    assert.ok(page.includes('evil⟨U+202E⟩gnp.exe⟨U+2066⟩x⟨U+2069⟩⟨U+200F⟩'), 'bidi controls shown as code points');
    assert.ok(page.includes('red⟨U+001B⟩[31mALERT'), 'terminal escapes shown as code points');
    assert.ok(formatReportHtml(weightsOnly).includes('&lt;svg/onload=alert(2)&gt;'));
  });

  it('the terminal report shows control and bidi characters as code points', () => {
    for (const r of [calibrated, weightsOnly]) {
      const text = formatReport(r);
      assert.ok(!INVISIBLE.test(text.replace(/\n/g, '')), 'no control or bidi character reaches the terminal');
    }
    assert.ok(formatReport(calibrated).includes('evil⟨U+202E⟩gnp.exe'));
  });

  it('analyze --html writes the page', async () => {
    const out = path.join(dir, 'report.html');
    await runAnalyze([file, '--sensitivity', 'none', '--html', out], { out: () => undefined, err: () => undefined });
    const page = fs.readFileSync(out, 'utf8');
    assertOnlyOwnMarkup(page);
    assert.ok(page.includes(escapeHtml(FILE_NAME)), 'the file name is shown escaped');
  });
});

/**
 * The model editor in a real VS Code, driven as a user would: the packaged extension installed
 * from its .vsix into code-server, a browser on the workbench, files opened from the explorer.
 * Also writes the README's screenshots (docs/screenshots/, see harness.ts).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe } from 'node:test';
import type { Frame } from 'playwright-core';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { OnnxModel } from '../../src/onnx/model';
import { summarizeModel } from '../../src/onnx/summary';
import { CLS_MODEL, Session, copyModel, waitFor, writeCorruptModel, e2eTest as harnessTest } from './harness';

// Figures of PaddleOCR's mobile angle classifier (also checked by test/unit/real-models.test.ts).
const CLS_NODES = '471 nodes';
const CLS_WEIGHTS = '250 weights';
/** The model under its published name, as the README's screenshot shows it. */
const MODEL = path.basename(CLS_MODEL);

let session: Session;
let workspace = '';

/** Nodes of the generated big model: one MatMul and a chain of Neg (no integer kernel, cheap to analyze). */
const BIG_NODES = 10_001;

function writeBigModel(dir: string, name: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 5 });
  let t = b.matMul(b.input('x', DataType.FLOAT, [1, 8]), 8, 8, { name: 'big_matmul' });
  for (let i = 1; i < BIG_NODES; i++) t = b.node('Neg', [t], {}, { name: `neg_${i}` });
  b.output(t, DataType.FLOAT);
  writeFileSync(path.join(dir, name), encodeModel(b.build()));
}

/** The node count our own decoder gives (the table must have one row per node). */
function nodeCount(file: string): number {
  const m = OnnxModel.load(file);
  try {
    return summarizeModel(m).nodesTotal;
  } finally {
    m.close();
  }
}

/** The layer table's frame once its rows are in (aria-busy off). */
async function layerTableFrame(fileName: string): Promise<Frame> {
  const frame = await session.workbench.webviewFrame('.model-header h1', fileName);
  await frame.locator('section.layers[aria-busy="false"]').waitFor({ timeout: 60_000 });
  return frame;
}

async function visibleNames(frame: Frame): Promise<string[]> {
  return frame.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>('.lt-row'))
      .sort((a, b) => Number(a.getAttribute('aria-rowindex')) - Number(b.getAttribute('aria-rowindex')))
      .map((r) => r.querySelector('.lt-col-name')?.textContent ?? ''),
  );
}

/** A test whose failure keeps the run folder and a screenshot (see Session.stop). */
function e2eTest(name: string, fn: () => Promise<void>): void {
  harnessTest(() => session, name, fn);
}

/** The summary's visible text of the model editor showing `fileName`. */
async function openSummaryText(fileName: string): Promise<string> {
  const frame = await session.workbench.webviewFrame('.model-header h1', fileName);
  await frame.locator('#root[aria-busy="false"]').waitFor({ timeout: 30_000 });
  return (await frame.locator('#root').innerText()).replace(/\s+/g, ' ');
}

describe('model editor in VS Code', { timeout: 300_000 }, () => {
  before(async () => {
    session = await Session.start('editor', (ws) => {
      workspace = ws;
      copyModel(ws, MODEL);
      copyModel(ws, 'cls-again.onnx');
      writeCorruptModel(ws, 'corrupt.onnx');
      copyModel(ws, 'after-error.onnx');
      writeFileSync(path.join(ws, 'notes.txt'), 'not a model\n');
      writeBigModel(ws, 'big.onnx');
    });
  });

  after(async () => {
    await session?.stop();
  });

  e2eTest('clicking a .onnx file in the explorer shows its summary in the ONNX Model editor', async () => {
    const wb = session.workbench;
    await wb.openFromExplorer(MODEL);
    // The very first click of a session can race the extension's activation and open the file in
    // the text editor (a known VS Code behaviour with custom editors); then the file is reopened
    // with our command, which is what a user would do, and the editor must still render.
    const shown = await wb.webviewFrame('.model-header h1', MODEL, 20_000).then(
      () => true,
      () => false,
    );
    if (!shown) await wb.runCommand('ONNX Quant: Inspect Model');
    const text = await openSummaryText(MODEL);
    const frame = await wb.webviewFrame('.model-header h1', MODEL);
    const badges = (await frame.locator('.model-header .badges vscode-badge').allTextContents()).map((t) => t.trim());
    assert.ok(badges.includes(CLS_NODES), `badges ${JSON.stringify(badges)} include ${CLS_NODES}`);
    assert.ok(badges.includes(CLS_WEIGHTS), `badges ${JSON.stringify(badges)} include ${CLS_WEIGHTS}`);
    assert.match(text, /471 in the main graph, 471 in all, 0 subgraphs/);
    assert.match(text, /Constant nodes 250/);
    assert.match(text, /initializers 0/);
    assert.equal(await wb.activeTabLabel(), MODEL);
    await wb.screenshot('model-editor', { docs: true });
  });

  e2eTest('the layer table lists every node, sorts, filters, fills in as the analysis runs, and shows a layer\'s details', async () => {
    const wb = session.workbench;
    const frame = await layerTableFrame(MODEL);
    const expected = nodeCount(CLS_MODEL);
    assert.equal(await frame.locator('.layer-table').getAttribute('aria-rowcount'), String(expected + 1));
    assert.equal((await frame.locator('.lt-count').textContent())?.trim(), `${expected} nodes`);
    // Virtualized: far fewer row elements than nodes.
    const rendered = await frame.locator('.lt-row').count();
    assert.ok(rendered > 5 && rendered < 60, `${rendered} row elements`);

    // Later phases arrive by push: activation ranges, sensitivity and suggested bits.
    await frame.locator('.lt-status[data-state="done"]').waitFor({ timeout: 120_000 });

    // Sort by op type (descending on the second click), then filter.
    await frame.locator('.lt-header [data-sort="opType"]').click();
    const ascending = await visibleNames(frame);
    await frame.locator('.lt-header [data-sort="opType"]').click();
    assert.equal(await frame.locator('.lt-header [data-sort="opType"]').getAttribute('aria-sort'), 'descending');
    assert.notDeepEqual(await visibleNames(frame), ascending);
    await frame.locator('.lt-filter').click();
    await wb.page.keyboard.type('conv');
    await waitFor('the filter to apply', async () => /of \d+ nodes/.test((await frame.locator('.lt-count').textContent()) ?? ''), 10_000);
    const names = await visibleNames(frame);
    assert.ok(names.length > 0 && names.every((n) => /conv/i.test(n)), `filtered names ${JSON.stringify(names.slice(0, 5))}`);
    const convRow = frame.locator('.lt-row[aria-rowindex="2"]');
    assert.match((await convRow.locator('.lt-col-weight').textContent()) ?? '', /^\[/);
    assert.match((await convRow.locator('.lt-col-activation').textContent()) ?? '', /^\[/);
    assert.match((await convRow.locator('.lt-col-sensitivity').textContent()) ?? '', /dB$/);

    // Sort by sensitivity (most sensitive first) and select the first layer.
    await frame.locator('.lt-header [data-sort="sensitivity"]').click();
    await frame.locator('.lt-row[aria-rowindex="2"]').click();
    await frame.locator('.layer-details .ld-name').waitFor({ timeout: 15_000 });
    const selected = (await frame.locator('.lt-row.selected .lt-col-name').textContent()) ?? '';
    assert.equal((await frame.locator('.layer-details .ld-name').textContent())?.trim(), selected.trim());
    assert.ok((await frame.locator('.layer-details canvas.chart').count()) >= 3, 'weight and activation histograms and channel ranges');
    const painted = await frame.evaluate(() => {
      const c = document.querySelector<HTMLCanvasElement>('.layer-details canvas.chart');
      const ctx = c?.getContext('2d');
      if (!c || !ctx) return 0;
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
      return n;
    });
    assert.ok(painted > 100, `the histogram is drawn (${painted} painted pixels)`);
    assert.match((await frame.locator('.layer-details').innerText()) ?? '', /8-bit[\s\S]*4-bit/);
    await frame.locator('section.layers').evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await wb.screenshot('layer-table', { docs: true });
  });

  e2eTest('a generated model with 10,000+ nodes renders a bounded window of rows and scrolls to the end', async () => {
    const wb = session.workbench;
    await wb.openFromExplorer('big.onnx');
    const frame = await layerTableFrame('big.onnx');
    assert.equal(await frame.locator('.layer-table').getAttribute('aria-rowcount'), String(nodeCount(path.join(workspace, 'big.onnx')) + 1));
    assert.equal(nodeCount(path.join(workspace, 'big.onnx')), BIG_NODES);
    const before = await frame.locator('.lt-row').count();
    assert.ok(before < 80, `${before} row elements for ${BIG_NODES} nodes`);
    await frame.locator('.lt-viewport').evaluate((v) => {
      v.scrollTop = v.scrollHeight;
    });
    await waitFor('the last rows to render', async () => (await visibleNames(frame)).includes(`neg_${BIG_NODES - 1}`), 10_000);
    assert.ok((await frame.locator('.lt-row').count()) < 80);
  });

  e2eTest('the explorer context menu offers Inspect Model for .onnx files only', async () => {
    const wb = session.workbench;
    const items = await wb.explorerContextMenu('cls-again.onnx');
    assert.ok(items.includes('Inspect Model'), `context menu ${JSON.stringify(items)} offers Inspect Model`);
    await wb.screenshot('explorer-context-menu', { docs: true });
    await wb.clickContextMenuItem('Inspect Model');
    const text = await openSummaryText('cls-again.onnx');
    assert.match(text, new RegExp(CLS_NODES));
    assert.equal(await wb.activeTabLabel(), 'cls-again.onnx');

    const other = await wb.explorerContextMenu('notes.txt');
    await wb.page.keyboard.press('Escape');
    assert.ok(other.length > 0 && !other.includes('Inspect Model'), `context menu of notes.txt ${JSON.stringify(other)} does not offer Inspect Model`);
  });

  e2eTest('a corrupt model shows an error naming the file, and the extension keeps working', async () => {
    const wb = session.workbench;
    await wb.openFromExplorer('corrupt.onnx');
    const frame = await wb.webviewFrame('.error-panel', 'corrupt.onnx');
    const heading = (await frame.locator('.error-panel h1').textContent())?.trim() ?? '';
    assert.match(heading, /^Cannot open corrupt\.onnx$/);
    const message = (await frame.locator('.error-panel .message').textContent()) ?? '';
    assert.ok(message.includes(`${workspace}/corrupt.onnx`), `error message names the file: ${message}`);
    assert.match(message, /corrupt|truncated|past the end/i);
    assert.equal(await wb.activeTabLabel(), 'corrupt.onnx');
    await wb.screenshot('model-error', { docs: true });

    // The extension host is still there: another model opens, with its summary.
    await wb.openFromExplorer('after-error.onnx');
    assert.match(await openSummaryText('after-error.onnx'), new RegExp(CLS_NODES));
    const toasts = await wb.notifications();
    assert.ok(!toasts.some((t) => /ONNX Quant|extension host/i.test(t)), `no error notifications: ${JSON.stringify(toasts)}`);
  });

  e2eTest('a .onnx shown as text offers the title-bar button, and the palette command opens the model editor', async () => {
    const wb = session.workbench;
    await wb.closeAllEditors();
    await wb.explorerContextMenu('cls-again.onnx');
    await wb.clickContextMenuItem('Open With...');
    await wb.pickQuickItem(/^Text Editor/);
    await waitFor('the text editor tab', async () => (await wb.activeTabLabel()) === 'cls-again.onnx', 15_000);
    const button = wb.editorTitleAction('Inspect Model');
    await button.waitFor({ state: 'visible', timeout: 15_000 });
    await wb.screenshot('text-editor-title-button');

    await wb.runCommand('ONNX Quant: Inspect Model');
    assert.match(await openSummaryText('cls-again.onnx'), new RegExp(CLS_NODES));
    // In the model editor the button hides itself.
    await waitFor('the title button to hide', async () => !(await button.isVisible()), 10_000);
  });
});

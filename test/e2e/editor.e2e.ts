/**
 * The model editor in a real VS Code, driven as a user would: the packaged extension installed
 * from its .vsix into code-server, a browser on the workbench, files opened from the explorer.
 * Also writes the README's screenshots (docs/screenshots/, see harness.ts).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLS_MODEL, Session, copyModel, waitFor, writeCorruptModel } from './harness';

// Figures of PaddleOCR's mobile angle classifier (also checked by test/unit/real-models.test.ts).
const CLS_NODES = '471 nodes';
const CLS_WEIGHTS = '250 weights';
/** The model under its published name, as the README's screenshot shows it. */
const MODEL = path.basename(CLS_MODEL);

let session: Session;
let workspace = '';

/** A test whose failure keeps the run folder and a screenshot of the window (see Session.stop). */
function e2eTest(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      session?.markFailed();
      throw err;
    }
  });
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

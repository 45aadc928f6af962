/**
 * Analyze Model in a real VS Code: run from the explorer's context menu on a published model,
 * its findings appear in the Problems tab (source onnx-quant, the layer in the message).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLS_MODEL, Session, copyModel, waitFor } from './harness';

const MODEL = path.basename(CLS_MODEL);
let session: Session;

describe('Analyze Model in VS Code', { timeout: 300_000 }, () => {
  before(async () => {
    session = await Session.start('analyze', (ws) => copyModel(ws, MODEL));
  });

  after(async () => {
    await session?.stop();
  });

  test('the findings of a model appear in the Problems tab', async () => {
    try {
      const wb = session.workbench;
      const items = await wb.explorerContextMenu(MODEL);
      assert.ok(items.includes('Analyze Model'), `context menu ${JSON.stringify(items)} offers Analyze Model`);
      await wb.clickContextMenuItem('Analyze Model');
      // Problems panel: Ctrl+Shift+M; wait for the model's findings.
      const rows = wb.page.locator('.markers-panel .monaco-list-row');
      const texts = await waitFor(
        'findings in the Problems tab',
        async () => {
          await wb.page.keyboard.press('Control+Shift+M');
          const all = (await rows.allTextContents()).join('\n');
          return /onnx-quant/.test(all) && /OQ0\d\d/.test(all) ? all : undefined;
        },
        120_000,
        2_000,
      );
      assert.match(texts, /OQ008/, 'the opset-9 model gets the opset finding');
      assert.match(texts, /\[p2o\.Conv\.\d+\]/, 'findings name their layer');
      await wb.screenshot('problems-tab', { docs: true });
    } catch (err) {
      session?.markFailed();
      throw err;
    }
  });
});

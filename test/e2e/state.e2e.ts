/**
 * The model editor's state in a real VS Code: a finding's code link in the Problems tab selects its
 * layer in the layer table; selection, sort and filter survive hiding and re-showing the tab and a
 * window reload; two models side by side keep their own tables.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe } from 'node:test';
import type { Frame } from 'playwright-core';
import { ModelBuilder } from '../../src/onnx/builder';
import { DataType } from '../../src/onnx/dtypes';
import { encodeModel } from '../../src/onnx/encode';
import { CLS_MODEL, Session, copyModel, sleep, waitFor, e2eTest as harnessTest } from './harness';

const MODEL = path.basename(CLS_MODEL);
/** A second, different model: three named nodes. */
const SMALL_NODES = 3;
const SMALL = 'small.onnx';

let session: Session;

function writeSmallModel(dir: string): void {
  const b = new ModelBuilder({ opset: 17, seed: 3 });
  let t = b.matMul(b.input('x', DataType.FLOAT, [1, 8]), 8, 8, { name: 'small_matmul' });
  t = b.node('Relu', [t], {}, { name: 'small_relu' });
  t = b.node('Neg', [t], {}, { name: 'small_neg' });
  b.output(t, DataType.FLOAT);
  fs.writeFileSync(path.join(dir, SMALL), encodeModel(b.build()));
}

/** A test whose failure keeps the run folder and a screenshot (see Session.stop). */
function e2eTest(name: string, fn: () => Promise<void>): void {
  harnessTest(() => session, name, fn);
}

/**
 * The layer table's frame of the editor showing `fileName`, once its rows are in and the frame has
 * stayed attached for a moment: moving an editor to another group replaces its webview, and the old
 * frame can still be listed (and then detach) while the new one loads.
 */
async function tableFrame(fileName: string, timeoutMs = 60_000): Promise<Frame> {
  return waitFor(`the layer table of ${fileName}`, async () => {
    const frame = await session.workbench.webviewFrame('.model-header h1', fileName, Math.min(timeoutMs, 15_000));
    if ((await frame.locator('section.layers[aria-busy="false"]').count()) === 0) return undefined;
    await sleep(500);
    return frame.isDetached() ? undefined : frame;
  }, timeoutMs, 300);
}

/** What the user sees of a table's state. */
async function tableState(frame: Frame): Promise<{ selected: string; filter: string; sort: string | null; count: string }> {
  return frame.evaluate(() => ({
    selected: document.querySelector('.lt-row.selected .lt-col-name')?.textContent ?? '',
    filter: document.querySelector<HTMLInputElement & { value: string }>('vscode-textfield.lt-filter')?.value ?? '',
    sort: document.querySelector('.lt-header [aria-sort]:not([aria-sort="none"])')?.getAttribute('data-sort') ?? null,
    count: document.querySelector('.lt-count')?.textContent?.trim() ?? '',
  }));
}

/** The editor tab of a file (any group). */
function tab(name: string) {
  return session.workbench.page.locator(`.tabs-container .tab:has(.label-name:text-is("${name}"))`).first();
}

describe('model editor state in VS Code', { timeout: 600_000 }, () => {
  before(async () => {
    session = await Session.start('state', (ws) => {
      copyModel(ws, MODEL);
      writeSmallModel(ws);
    });
  });

  after(async () => {
    await session?.stop();
  });

  let revealed = '';

  e2eTest('a finding\'s code link in the Problems tab selects its layer in the model editor', async () => {
    const wb = session.workbench;
    await wb.explorerContextMenu(MODEL);
    await wb.clickContextMenuItem('Analyze Model');
    const row = wb.page.locator('.markers-panel .monaco-list-row').filter({ hasText: /\[p2o\.Conv\.\d+\]/ }).first();
    await waitFor(
      'a layer finding in the Problems tab',
      async () => {
        if (!(await row.isVisible().catch(() => false))) await wb.page.keyboard.press('Control+Shift+M');
        return row.isVisible();
      },
      120_000,
      2_000,
    );
    revealed = /\[(p2o\.Conv\.\d+)\]/.exec((await row.textContent()) ?? '')![1]!;
    // The code (OQ0xx) is a link to onnxQuant.revealLayer; the model is not open yet.
    const link = row.locator('a.monaco-link').first();
    assert.match((await link.textContent()) ?? '', /OQ0\d\d/);
    await link.click();
    const frame = await tableFrame(MODEL);
    await waitFor(`${revealed} to be selected`, async () => (await tableState(frame)).selected === revealed, 30_000);
    await frame.locator('.layer-details .ld-name').filter({ hasText: revealed }).waitFor({ timeout: 15_000 });
    // The selected row is on screen, not only in the DOM.
    const box = await frame.evaluate(() => {
      const r = document.querySelector('.lt-row.selected')?.getBoundingClientRect();
      return r ? { top: r.top, bottom: r.bottom, height: window.innerHeight } : undefined;
    });
    assert.ok(box && box.top >= 0 && box.bottom <= box.height, `the selected row is in view: ${JSON.stringify(box)}`);
    await wb.screenshot('problems-reveal-layer');

    // Again with the editor open and another layer selected: the link brings the selection back.
    await frame.locator('.lt-row:not(.selected)').first().click();
    await waitFor('another selection', async () => (await tableState(frame)).selected !== revealed, 10_000);
    await link.click();
    await waitFor(`${revealed} to be selected again`, async () => (await tableState(frame)).selected === revealed, 15_000);
    assert.equal(await wb.activeTabLabel(), MODEL);
  });

  e2eTest('range cells have a tooltip with the full value', async () => {
    const frame = await tableFrame(MODEL);
    const cell = frame.locator('.lt-row.selected .lt-col-weight');
    const title = (await cell.getAttribute('title')) ?? '';
    assert.match(title, /^\[-?[\d.e+-]+, -?[\d.e+-]+\]$/, `weight range tooltip ${JSON.stringify(title)}`);
    assert.ok(title.length >= ((await cell.textContent()) ?? '').length, 'the tooltip is at least as precise as the cell');
  });

  let saved: Awaited<ReturnType<typeof tableState>>;

  e2eTest('selection, sort and filter survive hiding and re-showing the editor tab', async () => {
    const wb = session.workbench;
    let frame = await tableFrame(MODEL);
    await frame.locator('.lt-header [data-sort="opType"]').click();
    await frame.locator('.lt-filter').click();
    await wb.page.keyboard.type('conv');
    await waitFor('the filter', async () => /of \d+ nodes/.test((await tableState(frame)).count), 10_000);
    await frame.locator('.lt-row:not(.selected)').nth(1).click();
    await waitFor('a selection', async () => (await tableState(frame)).selected !== '', 10_000);
    saved = await tableState(frame);
    assert.equal(saved.sort, 'opType');
    assert.equal(saved.filter, 'conv');

    // Another editor in the same group hides this one (its webview is torn down: no retainContextWhenHidden).
    await wb.openFromExplorer(SMALL);
    await tableFrame(SMALL);
    await waitFor('the model tab to be hidden', async () => (await wb.activeTabLabel()) === SMALL, 10_000);
    await tab(MODEL).click();
    frame = await tableFrame(MODEL);
    await waitFor('the state to come back', async () => JSON.stringify(await tableState(frame)) === JSON.stringify(saved), 20_000);
  });

  e2eTest('… and a window reload', async () => {
    const wb = session.workbench;
    await wb.runCommand('Developer: Reload Window');
    await wb.page.waitForLoadState('domcontentloaded');
    await wb.page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await wb.waitForExtensions();
    await tab(MODEL).click({ timeout: 30_000 });
    const frame = await tableFrame(MODEL);
    await waitFor('the state after the reload', async () => JSON.stringify(await tableState(frame)) === JSON.stringify(saved), 30_000);
  });

  e2eTest('two different models side by side keep their own layer counts and selections', async () => {
    const wb = session.workbench;
    await wb.openFromExplorer(SMALL);
    await waitFor('the small model to be active', async () => (await wb.activeTabLabel()) === SMALL, 10_000);
    await wb.runCommand('View: Move Editor into Right Group');
    await waitFor('two editor groups', async () => (await wb.page.locator('.editor-group-container').count()) === 2, 10_000);
    const small = await tableFrame(SMALL);
    const cls = await tableFrame(MODEL);
    await small.locator('.lt-row[aria-rowindex="3"]').click();
    await waitFor('the small model\'s selection', async () => (await tableState(small)).selected === 'small_relu', 10_000);
    assert.equal((await tableState(small)).count, `${SMALL_NODES} nodes`);
    const c = await tableState(cls);
    assert.match(c.count, /of 471 nodes$/);
    assert.equal(c.selected, saved.selected, 'the other model keeps its selection');
    assert.equal(c.filter, 'conv');
    assert.equal((await tableState(small)).filter, '', 'filters are per editor');
    await wb.screenshot('split-editors');
  });
});

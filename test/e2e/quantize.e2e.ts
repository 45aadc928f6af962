/**
 * Quantize Model… in a real VS Code, as a user runs it: the published angle classifier, calibration
 * text lines the test renders (test/helpers/tasks), the command from the palette with its quick
 * picks answered; the output file appears and runs in onnxruntime-node, and the results panel
 * shows the float-vs-quantized comparison. Also: the explorer menu offers the job commands, and a
 * recipe naming a layer the model lacks gets a warning in the Problems tab.
 * Writes the README's results-panel screenshot (docs/screenshots/, see harness.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe } from 'node:test';
import * as ort from 'onnxruntime-node';
import { readNpyFile } from '../../src/runtime/data';
import { taskSamples, writeSampleFolder } from '../helpers/tasks';
import { CLS_MODEL, Session, copyModel, waitFor, e2eTest as harnessTest } from './harness';

const MODEL = path.basename(CLS_MODEL);
const OUTPUT = MODEL.replace(/\.onnx$/, '.quant.onnx');
const RECIPE = 'typo.recipe.json';

let session: Session;
let workspace = '';

/** A test whose failure keeps the run folder and a screenshot (see Session.stop). */
function e2eTest(name: string, fn: () => Promise<void>): void {
  harnessTest(() => session, name, fn);
}

describe('Quantize Model in VS Code', { timeout: 420_000 }, () => {
  before(async () => {
    const samples = await taskSamples('ocrCls', 20);
    session = await Session.start('quantize', (ws) => {
      workspace = ws;
      copyModel(ws, MODEL);
      writeSampleFolder(path.join(ws, 'calib'), samples);
      fs.mkdirSync(path.join(ws, '.vscode'));
      fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'onnxQuant.calibrationFolder': 'calib', 'onnxQuant.latencyRuns': 5, 'onnxQuant.activationQdq': 'integer-kernels' }, null, 2));
      fs.writeFileSync(
        path.join(ws, RECIPE),
        JSON.stringify({ version: 1, model: MODEL, exclude: ['Softmax', 'conv_typo'], nodes: { 'p2o.Conv.0': { activationType: 'uint16' }, no_such_layer: { exclude: true } } }, null, 2),
      );
    });
  });

  after(async () => {
    await session?.stop();
  });

  e2eTest('the explorer menu of a .onnx file offers the job commands', async () => {
    const wb = session.workbench;
    const items = await wb.explorerContextMenu(MODEL);
    await wb.page.keyboard.press('Escape');
    for (const c of ['Inspect Model', 'Analyze Model', 'Quantize Model…', 'Run Sensitivity Analysis', 'Suggest Bit Widths', 'Compare Float vs Quantized', 'Export Report']) {
      assert.ok(items.includes(c), `context menu ${JSON.stringify(items)} offers ${c}`);
    }
    const other = await wb.explorerContextMenu(RECIPE);
    await wb.page.keyboard.press('Escape');
    assert.ok(!other.includes('Quantize Model…'), `a .json file gets no Quantize Model… (${JSON.stringify(other)})`);
  });

  e2eTest('Quantize Model… from the palette writes a model that runs, and the panel shows the comparison', async () => {
    const wb = session.workbench;
    await wb.openFromExplorer(MODEL);
    await waitFor('the model tab', async () => (await wb.activeTabLabel()) === MODEL, 20_000);
    await wb.runCommand('ONNX Quant: Quantize Model…');
    await wb.pickQuickItem(/static.*default/);
    await wb.pickQuickItem('from setting onnxQuant.calibrationFolder');
    const input = wb.page.locator('.quick-input-widget .quick-input-box input');
    await waitFor('the output path box', async () => ((await input.inputValue().catch(() => '')).endsWith(OUTPUT) ? true : undefined), 10_000);
    await input.press('Enter');

    const frame = await wb.webviewFrame('.comparison', 'SQNR', 240_000);
    const text = (await frame.locator('#root').innerText()).replace(/\s+/g, ' ');
    const sqnr = /(\d+\.\d) dB/.exec(text);
    assert.ok(sqnr, `the panel shows an SQNR: ${text.slice(0, 600)}`);
    // 16 calibration lines and 4 held out: this checks the panel shows a sane comparison; the
    // accuracy itself is asserted by the unit tests on real data (quantize-real-models).
    assert.ok(Number(sqnr[1]) > 10, `SQNR ${sqnr[1]} dB`);
    assert.match(text, /smaller/);
    assert.match(text, /median latency/);
    assert.match(text, /top-1 agreement/);
    assert.match(text, /Kept in float/);
    assert.ok(!/SYNTHETIC/.test(text), 'calibrated on the test data, not synthetic');
    // onnxQuant.activationQdq chose the placement (what auto picks for this model anyway), so
    // auto's measurement of the integer kernels' share did not run and its note is absent.
    assert.match(text, /preprocessing: /);
    assert.ok(!/integer kernels carry/.test(text), `the setting, not auto, chose the placement: ${text.slice(0, 600)}`);
    assert.equal(await frame.locator('vscode-button#open-model').count(), 1);
    assert.equal(await frame.locator('vscode-button#reveal').count(), 1);

    // The output is there, and onnxruntime-node runs it on a calibration sample.
    const output = path.join(workspace, OUTPUT);
    assert.ok(fs.existsSync(output), `${output} written`);
    const npy = await readNpyFile(path.join(workspace, 'calib', 'sample_0.npy'));
    const sessionOrt = await ort.InferenceSession.create(output);
    try {
      const out = await sessionOrt.run({ [sessionOrt.inputNames[0]!]: new ort.Tensor('float32', npy.data as Float32Array, npy.shape) });
      const y = out[sessionOrt.outputNames[0]!]!;
      assert.deepEqual(y.dims, [1, 2]);
    } finally {
      await sessionOrt.release();
    }
    // The screenshot with the side bar hidden, so the panel has room for its tables.
    await wb.runCommand('View: Toggle Primary Side Bar Visibility');
    await frame.locator('.comparison').scrollIntoViewIfNeeded();
    await wb.screenshot('results-panel', { docs: true });
    await wb.runCommand('View: Toggle Primary Side Bar Visibility');

    // The panel's button opens the quantized model in the model editor.
    await frame.locator('vscode-button#open-model').click();
    await waitFor('the quantized model tab', async () => (await wb.activeTabLabel()) === OUTPUT, 20_000);
  });

  e2eTest('a recipe naming a layer the model lacks gets a warning in the Problems tab', async () => {
    const wb = session.workbench;
    await wb.closeAllEditors();
    await wb.openFromExplorer(RECIPE);
    const rows = wb.page.locator('.markers-panel .monaco-list-row');
    const texts = await waitFor(
      'the recipe warning in the Problems tab',
      async () => {
        await wb.page.keyboard.press('Control+Shift+M');
        const all = (await rows.allTextContents()).join('\n');
        return /no_such_layer/.test(all) ? all : undefined;
      },
      60_000,
      1_000,
    );
    assert.match(texts, /no node named "no_such_layer" in ch_ppocr_mobile_v2\.0_cls_infer\.onnx/);
    assert.match(texts, /"conv_typo" is neither a node name nor an op type/);
    assert.ok(!/p2o\.Conv\.0/.test(texts) && !/"Softmax"/.test(texts), 'real layers and op types are not flagged');
  });
});

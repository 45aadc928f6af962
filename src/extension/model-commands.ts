/**
 * The job commands besides Quantize Model…: Run Sensitivity Analysis, Suggest Bit Widths (writes
 * `<name>.recipe.json` next to the model, like `onnx-quant analyze --write-recipe`), Compare Float
 * vs Quantized, Export Report and Cancel. Data and settings come from the settings and the model's
 * recipe (model-context.ts); without a calibration folder the data is synthetic and the panel says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { findingDiagnostic } from './analyze-command';
import type { JobRunner } from './jobs';
import { defaultOutputPath, jobSettings, recipePathFor } from './job-settings';
import { modelContext } from './model-context';
import { reportHtml, reportJsonText } from './report-html';

export const SENSITIVITY_COMMAND = 'onnxQuant.runSensitivity';
export const SUGGEST_COMMAND = 'onnxQuant.suggestBitWidths';
export const COMPARE_COMMAND = 'onnxQuant.compareModels';
export const EXPORT_REPORT_COMMAND = 'onnxQuant.exportReport';
export const CANCEL_COMMAND = 'onnxQuant.cancel';

const name = (uri: vscode.Uri) => path.basename(uri.fsPath);

export async function sensitivityCommand(model: vscode.Uri, runner: JobRunner, diagnostics: vscode.DiagnosticCollection): Promise<void> {
  const ctx = modelContext(model);
  const s = ctx.settings;
  const result = await runner.run(
    {
      kind: 'analyze',
      input: model.fsPath,
      settings: jobSettings({ user: s.explicit, recipe: ctx.recipe, calib: ctx.calib, eval: ctx.eval }),
      sensitivity: s.sensitivity,
      suggest: false,
      workers: s.workers || undefined,
    },
    { title: `Sensitivity of ${name(model)} (${s.sensitivity})`, model },
  );
  if (result?.kind === 'analyze') diagnostics.set(model, result.report.findings.map((f) => findingDiagnostic(f, model)));
}

export async function suggestCommand(model: vscode.Uri, runner: JobRunner, diagnostics: vscode.DiagnosticCollection): Promise<void> {
  const ctx = modelContext(model);
  const s = ctx.settings;
  const recipe = recipePathFor(model.fsPath);
  if (fs.existsSync(recipe)) {
    const ok = await vscode.window.showWarningMessage(`${recipe} exists. Replace it with the new suggestion?`, { modal: true }, 'Replace');
    if (ok !== 'Replace') return;
  }
  // A fresh suggestion from the settings, not from the recipe it replaces.
  const result = await runner.run(
    {
      kind: 'analyze',
      input: model.fsPath,
      settings: jobSettings({ user: s.explicit, calib: ctx.calib, eval: ctx.eval }),
      sensitivity: s.sensitivity,
      suggest: true,
      targetSqnrDb: s.targetSqnr,
      workers: s.workers || undefined,
      writeRecipe: recipe,
    },
    { title: `Suggesting bit widths for ${name(model)}`, model },
  );
  if (result?.kind !== 'analyze') return;
  diagnostics.set(model, result.report.findings.map((f) => findingDiagnostic(f, model)));
  const open = await vscode.window.showInformationMessage(`ONNX Quant: recipe written to ${path.basename(recipe)}; Quantize Model… uses it for ${name(model)}.`, 'Open Recipe');
  if (open) await vscode.window.showTextDocument(vscode.Uri.file(recipe));
}

export async function compareCommand(model: vscode.Uri, runner: JobRunner): Promise<void> {
  const ctx = modelContext(model);
  const guess = defaultOutputPath(model.fsPath);
  const picked = await vscode.window.showOpenDialog({
    title: `Compare ${name(model)} with its quantized version`,
    openLabel: 'Compare',
    canSelectFiles: true,
    canSelectMany: false,
    filters: { 'ONNX models': ['onnx'] },
    defaultUri: fs.existsSync(guess) ? vscode.Uri.file(guess) : vscode.Uri.joinPath(model, '..'),
  });
  const quant = picked?.[0];
  if (!quant) return;
  if (path.resolve(quant.fsPath) === path.resolve(model.fsPath)) {
    void vscode.window.showErrorMessage(`ONNX Quant: ${quant.fsPath} is the float model itself; pick its quantized version.`);
    return;
  }
  await runner.run(
    { kind: 'compare', floatModel: model.fsPath, quantModel: quant.fsPath, settings: jobSettings({ user: ctx.settings.explicit, calib: ctx.calib, eval: ctx.eval }), latencyRuns: ctx.settings.latencyRuns },
    { title: `Comparing ${name(model)} with ${name(quant)}`, model, output: quant },
  );
}

export async function exportReportCommand(model: vscode.Uri, runner: JobRunner, log: vscode.LogOutputChannel): Promise<void> {
  const last = runner.lastResult(model);
  if (!last) {
    void vscode.window.showWarningMessage(`ONNX Quant: no analysis or quantization of ${model.fsPath} has finished in this window; run Quantize Model…, Run Sensitivity Analysis or Suggest Bit Widths first.`);
    return;
  }
  const base = model.fsPath.replace(/\.onnx$/i, '');
  const target = await vscode.window.showSaveDialog({ title: 'Export report (HTML; the JSON goes next to it)', defaultUri: vscode.Uri.file(`${base}.${last.result.kind}-report.html`), filters: { HTML: ['html'] } });
  if (!target) return;
  const html = target.fsPath.endsWith('.html') ? target.fsPath : `${target.fsPath}.html`;
  const json = html.replace(/\.html$/, '.json');
  const title = `ONNX Quant ${last.result.kind} report: ${name(model)}`;
  fs.writeFileSync(html, reportHtml(last.result, { model: model.fsPath, title, finishedAt: last.finishedAt }));
  fs.writeFileSync(json, reportJsonText(last.result));
  log.info(`report written: ${html}, ${json}`);
  void vscode.window.showInformationMessage(`ONNX Quant: report written to ${path.basename(html)} and ${path.basename(json)}.`);
}

export function cancelCommand(runner: JobRunner): void {
  const n = runner.cancelAll();
  if (n === 0) void vscode.window.showInformationMessage('ONNX Quant: no job is running.');
}

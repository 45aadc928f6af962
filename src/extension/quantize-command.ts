/**
 * "ONNX Quant: Quantize Model…": asks only what it must — the mode (default from the recipe or the
 * settings), the calibration data (the settings' folder, another folder, or synthetic data, said
 * loudly) and the output (default `<name>.quant.onnx` next to the input, never the input) — then
 * runs the quantize pipeline in the job worker with the results panel.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { QuantConfig } from '../quant/config';
import type { JobRunner } from './jobs';
import { defaultOutputPath, jobSettings, outputPathProblem } from './job-settings';
import { modelContext } from './model-context';

export const QUANTIZE_MODEL_COMMAND = 'onnxQuant.quantizeModel';

const MODE_INFO: Record<QuantConfig['mode'], string> = {
  static: 'int8 weights and activations, calibrated on data (fastest on CPU)',
  dynamic: 'int8 weights, activations quantized at run time (MatMul/Gemm/Conv/LSTM)',
  'weight-only': 'int4 blocks of MatMul/Gemm weights (large language-style models)',
  fp16: 'float16 weights and compute',
};

type ModeItem = vscode.QuickPickItem & { mode: QuantConfig['mode'] };
type DataItem = vscode.QuickPickItem & { data: 'folder' | 'browse' | 'synthetic'; folder?: string };

async function pickMode(defaultMode: QuantConfig['mode'], from: string): Promise<QuantConfig['mode'] | undefined> {
  const modes = Object.keys(MODE_INFO) as QuantConfig['mode'][];
  const ordered = [defaultMode, ...modes.filter((m) => m !== defaultMode)];
  const items: ModeItem[] = ordered.map((m) => ({ label: m, description: m === defaultMode ? `default (${from})` : undefined, detail: MODE_INFO[m], mode: m }));
  const picked = await vscode.window.showQuickPick(items, { title: 'Quantize Model (1/3): mode', placeHolder: 'Quantization mode', ignoreFocusOut: true });
  return picked?.mode;
}

/** The data folder, '' for synthetic data, undefined when the user backed out. */
async function pickData(model: vscode.Uri, fromSettings: string | undefined): Promise<string | undefined> {
  const items: DataItem[] = [];
  if (fromSettings) items.push({ label: `$(folder) ${vscode.workspace.asRelativePath(fromSettings)}`, description: 'from setting onnxQuant.calibrationFolder', data: 'folder', folder: fromSettings });
  items.push({ label: '$(folder-opened) Choose a folder…', description: '.npy, .npz, test_data_set_*, or images', data: 'browse' });
  items.push({
    label: '$(warning) SYNTHETIC DATA (random inputs)',
    description: 'no data of yours',
    detail: 'Activation ranges and every accuracy figure will come from random inputs, not your data: results may not hold on real inputs.',
    data: 'synthetic',
  });
  const picked = await vscode.window.showQuickPick(items, { title: 'Quantize Model (2/3): calibration data', placeHolder: 'Data to calibrate on (20% is held out for the comparison)', ignoreFocusOut: true });
  if (!picked) return undefined;
  if (picked.data === 'synthetic') return '';
  if (picked.data === 'folder') return picked.folder;
  const chosen = await vscode.window.showOpenDialog({ title: 'Calibration data folder', canSelectFiles: false, canSelectFolders: true, canSelectMany: false, defaultUri: vscode.Uri.joinPath(model, '..'), openLabel: 'Use this folder' });
  return chosen?.[0]?.fsPath;
}

async function pickOutput(input: string): Promise<string | undefined> {
  const value = defaultOutputPath(input);
  const output = await vscode.window.showInputBox({
    title: 'Quantize Model (3/3): output file',
    prompt: 'Where to write the quantized model',
    value,
    valueSelection: [path.dirname(value).length + 1, value.length - '.onnx'.length],
    ignoreFocusOut: true,
    validateInput: (v) => outputPathProblem(path.resolve(path.dirname(input), v.trim()), input),
  });
  if (output === undefined) return undefined;
  const resolved = path.resolve(path.dirname(input), output.trim());
  if (fs.existsSync(resolved)) {
    const replace = await vscode.window.showWarningMessage(`${resolved} exists. Replace it?`, { modal: true }, 'Replace');
    if (replace !== 'Replace') return undefined;
  }
  return resolved;
}

export async function quantizeCommand(model: vscode.Uri, runner: JobRunner): Promise<void> {
  const ctx = modelContext(model);
  const recipeMode = ctx.recipe?.settings.mode;
  const mode = await pickMode(recipeMode ?? ctx.settings.defaultMode, recipeMode ? `recipe ${path.basename(ctx.recipe!.file)}` : 'setting onnxQuant.defaultMode');
  if (!mode) return;
  const calib = await pickData(model, ctx.calib);
  if (calib === undefined) return;
  const output = await pickOutput(model.fsPath);
  if (!output) return;
  const settings = jobSettings({ user: ctx.settings.explicit, recipe: ctx.recipe, mode, calib: calib || undefined, eval: ctx.eval });
  await runner.run(
    { kind: 'quantize', input: model.fsPath, output, settings, latencyRuns: ctx.settings.latencyRuns },
    { title: `Quantizing ${path.basename(model.fsPath)} (${mode})`, model, output: vscode.Uri.file(output) },
  );
}

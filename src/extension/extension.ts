/**
 * Extension entry point. The only place (with the rest of src/extension/) that imports `vscode`:
 * model code lives in src/onnx and src/quant, the webview in webview/, and the message protocol
 * between them in src/shared/protocol.ts.
 */
import * as vscode from 'vscode';
import { MODEL_EDITOR_VIEW_TYPE, ModelEditorProvider } from './model-editor';
import { ANALYZE_MODEL_COMMAND, analyzeCommand } from './analyze-command';
import { registerRevealLayerCommand } from './reveal-layer';
import { JobRunner } from './jobs';
import { isAbortError } from '../runtime/worker/job-protocol';
import { QUANTIZE_MODEL_COMMAND, quantizeCommand } from './quantize-command';
import {
  CANCEL_COMMAND,
  cancelCommand,
  COMPARE_COMMAND,
  compareCommand,
  EXPORT_REPORT_COMMAND,
  exportReportCommand,
  SENSITIVITY_COMMAND,
  sensitivityCommand,
  SUGGEST_COMMAND,
  suggestCommand,
} from './model-commands';
import { registerRecipeDiagnostics } from './recipe-diagnostics';

export const INSPECT_MODEL_COMMAND = 'onnxQuant.inspectModel';

declare const ONNX_QUANT_VERSION: string | undefined;

function isOnnxUri(value: unknown): value is vscode.Uri {
  return value instanceof vscode.Uri && value.path.toLowerCase().endsWith('.onnx');
}

/** The .onnx file of the active editor or tab, text or custom, if any. */
function activeOnnxUri(): vscode.Uri | undefined {
  const text = vscode.window.activeTextEditor?.document.uri;
  if (isOnnxUri(text)) return text;
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputText || input instanceof vscode.TabInputCustom) {
    if (isOnnxUri(input.uri)) return input.uri;
  }
  return undefined;
}

async function pickOnnxFile(title = 'Inspect ONNX Model', openLabel = 'Inspect'): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title,
    openLabel,
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    filters: { 'ONNX models': ['onnx'] },
  });
  return picked?.[0];
}

/**
 * "ONNX Quant: Inspect Model": opens a model in the model editor. The file comes from the explorer
 * or editor title menu (first argument), else the active editor, else a file picker.
 */
async function inspectModel(log: vscode.LogOutputChannel, arg: unknown): Promise<void> {
  const uri = isOnnxUri(arg) ? arg : (activeOnnxUri() ?? (await pickOnnxFile()));
  if (!uri) return;
  log.info(`inspect ${uri.scheme === 'file' ? uri.fsPath : uri.toString(true)}`);
  await vscode.commands.executeCommand('vscode.openWith', uri, MODEL_EDITOR_VIEW_TYPE);
}

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('ONNX Quant', { log: true });
  context.subscriptions.push(
    log,
    ModelEditorProvider.register(context, log),
    vscode.commands.registerCommand(INSPECT_MODEL_COMMAND, async (arg: unknown) => {
      try {
        await inspectModel(log, arg);
      } catch (err) {
        log.error(err instanceof Error ? err : String(err));
        void vscode.window.showErrorMessage(`ONNX Quant: could not open the model: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  // Findings of the analysis, on each model's URI; cleared when the file is deleted or renamed.
  const diagnostics = vscode.languages.createDiagnosticCollection('onnx-quant');
  const watcher = vscode.workspace.createFileSystemWatcher('**/*.onnx', true, true, false);
  context.subscriptions.push(
    diagnostics,
    watcher,
    watcher.onDidDelete((uri) => diagnostics.delete(uri)),
    vscode.workspace.onDidRenameFiles((e) => e.files.forEach((f) => diagnostics.delete(f.oldUri))),
  );

  // Jobs that run in the worker thread, with progress, Cancel and the results panel.
  const runner = new JobRunner(context.extensionUri, log);
  context.subscriptions.push(
    vscode.commands.registerCommand(ANALYZE_MODEL_COMMAND, async (arg: unknown) => {
      try {
        const uri = isOnnxUri(arg) ? arg : (activeOnnxUri() ?? (await pickOnnxFile('Analyze Model: choose an ONNX model', 'Analyze')));
        if (!uri) return;
        if (uri.scheme !== 'file') {
          void vscode.window.showErrorMessage(`ONNX Quant: ${uri.toString(true)}: Analyze Model works on local files only.`);
          return;
        }
        await analyzeCommand(uri, diagnostics, log, runner);
      } catch (err) {
        if (isAbortError(err)) {
          log.info('analysis cancelled');
          return;
        }
        log.error(err instanceof Error ? err : String(err));
        void vscode.window.showErrorMessage(`ONNX Quant: analysis failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  /** A command on a model: the file from the menu, else the active editor, else a file picker; errors shown, never thrown. */
  const modelCommand = (id: string, what: string, fn: (uri: vscode.Uri) => Promise<void>) =>
    vscode.commands.registerCommand(id, async (arg: unknown) => {
      try {
        const uri = isOnnxUri(arg) ? arg : (activeOnnxUri() ?? (await pickOnnxFile(`${what}: choose an ONNX model`, what)));
        if (!uri) return;
        if (uri.scheme !== 'file') {
          void vscode.window.showErrorMessage(`ONNX Quant: ${uri.toString(true)}: ${what} works on local files only.`);
          return;
        }
        await fn(uri);
      } catch (err) {
        log.error(err instanceof Error ? err : String(err));
        void vscode.window.showErrorMessage(`ONNX Quant: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  context.subscriptions.push(
    runner,
    modelCommand(QUANTIZE_MODEL_COMMAND, 'Quantize Model', (uri) => quantizeCommand(uri, runner)),
    modelCommand(SENSITIVITY_COMMAND, 'Run Sensitivity Analysis', (uri) => sensitivityCommand(uri, runner, diagnostics)),
    modelCommand(SUGGEST_COMMAND, 'Suggest Bit Widths', (uri) => suggestCommand(uri, runner, diagnostics)),
    modelCommand(COMPARE_COMMAND, 'Compare Float vs Quantized', (uri) => compareCommand(uri, runner)),
    modelCommand(EXPORT_REPORT_COMMAND, 'Export Report', (uri) => exportReportCommand(uri, runner, log)),
    vscode.commands.registerCommand(CANCEL_COMMAND, () => cancelCommand(runner)),
    registerRecipeDiagnostics(log),
  );

  // Selects a layer in the model editor: the Problems tab's finding codes link here.
  context.subscriptions.push(registerRevealLayerCommand());

  log.info(`ONNX Quant ${typeof ONNX_QUANT_VERSION === 'string' ? ONNX_QUANT_VERSION : 'dev'} activated`);
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}

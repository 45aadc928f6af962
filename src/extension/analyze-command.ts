/**
 * "ONNX Quant: Analyze Model": runs the analysis core (src/analysis) with a cancellable progress
 * notification and turns its findings into diagnostics on the model's URI (Problems tab). Without
 * calibration data it uses synthetic inputs, which the findings say (OQ010).
 */
import * as vscode from 'vscode';
import { analyzeModel } from '../analysis/analyze';
import type { Finding } from '../analysis/findings';
import { OnnxModel } from '../onnx/model';
import { syntheticSource } from '../runtime/data';
import { revealLayerCommandUri } from './reveal-layer';

export const ANALYZE_MODEL_COMMAND = 'onnxQuant.analyzeModel';

const SEVERITY: Record<Finding['severity'], vscode.DiagnosticSeverity> = {
  error: vscode.DiagnosticSeverity.Error,
  warning: vscode.DiagnosticSeverity.Warning,
  info: vscode.DiagnosticSeverity.Information,
};

/**
 * One diagnostic per finding; the layer name leads the message so the Problems tab shows it. With
 * the model's URI, a finding about a layer links its code to onnxQuant.revealLayer: clicking the
 * code in the Problems tab selects that layer in the model editor.
 */
export function findingDiagnostic(f: Finding, model?: vscode.Uri): vscode.Diagnostic {
  const where = f.node ? `[${f.node}] ` : '';
  const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 0), `${where}${f.message} — ${f.suggestion}`, SEVERITY[f.severity]);
  d.source = 'onnx-quant';
  d.code = model && f.node ? { value: f.code, target: revealLayerCommandUri(model, f.node) } : f.code;
  return d;
}

export async function analyzeCommand(uri: vscode.Uri, diagnostics: vscode.DiagnosticCollection, log: vscode.LogOutputChannel): Promise<void> {
  const file = uri.fsPath;
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Analyzing ${vscode.workspace.asRelativePath(uri)}`, cancellable: true },
    async (progress, token) => {
      const controller = new AbortController();
      token.onCancellationRequested(() => controller.abort());
      const model = OnnxModel.load(file);
      try {
        let calib;
        try {
          calib = syntheticSource(model, { count: 8, seed: 1 });
        } catch (err) {
          // Inputs synthetic data cannot fill (symbolic dims, integer inputs): weights only.
          log.warn(`analysis without activations: ${err instanceof Error ? err.message : String(err)}`);
        }
        const report = await analyzeModel({
          model,
          calib,
          sensitivity: calib ? 'local' : 'none',
          suggest: false,
          signal: controller.signal,
          onProgress: (e) => {
            if (e.event === 'phase') progress.report({ message: e.phase });
          },
        });
        // Re-analysis replaces the previous findings of this model.
        diagnostics.set(uri, report.findings.map((f) => findingDiagnostic(f, uri)));
        log.info(`analysis of ${file}: ${report.layers.length} layer(s), ${report.findings.length} finding(s)`);
      } finally {
        model.close();
      }
    },
  );
}

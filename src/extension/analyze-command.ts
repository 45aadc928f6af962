/**
 * "ONNX Quant: Analyze Model": runs the analysis core (src/analysis) in the job worker thread with a
 * cancellable progress notification and turns its findings into diagnostics on the model's URI
 * (Problems tab). It uses synthetic inputs, which the findings say (OQ010).
 */
import * as vscode from 'vscode';
import type { Finding } from '../analysis/findings';
import { runJobInWorker } from '../runtime/worker/job-host';
import type { AnalyzeJob } from '../runtime/worker/job-protocol';
import type { JobRunner } from './jobs';
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

/** Synthetic samples of Analyze Model (it has no data setting of its own; the findings say synthetic). */
const ANALYZE_SAMPLES = 8;

/** The job Analyze Model runs: synthetic calibration and local sensitivity, weights only when inputs cannot be synthesized. */
export function analyzeJob(file: string): AnalyzeJob {
  return { kind: 'analyze', input: file, settings: { samples: ANALYZE_SAMPLES, threads: 1 }, sensitivity: 'local', suggest: false, weightsOnlyFallback: true };
}

/**
 * Runs the analysis in the job worker (onnxruntime creates and runs its sessions synchronously on
 * the calling thread: on the host's thread that froze the UI for seconds), with a cancellable
 * notification; ONNX Quant: Cancel stops it too. Rejects with an AbortError when cancelled.
 */
export async function analyzeCommand(uri: vscode.Uri, diagnostics: vscode.DiagnosticCollection, log: vscode.LogOutputChannel, runner: JobRunner): Promise<void> {
  const file = uri.fsPath;
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Analyzing ${vscode.workspace.asRelativePath(uri)}`, cancellable: true },
    async (progress, token) => {
      const controller = new AbortController();
      const cancel = token.onCancellationRequested(() => controller.abort());
      const tracked = runner.track(controller);
      try {
        const result = await runJobInWorker(analyzeJob(file), {
          workerScript: runner.workerScript,
          signal: controller.signal,
          onAnalysis: (e) => {
            if (e.event === 'phase') progress.report({ message: e.phase });
          },
          onLog: (m) => log.warn(m),
        });
        if (result.kind !== 'analyze') throw new Error(`${file}: the worker answered a ${result.kind} job`);
        const report = result.report;
        // Re-analysis replaces the previous findings of this model.
        diagnostics.set(uri, report.findings.map((f) => findingDiagnostic(f, uri)));
        log.info(`analysis of ${file}: ${report.layers.length} layer(s), ${report.findings.length} finding(s)`);
      } finally {
        cancel.dispose();
        tracked.dispose();
      }
    },
  );
}

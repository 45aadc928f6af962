/**
 * Runs quantize / analysis / compare jobs in the job worker (dist/job-worker.js), off the
 * extension host's thread, with a cancellable progress notification, a log in the output channel
 * and a results panel that fills in as the job goes. Keeps the running jobs (for Cancel) and the
 * last result of each model (for Export Report). Never throws: failures are shown and logged.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AnalysisEvent } from '../analysis/analyze';
import type { PipelineProgress } from '../runtime/quantize-model';
import { runJobInWorker } from '../runtime/worker/job-host';
import { isAbortError, type Job, type JobResult } from '../runtime/worker/job-protocol';
import { JOB_PHASES, type ResultsPhase } from '../shared/results-protocol';
import { ResultsPanel } from './results-panel';
import { resultView } from './result-view';

/** Context key true while a job runs (shows ONNX Quant: Cancel in the palette). */
const RUNNING_CONTEXT = 'onnxQuant.jobRunning';

export interface FinishedJob {
  job: Job;
  result: JobResult;
  finishedAt: Date;
}

export interface JobUi {
  /** Notification and panel title, e.g. "Quantizing cls.onnx". */
  title: string;
  /** The input model. */
  model: vscode.Uri;
  /** What the panel's buttons open (the quantized or compared model). */
  output?: vscode.Uri;
}

function display(uri: vscode.Uri): string {
  return uri.scheme === 'file' ? uri.fsPath : uri.toString(true);
}

export class JobRunner implements vscode.Disposable {
  private readonly running = new Set<AbortController>();
  private readonly last = new Map<string, FinishedJob>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** The last finished job of a model (by input file), for Export Report. */
  lastResult(model: vscode.Uri): FinishedJob | undefined {
    return this.last.get(model.fsPath);
  }

  /** Cancels every running job; returns how many there were. */
  cancelAll(): number {
    const n = this.running.size;
    for (const c of this.running) c.abort();
    return n;
  }

  /** The worker bundle next to the extension's bundle. */
  get workerScript(): string {
    return path.join(this.extensionUri.fsPath, 'dist', 'job-worker.js');
  }

  /** Counts a job run elsewhere (Analyze Model) as running, so that Cancel reaches it; dispose when it ends. */
  track(controller: AbortController): vscode.Disposable {
    this.running.add(controller);
    this.setRunning();
    return new vscode.Disposable(() => {
      this.running.delete(controller);
      this.setRunning();
    });
  }

  private setRunning(): void {
    void vscode.commands.executeCommand('setContext', RUNNING_CONTEXT, this.running.size > 0);
  }

  /** Runs a job; resolves with its result, or undefined when it failed or was cancelled (already reported). */
  async run(job: Job, ui: JobUi): Promise<JobResult | undefined> {
    const controller = new AbortController();
    this.running.add(controller);
    this.setRunning();
    const panel = ResultsPanel.show(this.extensionUri, this.log, `${job.kind}:${ui.model.toString()}`, { kind: job.kind, title: ui.title, model: display(ui.model), output: ui.output ? display(ui.output) : undefined, startedAt: Date.now() }, ui.output);
    const started = Date.now();
    this.log.info(`${ui.title}: started (${JSON.stringify(job)})`);
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: ui.title, cancellable: true }, async (progress, token) => {
        token.onCancellationRequested(() => controller.abort());
        let lastPhase = '';
        const onPhase = (phase: ResultsPhase, done: number, total: number, message?: string) => {
          if (!(JOB_PHASES[job.kind] as readonly string[]).includes(phase)) return;
          panel.post({ type: 'progress', phase, done, total, message });
          if (phase !== lastPhase) {
            lastPhase = phase;
            this.log.info(`${ui.title}: ${phase}${total ? ` (${total})` : ''}`);
          }
          progress.report({ message: `${phase}${total > 1 ? ` ${done}/${total}` : ''}` });
        };
        const result = await runJobInWorker(job, {
          workerScript: this.workerScript,
          signal: controller.signal,
          onProgress: (p: PipelineProgress) => onPhase(p.phase, p.done, p.total, p.message),
          onAnalysis: (e: AnalysisEvent) => {
            if (e.event === 'phase' && e.phase !== 'done' && e.phase !== 'load') onPhase(e.phase, 0, e.total ?? 0);
            else if (e.event === 'progress' && e.phase !== 'done' && e.phase !== 'load') onPhase(e.phase, e.done, e.total);
            else if (e.event === 'layer' && e.phase === 'global') onPhase('global', e.done, e.total);
          },
          onLog: (m) => this.log.info(m),
        });
        this.last.set(ui.model.fsPath, { job, result, finishedAt: new Date() });
        panel.post({ type: 'result', result: resultView(result) });
        this.log.info(`${ui.title}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return result;
      });
    } catch (err) {
      if (isAbortError(err)) {
        panel.post({ type: 'cancelled' });
        this.log.info(`${ui.title}: cancelled; nothing was written`);
        void vscode.window.showInformationMessage(`ONNX Quant: ${ui.title} cancelled; nothing was written.`);
        return undefined;
      }
      const message = err instanceof Error ? err.message : String(err);
      panel.post({ type: 'failed', message });
      this.log.error(`${ui.title}: ${message}`);
      void vscode.window.showErrorMessage(`ONNX Quant: ${message}`);
      return undefined;
    } finally {
      this.running.delete(controller);
      this.setRunning();
    }
  }

  dispose(): void {
    this.cancelAll();
  }
}

/**
 * The results panel: a webview that fills in while a job runs (phases with counts) and ends with
 * the float-vs-quantized comparison or the analysis. One panel per model and job kind, reused by
 * the next run. The host keeps what it posted, so a webview VS Code tore down while hidden gets
 * everything again when its script says `ready`.
 */
import * as vscode from 'vscode';
import { createNonce, resultsHtml } from './results-html';
import { type JobHeader, parseResultsMessage, type ResultsHostMessage } from '../shared/results-protocol';

export const RESULTS_VIEW_TYPE = 'onnxQuant.results';
/** Invalid webview messages logged per panel; the rest are dropped silently. */
const MAX_LOGGED_INVALID = 5;

export class ResultsPanel implements vscode.Disposable {
  private static readonly open = new Map<string, ResultsPanel>();
  private history: ResultsHostMessage[] = [];
  private ready = false;
  private invalid = 0;
  private disposed = false;
  /** The model the buttons act on (the job's output). */
  private target: vscode.Uri | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  /** The panel for `key` (model + job kind), created or revealed, reset for a new job. */
  static show(extensionUri: vscode.Uri, log: vscode.LogOutputChannel, key: string, header: JobHeader, target: vscode.Uri | undefined): ResultsPanel {
    let p = ResultsPanel.open.get(key);
    if (!p || p.disposed) {
      p = new ResultsPanel(extensionUri, log, key, header.title);
      ResultsPanel.open.set(key, p);
    } else p.panel.reveal(undefined, true);
    p.panel.title = header.title;
    p.target = target;
    p.history = [];
    p.post({ type: 'start', job: header });
    return p;
  }

  private readonly panel: vscode.WebviewPanel;

  private constructor(
    extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly key: string,
    title: string,
  ) {
    const dist = vscode.Uri.joinPath(extensionUri, 'dist');
    const media = vscode.Uri.joinPath(extensionUri, 'media');
    this.panel = vscode.window.createWebviewPanel(RESULTS_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
      enableScripts: true,
      enableCommandUris: false,
      localResourceRoots: [dist, media],
    });
    const webview = this.panel.webview;
    webview.html = resultsHtml({
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'results.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'results.css')).toString(),
      nonce: createNonce(),
    });
    this.disposables.push(
      webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)),
      this.panel.onDidDispose(() => this.dispose()),
    );
  }

  /** Sends a message now (when the script runs) and keeps it for a restarted webview. */
  post(message: ResultsHostMessage): void {
    if (this.disposed) return;
    // Only the latest progress of each phase matters to a webview that starts over.
    if (message.type === 'progress') {
      const last = this.history[this.history.length - 1];
      if (last?.type === 'progress' && last.phase === message.phase) this.history.pop();
    }
    this.history.push(message);
    if (this.ready) this.send(message);
  }

  private send(message: ResultsHostMessage): void {
    this.panel.webview.postMessage(message).then(undefined, (err: unknown) => this.log.debug(`results panel: post failed: ${String(err)}`));
  }

  private async onMessage(raw: unknown): Promise<void> {
    const m = parseResultsMessage(raw);
    if (!m) {
      if (++this.invalid <= MAX_LOGGED_INVALID) this.log.warn('ignored an invalid message from the results panel');
      return;
    }
    try {
      switch (m.type) {
        case 'ready':
          this.ready = true;
          for (const h of this.history) this.send(h);
          return;
        case 'openModel':
          if (this.target) await vscode.commands.executeCommand('vscode.openWith', this.target, 'onnxQuant.modelEditor');
          return;
        case 'revealInExplorer':
          if (this.target) await vscode.commands.executeCommand('revealInExplorer', this.target);
          return;
      }
    } catch (err) {
      this.log.error(err instanceof Error ? err : String(err));
      void vscode.window.showErrorMessage(`ONNX Quant: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (ResultsPanel.open.get(this.key) === this) ResultsPanel.open.delete(this.key);
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

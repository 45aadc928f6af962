/**
 * The read-only custom editor for *.onnx files: one ModelDocument per file (loads the model, keeps
 * its summary and its layer table with the analysis filling it, reloads when the file changes on
 * disk) and one ModelEditorSession per editor panel (the webview, its messages, its own state).
 * Two editors on the same file share the loaded document and its analysis but nothing else; other
 * files have their own.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { OnnxFormatError } from '../onnx/errors';
import { ModelSummary } from '../onnx/summary';
import { AnalysisData, AnalysisStatus, HostToWebview, ReplyMessage, WebviewRequest, parseWebviewMessage } from '../shared/protocol';
import { AnalysisCommand, syntheticDimArgs } from './analysis-process';
import { MAX_MODEL_FILE_BYTES, ModelView, createNonce, describeLoadError, editorHtml, isInputError, modelViewOfBytes, readModelView } from './editor-core';
import { AnalysisPlan, LayerAnalysis } from './layer-analysis';
import { LayerStore } from './layer-store';

export const MODEL_EDITOR_VIEW_TYPE = 'onnxQuant.modelEditor';

/** Wait this long after the last change event before reloading: writers save in bursts. */
const RELOAD_DEBOUNCE_MS = 300;
/** Requests one webview may have in flight; more are refused. */
const MAX_PENDING_REQUESTS = 16;
/** Invalid webview messages logged per editor; the rest are dropped silently. */
const MAX_LOGGED_INVALID_MESSAGES = 5;

/** Calibration samples of the editor's analysis (fewer than the CLI's 64: it runs while you look). */
const EDITOR_ANALYSIS_SAMPLES = 32;

export type LoadResult = { ok: true; summary: ModelSummary; analysis: LayerAnalysis } | { ok: false; file: string; message: string };

/** How a URI is named in messages: the file path for local files, the URI otherwise. */
export function displayName(uri: vscode.Uri): string {
  return uri.scheme === 'file' ? uri.fsPath : uri.toString(true);
}

/** True when a glob pattern would read `name` literally. */
function isGlobLiteral(name: string): boolean {
  return !/[*?[\]{}!,\\]/.test(name);
}

function sameResource(a: vscode.Uri, b: vscode.Uri): boolean {
  if (a.scheme === 'file' && b.scheme === 'file') {
    return process.platform === 'win32' || process.platform === 'darwin' ? a.fsPath.toLowerCase() === b.fsPath.toLowerCase() : a.fsPath === b.fsPath;
  }
  return a.toString() === b.toString();
}

class ModelDocument implements vscode.CustomDocument {
  private readonly reloaded = new vscode.EventEmitter<LoadResult>();
  /** Fires after each reload caused by a change on disk (not for the first load). */
  readonly onDidReload = this.reloaded.event;
  private result: Promise<LoadResult>;
  private generation = 0;
  private reloadTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly disposables: vscode.Disposable[] = [this.reloaded];
  private disposed = false;
  /** The analysis of the latest successful load (disposed when a reload replaces it). */
  private analysis: LayerAnalysis | undefined;
  /** The data of the last analysis started, reused when the file changes. */
  private lastPlan: AnalysisPlan | undefined;

  constructor(
    readonly uri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly command: AnalysisCommand,
  ) {
    this.result = this.load(0);
    this.watch();
  }

  /** The latest load's outcome; waits for a load in progress. Never rejects. */
  current(): Promise<LoadResult> {
    return this.result;
  }

  private watch(): void {
    const dir = vscode.Uri.joinPath(this.uri, '..');
    const name = this.uri.path.slice(this.uri.path.lastIndexOf('/') + 1);
    // Non-recursive watch of the file's folder; events for other files are filtered out below.
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(dir, isGlobLiteral(name) ? name : '*'));
    const onEvent = (changed: vscode.Uri) => {
      if (sameResource(changed, this.uri)) this.scheduleReload();
    };
    this.disposables.push(watcher, watcher.onDidChange(onEvent), watcher.onDidCreate(onEvent), watcher.onDidDelete(onEvent));
  }

  private scheduleReload(): void {
    if (this.disposed) return;
    if (this.reloadTimer !== undefined) clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = undefined;
      this.reload();
    }, RELOAD_DEBOUNCE_MS);
  }

  private reload(): void {
    if (this.disposed) return;
    const generation = ++this.generation;
    this.log.info(`${displayName(this.uri)} changed on disk; reloading`);
    // The old values describe the old file: stop computing them.
    const wasStarted = this.analysis?.started === true;
    this.analysis?.dispose();
    this.analysis = undefined;
    const result = this.load(generation);
    this.result = result;
    void result.then((r) => {
      // A newer reload supersedes this one; a closed document tells no one.
      if (this.disposed || generation !== this.generation) return;
      if (r.ok && wasStarted) void this.startAnalysis(r.analysis, this.lastPlan?.data === 'folder' ? this.lastPlan : undefined);
      this.reloaded.fire(r);
    });
  }

  private async load(generation: number): Promise<LoadResult> {
    const file = displayName(this.uri);
    const started = Date.now();
    try {
      const view = this.uri.scheme === 'file' ? await readModelView(this.uri.fsPath) : await this.readRemote(file);
      const { summary } = view;
      this.log.info(`loaded ${file} (${summary.fileBytes} bytes, ${summary.nodesTotal} nodes) in ${Date.now() - started} ms`);
      const analysis = new LayerAnalysis(new LayerStore(generation, view.nodes), file, this.command, (level, message) => this.log[level](message));
      if (this.disposed || generation !== this.generation) analysis.dispose();
      else this.analysis = analysis;
      return { ok: true, summary, analysis };
    } catch (err) {
      const message = describeLoadError(file, err);
      if (isInputError(err) || err instanceof vscode.FileSystemError) this.log.warn(message);
      else this.log.error(err instanceof Error ? err : message);
      return { ok: false, file, message };
    }
  }

  /** Files on other file systems (remote, virtual): through the workspace file system API. */
  private async readRemote(file: string): Promise<ModelView> {
    const st = await vscode.workspace.fs.stat(this.uri);
    if (st.size > MAX_MODEL_FILE_BYTES) {
      throw new OnnxFormatError(`${file}: ${st.size} bytes is over protobuf's 2 GB limit; large models keep weights in external data`, { file });
    }
    return modelViewOfBytes(await vscode.workspace.fs.readFile(this.uri), file);
  }

  /** The data an analysis runs on: synthetic inputs, or a folder the user picks (undefined: cancelled). */
  async plan(data: AnalysisData, summary: ModelSummary): Promise<AnalysisPlan | undefined> {
    const dims = syntheticDimArgs(summary.inputs);
    const samples = ['--samples', String(EDITOR_ANALYSIS_SAMPLES)];
    if (data === 'synthetic') {
      const shapes = summary.inputs.map((i) => i.name).join(', ');
      return { data, args: [...dims, ...samples], description: `synthetic inputs (${EDITOR_ANALYSIS_SAMPLES} samples${shapes ? ` of ${shapes}` : ''})` };
    }
    const picked = await vscode.window.showOpenDialog({
      title: `Calibration data for ${path.basename(this.uri.path)}`,
      openLabel: 'Use for analysis',
      canSelectFiles: false,
      canSelectFolders: true,
      canSelectMany: false,
      defaultUri: vscode.Uri.joinPath(this.uri, '..'),
    });
    const dir = picked?.[0];
    if (!dir) return undefined;
    return { data, args: ['--calib', dir.fsPath, ...dims, ...samples], description: `calibration data in ${displayName(dir)}` };
  }

  /** Starts the analysis of a load (synthetic data unless a plan is given). */
  async startAnalysis(analysis: LayerAnalysis, plan?: AnalysisPlan): Promise<void> {
    const r = await this.result;
    if (!r.ok || r.analysis !== analysis) return;
    if (this.uri.scheme !== 'file') {
      analysis.fail(`${displayName(this.uri)}: the layer analysis reads local files only`);
      return;
    }
    const p = plan ?? (await this.plan('synthetic', r.summary))!;
    this.lastPlan = p;
    await analysis.start(p);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.analysis?.dispose();
    if (this.reloadTimer !== undefined) clearTimeout(this.reloadTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

/** Every open editor panel, for revealLayer. */
const sessions = new Set<ModelEditorSession>();

/** One editor panel: its webview, the messages from it, and what it has been told. */
class ModelEditorSession implements vscode.Disposable {
  /**
   * The webview's script has said `ready`, so pushes reach it. When a hidden webview is torn down
   * (no retainContextWhenHidden) pushes are lost, which is fine: the restarted script asks again.
   */
  private ready = false;
  private pending = 0;
  private invalidMessages = 0;
  private disposed = false;
  private readonly disposables: vscode.Disposable[] = [];
  /** This panel's subscription to the analysis of the current load (after its first getLayers). */
  private subscription: { analysis: LayerAnalysis; dispose(): void } | undefined;
  /** A layer to reveal once the webview is ready. */
  private pendingReveal: string | undefined;

  constructor(
    readonly document: ModelDocument,
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    const webview = panel.webview;
    const dist = vscode.Uri.joinPath(extensionUri, 'dist');
    const media = vscode.Uri.joinPath(extensionUri, 'media');
    webview.options = { enableScripts: true, enableCommandUris: false, localResourceRoots: [dist, media] };
    const setHtml = () => {
      webview.html = editorHtml({
        cspSource: webview.cspSource,
        scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
        styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'editor.css')).toString(),
        nonce: createNonce(),
      });
    };
    setHtml();
    // A page whose script never starts (seen when an editor is moved to another group, or shown
    // again, while its page loads) would say "Loading model…" forever: until the script says
    // `ready`, load the page anew a few times, 3 s apart, while it is visible.
    let retry: ReturnType<typeof setInterval> | undefined;
    const stopRetrying = () => {
      if (retry !== undefined) clearInterval(retry);
      retry = undefined;
    };
    const awaitReady = () => {
      stopRetrying();
      let retries = 0;
      retry = setInterval(() => {
        if (this.ready || this.disposed || ++retries > 4) stopRetrying();
        else if (panel.visible) setHtml();
      }, 3000);
    };
    awaitReady();
    let visible = panel.visible;
    this.disposables.push(
      webview.onDidReceiveMessage((message: unknown) => this.onMessage(message)),
      document.onDidReload((result) => this.push(result)),
      panel.onDidDispose(() => this.dispose()),
      panel.onDidChangeViewState(() => {
        if (this.disposed || panel.visible === visible) return;
        visible = panel.visible;
        // Hidden, the page is torn down (no retainContextWhenHidden); shown, it starts again.
        if (!visible) this.ready = false;
        else if (!this.ready) awaitReady();
      }),
      { dispose: stopRetrying },
    );
    sessions.add(this);
  }

  /** Selects a layer in this editor's table (now, or as soon as its script runs). */
  reveal(name: string): void {
    if (this.ready) this.post({ type: 'revealLayer', name });
    else this.pendingReveal = name;
  }

  private onMessage(raw: unknown): void {
    if (this.disposed) return;
    const message = parseWebviewMessage(raw);
    if (!message) {
      if (++this.invalidMessages <= MAX_LOGGED_INVALID_MESSAGES) {
        this.log.warn(`ignored an invalid message from the editor of ${displayName(this.document.uri)}`);
      }
      return;
    }
    switch (message.type) {
      case 'ready':
        this.ready = true;
        if (this.pendingReveal !== undefined) {
          this.post({ type: 'revealLayer', name: this.pendingReveal });
          this.pendingReveal = undefined;
        }
        return;
      case 'request':
        void this.handleRequest(message);
        return;
      default:
        assertNever(message);
    }
  }

  private async handleRequest(request: WebviewRequest): Promise<void> {
    if (this.pending >= MAX_PENDING_REQUESTS) {
      this.post({ type: 'reply', requestId: request.requestId, method: request.method, ok: false, error: 'too many requests in flight' });
      return;
    }
    this.pending++;
    try {
      this.post(await this.answer(request));
    } catch (err) {
      this.log.error(err instanceof Error ? err : String(err));
      this.post({ type: 'reply', requestId: request.requestId, method: request.method, ok: false, error: 'internal error; see the "ONNX Quant" output' });
    } finally {
      this.pending--;
    }
  }

  private async answer(request: WebviewRequest): Promise<ReplyMessage> {
    const { requestId } = request;
    const r = await this.document.current();
    if (!r.ok) {
      // The error message carries the file name for the panel's heading; the reply settles the request.
      if (request.method === 'getSummary') this.post({ type: 'error', file: r.file, message: r.message });
      return { type: 'reply', requestId, method: request.method, ok: false, error: r.message };
    }
    switch (request.method) {
      case 'getSummary':
        return { type: 'reply', requestId, method: 'getSummary', ok: true, result: r.summary };
      case 'getLayers': {
        this.follow(r.analysis);
        // The table is on screen: compute its later columns (once per load, shared by its editors).
        if (!r.analysis.started) void this.document.startAnalysis(r.analysis);
        return { type: 'reply', requestId, method: 'getLayers', ok: true, result: r.analysis.store.table(r.analysis.status) };
      }
      case 'getLayerDetails':
        return { type: 'reply', requestId, method: 'getLayerDetails', ok: true, result: r.analysis.store.details(request.params.name) };
      case 'runAnalysis': {
        const plan = await this.document.plan(request.params.data, r.summary);
        if (plan) void this.document.startAnalysis(r.analysis, plan);
        return { type: 'reply', requestId, method: 'runAnalysis', ok: true, result: r.analysis.status };
      }
      case 'cancelAnalysis':
        r.analysis.cancel();
        return { type: 'reply', requestId, method: 'cancelAnalysis', ok: true, result: r.analysis.status };
      default:
        return assertNever(request);
    }
  }

  /** Forwards the analysis's patches and progress to this webview. */
  private follow(analysis: LayerAnalysis): void {
    if (this.subscription?.analysis === analysis) return;
    this.subscription?.dispose();
    const sub = analysis.subscribe({
      patch: (patch) => this.post({ type: 'layerUpdate', patch }),
      status: (status: AnalysisStatus) => this.post({ type: 'analysisProgress', status }),
    });
    this.subscription = { analysis, dispose: () => sub.dispose() };
  }

  private push(result: LoadResult): void {
    if (!this.ready) return; // the webview asks when it starts
    if (!result.ok) {
      this.subscription?.dispose();
      this.subscription = undefined;
      this.post({ type: 'error', file: result.file, message: result.message });
      return;
    }
    this.post({ type: 'summary', summary: result.summary });
    if (this.subscription) {
      this.follow(result.analysis);
      this.post({ type: 'layers', table: result.analysis.store.table(result.analysis.status) });
    }
  }

  private post(message: HostToWebview): void {
    if (this.disposed) return;
    this.panel.webview.postMessage(message).then(undefined, (err: unknown) => {
      this.log.debug(`could not post to the editor of ${displayName(this.document.uri)}: ${String(err)}`);
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    sessions.delete(this);
    this.subscription?.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

/**
 * Asks the model editors showing `uri` to select and scroll to a layer, bringing the most
 * recently active one to the front. False when no model editor shows that file.
 */
export function revealLayerInEditors(uri: vscode.Uri, name: string): boolean {
  const matching = [...sessions].filter((s) => sameResource(s.document.uri, uri));
  if (matching.length === 0) return false;
  const target = matching.find((s) => s.panel.active) ?? matching.find((s) => s.panel.visible) ?? matching[matching.length - 1]!;
  target.panel.reveal(undefined, false);
  for (const s of matching) s.reveal(name);
  return true;
}

/** The analysis runs the CLI bundle next to the extension's bundle, with the host's own Node. */
function analysisCommand(extensionUri: vscode.Uri): AnalysisCommand {
  return { execPath: process.execPath, execArgs: [vscode.Uri.joinPath(extensionUri, 'dist', 'cli.js').fsPath] };
}

export class ModelEditorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  static register(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): vscode.Disposable {
    return vscode.window.registerCustomEditorProvider(MODEL_EDITOR_VIEW_TYPE, new ModelEditorProvider(context.extensionUri, log), {
      supportsMultipleEditorsPerDocument: true,
      webviewOptions: { retainContextWhenHidden: false },
    });
  }

  private constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  openCustomDocument(uri: vscode.Uri): ModelDocument {
    return new ModelDocument(uri, this.log, analysisCommand(this.extensionUri));
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    // The session disposes itself with its panel.
    new ModelEditorSession(document, panel, this.extensionUri, this.log);
  }
}

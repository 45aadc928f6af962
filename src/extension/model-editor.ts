/**
 * The read-only custom editor for *.onnx files: one ModelDocument per file (loads the model, keeps
 * its summary, reloads when the file changes on disk) and one ModelEditorSession per editor panel
 * (the webview, its messages, its own state). Two editors on the same file share the loaded
 * document but nothing else.
 */
import * as vscode from 'vscode';
import { OnnxFormatError } from '../onnx/errors';
import { ModelSummary } from '../onnx/summary';
import { HostToWebview, ReplyMessage, WebviewRequest, parseWebviewMessage } from '../shared/protocol';
import { MAX_MODEL_FILE_BYTES, createNonce, describeLoadError, editorHtml, isInputError, readModelSummary, summarizeModelBytes } from './editor-core';

export const MODEL_EDITOR_VIEW_TYPE = 'onnxQuant.modelEditor';

/** Wait this long after the last change event before reloading: writers save in bursts. */
const RELOAD_DEBOUNCE_MS = 300;
/** Requests one webview may have in flight; more are refused. */
const MAX_PENDING_REQUESTS = 16;
/** Invalid webview messages logged per editor; the rest are dropped silently. */
const MAX_LOGGED_INVALID_MESSAGES = 5;

export type LoadResult = { ok: true; summary: ModelSummary } | { ok: false; file: string; message: string };

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

  constructor(
    readonly uri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.result = this.load();
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
    const result = this.load();
    this.result = result;
    void result.then((r) => {
      // A newer reload supersedes this one; a closed document tells no one.
      if (!this.disposed && generation === this.generation) this.reloaded.fire(r);
    });
  }

  private async load(): Promise<LoadResult> {
    const file = displayName(this.uri);
    const started = Date.now();
    try {
      const summary = this.uri.scheme === 'file' ? await readModelSummary(this.uri.fsPath) : await this.readRemote(file);
      this.log.info(`loaded ${file} (${summary.fileBytes} bytes, ${summary.nodesTotal} nodes) in ${Date.now() - started} ms`);
      return { ok: true, summary };
    } catch (err) {
      const message = describeLoadError(file, err);
      if (isInputError(err) || err instanceof vscode.FileSystemError) this.log.warn(message);
      else this.log.error(err instanceof Error ? err : message);
      return { ok: false, file, message };
    }
  }

  /** Files on other file systems (remote, virtual): through the workspace file system API. */
  private async readRemote(file: string): Promise<ModelSummary> {
    const st = await vscode.workspace.fs.stat(this.uri);
    if (st.size > MAX_MODEL_FILE_BYTES) {
      throw new OnnxFormatError(`${file}: ${st.size} bytes is over protobuf's 2 GB limit; large models keep weights in external data`, { file });
    }
    return summarizeModelBytes(await vscode.workspace.fs.readFile(this.uri), file);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.reloadTimer !== undefined) clearTimeout(this.reloadTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

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

  constructor(
    private readonly document: ModelDocument,
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    const webview = panel.webview;
    const dist = vscode.Uri.joinPath(extensionUri, 'dist');
    const media = vscode.Uri.joinPath(extensionUri, 'media');
    webview.options = { enableScripts: true, enableCommandUris: false, localResourceRoots: [dist, media] };
    webview.html = editorHtml({
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'editor.css')).toString(),
      nonce: createNonce(),
    });
    this.disposables.push(
      webview.onDidReceiveMessage((message: unknown) => this.onMessage(message)),
      document.onDidReload((result) => this.push(result)),
      panel.onDidDispose(() => this.dispose()),
    );
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
    switch (request.method) {
      case 'getSummary': {
        const r = await this.document.current();
        // The error message carries the file name for the panel's heading; the reply settles the request.
        if (!r.ok) this.post({ type: 'error', file: r.file, message: r.message });
        return r.ok
          ? { type: 'reply', requestId, method: 'getSummary', ok: true, result: r.summary }
          : { type: 'reply', requestId, method: 'getSummary', ok: false, error: r.message };
      }
      default:
        return assertNever(request.method);
    }
  }

  private push(result: LoadResult): void {
    if (!this.ready) return; // the webview asks when it starts
    this.post(result.ok ? { type: 'summary', summary: result.summary } : { type: 'error', file: result.file, message: result.message });
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
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
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
    return new ModelDocument(uri, this.log);
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    // The session disposes itself with its panel.
    new ModelEditorSession(document, panel, this.extensionUri, this.log);
  }
}

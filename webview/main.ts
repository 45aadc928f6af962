/**
 * Model editor webview: asks the host for the model summary, renders it, and keeps its view state
 * (content, collapsed sections, scroll position) in the webview state so that a webview that VS Code
 * tore down while hidden comes back as it was.
 */
import '@vscode-elements/elements/dist/bundled.js';
import type {} from '@vscode-elements/elements';
import type { ModelSummary } from '../src/onnx/summary';
import type { HostToWebview, WebviewToHost } from '../src/shared/protocol';
import { replaceChildren } from './dom';
import { LayersPanel, LayersViewState, restoreLayersState } from './layers-panel';
import { renderError, renderLoading, renderSummary, SectionState } from './render';
import { RpcClient } from './rpc';

interface VsCodeApi {
  postMessage(message: WebviewToHost): void;
  getState(): unknown;
  setState(state: ViewState): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

type Content = { kind: 'summary'; summary: ModelSummary } | { kind: 'error'; file?: string; message: string };

interface ViewState {
  v: 1;
  content: Content | null;
  /** Ids of collapsed sections. */
  closed: string[];
  scrollY: number;
  /** The layer table's selection, sort, filter and scroll (the rows come from the host again). */
  layers: LayersViewState;
}

function restoreState(saved: unknown): ViewState {
  const fresh: ViewState = { v: 1, content: null, closed: [], scrollY: 0, layers: restoreLayersState(undefined) };
  if (typeof saved !== 'object' || saved === null) return fresh;
  const s = saved as Partial<ViewState>;
  if (s.v !== 1) return fresh;
  return {
    v: 1,
    content: s.content && (s.content.kind === 'summary' || s.content.kind === 'error') ? s.content : null,
    closed: Array.isArray(s.closed) ? s.closed.filter((x): x is string => typeof x === 'string') : [],
    scrollY: typeof s.scrollY === 'number' && Number.isFinite(s.scrollY) ? s.scrollY : 0,
    layers: restoreLayersState(s.layers),
  };
}

const vscode = acquireVsCodeApi();
const root = document.getElementById('root') ?? document.body;
const state = restoreState(vscode.getState());
const rpc = new RpcClient((message) => vscode.postMessage(message));

function save(): void {
  vscode.setState(state);
}

/** One panel for the editor's lifetime: re-rendering the summary keeps the table and its state. */
const layers = new LayersPanel(state.layers, rpc, save);
let layersRequested = false;

/** Fetches the table once the model has loaded (the host starts the analysis then). */
function requestLayers(): void {
  if (layersRequested) return;
  layersRequested = true;
  rpc.request('getLayers').then(
    (table) => layers.setTable(table),
    () => {
      // The load failed: the error panel says why; a reload pushes the table.
      layersRequested = false;
    },
  );
}

const sections: SectionState = {
  isOpen: (id) => !state.closed.includes(id),
  setOpen: (id, open) => {
    state.closed = state.closed.filter((x) => x !== id);
    if (!open) state.closed.push(id);
    save();
  },
};

/** Renders the current content and scrolls to `scrollY` once the components have laid out. */
function render(scrollY: number): void {
  const c = state.content;
  root.setAttribute('aria-busy', c ? 'false' : 'true');
  replaceChildren(root, !c ? renderLoading() : c.kind === 'summary' ? [...renderSummary(c.summary, sections), layers.element] : renderError(c.file, c.message));
  requestAnimationFrame(() => window.scrollTo(0, scrollY));
}

/** Shows new content (a reload keeps the reader's place). */
function show(content: Content): void {
  state.content = content;
  save();
  render(window.scrollY);
}

let scrollTimer: ReturnType<typeof setTimeout> | undefined;
window.addEventListener(
  'scroll',
  () => {
    if (scrollTimer !== undefined) return;
    scrollTimer = setTimeout(() => {
      scrollTimer = undefined;
      state.scrollY = window.scrollY;
      save();
    }, 200);
  },
  { passive: true },
);

function isHostMessage(data: unknown): data is HostToWebview {
  return typeof data === 'object' && data !== null && typeof (data as { type?: unknown }).type === 'string';
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const message = event.data;
  if (!isHostMessage(message)) return;
  switch (message.type) {
    case 'summary':
      show({ kind: 'summary', summary: message.summary });
      requestLayers();
      break;
    case 'error':
      show({ kind: 'error', file: message.file, message: message.message });
      break;
    case 'reply':
      rpc.handleReply(message);
      break;
    case 'layers':
      layersRequested = true;
      layers.setTable(message.table);
      break;
    case 'layerUpdate':
      layers.applyPatch(message.patch);
      break;
    case 'analysisProgress':
      layers.setStatus(message.status);
      break;
    case 'revealLayer':
      layers.reveal(message.name);
      break;
  }
});

// Show what we had at once (a restored webview), then fetch the current state from the host.
render(state.scrollY);
vscode.postMessage({ type: 'ready' });
rpc.request('getSummary').then(
  (summary) => {
    show({ kind: 'summary', summary });
    requestLayers();
  },
  (err: unknown) => {
    // The host sent the file name in an error message just before this reply: keep it.
    const file = state.content?.kind === 'error' ? state.content.file : undefined;
    show({ kind: 'error', file, message: err instanceof Error ? err.message : String(err) });
  },
);

// An ES module marker: the package is "type": "commonjs", and esbuild wraps an entry file with no
// exports as CommonJS (ending the bundle in `export default require_main()`).
export {};

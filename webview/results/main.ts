/**
 * Results panel webview: receives the job's progress and result from the host
 * (src/shared/results-protocol.ts) and renders them (render.ts). The host replays everything when
 * this script says `ready`, so the panel needs no saved state of its own.
 */
import '@vscode-elements/elements/dist/bundled.js';
import type {} from '@vscode-elements/elements';
import type { ResultsHostMessage, ResultsWebviewMessage } from '../../src/shared/results-protocol';
import { replaceChildren } from '../dom';
import { renderPanel, type PanelState } from './render';

interface VsCodeApi {
  postMessage(message: ResultsWebviewMessage): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const root = document.getElementById('root') ?? document.body;
let state: PanelState = { job: null, phases: {}, current: null, end: null };

const actions = {
  openModel: () => vscode.postMessage({ type: 'openModel' }),
  revealInExplorer: () => vscode.postMessage({ type: 'revealInExplorer' }),
};

let frame = 0;
/** Progress comes in bursts: one render per animation frame. */
function render(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    root.setAttribute('aria-busy', state.end ? 'false' : 'true');
    replaceChildren(root, renderPanel(state, actions));
  });
}

function apply(m: ResultsHostMessage): void {
  switch (m.type) {
    case 'start':
      state = { job: m.job, phases: {}, current: null, end: null };
      break;
    case 'progress':
      state.phases[m.phase] = { done: m.done, total: m.total, message: m.message };
      state.current = m.phase;
      break;
    case 'result':
      state.end = { kind: 'result', result: m.result };
      break;
    case 'failed':
      state.end = { kind: 'failed', message: m.message };
      break;
    case 'cancelled':
      state.end = { kind: 'cancelled' };
      break;
  }
  render();
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const m = event.data;
  if (typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string') apply(m as ResultsHostMessage);
});

render();
vscode.postMessage({ type: 'ready' });

// An ES module marker (see webview/main.ts).
export {};

/**
 * The parts of the model editor that need no workbench, kept free of `vscode` so plain Node tests
 * can run them: the webview page with its Content Security Policy, reading a model's summary and
 * node list, and the error text shown when that fails.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { OnnxFormatError } from '../onnx/errors';
import { OnnxModel } from '../onnx/model';
import { ModelSummary, summarizeModel } from '../onnx/summary';
import { listNodes, NodeRows } from './layer-store';

/** What the editor shows of a loaded model before any analysis: its summary and its nodes. */
export interface ModelView {
  summary: ModelSummary;
  nodes: NodeRows;
}

/** Largest model file read whole: one ModelProto cannot exceed protobuf's 2 GB limit. */
export const MAX_MODEL_FILE_BYTES = 2 ** 31 - 1;

/** A CSP nonce: 128 bits from the system CSPRNG, base64 (valid in a CSP `nonce-` source). */
export function createNonce(): string {
  return randomBytes(16).toString('base64');
}

/** Escapes text for an HTML attribute value or element content. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface EditorPageOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  /** Webview URI of dist/webview.js. */
  scriptUri: string;
  /** Webview URI of media/editor.css. */
  styleUri: string;
  nonce: string;
}

/** The Content-Security-Policy of the editor page. */
export function editorCsp(cspSource: string, nonce: string): string {
  return [
    `default-src 'none'`,
    `style-src ${cspSource} 'unsafe-inline'`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
  ].join('; ');
}

/**
 * The editor's HTML. It holds no model data: the webview script fetches that over the protocol and
 * renders it with textContent, so nothing from the model file is ever parsed as HTML.
 */
export function editorHtml(o: EditorPageOptions): string {
  if (!/^[A-Za-z0-9+/_-]{16,}={0,2}$/.test(o.nonce)) throw new Error('editorHtml: invalid nonce');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(editorCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeHtml(o.styleUri)}">
<title>ONNX model</title>
</head>
<body>
<main id="root" aria-busy="true"><p class="status">Loading model…</p></main>
<script type="module" nonce="${escapeHtml(o.nonce)}" src="${escapeHtml(o.scriptUri)}"></script>
</body>
</html>
`;
}

/** Decodes and summarizes a model held in memory; `file` names it in errors and anchors external data. */
export function summarizeModelBytes(bytes: Uint8Array, file: string): ModelSummary {
  return modelViewOfBytes(bytes, file).summary;
}

/** Decodes a model held in memory into its summary and node list (no tensor data is read). */
export function modelViewOfBytes(bytes: Uint8Array, file: string): ModelView {
  const model = OnnxModel.fromBuffer(bytes, file);
  try {
    return { summary: summarizeModel(model), nodes: listNodes(model.proto) };
  } finally {
    model.close();
  }
}

/** Yields to the event loop so that pending work runs before a long synchronous step. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Reads a model file without blocking the event loop for the I/O, then decodes and summarizes it
 * (synchronous CPU work in src/onnx). Throws OnnxFormatError naming the file for bad input, and
 * Node's file errors (ENOENT, EACCES, …) as they are.
 */
export async function readModelSummary(file: string, maxBytes = MAX_MODEL_FILE_BYTES): Promise<ModelSummary> {
  return (await readModelView(file, maxBytes)).summary;
}

/** readModelSummary with the node list. */
export async function readModelView(file: string, maxBytes = MAX_MODEL_FILE_BYTES): Promise<ModelView> {
  const st = await fs.promises.stat(file);
  if (!st.isFile()) throw new OnnxFormatError(`${file}: not a file`, { file });
  if (st.size > maxBytes) {
    throw new OnnxFormatError(`${file}: ${st.size} bytes is over protobuf's 2 GB limit; large models keep weights in external data`, { file });
  }
  const bytes = await fs.promises.readFile(file);
  await yieldToEventLoop();
  return modelViewOfBytes(bytes, file);
}

const ERRNO_TEXT = new Map<string, string>([
  ['ENOENT', 'file not found (deleted or moved?)'],
  ['EACCES', 'permission denied'],
  ['EPERM', 'permission denied'],
  ['EISDIR', 'is a folder, not a file'],
  ['EMFILE', 'too many open files'],
]);

function errnoText(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? ERRNO_TEXT.get(code) : undefined;
}

/** Whether an error is about the input (bad file) rather than a bug in this extension. */
export function isInputError(err: unknown): boolean {
  return err instanceof OnnxFormatError || errnoText(err) !== undefined;
}

/** One line for the error panel, always naming the file. */
export function describeLoadError(file: string, err: unknown): string {
  if (err instanceof OnnxFormatError) return err.message.includes(file) ? err.message : `${file}: ${err.message}`;
  const text = errnoText(err);
  if (text !== undefined) return `${file}: ${text}`;
  const message = err instanceof Error ? err.message : String(err);
  return `${file}: cannot load: ${message}`;
}

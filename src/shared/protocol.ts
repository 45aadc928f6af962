/**
 * The one message protocol between the extension host and the model editor's webview.
 *
 * Both sides import this file: the host (src/extension) and the webview bundle (webview/). It has
 * no runtime dependencies and imports model types only as types, so it bundles for the browser.
 *
 * Directions:
 * - webview → host ({@link WebviewToHost}): UNTRUSTED. The webview renders model strings and could
 *   be subverted, so the host accepts nothing that {@link parseWebviewMessage} has not rebuilt
 *   from scratch after checking every field's type, length and range.
 * - host → webview ({@link HostToWebview}): trusted, not validated. Payloads go through structured
 *   clone, so later messages may carry typed arrays (histogram bins as Float32Array, …) as they are.
 *
 * Requests: the webview sends `{ type: 'request', requestId, method, params? }` and the host answers
 * exactly once with `{ type: 'reply', requestId, method, ok, result | error }`. To add a method:
 * 1. add it to {@link RequestParams} (`undefined` when it takes none) and {@link RequestResults};
 * 2. add its params validator to `PARAM_VALIDATORS` below (the compiler insists);
 * 3. handle it in the host's request dispatcher (src/extension/model-editor.ts).
 * Pushed messages (host → webview without a request, e.g. progress) are new members of
 * {@link HostToWebview}; new webview → host notifications are new members of {@link WebviewToHost}
 * with a case in {@link parseWebviewMessage}.
 */
import type { ModelSummary } from '../onnx/summary';

/** Largest request id; ids are non-negative integers chosen by the webview. */
export const MAX_REQUEST_ID = 2 ** 31 - 1;
/** Longest string accepted in any field of a webview message unless a field says otherwise. */
export const MAX_STRING_LENGTH = 1024;

// ---------------------------------------------------------------------------------------------
// Requests (webview → host, answered by a reply)

/** Parameters of each request method; `undefined` for methods that take none. */
export interface RequestParams {
  /** The summary of the model shown in this editor (waits for a load in progress). */
  getSummary: undefined;
}

/** Result of each request method. */
export interface RequestResults {
  getSummary: ModelSummary;
}

export type RequestMethod = keyof RequestParams & keyof RequestResults;

/** A request for one method: `params` is present exactly when the method takes parameters. */
export type RequestOf<M extends RequestMethod> = { type: 'request'; requestId: number; method: M } & (RequestParams[M] extends undefined
  ? { params?: undefined }
  : { params: RequestParams[M] });

export type WebviewRequest = { [M in RequestMethod]: RequestOf<M> }[RequestMethod];

// ---------------------------------------------------------------------------------------------
// Webview → host

/** The webview's script is running and listening: the host may push messages from now on. */
export interface ReadyMessage {
  type: 'ready';
}

export type WebviewToHost = ReadyMessage | WebviewRequest;

// ---------------------------------------------------------------------------------------------
// Host → webview

/** The model's summary, pushed when the model (re)loads after the webview is ready. */
export interface SummaryMessage {
  type: 'summary';
  summary: ModelSummary;
}

/** The model could not be loaded (corrupt, not ONNX, deleted…). `message` names the file. */
export interface ErrorMessage {
  type: 'error';
  /** Path of the file concerned, for the error panel's heading. */
  file: string;
  message: string;
}

export type ReplyOk<M extends RequestMethod> = { type: 'reply'; requestId: number; method: M; ok: true; result: RequestResults[M] };
export interface ReplyError {
  type: 'reply';
  requestId: number;
  method: RequestMethod;
  ok: false;
  /** Human-readable; for model load failures it names the file. */
  error: string;
}
export type ReplyMessage = { [M in RequestMethod]: ReplyOk<M> }[RequestMethod] | ReplyError;

export type HostToWebview = SummaryMessage | ErrorMessage | ReplyMessage;

// ---------------------------------------------------------------------------------------------
// Validation of untrusted webview messages

/** Own enumerable data properties of a plain object, or undefined for anything else. */
function plainRecord(value: unknown): Map<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  if (Object.getOwnPropertySymbols(value).length > 0) return undefined;
  const names = Object.getOwnPropertyNames(value);
  if (names.length > 16) return undefined;
  const fields = new Map<string, unknown>();
  for (const name of names) {
    const d = Object.getOwnPropertyDescriptor(value, name);
    // Accessors would run code on read; structured-cloned messages never have them.
    if (!d || !('value' in d) || !d.enumerable) return undefined;
    fields.set(name, d.value);
  }
  return fields;
}

/** True when `fields` holds only keys in `allowed` (so no `__proto__`, `constructor`, extras). */
function onlyKeys(fields: Map<string, unknown>, allowed: readonly string[]): boolean {
  for (const key of fields.keys()) if (!allowed.includes(key)) return false;
  return true;
}

export function isBoundedString(value: unknown, maxLength = MAX_STRING_LENGTH): value is string {
  return typeof value === 'string' && value.length <= maxLength;
}

export function isIntegerInRange(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

export function isRequestId(value: unknown): value is number {
  return isIntegerInRange(value, 0, MAX_REQUEST_ID);
}

/** Result of checking a method's params: `{ ok: false }` rejects the whole message. */
type ParamsCheck<M extends RequestMethod> = { ok: true; params: RequestParams[M] } | { ok: false };

/** One validator per method, for the `params` field (undefined when absent). */
const PARAM_VALIDATORS: { [M in RequestMethod]: (params: unknown) => ParamsCheck<M> } = {
  getSummary: (params) => (params === undefined ? { ok: true, params: undefined } : { ok: false }),
};

function isRequestMethod(value: unknown): value is RequestMethod {
  return isBoundedString(value, 64) && Object.prototype.hasOwnProperty.call(PARAM_VALIDATORS, value);
}

function parseRequest(fields: Map<string, unknown>): WebviewRequest | undefined {
  if (!onlyKeys(fields, ['type', 'requestId', 'method', 'params'])) return undefined;
  const requestId = fields.get('requestId');
  const method = fields.get('method');
  if (!isRequestId(requestId) || !isRequestMethod(method)) return undefined;
  const check = PARAM_VALIDATORS[method](fields.get('params'));
  if (!check.ok) return undefined;
  switch (method) {
    case 'getSummary':
      return { type: 'request', requestId, method };
  }
}

/**
 * Checks a message received from the webview. Returns a freshly built message holding only checked
 * values, or undefined when anything is off: unknown type or method, extra or missing fields, wrong
 * types, strings too long, numbers out of range, non-plain objects.
 */
export function parseWebviewMessage(value: unknown): WebviewToHost | undefined {
  const fields = plainRecord(value);
  if (!fields) return undefined;
  const type = fields.get('type');
  if (!isBoundedString(type, 32)) return undefined;
  switch (type) {
    case 'ready':
      return onlyKeys(fields, ['type']) ? { type: 'ready' } : undefined;
    case 'request':
      return parseRequest(fields);
    default:
      return undefined;
  }
}

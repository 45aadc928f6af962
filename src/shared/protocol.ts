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
import type { Finding } from '../analysis/findings';
import type { ModelSummary } from '../onnx/summary';

/** Largest request id; ids are non-negative integers chosen by the webview. */
export const MAX_REQUEST_ID = 2 ** 31 - 1;
/** Longest string accepted in any field of a webview message unless a field says otherwise. */
export const MAX_STRING_LENGTH = 1024;
/** Longest layer name accepted from the webview (exporters write long scoped names). */
export const MAX_LAYER_NAME_LENGTH = 4096;

// ---------------------------------------------------------------------------------------------
// Layer table data (host → webview; typed arrays travel by structured clone)

/**
 * Per-node values, one entry per row in node order. NaN (and 0 for `bits`) means "not known":
 * not measured yet, not applicable to this op, or not finite in the analysis (an SQNR of +∞).
 */
export interface LayerColumns {
  weightMin: Float32Array;
  weightMax: Float32Array;
  /** The range of the layer's input activation (its output's when it has no tracked input). */
  actMin: Float32Array;
  actMax: Float32Array;
  /** Sensitivity in dB: global SQNR when measured, else local (lower = more sensitive). */
  sensitivityDb: Float32Array;
  /** Suggested bit width: 4, 8, 16, 32 (float); 0 none. */
  bits: Uint8Array;
  /** Findings about this node, and the worst one's severity (SEVERITY_RANK). */
  findings: Uint16Array;
  severity: Uint8Array;
}

export type LayerColumn = keyof LayerColumns;

export const LAYER_COLUMNS: readonly LayerColumn[] = ['weightMin', 'weightMax', 'actMin', 'actMax', 'sensitivityDb', 'bits', 'findings', 'severity'];

/** `severity` column values: 0 no finding. */
export const SEVERITY_RANK = { info: 1, warning: 2, error: 3 } as const;

export type AnalysisState = 'idle' | 'running' | 'done' | 'failed' | 'cancelled';

/** Where the later (activation, sensitivity, suggestion) values stand. */
export interface AnalysisStatus {
  /** The model load these values belong to; changes when the file changes on disk. */
  generation: number;
  state: AnalysisState;
  /** The running phase (analysis phases: weights, calibrate, activations, suggest, findings). */
  phase: string;
  done: number;
  total: number;
  /** The data the activations come from, e.g. "synthetic inputs: x [1, 3, 64, 64]". */
  data: string;
  /** For `failed`: what went wrong, naming the file (and layer when known). */
  message?: string;
  /** Findings about the whole model (no layer). */
  modelFindings: Finding[];
}

/** Every node of every graph (subgraphs after their parents), with what is known so far. */
export interface LayerTable {
  generation: number;
  names: string[];
  opTypes: string[];
  /** '' for the main graph, else the If/Loop/Scan node chain holding the node's graph. */
  graphs: string[];
  columns: LayerColumns;
  status: AnalysisStatus;
}

/** New values for some rows: `rows[i]`'s value of column c is `values[c][i]`. */
export interface LayerPatch {
  generation: number;
  rows: Uint32Array;
  values: Partial<LayerColumns>;
}

export interface Histogram {
  /** Bin edges span [min, max] in equal steps. */
  min: number;
  max: number;
  counts: Float64Array;
}

export interface WeightDetails {
  input: string;
  dims: number[];
  elements: number;
  min: number;
  max: number;
  mean: number;
  std: number;
  zeros: number;
  histogram: Histogram;
  /** Per output channel ranges along `axis`. */
  perChannel: { axis: number; min: Float32Array; max: Float32Array };
  /** Weight SQNR (dB) rounded to int8 per tensor / per channel and to int4 blocks; null: not finite. */
  sqnrDb: { int8: number | null; int8PerChannel: number | null; int4: number | null };
  foldedBatchNorm?: string;
}

export interface ActivationDetails {
  tensor: string;
  dims: number[] | null;
  min: number;
  max: number;
  histogram: Histogram;
  percentiles: Record<string, number>;
  deadChannels: number;
  channels: number | null;
}

export interface LayerDetails {
  generation: number;
  index: number;
  name: string;
  opType: string;
  graph: string;
  inputs: string[];
  outputs: string[];
  weight: WeightDetails | null;
  activation: { synthetic: boolean; input: ActivationDetails | null; output: ActivationDetails | null; note?: string } | null;
  /** Layer-output SQNR (dB) with only this layer quantized, per precision; model-output (global). */
  sensitivity: { local: { int8?: number; int16?: number; int4?: number }; globalDb: number | null; rank: number | null; note?: string };
  suggestedBits: number | null;
  suggestion: string | null;
  reason: string;
  findings: Finding[];
}

/** Where the activation statistics come from when the analysis is (re)started. */
export type AnalysisData = 'synthetic' | 'folder';
export const ANALYSIS_DATA: readonly AnalysisData[] = ['synthetic', 'folder'];

// ---------------------------------------------------------------------------------------------
// Requests (webview → host, answered by a reply)

/** Parameters of each request method; `undefined` for methods that take none. */
export interface RequestParams {
  /** The summary of the model shown in this editor (waits for a load in progress). */
  getSummary: undefined;
  /** Every node with what is known so far; starts the analysis the first time. */
  getLayers: undefined;
  /** Statistics, histograms and findings of one layer; null when no node has that name. */
  getLayerDetails: { name: string };
  /** Restarts the analysis; `folder` first asks the user for a calibration data folder. */
  runAnalysis: { data: AnalysisData };
  cancelAnalysis: undefined;
}

/** Result of each request method. */
export interface RequestResults {
  getSummary: ModelSummary;
  getLayers: LayerTable;
  getLayerDetails: LayerDetails | null;
  runAnalysis: AnalysisStatus;
  cancelAnalysis: AnalysisStatus;
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

/** The model (re)loaded: the whole table again (pushed after a change on disk). */
export interface LayersMessage {
  type: 'layers';
  table: LayerTable;
}

/** Later values for some rows (batched while the analysis runs). */
export interface LayerUpdateMessage {
  type: 'layerUpdate';
  patch: LayerPatch;
}

export interface AnalysisProgressMessage {
  type: 'analysisProgress';
  status: AnalysisStatus;
}

/** Select the layer and scroll it into view (command onnxQuant.revealLayer). */
export interface RevealLayerMessage {
  type: 'revealLayer';
  name: string;
}

export type HostToWebview = SummaryMessage | ErrorMessage | ReplyMessage | LayersMessage | LayerUpdateMessage | AnalysisProgressMessage | RevealLayerMessage;

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
const noParams = (params: unknown): { ok: true; params: undefined } | { ok: false } => (params === undefined ? { ok: true, params: undefined } : { ok: false });

const PARAM_VALIDATORS: { [M in RequestMethod]: (params: unknown) => ParamsCheck<M> } = {
  getSummary: noParams,
  getLayers: noParams,
  getLayerDetails: (params) => {
    const fields = plainRecord(params);
    const name = fields?.get('name');
    return fields && onlyKeys(fields, ['name']) && isBoundedString(name, MAX_LAYER_NAME_LENGTH) ? { ok: true, params: { name } } : { ok: false };
  },
  runAnalysis: (params) => {
    const fields = plainRecord(params);
    const data = fields?.get('data');
    return fields && onlyKeys(fields, ['data']) && isAnalysisData(data) ? { ok: true, params: { data } } : { ok: false };
  },
  cancelAnalysis: noParams,
};

function isAnalysisData(value: unknown): value is AnalysisData {
  return typeof value === 'string' && (ANALYSIS_DATA as readonly string[]).includes(value);
}

function isRequestMethod(value: unknown): value is RequestMethod {
  return isBoundedString(value, 64) && Object.prototype.hasOwnProperty.call(PARAM_VALIDATORS, value);
}

function parseRequest(fields: Map<string, unknown>): WebviewRequest | undefined {
  if (!onlyKeys(fields, ['type', 'requestId', 'method', 'params'])) return undefined;
  const requestId = fields.get('requestId');
  const method = fields.get('method');
  if (!isRequestId(requestId) || !isRequestMethod(method)) return undefined;
  const params = fields.get('params');
  // Rebuilt from the checked params only (the validators return fresh objects).
  switch (method) {
    case 'getSummary':
    case 'getLayers':
    case 'cancelAnalysis':
      return PARAM_VALIDATORS[method](params).ok ? { type: 'request', requestId, method } : undefined;
    case 'getLayerDetails': {
      const check = PARAM_VALIDATORS.getLayerDetails(params);
      return check.ok ? { type: 'request', requestId, method, params: check.params } : undefined;
    }
    case 'runAnalysis': {
      const check = PARAM_VALIDATORS.runAnalysis(params);
      return check.ok ? { type: 'request', requestId, method, params: check.params } : undefined;
    }
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

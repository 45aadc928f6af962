/**
 * Messages between the extension host and the results panel (webview/results/). Both import this
 * file; it has no runtime dependencies, so it bundles for the browser.
 *
 * - host → webview ({@link ResultsHostMessage}): trusted. Large per-layer and per-output columns
 *   travel as typed arrays (structured clone keeps them).
 * - webview → host ({@link ResultsWebviewMessage}): UNTRUSTED. The panel shows model strings and
 *   could be subverted, so {@link parseResultsMessage} rebuilds each message from checked fields.
 *   No message carries a path: the host acts only on the files of the job it ran.
 */

export type JobKind = 'quantize' | 'analyze' | 'compare';
export type ResultsPhase = 'load' | 'preprocess' | 'calibrate' | 'quantize' | 'check' | 'save' | 'evaluate' | 'weights' | 'activations' | 'global' | 'suggest' | 'findings';

/** The phases each job kind shows, in order. */
export const JOB_PHASES: Readonly<Record<JobKind, readonly ResultsPhase[]>> = {
  quantize: ['calibrate', 'quantize', 'check', 'save', 'evaluate'],
  analyze: ['weights', 'calibrate', 'activations', 'global', 'suggest', 'findings'],
  compare: ['evaluate'],
};

export interface JobHeader {
  kind: JobKind;
  title: string;
  /** The input model (display path). */
  model: string;
  /** The output or compared model, when there is one. */
  output?: string;
  startedAt: number;
}

/** Float-vs-quantized figures; per-output columns are parallel arrays (NaN where not applicable). */
export interface ComparisonView {
  sizeBefore: number;
  sizeAfter: number;
  latencyFloatMs: number | null;
  latencyQuantMs: number | null;
  outputNames: string[];
  sqnrDb: Float64Array;
  cosine: Float64Array;
  minCosine: Float64Array;
  maxAbsError: Float64Array;
  /** NaN for outputs that do not look like class scores. */
  top1Agreement: Float64Array;
  samples: number;
  evalSource: string;
  synthetic: boolean;
}

export interface QuantizeSummaryView {
  mode: string;
  quantizedNodes: number;
  skipped: { name: string; opType: string; reason: string }[];
  preprocessing: string[];
  calibration: { samples: number; method: string; source: string; synthetic: boolean; seconds: number } | null;
  seconds: number;
}

export interface AnalysisView {
  layerNames: string[];
  opTypes: string[];
  /** Per layer, NaN when not measured. */
  localSqnrDb: Float64Array;
  globalSqnrDb: Float64Array;
  suggestedBits: Float64Array;
  findings: { severity: string; code: string; node: string | null; message: string }[];
  suggestion: { mode: string; met: boolean; achievedSqnrDb: number; targetSqnrDb: number; sizeBytes: number; floatSizeBytes: number } | null;
  recipeWritten: string | null;
  synthetic: boolean;
}

export interface ResultView {
  comparison: ComparisonView | null;
  quantize: QuantizeSummaryView | null;
  analysis: AnalysisView | null;
  warnings: string[];
}

export type ResultsHostMessage =
  | { type: 'start'; job: JobHeader }
  | { type: 'progress'; phase: ResultsPhase; done: number; total: number; message?: string }
  | { type: 'result'; result: ResultView }
  | { type: 'failed'; message: string }
  | { type: 'cancelled' };

export type ResultsWebviewMessage = { type: 'ready' } | { type: 'openModel' } | { type: 'revealInExplorer' };

const WEBVIEW_TYPES: ReadonlySet<string> = new Set(['ready', 'openModel', 'revealInExplorer']);

/**
 * Checks a message from the results webview: a plain object whose only own property is a known
 * `type`. Anything else (extra fields, accessors, prototypes, long strings) is refused.
 */
export function parseResultsMessage(value: unknown): ResultsWebviewMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  if (Object.getOwnPropertySymbols(value).length > 0) return undefined;
  const names = Object.getOwnPropertyNames(value);
  if (names.length !== 1 || names[0] !== 'type') return undefined;
  const d = Object.getOwnPropertyDescriptor(value, 'type');
  if (!d || !('value' in d)) return undefined;
  const type: unknown = d.value;
  if (typeof type !== 'string' || type.length > 32 || !WEBVIEW_TYPES.has(type)) return undefined;
  return { type } as ResultsWebviewMessage;
}

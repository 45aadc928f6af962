/**
 * The results panel's page: no data in the HTML (the script receives it as messages and renders it
 * with textContent), a strict Content Security Policy with a nonce, and only the extension's own
 * script and stylesheet. No `vscode`: plain Node tests check it.
 */
import { randomBytes } from 'node:crypto';

/** A CSP nonce: 128 bits from the system CSPRNG, base64. */
export function createNonce(): string {
  return randomBytes(16).toString('base64');
}

function escapeAttr(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Nothing but our own script (by nonce), stylesheet and the theme's fonts. */
export function resultsCsp(cspSource: string, nonce: string): string {
  return [`default-src 'none'`, `style-src ${cspSource} 'unsafe-inline'`, `font-src ${cspSource}`, `script-src 'nonce-${nonce}'`, `img-src ${cspSource} data:`].join('; ');
}

export interface ResultsPageOptions {
  cspSource: string;
  /** Webview URI of dist/results.js. */
  scriptUri: string;
  /** Webview URI of media/results.css. */
  styleUri: string;
  nonce: string;
}

export function resultsHtml(o: ResultsPageOptions): string {
  if (!/^[A-Za-z0-9+/_-]{16,}={0,2}$/.test(o.nonce)) throw new Error('resultsHtml: invalid nonce');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(resultsCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeAttr(o.styleUri)}">
<title>ONNX Quant results</title>
</head>
<body>
<main id="root" aria-busy="true"><p class="status">Starting…</p></main>
<script type="module" nonce="${escapeAttr(o.nonce)}" src="${escapeAttr(o.scriptUri)}"></script>
</body>
</html>
`;
}

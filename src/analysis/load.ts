/**
 * Loads a model for analysis into WebAssembly memory: the file's bytes are read straight into a
 * kernel heap (weight-kernels.ts), so the weight kernels read every float32 tensor in place. The
 * process then holds the weights exactly once, with no chunk copies and no aligned copies of
 * unaligned raw_data. Without WebAssembly (or past its 4 GB limit) this is OnnxModel.load.
 */
import * as fs from 'node:fs';
import { OnnxModel } from '../onnx/model';
import { throwIfAborted } from '../runtime/session';
import { allocateHeap } from './weight-kernels';

/** Scratch reserved after the file: per-channel arrays and the percentile buffer (touched on demand). */
function scratchFor(size: number): number {
  return (16 << 20) + Math.ceil(size / 16);
}

export function loadModelForAnalysis(file: string): OnnxModel {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size === 0 || st.size > 2 ** 31) return OnnxModel.load(file); // its errors name the problem
    size = st.size;
  } catch {
    return OnnxModel.load(file);
  }
  const h = allocateHeap(size, scratchFor(size));
  if (!h) return OnnxModel.load(file);
  const fd = fs.openSync(file, 'r');
  try {
    let at = 0;
    while (at < size) {
      const n = fs.readSync(fd, h.bytes, at, Math.min(size - at, 64 << 20), at);
      if (n <= 0) break;
      at += n;
    }
    if (at !== size) return OnnxModel.load(file);
  } finally {
    fs.closeSync(fd);
  }
  return OnnxModel.fromBuffer(h.bytes, file);
}

/**
 * loadModelForAnalysis without blocking the event loop: the file is read by libuv's thread pool
 * in chunks (the extension host runs analysis on its own event loop, and reading a few hundred MB
 * synchronously would freeze it). Cancellable between chunks.
 */
export async function loadModelForAnalysisAsync(file: string, signal?: AbortSignal): Promise<OnnxModel> {
  let size: number;
  try {
    const st = await fs.promises.stat(file);
    if (!st.isFile() || st.size === 0 || st.size > 2 ** 31) return OnnxModel.load(file); // its errors name the problem
    size = st.size;
  } catch {
    return OnnxModel.load(file);
  }
  throwIfAborted(signal, 'analysis');
  const h = allocateHeap(size, scratchFor(size));
  const bytes = h ? h.bytes : new Uint8Array(size);
  const handle = await fs.promises.open(file, 'r');
  try {
    let at = 0;
    while (at < size) {
      throwIfAborted(signal, 'analysis');
      const { bytesRead } = await handle.read(bytes, at, Math.min(size - at, READ_CHUNK), at);
      if (bytesRead <= 0) break;
      at += bytesRead;
    }
    if (at !== size) return OnnxModel.load(file); // changed while read: read it again, or name the problem
  } finally {
    await handle.close();
  }
  return OnnxModel.fromBuffer(bytes, file);
}

/** 16 MB: one chunk's copy into the heap stays well under a millisecond of event-loop time. */
const READ_CHUNK = 16 << 20;

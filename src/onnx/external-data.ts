/**
 * External tensor data (data_location = EXTERNAL): `location` / `offset` / `length` entries that
 * point into files beside the model. Resolved relative to the model's folder, refused when they
 * would leave it (absolute paths, `..`, symlinks pointing outside), and read lazily, one tensor at
 * a time, so that models over 2 GB never need their weights in memory at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OnnxFormatError } from './errors';
import { TensorDataLocation, TensorProto } from './proto';

export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Undefined when the model leaves it out: the data then runs to the end of the file. */
  length: number | undefined;
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorDataLocation.External;
}

function parseNonNegative(value: string, key: string, t: TensorProto, file: string): number {
  if (!/^\d+$/.test(value)) {
    throw new OnnxFormatError(`${file}: tensor "${t.name}": external data ${key} "${value}" is not a non-negative integer`, { file, tensor: t.name });
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new OnnxFormatError(`${file}: tensor "${t.name}": external data ${key} ${value} is too large`, { file, tensor: t.name });
  }
  return n;
}

export function externalDataRef(t: TensorProto, modelFile: string): ExternalDataRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const { key, value } of t.externalData) {
    if (key === 'location') location = value;
    else if (key === 'offset') offset = parseNonNegative(value, key, t, modelFile);
    else if (key === 'length') length = parseNonNegative(value, key, t, modelFile);
  }
  if (!location) {
    throw new OnnxFormatError(`${modelFile}: tensor "${t.name}": external data has no location`, { file: modelFile, tensor: t.name });
  }
  return { location, offset, length };
}

/**
 * Resolves `location` inside `modelDir`, refusing anything that escapes it: absolute paths, `..`
 * segments, and symlinks whose target lies outside the folder.
 */
export function resolveExternalPath(modelDir: string, location: string, modelFile: string, tensor: string): string {
  const fail = (why: string) =>
    new OnnxFormatError(`${modelFile}: tensor "${tensor}": external data location "${location}" ${why}`, { file: modelFile, tensor });
  if (location.includes('\0')) throw fail('contains a NUL character');
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) throw fail('is an absolute path; only paths inside the model folder are allowed');
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) throw fail('leaves the model folder');
  const root = path.resolve(modelDir);
  const full = path.resolve(root, location);
  if (full !== root && !full.startsWith(root + path.sep)) throw fail('leaves the model folder');
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    throw fail(`does not exist (looked for ${full})`);
  }
  const realRoot = fs.realpathSync(root);
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw fail('is a link that leaves the model folder');
  return real;
}

/**
 * Reads external tensor data lazily. Keeps one descriptor per data file; call close() when done.
 */
export class ExternalDataReader {
  private readonly fds = new Map<string, { fd: number; size: number }>();

  constructor(
    private readonly modelDir: string,
    private readonly modelFile: string,
  ) {}

  private open(location: string, tensor: string): { fd: number; size: number; path: string } {
    const file = resolveExternalPath(this.modelDir, location, this.modelFile, tensor);
    let entry = this.fds.get(file);
    if (!entry) {
      const fd = fs.openSync(file, 'r');
      entry = { fd, size: fs.fstatSync(fd).size };
      this.fds.set(file, entry);
    }
    return { ...entry, path: file };
  }

  /** Byte range of a tensor's data, checked against the data file's size. */
  range(t: TensorProto): { path: string; offset: number; length: number } {
    const ref = externalDataRef(t, this.modelFile);
    const { size, path: file } = this.open(ref.location, t.name);
    const length = ref.length ?? size - ref.offset;
    if (ref.offset > size || length < 0 || ref.offset + length > size) {
      throw new OnnxFormatError(
        `${this.modelFile}: tensor "${t.name}": external data range ${ref.offset}+${ref.length ?? '?'} is past the end of ${ref.location} (${size} bytes)`,
        { file: this.modelFile, tensor: t.name },
      );
    }
    return { path: file, offset: ref.offset, length };
  }

  /** Reads a tensor's bytes. The length was checked against the file size before allocating. */
  read(t: TensorProto): Uint8Array {
    const { path: file, offset, length } = this.range(t);
    const { fd } = this.open(externalDataRef(t, this.modelFile).location, t.name);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new OnnxFormatError(`${this.modelFile}: tensor "${t.name}": ${file} ended early`, { file: this.modelFile, tensor: t.name });
      done += n;
    }
    return out;
  }

  close(): void {
    for (const { fd } of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

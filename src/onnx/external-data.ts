/**
 * External tensor data (data_location = EXTERNAL): `location` / `offset` / `length` entries that
 * point into files beside the model. Resolved relative to the model's folder, refused when they
 * would leave it (absolute paths, `..`, symlinks pointing outside), and read lazily, one tensor at
 * a time, so that models over 2 GB never need their weights in memory at once.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { byteSizeOf, DataType, isKnownDataType } from './dtypes';
import { OnnxFormatError } from './errors';
import { TensorDataLocation, TensorProto } from './proto';

/** A name or path from the model file, quoted and escaped so that error messages stay on one line. */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Control characters escaped (as in JSON), for a name shown without quotes. */
function unquoted(s: string): string {
  return s.replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

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
    throw new OnnxFormatError(`${file}: tensor ${q(t.name)}: external data ${key} ${q(value)} is not a non-negative integer`, { file, tensor: t.name });
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new OnnxFormatError(`${file}: tensor ${q(t.name)}: external data ${key} ${q(value)} is too large`, { file, tensor: t.name });
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
    throw new OnnxFormatError(`${modelFile}: tensor ${q(t.name)}: external data has no location`, { file: modelFile, tensor: t.name });
  }
  return { location, offset, length };
}

/**
 * Resolves `location` inside `modelDir`, refusing anything that escapes it: absolute paths, `..`
 * segments, and symlinks whose target lies outside the folder.
 */
export function resolveExternalPath(modelDir: string, location: string, modelFile: string, tensor: string): string {
  const fail = (why: string) =>
    new OnnxFormatError(`${modelFile}: tensor ${q(tensor)}: external data location ${q(location)} ${why}`, { file: modelFile, tensor });
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
    throw fail(`does not exist (looked for ${q(full)})`);
  }
  const realRoot = fs.realpathSync(root);
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw fail('is a link that leaves the model folder');
  return real;
}

/**
 * Bytes a tensor's data must have, from its dims and fixed-size type; undefined when that is not
 * known (strings, unknown types, invalid dims: later decoding reports those).
 */
function expectedBytes(t: TensorProto): number | undefined {
  if (!isKnownDataType(t.dataType) || t.dataType === DataType.UNDEFINED || t.dataType === DataType.STRING) return undefined;
  let n = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return byteSizeOf(t.dataType, n);
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

  private fail(tensor: string, message: string): OnnxFormatError {
    return new OnnxFormatError(`${this.modelFile}: tensor ${q(tensor)}: ${message}`, { file: this.modelFile, tensor });
  }

  private open(location: string, tensor: string): { fd: number; size: number; path: string } {
    const file = resolveExternalPath(this.modelDir, location, this.modelFile, tensor);
    let entry = this.fds.get(file);
    if (!entry) {
      // Non-blocking, so that a FIFO (or another special file) planted as the data file cannot
      // block the open; only regular files are read.
      let fd: number;
      try {
        fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
      } catch (err) {
        throw this.fail(tensor, `cannot open external data file ${q(location)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        fs.closeSync(fd);
        throw this.fail(tensor, `external data location ${q(location)} is not a regular file`);
      }
      entry = { fd, size: st.size };
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
        `${this.modelFile}: tensor ${q(t.name)}: external data range ${ref.offset}+${ref.length ?? '?'} is past the end of ${unquoted(ref.location)} (${size} bytes)`,
        { file: this.modelFile, tensor: t.name },
      );
    }
    return { path: file, offset: ref.offset, length };
  }

  /**
   * Reads a tensor's bytes. Before anything is allocated, the range is checked against the data
   * file's size and, for fixed-size types, against the size the tensor's dims and type call for.
   */
  read(t: TensorProto): Uint8Array {
    const { path: file, offset, length } = this.range(t);
    const expected = expectedBytes(t);
    if (expected !== undefined && expected !== length) {
      throw this.fail(t.name, `external data has ${length} bytes, expected ${expected} for dims [${t.dims.join(', ')}]`);
    }
    if (length > bufferConstants.MAX_LENGTH) {
      throw this.fail(t.name, `external data of ${length} bytes is too large to read into memory at once (limit ${bufferConstants.MAX_LENGTH})`);
    }
    const { fd } = this.open(externalDataRef(t, this.modelFile).location, t.name);
    let out: Buffer;
    try {
      out = Buffer.allocUnsafe(length);
    } catch (err) {
      throw this.fail(t.name, `not enough memory to read ${length} bytes of external data (${(err as Error).message})`);
    }
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = fs.readSync(fd, out, done, length - done, offset + done);
      } catch (err) {
        throw this.fail(t.name, `cannot read ${q(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (n === 0) throw this.fail(t.name, `${q(file)} ended early`);
      done += n;
    }
    return out;
  }

  close(): void {
    for (const { fd } of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

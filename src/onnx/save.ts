/**
 * Writes a (possibly modified) model to disk, atomically: everything goes to temporary files in
 * the destination folder, which are renamed into place only once complete. Optionally moves large
 * tensors into an external data file (needed above protobuf's 2 GB limit).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeModel, PROTOBUF_LIMIT_BYTES } from './encode';
import { OnnxFormatError } from './errors';
import { isExternal } from './external-data';
import { GraphProto, ModelProto, NodeProto, TensorDataLocation, TensorProto } from './proto';

export interface SaveOptions {
  /**
   * 'never': every tensor inline (external tensors of the source are read in);
   * 'always': tensors of at least `externalThreshold` bytes go to `<output>.data`;
   * 'auto' (default): external only when the inline model would exceed the 2 GB protobuf limit.
   */
  externalData?: 'never' | 'always' | 'auto';
  /** Minimum tensor size in bytes to store externally (default 1024). */
  externalThreshold?: number;
  /** Reads the bytes of tensors that the source model keeps in external data. */
  readExternal?: (t: TensorProto) => Uint8Array;
  /** The model's source file: writing over it is refused. */
  inputFile?: string;
}

export interface SaveResult {
  file: string;
  bytes: number;
  externalDataFile?: string;
  externalBytes: number;
}

/** Alignment of tensors in the external data file, so readers can map them directly. */
const EXTERNAL_ALIGNMENT = 64;

function sameFile(a: string, b: string): boolean {
  const ra = path.resolve(a);
  const rb = path.resolve(b);
  if (ra === rb) return true;
  try {
    const sa = fs.statSync(ra);
    const sb = fs.statSync(rb);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

/** Refuses an output path that is the input or whose folder cannot be written, before any work. */
export function checkOutputPath(output: string, input?: string): void {
  if (input && sameFile(output, input)) {
    throw new OnnxFormatError(`${output}: the output would overwrite the input model; choose another path`, { file: output });
  }
  const dir = path.dirname(path.resolve(output));
  try {
    // access(2) reports a read-only mount (EROFS) even to root, and EACCES to other users.
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw new OnnxFormatError(`${output}: cannot write to folder ${dir}: ${whyNotWritable(err)}`, { file: output });
  }
  if (fs.existsSync(output) && fs.statSync(output).isDirectory()) {
    throw new OnnxFormatError(`${output}: is a folder`, { file: output });
  }
}

/** A file system error in words a user acts on. */
function whyNotWritable(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'the disk is full';
    case 'EROFS':
      return 'it is on a read-only file system';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOENT':
      return 'it does not exist';
    case 'ENOTDIR':
      return 'a part of the path is not a folder';
    default:
      return e.message;
  }
}

/**
 * Writes `data` to a temporary file next to `file`, flushed to disk; the caller renames it into
 * place. The temporary file is removed when writing fails.
 */
function writeTemp(file: string, data: Uint8Array): string {
  const temp = tempName(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'w');
    writeAllSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    return temp;
  } catch (err) {
    if (fd !== undefined) closeQuietly(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already failing: the original error is the one to report.
  }
}

/**
 * Writes a small output file (a recipe, a report) atomically: checked up front like a model
 * output, written to a temporary file, then renamed. On failure (full disk, read-only folder) any
 * earlier file is left as it was, no temporary file remains, and the error names the file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, inputFile?: string): void {
  checkOutputPath(file, inputFile);
  let temp: string | undefined;
  try {
    temp = writeTemp(file, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.renameSync(temp, file);
  } catch (err) {
    if (temp) fs.rmSync(temp, { force: true });
    throw new OnnxFormatError(`${file}: could not write the file: ${whyNotWritable(err)}; nothing was changed`, { file });
  }
}

/** Applies `fn` to every tensor held by initializers and attributes, in every graph; copies what changes. */
export function mapModelTensors(model: ModelProto, fn: (t: TensorProto) => TensorProto): ModelProto {
  const mapGraph = (g: GraphProto): GraphProto => ({
    ...g,
    initializer: g.initializer.map(fn),
    node: g.node.map(mapNode),
  });
  const mapNode = (n: NodeProto): NodeProto => {
    if (!n.attribute.some((a) => a.t || a.g || a.tensors.length || a.graphs.length)) return n;
    return {
      ...n,
      attribute: n.attribute.map((a) => ({
        ...a,
        t: a.t ? fn(a.t) : undefined,
        g: a.g ? mapGraph(a.g) : undefined,
        tensors: a.tensors.map(fn),
        graphs: a.graphs.map(mapGraph),
      })),
    };
  };
  return { ...model, graph: model.graph ? mapGraph(model.graph) : undefined };
}

function tensorByteLength(t: TensorProto): number {
  if (isExternal(t)) {
    const len = t.externalData.find((e) => e.key === 'length');
    return len ? Number(len.value) : 0;
  }
  let n = t.rawData?.length ?? 0;
  for (const field of [t.floatData, t.int32Data, t.int64Data, t.doubleData, t.uint64Data, t.stringData]) {
    for (const c of field) n += c.length;
  }
  return n;
}

function estimateInlineSize(model: ModelProto): number {
  let total = 0;
  mapModelTensors(model, (t) => {
    total += tensorByteLength(t) + 64;
    return t;
  });
  return total;
}

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
}

function writeAllSync(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}

function withoutData(t: TensorProto): TensorProto {
  return { ...t, rawData: undefined, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [], stringData: [] };
}

/**
 * Saves `model` to `file` atomically. On any failure (full disk, read-only folder, bad tensor) the
 * temporary files are removed and any earlier file at `file` is left as it was.
 */
export function saveModel(model: ModelProto, file: string, options: SaveOptions = {}): SaveResult {
  checkOutputPath(file, options.inputFile);
  const mode = options.externalData ?? 'auto';
  const threshold = options.externalThreshold ?? 1024;
  const useExternal = mode === 'always' || (mode === 'auto' && estimateInlineSize(model) > PROTOBUF_LIMIT_BYTES - (64 << 20));
  const readExternal = (t: TensorProto): Uint8Array => {
    if (!options.readExternal) {
      throw new OnnxFormatError(`${file}: tensor "${t.name}" is in external data but no reader was given to copy it`, { file, tensor: t.name });
    }
    return options.readExternal(t);
  };

  const temps: string[] = [];
  const dataFile = `${file}.data`;
  let dataFd: number | undefined;
  try {
    let out = model;
    let externalBytes = 0;
    if (useExternal) {
      const dataTemp = tempName(dataFile);
      temps.push(dataTemp);
      dataFd = fs.openSync(dataTemp, 'w');
      const fd = dataFd;
      const location = path.basename(dataFile);
      out = mapModelTensors(model, (t) => {
        // Only raw data moves out: typed fields (float_data, …) are small in practice and stay inline.
        const external = isExternal(t);
        if (!external && (!t.rawData || t.rawData.length < threshold)) return t;
        const bytes = external ? readExternal(t) : t.rawData!;
        const pad = (EXTERNAL_ALIGNMENT - (externalBytes % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
        if (pad) writeAllSync(fd, new Uint8Array(pad));
        const offset = externalBytes + pad;
        writeAllSync(fd, bytes);
        externalBytes = offset + bytes.length;
        return {
          ...withoutData(t),
          dataLocation: TensorDataLocation.External,
          externalData: [
            { key: 'location', value: location },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(bytes.length) },
          ],
        };
      });
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      dataFd = undefined;
    } else {
      out = mapModelTensors(model, (t) => (isExternal(t) ? { ...withoutData(t), dataLocation: TensorDataLocation.Default, externalData: [], rawData: readExternal(t) } : t));
    }

    if (!useExternal && estimateInlineSize(out) > PROTOBUF_LIMIT_BYTES) {
      throw new OnnxFormatError(`${file}: the model is over protobuf's 2 GB limit; save it with external data`, { file });
    }
    const encoded = encodeModel(out);
    const modelTemp = writeTemp(file, encoded);
    temps.push(modelTemp);
    // The data file first: a model never points at data that is not in place yet.
    if (useExternal) fs.renameSync(temps[0]!, dataFile);
    fs.renameSync(modelTemp, file);
    return {
      file,
      bytes: encoded.length,
      externalDataFile: useExternal ? dataFile : undefined,
      externalBytes,
    };
  } catch (err) {
    if (dataFd !== undefined) closeQuietly(dataFd);
    for (const t of temps) fs.rmSync(t, { force: true });
    if (err instanceof OnnxFormatError) throw err;
    throw new OnnxFormatError(`${file}: could not save the model: ${whyNotWritable(err)}; nothing was changed`, { file });
  }
}

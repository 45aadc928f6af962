/**
 * Generated task samples written as a folder of .npy files, the way a user hands calibration or
 * evaluation data to the CLI (see src/runtime/data/folder.ts for the layouts it reads):
 *
 *   single-input models   <dir>/sample_<k>.npy                      (layout 'npy')
 *   multi-input models    <dir>/sample_<k>/<input>.npy per input    (layout 'npy-dirs')
 *                         optionally <dir>/<input>.npy for inputs every sample shares (e.g. sr)
 *
 * Input names are written with inputFileStem (characters other than letters, digits, "_", "." and
 * "-" become "_"), as the folder reader expects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { inputFileStem } from '../../../src/runtime/data/folder';
import { writeNpy, type NpyType, type NpyValues } from '../../../src/runtime/data/npy';
import { REAL_MODELS } from '../ort';
import { renderClsSamples, renderDetPages, renderRecSamples } from './ocr';
import { CHUNK, SAMPLE_RATE, synthesizeVadAudio, vadSamples } from './vad';

export type TaskSample = Record<string, ort.Tensor>;

const NPY_TYPES: ReadonlySet<string> = new Set(['float16', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool']);

/** A tensor as .npy bytes. */
export function tensorToNpy(t: ort.Tensor): Uint8Array {
  if (!NPY_TYPES.has(t.type)) throw new TypeError(`tensorToNpy: ${t.type} tensors cannot be written as .npy`);
  return writeNpy(t.data as NpyValues, t.dims, { dtype: t.type as NpyType });
}

export interface WriteFolderOptions {
  /** Inputs written once at the top of a multi-input folder (taken from the first sample). */
  shared?: readonly string[];
  /** File/folder name prefix (default 'sample_'). */
  prefix?: string;
}

export interface WrittenFolder {
  dir: string;
  count: number;
  layout: 'npy' | 'npy-dirs';
  files: string[];
}

/** Writes samples (all with the same input names) into `dir`, created if needed. */
export function writeSampleFolder(dir: string, samples: Iterable<TaskSample>, options: WriteFolderOptions = {}): WrittenFolder {
  fs.mkdirSync(dir, { recursive: true });
  const prefix = options.prefix ?? 'sample_';
  const shared = new Set(options.shared ?? []);
  const files: string[] = [];
  let names: string[] | undefined;
  let count = 0;
  for (const sample of samples) {
    const keys = Object.keys(sample).sort();
    if (!names) {
      names = keys;
      for (const s of shared) {
        if (!(s in sample)) throw new Error(`writeSampleFolder: shared input "${s}" is not in the samples`);
        if (keys.length > 1) {
          const f = path.join(dir, `${inputFileStem(s)}.npy`);
          fs.writeFileSync(f, tensorToNpy(sample[s]!));
          files.push(f);
        }
      }
    } else if (keys.join('\0') !== names.join('\0')) {
      throw new Error(`writeSampleFolder: sample ${count} has inputs ${keys.join(', ')}, not ${names.join(', ')}`);
    }
    if (names.length === 1) {
      const f = path.join(dir, `${prefix}${count}.npy`);
      fs.writeFileSync(f, tensorToNpy(sample[names[0]!]!));
      files.push(f);
    } else {
      const sub = path.join(dir, `${prefix}${count}`);
      fs.mkdirSync(sub, { recursive: true });
      for (const name of names) {
        if (shared.has(name)) continue;
        const f = path.join(sub, `${inputFileStem(name)}.npy`);
        fs.writeFileSync(f, tensorToNpy(sample[name]!));
        files.push(f);
      }
    }
    count++;
  }
  return { dir, count, layout: (names?.length ?? 1) > 1 ? 'npy-dirs' : 'npy', files };
}

export type Task = 'ocrRec' | 'ocrCls' | 'ocrDet' | 'vad';

export interface TaskSamplesOptions {
  seed?: number;
  /** VAD: the model that carries the state between chunks (default the float Silero model). */
  vadModel?: string | Uint8Array;
  /** VAD: length of the generated stream in seconds (default max(10, n × 4 chunks)). */
  vadSeconds?: number;
  /** VAD: take every k-th call of the stream (default: spread the n samples evenly over it). */
  vadEvery?: number;
}

/**
 * `n` generated samples of a task, as the model is fed (VAD: consecutive stream calls with the
 * float model's own state, spread evenly over a stream that is about half speech).
 */
export async function taskSamples(task: Task, n: number, options: TaskSamplesOptions = {}): Promise<TaskSample[]> {
  const seed = options.seed ?? 1;
  switch (task) {
    case 'ocrRec':
      return renderRecSamples(n, { seed }).map((s) => s.feeds);
    case 'ocrCls':
      return renderClsSamples(n, { seed }).map((s) => s.feeds);
    case 'ocrDet':
      return renderDetPages(n, { seed }).map((s) => s.feeds);
    case 'vad': {
      const seconds = options.vadSeconds ?? Math.max(10, (n * 4 * CHUNK) / SAMPLE_RATE);
      const data = synthesizeVadAudio({ seed, seconds });
      const chunks = data.audio.length / CHUNK;
      const every = options.vadEvery ?? Math.max(1, Math.floor(chunks / n));
      const samples = (await vadSamples(options.vadModel ?? REAL_MODELS.vad, data.audio, every)).slice(0, n);
      if (samples.length < n) throw new RangeError(`taskSamples: ${chunks} chunks every ${every} give ${samples.length} VAD samples, not ${n}`);
      return samples;
    }
  }
}

/** Generates `n` samples of a task and writes them as a folder for the CLI. */
export async function writeTaskFolder(dir: string, task: Task, n: number, options: TaskSamplesOptions & WriteFolderOptions = {}): Promise<WrittenFolder> {
  return writeSampleFolder(dir, await taskSamples(task, n, options), options);
}

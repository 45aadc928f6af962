/**
 * A folder of samples, whichever layout it has (the README's "Calibration data" section shows them):
 *
 *   npy          single-input models: every top-level .npy file is one sample (any names)
 *   npy-inputs   multi-input models: <input>_<k>.npy, one file per input of sample k
 *   npy-dirs     one subfolder per sample, holding <input>.npy for each input
 *   npz          one .npz archive per sample, keys = input names (np.savez(f, **inputs))
 *   onnx-test-data  test_data_set_<n>/input_<k>.pb (see onnx-testdata.ts)
 *   images       .png/.jpg/.jpeg files, preprocessed per ImageOptions (see images.ts)
 *
 * In file names, an input's characters other than letters, digits, "_", "." and "-" are written
 * as "_" (an input "input:0" is read from input_0_3.npy / input_0.npy). With a multi-input model,
 * a top-level <input>.npy holds a value shared by every sample (e.g. a sample rate), in any layout.
 * Samples are in natural file-name order (x_2 before x_10), the same on every machine. Nothing is
 * read at open but folder listings; each sample's files are read when the sample is reached.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from 'onnxruntime-node';
import type { OnnxModel } from '../../onnx/model';
import { Sample, SampleSource } from '../samples';
import { describeImagePlan, IMAGE_EXTENSIONS, ImageOptions, ImagePlan, imagePlan, loadImage } from './images';
import { checkSample, dataError, fitToInput, InputSpec, modelInputSpecs } from './model-inputs';
import { naturalCompare } from './natural-sort';
import { readNpyFile } from './npy';
import { readNpzFile } from './npz';
import { loadTestDataSet, TEST_DATA_SET_PATTERN, testDataInputFiles } from './onnx-testdata';

export type FolderLayout = 'npy' | 'npy-inputs' | 'npy-dirs' | 'npz' | 'onnx-test-data' | 'images';

/** One sample of a folder. */
export interface SampleEntry {
  /** The sample's file or subfolder name, or k for <input>_<k>.npy samples. */
  readonly id: string;
  /** The files read for it (shared files not included). */
  readonly files: readonly string[];
}

export interface FolderSampleSource extends SampleSource {
  readonly dir: string;
  readonly layout: FolderLayout;
  /** The samples this source yields, in order. */
  readonly entries: readonly SampleEntry[];
  /** Inputs every sample shares, and the file holding each. */
  readonly shared: Readonly<Record<string, string>>;
  /** Top-level files and folders that are not data. */
  readonly ignored: readonly string[];
  /** The same data restricted to some of its entries (in the order given); `part` describes them. */
  subset(entries: readonly SampleEntry[], part: string): FolderSampleSource;
}

export interface FolderOptions {
  /** Skip this many samples first (default 0). */
  offset?: number;
  /** Use at most this many samples. */
  limit?: number;
  /** Preprocessing for image folders. */
  image?: ImageOptions;
}

/** How an input's name is written in file names. */
export function inputFileStem(input: string): string {
  return input.replace(/[^A-Za-z0-9_.-]/g, '_');
}

interface Entry extends SampleEntry {
  /** input → file, for samples spread over several files. */
  readonly byInput?: Readonly<Record<string, string>>;
  /** Names the sample in errors about no file in particular: its file or subfolder. */
  readonly where: string;
}

interface Listing {
  npy: string[];
  npz: string[];
  images: string[];
  testSets: string[];
  subdirs: string[];
  ignored: string[];
}

function listFolder(dir: string): Listing {
  let dirents: fs.Dirent[];
  try {
    dirents = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw dataError(dir, code === 'ENOENT' ? 'no such folder' : code === 'ENOTDIR' ? 'not a folder' : `cannot read the folder: ${(err as Error).message}`);
  }
  const out: Listing = { npy: [], npz: [], images: [], testSets: [], subdirs: [], ignored: [] };
  for (const d of dirents) {
    if (d.name.startsWith('.')) continue; // .DS_Store, .git, editor files
    let isDir = d.isDirectory();
    let isFile = d.isFile();
    if (d.isSymbolicLink()) {
      const st = fs.statSync(path.join(dir, d.name), { throwIfNoEntry: false });
      isDir = st?.isDirectory() ?? false;
      isFile = st?.isFile() ?? false;
    }
    const ext = path.extname(d.name).toLowerCase();
    if (isDir) (TEST_DATA_SET_PATTERN.test(d.name) ? out.testSets : out.subdirs).push(d.name);
    else if (isFile && ext === '.npy') out.npy.push(d.name);
    else if (isFile && ext === '.npz') out.npz.push(d.name);
    else if (isFile && IMAGE_EXTENSIONS.has(ext)) out.images.push(d.name);
    else out.ignored.push(d.name);
  }
  for (const list of Object.values(out)) list.sort(naturalCompare);
  return out;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

interface Plan {
  layout: FolderLayout;
  entries: Entry[];
  what: string;
  load: (entry: Entry) => Promise<Sample>;
}

/** Opens a folder of samples for `model`. Throws SampleDataError (naming the folder or file) for layouts it cannot use. */
export function openSampleFolder(dir: string, model: OnnxModel, options: FolderOptions = {}): FolderSampleSource {
  const specs = modelInputSpecs(model);
  if (specs.length === 0) throw dataError(model.file, 'the model has no inputs to feed');
  const specOf = (name: string) => specs.find((s) => s.name === name);
  const stems = new Map<string, InputSpec>();
  for (const s of specs) {
    const stem = inputFileStem(s.name);
    const other = stems.get(stem);
    if (other) throw dataError(model.file, `inputs "${other.name}" and "${s.name}" have the same file name "${stem}.npy"; use an .npz or test-data layout`);
    stems.set(stem, s);
  }
  const at = (name: string) => path.join(dir, name);
  const list = listFolder(dir);

  // Shared values: <input>.npy at the top, with multi-input models only (a single input is the sample).
  const shared: Record<string, string> = {};
  let npy = list.npy;
  if (specs.length > 1) {
    npy = [];
    for (const f of list.npy) {
      const spec = stems.get(f.slice(0, -4));
      if (spec) shared[spec.name] = at(f);
      else npy.push(f);
    }
  }
  // Subfolders count as samples only when they hold .npy files.
  const sampleDirs: { name: string; files: string[] }[] = [];
  const ignored = [...list.ignored];
  for (const d of list.subdirs) {
    let files: string[];
    try {
      files = fs.readdirSync(at(d)).filter((f) => f.toLowerCase().endsWith('.npy') && !f.startsWith('.'));
    } catch (err) {
      throw dataError(at(d), `cannot read the folder: ${(err as Error).message}`);
    }
    if (files.length > 0) sampleDirs.push({ name: d, files: files.sort(naturalCompare) });
    else ignored.push(`${d}/`);
  }

  const kinds = [
    { n: npy.length, what: '.npy file' },
    { n: list.npz.length, what: '.npz archive' },
    { n: list.images.length, what: 'image' },
    { n: list.testSets.length, what: 'test_data_set_* folder' },
    { n: sampleDirs.length, what: 'subfolder of .npy files', many: 'subfolders of .npy files' },
  ].filter((k) => k.n > 0);
  if (kinds.length === 0 && Object.keys(shared).length > 0) {
    throw dataError(
      dir,
      `no samples found, only values every sample shares (${Object.values(shared).map((f) => path.basename(f)).join(', ')}); name one file per input of sample k <input>_<k>.npy`,
    );
  }
  if (kinds.length === 0) {
    throw dataError(
      dir,
      'no samples found: expected .npy files, .npz archives, PNG/JPEG images, test_data_set_* folders, or one subfolder of <input>.npy files per sample',
    );
  }
  if (kinds.length > 1) {
    throw dataError(dir, `mixed layouts: ${kinds.map((k) => plural(k.n, k.what, k.many)).join(' and ')}; keep one kind of sample per folder`);
  }
  const ownInputs = specs.filter((s) => !(s.name in shared));

  let plan: Plan;
  if (npy.length > 0 && specs.length === 1) {
    const spec = specs[0]!;
    plan = {
      layout: 'npy',
      entries: npy.map((f) => ({ id: f, files: [at(f)], where: at(f) })),
      what: `.npy files in ${dir} (one per sample, input "${spec.name}")`,
      load: async (e) => {
        const a = await readNpyFile(e.files[0]!);
        return { [spec.name]: fitToInput(a.dtype, a.data, a.shape, spec) };
      },
    };
  } else if (npy.length > 0) {
    plan = { layout: 'npy-inputs', entries: groupInputFiles(dir, npy, stems, ownInputs), what: `samples in ${dir} (<input>_<k>.npy files)`, load: loadNpyInputs(specOf) };
  } else if (sampleDirs.length > 0) {
    const entries = sampleDirs.map(({ name, files }) => {
      const byInput: Record<string, string> = {};
      for (const f of files) {
        const spec = stems.get(f.slice(0, -4));
        if (!spec) throw dataError(at(path.join(name, f)), `not named after a model input (inputs: ${specs.map((s) => `${inputFileStem(s.name)}.npy`).join(', ')})`);
        byInput[spec.name] = at(path.join(name, f));
      }
      return { id: name, files: Object.values(byInput), byInput, where: at(name) };
    });
    plan = { layout: 'npy-dirs', entries, what: `sample folders in ${dir} (<input>.npy files)`, load: loadNpyInputs(specOf) };
  } else if (list.npz.length > 0) {
    plan = {
      layout: 'npz',
      entries: list.npz.map((f) => ({ id: f, files: [at(f)], where: at(f) })),
      what: `.npz archives in ${dir}`,
      load: async (e) => {
        const sample: Sample = {};
        for (const [key, a] of await readNpzFile(e.files[0]!)) {
          const spec = specOf(key) ?? stems.get(key);
          const name = spec?.name ?? key; // unknown keys are reported by checkSample
          sample[name] = fitToInput(a.dtype, a.data, a.shape, spec);
        }
        return sample;
      },
    };
  } else if (list.testSets.length > 0) {
    plan = {
      layout: 'onnx-test-data',
      entries: list.testSets.map((d) => ({ id: d, files: testDataInputFiles(at(d)), where: at(d) })),
      what: `ONNX test-data sets in ${dir}`,
      load: (e) => loadTestDataSet(at(e.id), specs),
    };
  } else {
    const target = imageInput(dir, ownInputs, specs);
    const image: ImagePlan = imagePlan(target, options.image ?? {}, model.file);
    plan = {
      layout: 'images',
      entries: list.images.map((f) => ({ id: f, files: [at(f)], where: at(f) })),
      what: `images in ${dir} → input "${target.name}": ${describeImagePlan(image)}`,
      load: async (e) => ({ [target.name]: await loadImage(e.files[0]!, image) }),
    };
  }

  const total = plan.entries.length;
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw dataError(dir, `offset ${offset} must be a non-negative integer`);
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 1)) throw dataError(dir, `limit ${options.limit} must be a positive integer`);
  if (offset >= total) throw dataError(dir, `offset ${offset} skips all ${plural(total, 'sample')}`);
  const entries = plan.entries.slice(offset, options.limit === undefined ? undefined : offset + options.limit);
  const part = entries.length === total ? '' : `samples ${offset + 1}–${offset + entries.length} of ${total}`;
  return makeSource({ dir, specs, plan, shared, ignored, all: new Set(plan.entries) }, entries, part);
}

/** <input>_<k>.npy files grouped by k; every sample needs a file for each input that is not shared. */
function groupInputFiles(dir: string, files: string[], stems: Map<string, InputSpec>, needed: InputSpec[]): Entry[] {
  const groups = new Map<string, Record<string, string>>();
  for (const f of files) {
    const m = /^(.*)_(\d+)$/.exec(f.slice(0, -4));
    const spec = m ? stems.get(m[1]!) : undefined;
    if (!m || !spec) {
      const names = [...stems.keys()].join(', ');
      throw dataError(
        path.join(dir, f),
        `with a multi-input model, top-level .npy files are named <input>_<k>.npy (one per input of sample k) or <input>.npy (a value every sample shares); inputs: ${names}`,
      );
    }
    const k = m[2]!;
    const group = groups.get(k) ?? {};
    group[spec.name] = path.join(dir, f);
    groups.set(k, group);
  }
  return [...groups.keys()].sort(naturalCompare).map((k) => {
    const byInput = groups.get(k)!;
    const missing = needed.find((s) => !(s.name in byInput));
    if (missing) throw dataError(dir, `sample ${k} has no file for input "${missing.name}" (expected ${inputFileStem(missing.name)}_${k}.npy)`);
    return { id: k, files: Object.values(byInput), byInput, where: `${dir} (sample ${k})` };
  });
}

function loadNpyInputs(specOf: (name: string) => InputSpec | undefined): (e: Entry) => Promise<Sample> {
  return async (e) => {
    const sample: Sample = {};
    for (const [input, file] of Object.entries(e.byInput ?? {})) {
      const a = await readNpyFile(file);
      sample[input] = fitToInput(a.dtype, a.data, a.shape, specOf(input));
    }
    return sample;
  };
}

/** The one input images feed: the only input no shared file fills. */
function imageInput(dir: string, own: InputSpec[], specs: InputSpec[]): InputSpec {
  if (own.length === 1) return own[0]!;
  const names = (own.length ? own : specs).map((s) => `"${s.name}"`).join(', ');
  throw dataError(
    dir,
    own.length === 0
      ? `every input (${names}) has a shared .npy file, so there is nothing for the images to feed`
      : `images feed one input, but the model has ${own.length} to fill (${names}); give the others as shared <input>.npy files in the folder`,
  );
}

interface Base {
  dir: string;
  specs: InputSpec[];
  plan: Plan;
  shared: Record<string, string>;
  ignored: string[];
  all: ReadonlySet<SampleEntry>;
}

function makeSource(base: Base, entries: readonly Entry[], part: string): FolderSampleSource {
  const { dir, specs, plan, shared } = base;
  const sharedNote = Object.keys(shared).length ? `; shared: ${Object.values(shared).map((f) => path.basename(f)).join(', ')}` : '';
  const shown = base.ignored.slice(0, 3).join(', ') + (base.ignored.length > 3 ? ` and ${base.ignored.length - 3} more` : '');
  const ignoredNote = base.ignored.length ? `; not data, ignored: ${shown}` : '';
  const description = `${entries.length} ${plan.what}${part ? ` — ${part}` : ''}${sharedNote}${ignoredNote}`;
  return {
    count: entries.length,
    synthetic: false,
    description,
    dir,
    layout: plan.layout,
    entries,
    shared,
    ignored: base.ignored,
    subset(subset: readonly SampleEntry[], label: string): FolderSampleSource {
      for (const e of subset) if (!base.all.has(e)) throw new Error(`subset: entry "${e.id}" is not a sample of ${dir}`);
      return makeSource(base, subset as readonly Entry[], label);
    },
    async *samples(signal?: AbortSignal): AsyncGenerator<Sample> {
      // Shared values are read once per pass; the same tensors go into every sample.
      const common: Record<string, Tensor> = {};
      for (const [input, file] of Object.entries(shared)) {
        signal?.throwIfAborted();
        const a = await readNpyFile(file);
        common[input] = fitToInput(a.dtype, a.data, a.shape, specs.find((s) => s.name === input));
      }
      for (const entry of entries) {
        signal?.throwIfAborted();
        const own = await plan.load(entry);
        for (const input of Object.keys(own)) {
          if (input in common) throw dataError(entry.byInput?.[input] ?? entry.where, `input "${input}" is given both by this sample and by the shared file ${shared[input]}`);
        }
        const sample: Sample = { ...own, ...common };
        checkSample(sample, specs, (input) => entry.byInput?.[input] ?? shared[input] ?? entry.where);
        yield sample;
      }
    },
  };
}

/** Sample order for the split: by a hash of the id, so the split does not follow file order (often by class or date). */
function splitKey(seed: string, id: string): string {
  return crypto.createHash('sha256').update(`${seed}\0${id}`).digest('hex');
}

/**
 * Splits a folder's samples into a calibration part and a held-out evaluation part of
 * round(count × evalFraction) samples. Deterministic: the evaluation samples are those whose ids
 * hash lowest (with `seed`), so the split is the same on every run and machine, does not follow
 * file order, and a sample stays on its side when others are added. Both parts keep file order;
 * their `entries` say which files went where.
 */
export function splitSource(source: FolderSampleSource, evalFraction: number, seed = ''): { calib: FolderSampleSource; eval: FolderSampleSource } {
  if (!(evalFraction > 0 && evalFraction < 1)) throw dataError(source.dir, `the evaluation fraction must be between 0 and 1, got ${evalFraction}`);
  const n = source.entries.length;
  const m = Math.round(n * evalFraction);
  if (m === 0 || m === n) {
    throw dataError(source.dir, `cannot hold out ${Math.round(evalFraction * 100)}% of ${plural(n, 'sample')}: one part would be empty`);
  }
  const keyed = source.entries.map((e) => ({ e, key: splitKey(seed, e.id) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const held = new Set(keyed.slice(0, m).map((k) => k.e));
  const calib = source.entries.filter((e) => !held.has(e));
  const evalPart = source.entries.filter((e) => held.has(e));
  return {
    calib: source.subset(calib, `calibration part: ${calib.length} of ${n} samples`),
    eval: source.subset(evalPart, `held-out evaluation part: ${evalPart.length} of ${n} samples`),
  };
}

/** The samples from `offset` on, at most `limit` of them. */
export function sliceSource(source: FolderSampleSource, offset: number, limit?: number): FolderSampleSource {
  const entries = source.entries.slice(offset, limit === undefined ? undefined : offset + limit);
  return source.subset(entries, `samples ${offset + 1}–${offset + entries.length} of ${source.entries.length}`);
}

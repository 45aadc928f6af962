/**
 * numpy's .npz archives (np.savez / np.savez_compressed): a zip of `<key>.npy` entries, stored or
 * deflated. fflate reads the zip: it walks the central directory first, and our filter sees each
 * entry's name and sizes there, before anything is inflated, so entries we refuse cost nothing.
 */
import * as fs from 'node:fs';
import { unzipSync } from 'fflate';
import { SampleDataError } from '../samples';
import { dataError } from './model-inputs';
import { NpyArray, parseNpy } from './npy';

/** Deflate expands at most ~1032:1; a bigger claim in the central directory is a corrupt or hostile archive. */
const MAX_DEFLATE_RATIO = 1032;

/** Parses an .npz archive held in memory into its arrays, keyed by name without ".npy". */
export function parseNpz(buf: Uint8Array, file = '<buffer>'): Map<string, NpyArray> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(buf, {
      filter: (e) => {
        if (e.name.endsWith('/')) return false; // folder entries
        if (!e.name.endsWith('.npy')) throw dataError(file, `entry "${e.name}" is not an .npy array (an .npz holds one <input>.npy per input)`);
        if (e.compression === 8 && e.originalSize > e.size * MAX_DEFLATE_RATIO + 1024) {
          throw dataError(file, `entry "${e.name}" claims ${e.originalSize} bytes from ${e.size} compressed bytes: the archive is corrupt`);
        }
        if (e.compression === 0 && e.size !== e.originalSize) throw dataError(file, `entry "${e.name}" is stored with inconsistent sizes: the archive is corrupt`);
        return true;
      },
    });
  } catch (err) {
    if (err instanceof SampleDataError) throw err;
    throw dataError(file, `not a valid .npz (zip) archive: ${(err as Error).message}`);
  }
  const arrays = new Map<string, NpyArray>();
  for (const [name, bytes] of Object.entries(entries)) {
    arrays.set(name.slice(0, -'.npy'.length), parseNpy(bytes, `${file}[${name}]`));
  }
  if (arrays.size === 0) throw dataError(file, 'the archive holds no .npy arrays');
  return arrays;
}

/** Reads and parses an .npz file; errors name the file (and the entry). */
export async function readNpzFile(file: string): Promise<Map<string, NpyArray>> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw dataError(file, `cannot read: ${(err as Error).message}`);
  }
  return parseNpz(buf, file);
}

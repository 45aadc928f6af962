/**
 * Shared benchmark plumbing: measurements that need their own peak RSS run in a fresh child
 * process. The child is the benchmark file itself, bundled with esbuild as the shipped CLI is, so
 * it runs on plain node (a TypeScript loader in the child would add its own memory to every figure).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import type { InferenceSession } from 'onnxruntime-node';
import type { CalibrationProgress } from '../src/runtime/calibrate';

// In a bundled child this file lives in bench/.data itself.
export const DATA = path.basename(__dirname) === '.data' ? __dirname : path.join(__dirname, '.data');

const bundled = new Map<string, string>();

function bundle(entry: string): string {
  let out = bundled.get(entry);
  if (!out) {
    fs.mkdirSync(DATA, { recursive: true });
    out = path.join(DATA, `child-${path.basename(entry, '.ts')}.js`);
    buildSync({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: out, external: ['onnxruntime-node'], logLevel: 'error' });
    bundled.set(entry, out);
  }
  return out;
}

/** Runs `entry --child ...args` in a fresh node process; the child prints one JSON line last. */
export function runChild<T>(entry: string, args: string[]): T {
  const out = execFileSync(process.execPath, [bundle(entry), '--child', ...args], { encoding: 'utf8', maxBuffer: 16 << 20, cwd: path.join(DATA, '../..') });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/** True in the bundled child (argv: node child.js --child …). */
export function isChild(): boolean {
  return process.argv[2] === '--child';
}

/**
 * This process's peak RSS. Not getrusage's maxRSS: it survives execve, so a child spawned by a
 * large parent (the benchmark runner, after quantizing) starts at the parent's RSS, and every
 * child then reported the same number. /proc's VmHWM belongs to this process image alone.
 */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall back to getrusage
  }
  return process.resourceUsage().maxRSS * 1024;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** Milliseconds of each inference of `session` over `samples`, in order. */
export async function inferenceTimes(session: InferenceSession, samples: readonly InferenceSession.FeedsType[]): Promise<number[]> {
  const times: number[] = [];
  for (const s of samples) {
    const t = performance.now();
    await session.run(s);
    times.push(performance.now() - t);
  }
  return times;
}

/**
 * Milliseconds per inference over the samples calibrationMsPerSample counts (the fourth to the
 * last): their total over their count, the statistic calibration's figure is. (The median run,
 * used before, sits 1–3% below the mean on this machine, which tilted every ratio against
 * calibration by as much.)
 */
export async function inferenceMsPerSample(session: InferenceSession, samples: readonly InferenceSession.FeedsType[]): Promise<number> {
  const steady = (await inferenceTimes(session, samples)).slice(3);
  return steady.reduce((a, b) => a + b, 0) / steady.length;
}

/**
 * Milliseconds per calibration sample in steady state: the time from the third per-sample progress
 * report of the calibration `run` starts (it passes `onProgress` to calibrate) to the last,
 * divided by the samples between. Calibration runs several samples at once in worker threads and
 * reports them in order, so single gaps alternate short and long; only their sum means something.
 */
export async function calibrationMsPerSample(run: (onProgress: (p: CalibrationProgress) => void) => Promise<unknown>): Promise<number> {
  const at: number[] = [];
  await run((p) => {
    if (p.phase === 'calibrate') at.push(performance.now());
  });
  if (at.length < 4) throw new RangeError(`calibration reported ${at.length} samples; the benchmark needs at least 4`);
  return (at.at(-1)! - at[2]!) / (at.length - 3);
}

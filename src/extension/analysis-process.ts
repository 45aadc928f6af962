/**
 * Runs `onnx-quant analyze` (the CLI bundle shipped in dist/cli.js) in a child process and streams
 * its `--progress ndjson` events. The extension host only parses JSON lines: decoding, weight
 * statistics, calibration and the onnxruntime sessions all run in the child, so the host stays
 * responsive, a crash in native code cannot take the extension host down, and cancelling is the
 * CLI's own SIGINT handling (its AbortSignal), with SIGKILL as the last resort.
 * Free of `vscode` so plain Node tests run it.
 */
import { spawn } from 'node:child_process';
import type { AnalysisEvent } from '../analysis/analyze';
import type { AnalysisReport } from '../analysis/report';
import type { Dim } from '../onnx/graph';

/** Non-JSON stderr kept for the error message (the CLI writes one line naming the file). */
const MAX_ERROR_TEXT = 16 * 1024;
/** After SIGINT, wait this long for the CLI to stop cleanly before SIGKILL. */
const KILL_AFTER_MS = 5000;
/** Size used for symbolic input dims that are not batch-like: a multiple of 32 suits strided CNNs. */
export const DEFAULT_SYMBOLIC_DIM = 64;

export interface AnalysisCommand {
  /** The executable (the extension host's own Node) and the arguments before `analyze`. */
  execPath: string;
  execArgs: string[];
}

export interface AnalysisRunOptions {
  command: AnalysisCommand;
  file: string;
  /** Arguments after the model (data and settings options). */
  args: string[];
  onEvent: (e: AnalysisEvent) => void;
  signal?: AbortSignal;
}

export class AnalysisProcessError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = 'AnalysisProcessError';
  }
}

function isEvent(value: unknown): value is AnalysisEvent {
  return typeof value === 'object' && value !== null && typeof (value as { event?: unknown }).event === 'string';
}

/** Splits a stream's chunks into lines. */
function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  };
}

/**
 * `--dim NAME=SIZE` arguments for synthetic inputs: batch-like dims and leading dims 1, other
 * symbolic dims DEFAULT_SYMBOLIC_DIM (the CLI refuses to guess them).
 */
export function syntheticDimArgs(inputs: readonly { name: string; shape: readonly Dim[] | null }[]): string[] {
  const sizes = new Map<string, number>();
  for (const input of inputs) {
    input.shape?.forEach((d, axis) => {
      if (typeof d === 'number') return;
      const key = d === '?' || d === '' ? `${input.name}[${axis}]` : d;
      if (!sizes.has(key)) sizes.set(key, axis === 0 || /^(n|b|bs)$|batch/i.test(d) ? 1 : DEFAULT_SYMBOLIC_DIM);
    });
  }
  return [...sizes].flatMap(([k, v]) => ['--dim', `${k}=${v}`]);
}

/** Runs the analysis; resolves with the report, rejects with AnalysisProcessError or an AbortError. */
export function runAnalysisProcess(o: AnalysisRunOptions): Promise<AnalysisReport> {
  return new Promise<AnalysisReport>((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(abortError());
      return;
    }
    const child = spawn(o.command.execPath, [...o.command.execArgs, 'analyze', o.file, ...o.args, '--json', '--progress', 'ndjson'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // In VS Code's Electron, the host's executable runs as plain Node only with this set.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      windowsHide: true,
    });
    const stdout: Buffer[] = [];
    let errorText = '';
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      child.kill('SIGINT');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on(
      'data',
      lineSplitter((line) => {
        if (line.startsWith('{')) {
          try {
            const e: unknown = JSON.parse(line);
            if (isEvent(e)) {
              o.onEvent(e);
              return;
            }
          } catch {
            // not an event: part of an error message
          }
        }
        if (line.trim() && errorText.length < MAX_ERROR_TEXT) errorText += (errorText ? '\n' : '') + line.slice(0, MAX_ERROR_TEXT);
      }),
    );
    child.on('error', (err) => {
      o.signal?.removeEventListener('abort', onAbort);
      reject(new AnalysisProcessError(`${o.file}: cannot start the analysis: ${err.message}`, null));
    });
    child.on('close', (code, sig) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (killTimer !== undefined) clearTimeout(killTimer);
      if (o.signal?.aborted) {
        reject(abortError());
        return;
      }
      if (code === 0) {
        try {
          resolve(JSON.parse(Buffer.concat(stdout).toString('utf8')) as AnalysisReport);
        } catch (err) {
          reject(new AnalysisProcessError(`${o.file}: unreadable analysis report: ${err instanceof Error ? err.message : String(err)}`, code));
        }
        return;
      }
      // The CLI's message already names the file ("onnx-quant: <file>: …").
      const text = errorText.replace(/^onnx-quant: /, '') || `analysis stopped (${sig ?? `exit code ${code}`})`;
      reject(new AnalysisProcessError(text.includes(o.file) ? text : `${o.file}: ${text}`, code));
    });
  });
}

function abortError(): Error {
  const err = new Error('analysis cancelled');
  err.name = 'AbortError';
  return err;
}

/**
 * `onnx-quant` command line: the same core as the extension, for terminals and CI pipelines.
 * Exit codes: 0 success, 2 bad input or usage (with a one-line message on stderr), 1 internal error.
 */
import { parseArgs } from 'node:util';
import { OnnxFormatError } from '../onnx/errors';
import { COMPARE_USAGE, runCompare } from './compare';
import { runDemo } from './demo';
import { runInspect } from './inspect';
import { CliUsageError, QUANTIZE_USAGE, runQuantize } from './quantize';
import { ANALYZE_USAGE, runAnalyze } from './analyze';
import { RecipeError } from '../quant/recipe';
import { QuantizationError } from '../quant/errors';
import { SampleDataError } from '../runtime/samples';
import { QuantizedModelError } from '../runtime/evaluate';
import { ModelLoadError, ModelRunError } from '../runtime/session';

const USAGE = `usage: onnx-quant <command> [options]

commands:
  inspect <model.onnx> [--json]   summary: inputs, outputs, opsets, op types, weights
  demo [--out <dir>] [--json]     build the bundled default model and calibration data, quantize it, report
${QUANTIZE_USAGE}
${ANALYZE_USAGE}
${COMPARE_USAGE}

options:
  --json        print one JSON object on stdout
  -h, --help    show this help
  -v, --version print the version`;

export class UsageError extends Error {}

declare const ONNX_QUANT_VERSION: string | undefined;

function version(): string {
  return typeof ONNX_QUANT_VERSION === 'string' ? ONNX_QUANT_VERSION : 'dev';
}

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: CliIO = {
  out: (s) => void process.stdout.write(s + '\n'),
  err: (s) => void process.stderr.write(s + '\n'),
};

export async function main(argv: string[], io: CliIO = processIO, signal?: AbortSignal): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (!command || command === '-h' || command === '--help' || command === 'help') {
      io.out(USAGE);
      return command ? 0 : 2;
    }
    if (command === '-v' || command === '--version') {
      io.out(version());
      return 0;
    }
    switch (command) {
      case 'inspect': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
        if (positionals.length !== 1) throw new UsageError('inspect takes exactly one model file');
        runInspect(positionals[0]!, { json: values.json === true }, io.out);
        return 0;
      }
      case 'demo': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { json: { type: 'boolean', default: false }, out: { type: 'string' } } });
        if (positionals.length) throw new UsageError('demo takes no arguments');
        await runDemo({ out: values.out, json: values.json === true }, io, signal);
        return 0;
      }
      case 'quantize':
        await runQuantize(rest, io, signal);
        return 0;
      case 'analyze':
        await runAnalyze(rest, io, signal);
        return 0;
      case 'compare':
        await runCompare(rest, io, signal);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof Error && err.name === 'AbortError') {
      io.err('onnx-quant: cancelled; nothing was written');
      return 130;
    }
    if (err instanceof UsageError || err instanceof CliUsageError) {
      io.err(`onnx-quant: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof OnnxFormatError || err instanceof RecipeError || err instanceof SampleDataError || err instanceof QuantizationError) {
      io.err(`onnx-quant: ${err.message}`);
      return 2;
    }
    // onnxruntime rejected the input model (or the data): bad input.
    if (err instanceof ModelLoadError || err instanceof ModelRunError) {
      io.err(`onnx-quant: ${err.message}`);
      return 2;
    }
    // The quantized result failed verification: our failure, nothing was written.
    if (err instanceof QuantizedModelError) {
      io.err(`onnx-quant: ${err.message}`);
      return 1;
    }
    // parseArgs reports unknown options with this code.
    if (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`onnx-quant: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    io.err(`onnx-quant: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

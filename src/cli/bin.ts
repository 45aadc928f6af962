#!/usr/bin/env node
import { main } from './main';

// Ctrl-C cancels the running job cleanly (no partial output); a second one exits at once.
const controller = new AbortController();
process.on('SIGINT', () => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort();
});

main(process.argv.slice(2), undefined, controller.signal).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`onnx-quant: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

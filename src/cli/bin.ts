#!/usr/bin/env node
import { main } from './main';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`onnx-quant: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

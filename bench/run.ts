/** `npm run bench`: every benchmark, each printing ratios against a baseline measured in the same run. */
import { benchInspect } from './inspect';

console.log(`onnx-quant benchmarks — node ${process.version}, ${require('node:os').cpus().length} cores\n`);
for (const line of benchInspect()) console.log(line);

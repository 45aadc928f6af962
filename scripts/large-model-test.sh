#!/usr/bin/env bash
# The over-2-GB model test (test/large/large-model.test.ts): builds a model with 2.28 GB of float32
# weights in external data under ${ONNX_QUANT_LARGE_DIR:-$TMPDIR}, runs inspect, the weight-reading
# path, analyze (when available) and quantize --mode weight-only --weight-type int4 on it in fresh
# processes, checks their peak RSS and that onnxruntime-node runs the output, then deletes it all.
# Needs about 5.5 GB of free disk and a few GB of RAM (onnxruntime loads the float model to
# compare it with the quantized one). Called by .ci/run; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
npm run build --silent
node --import tsx --test --test-reporter=spec --test-timeout=3600000 test/large/*.test.ts
echo "large-model test: $(( $(date +%s) - start )) s"

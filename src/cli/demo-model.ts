/**
 * The bundled default model: a small image classifier (Conv-ReLU ×4, pooling, Gemm, Softmax) built
 * with our own builder and seeded weights, so the README's first command needs no download.
 */
import { ModelBuilder } from '../onnx/builder';
import { DataType } from '../onnx/dtypes';
import { ModelProto } from '../onnx/proto';

export const DEMO_INPUT_SHAPE = [1, 3, 64, 64];

export function buildDemoModel(): ModelProto {
  const b = new ModelBuilder({ opset: 17, seed: 2024, graphName: 'demo_cnn' });
  let x = b.input('image', DataType.FLOAT, ['N', 3, 64, 64]);
  x = b.relu(b.conv(x, 3, 32, 3, { stride: 2, name: 'conv1' }));
  x = b.relu(b.conv(x, 32, 64, 3, { name: 'conv2' }));
  x = b.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }, { name: 'pool1' });
  x = b.relu(b.conv(x, 64, 128, 3, { name: 'conv3' }));
  x = b.relu(b.conv(x, 128, 128, 3, { stride: 2, name: 'conv4' }));
  x = b.node('GlobalAveragePool', [x], {}, { name: 'pool' });
  x = b.node('Flatten', [x], {}, { name: 'flatten' });
  x = b.gemm(x, 128, 10, { name: 'classifier' });
  b.output(b.node('Softmax', [x], { axis: 1 }, { name: 'softmax', outputs: ['scores'] }), DataType.FLOAT, ['N', 10]);
  return b.build();
}

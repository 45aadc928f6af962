/**
 * Calibration and evaluation data: sample sources over folders (npy, npz, ONNX test data, images)
 * and synthetic inputs, all checked against the model's inputs.
 *
 *   const source = openSampleFolder('calib/', model, { image: { resize: 'model', mean, std } });
 *   const { calib, eval } = splitSource(source, 0.2);
 *   for await (const feeds of calib.samples(signal)) await session.run(feeds);
 */
export { SampleDataError } from '../samples';
export type { Sample, SampleSource } from '../samples';
export { checkSample, fitToInput, formatShape, isFloatType, modelInputSpecs, ortTypeOf } from './model-inputs';
export type { Dim, InputSpec, TensorData, TensorType } from './model-inputs';
export { npyDescr, parseNpy, readNpyFile, writeNpy } from './npy';
export type { NpyArray, NpyType, NpyValues, WriteNpyOptions } from './npy';
export { parseNpz, readNpzFile } from './npz';
export { loadTestDataSet, readTensorProtoFile, testDataInputFiles } from './onnx-testdata';
export { decodeImage, describeImagePlan, imagePlan, imageToTensor, loadImage } from './images';
export type { DecodedImage, ImageChannels, ImageLayout, ImageOptions, ImagePlan } from './images';
export { inputFileStem, openSampleFolder, sliceSource, splitSource } from './folder';
export type { FolderLayout, FolderOptions, FolderSampleSource, SampleEntry } from './folder';
export { syntheticSource } from './synthetic';
export type { SyntheticOptions } from './synthetic';
export { naturalCompare } from './natural-sort';

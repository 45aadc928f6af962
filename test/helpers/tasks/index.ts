/** Task-level test data for the real models: rendered OCR lines and pages, synthesized VAD audio, .npy folders. */
export * from './ocr';
export * from './vad';
export * from './calib-folder';

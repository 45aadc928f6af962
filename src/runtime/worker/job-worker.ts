/**
 * Entry point of the job worker thread (bundled as dist/job-worker.js). The job comes in
 * `workerData`; `{ type: 'cancel' }` aborts it. The last message is `done`, `failed` or
 * `cancelled`, sent after the job has cleaned up (temporary files deleted, onnxruntime sessions
 * released); then the port closes and the thread ends by itself.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HostToWorker, Job, WorkerToHost } from './job-protocol';
import { toJobError } from './job-protocol';
import { runJob } from './run-job';

const port = parentPort;
if (!port) throw new Error('job-worker.js runs as a worker thread');

const controller = new AbortController();
const post = (m: WorkerToHost) => port.postMessage(m);

port.on('message', (m: HostToWorker) => {
  if (m.type === 'cancel') controller.abort();
});

runJob(workerData as Job, controller.signal, post)
  .then(
    (result) => post({ type: 'done', result }),
    (err: unknown) => post(controller.signal.aborted ? { type: 'cancelled' } : { type: 'failed', error: toJobError(err) }),
  )
  .finally(() => port.close());

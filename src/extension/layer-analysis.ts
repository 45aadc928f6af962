/**
 * The layer table's analysis for one loaded model: owns the LayerStore, runs the analysis in a
 * child process (analysis-process.ts) and tells listeners about new values in batches, so a
 * model with thousands of layers sends a few patches per second rather than one per layer.
 * One per ModelDocument load: editors of the same file share it, other files have their own.
 * Free of `vscode` so plain Node tests run it.
 */
import type { AnalysisEvent } from '../analysis/analyze';
import type { AnalysisData, AnalysisStatus, LayerPatch } from '../shared/protocol';
import { AnalysisCommand, runAnalysisProcess } from './analysis-process';
import { emptyStatus, LayerStore } from './layer-store';

/** Patches and progress are sent at most this often while the analysis runs. */
export const FLUSH_INTERVAL_MS = 150;

export interface AnalysisListener {
  patch(patch: LayerPatch): void;
  status(status: AnalysisStatus): void;
}

export interface AnalysisPlan {
  data: AnalysisData;
  /** Arguments after the model: data and settings options. */
  args: string[];
  /** How the data is described to the user. */
  description: string;
}

export class LayerAnalysis {
  private state: AnalysisStatus;
  private controller: AbortController | undefined;
  private readonly listeners = new Set<AnalysisListener>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private run = 0;
  private disposed = false;

  constructor(
    readonly store: LayerStore,
    private readonly file: string,
    private readonly command: AnalysisCommand,
    private readonly log: (level: 'info' | 'warn', message: string) => void = () => undefined,
  ) {
    this.state = emptyStatus(store.generation);
  }

  get status(): AnalysisStatus {
    return { ...this.state, modelFindings: this.store.modelLevelFindings };
  }

  get started(): boolean {
    return this.state.state !== 'idle';
  }

  subscribe(listener: AnalysisListener): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Starts (or restarts) the analysis; resolves when it ends, whatever the outcome. */
  async start(plan: AnalysisPlan): Promise<void> {
    if (this.disposed) return;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const run = ++this.run;
    this.state = { ...emptyStatus(this.store.generation), state: 'running', phase: 'load', data: plan.description };
    this.flushNow();
    const started = Date.now();
    try {
      const report = await runAnalysisProcess({
        command: this.command,
        file: this.file,
        args: plan.args,
        signal: controller.signal,
        onEvent: (e) => {
          if (run === this.run) this.onEvent(e);
        },
      });
      if (run !== this.run || this.disposed) return;
      this.store.applyReport(report);
      this.state = { ...this.state, state: 'done', phase: 'done', done: 0, total: 0 };
      this.log('info', `layer analysis of ${this.file}: ${report.layers.length} layer(s), ${report.findings.length} finding(s) in ${Date.now() - started} ms`);
    } catch (err) {
      if (run !== this.run || this.disposed) return;
      const aborted = err instanceof Error && err.name === 'AbortError';
      const message = err instanceof Error ? err.message : String(err);
      this.state = aborted ? { ...this.state, state: 'cancelled' } : { ...this.state, state: 'failed', message };
      if (!aborted) this.log('warn', `layer analysis failed: ${message}`);
    } finally {
      if (run === this.run && !this.disposed) {
        this.controller = undefined;
        this.flushNow();
      }
    }
  }

  /** Marks the analysis as impossible (e.g. a file that is not on the local disk). */
  fail(message: string): void {
    this.state = { ...emptyStatus(this.store.generation), state: 'failed', message };
    this.flushNow();
  }

  cancel(): void {
    this.controller?.abort();
  }

  private onEvent(e: AnalysisEvent): void {
    if (e.event === 'phase') {
      this.state = { ...this.state, phase: e.phase, done: 0, total: e.total ?? 0 };
    } else if (e.event === 'progress') {
      this.state = { ...this.state, phase: e.phase, done: e.done, total: e.total };
    } else {
      this.store.applyEvent(e);
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.disposed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushNow();
    }, FLUSH_INTERVAL_MS);
  }

  /** Sends the pending patch and the status to every listener. */
  private flushNow(): void {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const patch = this.store.takePatch();
    const status = this.status;
    for (const l of this.listeners) {
      if (patch) l.patch(patch);
      l.status(status);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.controller?.abort();
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.listeners.clear();
  }
}

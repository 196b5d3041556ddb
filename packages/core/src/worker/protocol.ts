import type { ChatMessage } from '../io/chat-template.js';
import type { LlamaConfig } from '../model/config.js';
import type { GenerateOptions } from '../generate/generate.js';
import type { GenerationResult, PipelineEvents, TokenEvent } from '../generate/events.js';
import type { MemorySnapshot } from '../backend/memory.js';
import type { PerplexityResult } from '../generate/perplexity.js';
import type { PipelineOptions } from '../pipeline/create-pipeline.js';

/**
 * Messages between a pipeline in a worker (worker-host.ts) and its handle on the calling thread
 * (worker-pipeline.ts). Everything in them survives structured cloning: no functions, no signals.
 */

/** A plugin the worker builds from a factory it was given, by name, with these options. */
export interface WorkerPluginSpec {
  name: string;
  options?: unknown;
}

/** createPipeline's options as they cross to the worker: plugins by name, no callbacks. */
export type WorkerPipelineOptions = Omit<PipelineOptions, 'plugins' | 'onProgress' | 'backend' | 'download'> & {
  backend?: Extract<PipelineOptions['backend'], string>;
  plugins?: WorkerPluginSpec[];
  download?: Omit<NonNullable<PipelineOptions['download']>, 'fetch' | 'onBytes' | 'onDownload' | 'onDownloadProgress' | 'cache'> & { cache?: boolean };
};

/** GenerateOptions without what cannot be cloned (the signal travels as an 'abort' message). */
export type WorkerGenerateOptions = Omit<GenerateOptions, 'signal' | 'logitsProcessors'>;

export type ToWorker =
  | { type: 'load'; id: number; options: WorkerPipelineOptions }
  | { type: 'generate'; id: number; prompt: string | number[]; options: WorkerGenerateOptions }
  | { type: 'chat'; id: number; messages: ChatMessage[]; options: WorkerGenerateOptions }
  | { type: 'perplexity'; id: number; text: string; context?: number }
  | { type: 'abort'; id: number }
  | { type: 'dispose'; id: number };

export interface LoadedInfo {
  config: LlamaConfig;
  backendDescription: string;
  cacheSize: number;
  /** The backend's bytes by use once loaded (weights, KV cache, activations, ...). */
  memory: MemorySnapshot;
}

/** Pipeline events the worker forwards as they happen. */
export type ForwardedEvents = Pick<PipelineEvents, 'prefill' | 'step' | 'memory'>;
export const FORWARDED_EVENTS = ['prefill', 'step', 'memory'] as const satisfies readonly (keyof ForwardedEvents)[];

export type FromWorker =
  | { type: 'progress'; id: number; loadedBytes: number; totalBytes: number; what: 'load' | 'download' | 'perplexity'; files?: { done: number; total: number } }
  | { type: 'loaded'; id: number; info: LoadedInfo }
  | { type: 'event'; id: 0; event: keyof ForwardedEvents; payload: ForwardedEvents[keyof ForwardedEvents] }
  | { type: 'token'; id: number; event: TokenEvent }
  | { type: 'result'; id: number; result: GenerationResult | PerplexityResult | null }
  | { type: 'error'; id: number; name: string; message: string; stack?: string };

/** A worker, or the worker's side of it: a Web Worker / `self`, or Node's Worker / `parentPort`. */
export interface MessageEndpoint {
  postMessage(message: unknown): void;
  addEventListener?(type: 'message', listener: (e: { data: unknown }) => void): void;
  on?(type: 'message', listener: (data: unknown) => void): unknown;
}

/** Listens on either kind of endpoint (EventTarget in browsers, EventEmitter for Node's Worker). */
export function onMessage(endpoint: MessageEndpoint, listener: (data: unknown) => void): void {
  if (typeof endpoint.on === 'function') endpoint.on('message', listener);
  else if (typeof endpoint.addEventListener === 'function') endpoint.addEventListener('message', (e) => listener(e.data));
  else throw new TypeError('expected a Worker (a Web Worker or a Node worker_threads Worker), or a worker\'s self / parentPort');
}

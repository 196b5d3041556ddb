// A Web Worker that serves a lithe pipeline to the page (createWorkerPipeline).
import { serveWorkerPipeline } from '@lithe/core';
import { kvQuant } from '@lithe/kv-quant';

serveWorkerPipeline({ plugins: { kvQuant } });

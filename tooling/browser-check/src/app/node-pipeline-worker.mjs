// A Node worker thread that serves a lithe pipeline to its parent (createWorkerPipeline).
import { serveWorkerPipeline } from '@lithe/core';
import { kvQuant } from '@lithe/kv-quant';

serveWorkerPipeline({ plugins: { kvQuant } });

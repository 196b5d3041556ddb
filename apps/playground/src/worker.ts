// The playground's Web Worker: the pipeline lives here, with the techniques the page may pick.
import { serveWorkerPipeline } from '@lithe/core';
import { flashAttention } from '@lithe/flash-attn';
import { kvQuant } from '@lithe/kv-quant';
import { nf4 } from '@lithe/nf4';
import { speculative } from '@lithe/speculative';
import { streaming } from '@lithe/streaming';

serveWorkerPipeline({ plugins: { flashAttention, kvQuant, nf4, speculative, streaming } });

// What an application writes against the published type declarations. Type-checked with
// skipLibCheck: false, so every .d.ts the packages ship (and the types they pull in) must hold.
import { BUILTIN_CHAT_TEMPLATE_NAMES, createPipeline, WebGpuBackend, type GenerationResult, type Pipeline } from '@lithe/core';
import { loadChatTemplateOption, nodeModelFiles } from '@lithe/core/node';
import { kvQuant } from '@lithe/kv-quant';
import { nf4 } from '@lithe/nf4';
import { gptq } from '@lithe/gptq';
import { quantizeModelDir } from '@lithe/gptq/node';
import { awq, awqQuantizeModel, type AwqBlockReport } from '@lithe/awq';
import { quantizeModelDir as quantizeAwqDir } from '@lithe/awq/node';
import { speculative, type SpeculativeStats } from '@lithe/speculative';
import { lckv } from '@lithe/lckv';
import { streaming } from '@lithe/streaming';
import { flashAttention } from '@lithe/flash-attn';
import { startServer } from '@lithe/server';

export async function run(dir: string): Promise<GenerationResult> {
  const pipeline: Pipeline = await createPipeline({
    model: nodeModelFiles(dir),
    plugins: [kvQuant({ bits: 8 }), nf4(), speculative({ draft: 'self-int8', tokens: 4 })],
    chatTemplate: loadChatTemplateOption(BUILTIN_CHAT_TEMPLATE_NAMES[0]),
    checkTensors: true,
  });
  const backend: typeof WebGpuBackend | null = null;
  void backend;
  void startServer;
  void [gptq, quantizeModelDir, awq, awqQuantizeModel, quantizeAwqDir, lckv, streaming, flashAttention];
  const block: AwqBlockReport | undefined = undefined;
  void block;
  const stats: SpeculativeStats | undefined = undefined;
  void stats;
  return pipeline.chat([{ role: 'user', content: 'Hi' }], { maxTokens: 8, signal: AbortSignal.timeout(1000) }).result;
}

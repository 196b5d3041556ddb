import type { KVLayerMap, LayerSchedule, LayerStep } from '@lithe/core';

/**
 * The reference's plan for encoding a prompt in parallel (whyNLP/LCKV `iteration_plan`): runs of
 * layers that read no KV from above go once; a group of layers tied by reads from above (from the
 * first such layer up to the highest layer the group reads) runs `forwardPasses + backwardPasses`
 * times, each pass from the same input and refreshing the group's KV, the last one going on.
 */
export function iterationPlan(map: KVLayerMap, forwardPasses: number, backwardPasses: number): LayerStep[] {
  const src = map.source;
  const n = src.length;
  const steps: LayerStep[] = [];
  for (let i = 0; i < n; ) {
    if (src[i] > i) {
      let top = src[i];
      for (let m = Math.max(...src.slice(i, top + 1)); top < m; m = Math.max(...src.slice(i, top + 1))) top = m;
      // The reference runs m passes without gradients, b - 1 more and a last one: m + max(b, 1).
      steps.push({ from: i, to: top + 1, passes: forwardPasses + Math.max(backwardPasses, 1) });
      i = top + 1;
    } else {
      let j = i + 1;
      while (j < n && !(src[j] > j)) j++;
      steps.push({ from: i, to: j, passes: 1 });
      i = j;
    }
  }
  return steps;
}

export type PrefillMode = 'iterative' | 'sequential';

/**
 * How an LCKV model encodes a prompt. 'sequential' goes token by token, exactly as decoding does.
 * 'iterative' is the paper's parallel pass, as the reference runs it: runs of up to
 * forwardPasses + backwardPasses tokens still go token by token; longer ones iterate the plan (an
 * approximation of the sequential result that improves with more passes). Decoding is exact either way.
 */
export function lckvSchedule(map: KVLayerMap, mode: PrefillMode, forwardPasses: number, backwardPasses: number): LayerSchedule {
  const once = [{ from: 0, to: map.source.length, passes: 1 }];
  if (!map.source.some((s, i) => s > i)) return { passTokens: (tokens) => tokens, steps: () => once };
  const plan = iterationPlan(map, forwardPasses, backwardPasses);
  const short = forwardPasses + backwardPasses;
  // One token at a time is exact in a single pass: the layers above hold every earlier token.
  const steps = (tokens: number) => (tokens === 1 ? once : plan);
  if (mode === 'sequential') return { passTokens: () => 1, steps };
  return { passTokens: (tokens) => (tokens <= short ? 1 : tokens), steps };
}

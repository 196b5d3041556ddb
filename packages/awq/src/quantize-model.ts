import { calibrate, linearName, DenseLinear, GroupedIntLinear, INPUT_OF, LINEAR_SLOTS, packGroupedCodes, type BlockCalibrator, type BlockProbe, type LinearInput, type LinearModule, type LinearSlot, type LlamaLayer, type LlamaModel } from '@lithe/core';
import { AWQ_GROUPS, canScale, denseOf, foldScales, GROUP_SLOTS, type AwqGroup } from './fold.js';
import { awqQuantize, checkGroupSize, type AwqQuantized } from './quantizer.js';
import { activationScales, ALPHA_GRID, InputStats, scaledFakeQuantize, searchClip, weightMeans } from './search.js';

export interface AwqOptions {
  /** Inputs per scale and zero point (default 128; 64 and 32 too). */
  groupSize?: number;
  /** 'awq' (needs calibration windows) or 'rtn' (round-to-nearest with the same quantizer, the baseline). */
  method?: 'awq' | 'rtn';
  /** Windows the scale search runs the block on (default: every calibration window). */
  searchSamples?: number;
  /** Run the clip search (default true). */
  clip?: boolean;
  /**
   * Duo scaling (AutoAWQ's default): scales from the activations and the weights,
   * mean|x|^α / mean|ŵ|^(1−α), instead of mean|x|^α alone (llm-awq's). Default false.
   */
  duoScaling?: boolean;
  /** After each block: what the search chose. */
  onBlock?: (report: AwqBlockReport, done: number, total: number) => void;
  /** After each linear is quantized: its HF prefix, the result, and its bias as folded (null: none). */
  onLinear?: (name: string, q: AwqQuantized, bias: Float32Array | null) => void;
}

/** What the search chose for one block. */
export interface AwqBlockReport {
  layer: number;
  /** The α kept per group; null where the group cannot be scaled (o under grouped-query attention). */
  alpha: Record<AwqGroup, number | null>;
  /** Mean squared error of the block's output with the group quantized at α = 0 (round-to-nearest) and at the chosen α. */
  loss: Record<AwqGroup, { rtn: number; best: number } | null>;
}

const GROUP_INPUT: Readonly<Record<AwqGroup, LinearInput>> = { qkv: 'qkv', o: 'o', gateUp: 'gateUp', down: 'down' };
/** AutoAWQ leaves q and k unclipped (their error is seen through softmax, not by a group's output). */
const CLIPPED: ReadonlySet<LinearSlot> = new Set(['v', 'o', 'gate', 'up', 'down']);

export function checkAwqOptions(o: AwqOptions): void {
  if (o.method !== undefined && o.method !== 'awq' && o.method !== 'rtn') throw new Error(`awq: method must be 'awq' or 'rtn', got '${String(o.method)}'`);
  if (o.searchSamples !== undefined && !(Number.isInteger(o.searchSamples) && o.searchSamples > 0)) throw new RangeError(`awq: searchSamples must be a positive integer, got ${o.searchSamples}`);
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

function upload(model: LlamaModel, values: Float32Array, shape: readonly number[]) {
  return model.backend.upload(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), [...shape], 'f32', 'weights');
}

/** The replacement module in core's grouped int format, with a copy of the bias. */
function replacement(model: LlamaModel, dense: DenseLinear, q: AwqQuantized, name: string): GroupedIntLinear {
  const bias = dense.bias ? upload(model, (dense.bias.handle as Float32Array).slice(0, dense.bias.size), dense.bias.shape) : null;
  const data = { bits: 4 as const, outFeatures: q.outFeatures, inFeatures: q.inFeatures, groupSize: q.groupSize, codes: packGroupedCodes(q.codes, q.outFeatures, q.inFeatures, 4), scales: q.scales, zeros: q.zeros, perm: null };
  return GroupedIntLinear.fromData(name, model.backend, data, bias);
}

const weightOf = (m: DenseLinear) => (m.weight.handle as Float32Array).subarray(0, m.weight.size);

/**
 * The scale search for one group of block `l`: every α on the grid, the group's linears replaced
 * by Q(W·diag(s))·diag(1/s) while the rest of the block stays full precision, scored by the MSE of
 * the block's output against the full-precision one.
 */
function searchGroup(model: LlamaModel, layer: LlamaLayer, l: number, group: AwqGroup, meanAbs: Float64Array, probe: BlockProbe, windows: number, ref: Float32Array, groupSize: number, duo: boolean) {
  const slots = GROUP_SLOTS[group];
  const dense = slots.map((slot) => denseOf(layer[slot], `block ${l}'s ${slot}`));
  const out = new Float32Array(ref.length);
  const wMean = duo ? weightMeans(dense.map((m) => ({ w: weightOf(m), outF: m.outFeatures })), dense[0].inFeatures, groupSize) : undefined;
  let best = { alpha: 0, loss: Infinity, s: activationScales(meanAbs, 0, wMean) };
  let rtn = 0;
  // Round-to-nearest's loss, for the report: α = 0, or with duo scaling (where α = 0 still scales by the weights) no scales at all.
  const candidates: (number | null)[] = wMean ? [null, ...ALPHA_GRID] : [...ALPHA_GRID];
  try {
    for (const alpha of candidates) {
      const s = alpha === null ? new Float32Array(meanAbs.length).fill(1) : activationScales(meanAbs, alpha, wMean);
      slots.forEach((slot, k) => {
        const m = dense[k];
        layer[slot] = new DenseLinear(m.name, model.backend, upload(model, scaledFakeQuantize(weightOf(m), m.outFeatures, m.inFeatures, groupSize, s), m.weight.shape), m.bias);
      });
      try {
        const loss = mse(probe.run(windows, out), ref);
        if (alpha === (wMean ? null : 0)) rtn = loss;
        if (alpha !== null && loss < best.loss) best = { alpha, loss, s };
      } finally {
        slots.forEach((slot, k) => {
          (layer[slot] as DenseLinear).weight.dispose();
          layer[slot] = dense[k];
        });
      }
    }
  } finally {
    slots.forEach((slot, k) => (layer[slot] = dense[k]));
  }
  return { ...best, rtn };
}

/**
 * Quantizes every decoder linear of a loaded model (cpu or wasm backend, f32 weights) in place to
 * 4 bits with zero points, in AutoAWQ's terms: AWQ through core's calibration pass over `windows`
 * (per block: the scale search per group, the scales folded into the producers, the clip search,
 * then quantization), or round-to-nearest. Each linear becomes a GroupedIntLinear; the results go
 * to `onLinear`, e.g. to be written as a checkpoint. The folded norm weights stay in the model
 * (f32), and must be written with the linears. Embeddings and lm_head stay as they are.
 */
export async function awqQuantizeModel(model: LlamaModel, windows: readonly Int32Array[] | null, options: AwqOptions = {}): Promise<AwqBlockReport[]> {
  checkAwqOptions(options);
  const method = options.method ?? 'awq';
  const groupSize = options.groupSize ?? 128;
  for (const [l, layer] of model.layers.entries()) for (const slot of LINEAR_SLOTS) checkGroupSize(groupSize, denseOf(layer[slot], linearName(l, slot)).inFeatures, linearName(l, slot));
  const finishLinear = (layer: LlamaLayer, l: number, slot: LinearSlot, clip: Float32Array | null): LinearModule => {
    const name = linearName(l, slot);
    const m = denseOf(layer[slot], name);
    const q = awqQuantize(weightOf(m), m.outFeatures, m.inFeatures, groupSize, clip);
    options.onLinear?.(name, q, m.bias ? (m.bias.handle as Float32Array).slice(0, m.bias.size) : null);
    return replacement(model, m, q, name);
  };

  if (method === 'rtn') {
    for (const [l, layer] of model.layers.entries()) {
      for (const slot of LINEAR_SLOTS) {
        const next = finishLinear(layer, l, slot, null);
        layer[slot]!.dispose();
        layer[slot] = next;
      }
    }
    return [];
  }
  if (!windows || windows.length === 0) throw new Error('awq: AWQ needs calibration windows (calibrationWindows over tokenized text)');
  const searchWindows = Math.min(options.searchSamples ?? windows.length, windows.length);
  const reports: AwqBlockReport[] = [];

  await calibrate(model, windows, {
    block(l, layer): BlockCalibrator {
      const stats = new Map<LinearInput, InputStats>();
      return {
        observe(input, x, rows) {
          let st = stats.get(input);
          if (!st) stats.set(input, (st = new InputStats(x.length / rows, groupSize)));
          st.add(x, rows);
        },
        finish(probe) {
          const ref = probe.run(searchWindows);
          const report: AwqBlockReport = { layer: l, alpha: { qkv: null, o: null, gateUp: null, down: null }, loss: { qkv: null, o: null, gateUp: null, down: null } };
          const scales = new Map<LinearInput, Float32Array>();
          // Every group searched on the full-precision block, then all folded (AutoAWQ's order).
          const found = new Map<AwqGroup, Float32Array>();
          for (const group of AWQ_GROUPS) {
            if (!canScale(layer, group)) continue;
            const st = stats.get(GROUP_INPUT[group]);
            if (!st) throw new Error(`awq: block ${l}'s ${group} saw no calibration input`);
            const r = searchGroup(model, layer, l, group, st.meanAbs(), probe, searchWindows, ref, groupSize, options.duoScaling ?? false);
            report.alpha[group] = r.alpha;
            report.loss[group] = { rtn: r.rtn, best: r.loss };
            found.set(group, r.s);
          }
          for (const [group, s] of found) {
            foldScales(layer, l, group, s);
            scales.set(GROUP_INPUT[group], s);
          }
          const out: Partial<Record<LinearSlot, LinearModule>> = {};
          for (const slot of LINEAR_SLOTS) {
            let clip: Float32Array | null = null;
            if (options.clip !== false && CLIPPED.has(slot)) {
              const m = denseOf(layer[slot], linearName(l, slot));
              const input = INPUT_OF[slot];
              const s = scales.get(input) ?? new Float32Array(m.inFeatures).fill(1);
              clip = searchClip(weightOf(m), m.outFeatures, m.inFeatures, stats.get(input)!, s);
            }
            out[slot] = finishLinear(layer, l, slot, clip);
          }
          reports.push(report);
          options.onBlock?.(report, l + 1, model.layers.length);
          return out;
        },
      };
    },
  });
  return reports;
}

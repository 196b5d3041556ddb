/**
 * Loads a Hugging Face model directory (config, tokenizer files, safetensors weights) through a
 * small files interface, so Node directories, browser file pickers or HTTP mirrors can all back it.
 * Browser-safe: no Node imports.
 */
import type { ByteSource } from './byte-source.js';
import { errorMessage } from './byte-source.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from './json-depth.js';
import { parseSafetensors, type SafetensorsFile, type TensorInfo } from './safetensors.js';

export interface ModelFiles {
  /** Shown in error messages, e.g. the directory path. */
  readonly location: string;
  /** Whether a file with this plain name (no directories) exists. */
  has(name: string): Promise<boolean>;
  readText(name: string): Promise<string>;
  open(name: string): Promise<ByteSource>;
}

export interface WeightEntry extends TensorInfo {
  file: SafetensorsFile;
}

export interface HFModelDir {
  location: string;
  /** config.json (required). */
  config: Record<string, unknown>;
  /** generation_config.json (optional). */
  generationConfig: Record<string, unknown> | null;
  /** tokenizer.json (optional). */
  tokenizerJson: Record<string, unknown> | null;
  /** tokenizer_config.json (optional; the chat_template lives here, or in chat_template.jinja, which wins). */
  tokenizerConfig: Record<string, unknown> | null;
  weights: Map<string, WeightEntry>;
  /** Total bytes of all tensors. */
  weightBytes: number;
  /** Closes every weight file; safe to call more than once. */
  close(): Promise<void>;
}

export const SINGLE_WEIGHTS = 'model.safetensors';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';
export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';

/**
 * Reads the JSON files and every safetensors header (not the tensor data).
 *
 * Weights come from `model.safetensors` when present, else from the shards listed in
 * `model.safetensors.index.json` (the same precedence as transformers). For sharded models the
 * shard headers are the source of truth: every tensor in every listed shard is loaded, including
 * ones the weight_map forgets, but a tensor stored in two shards, or a weight_map entry whose
 * shard lacks that tensor, is an error.
 */
export async function loadHFDir(files: ModelFiles): Promise<HFModelDir> {
  const loc = files.location;
  if (!(await files.has('config.json'))) {
    throw new Error(
      `${loc} is not a model directory: config.json is missing; ` +
        `expected an HF model directory with config.json and ${SINGLE_WEIGHTS}`,
    );
  }
  const config = (await readJson(files, 'config.json'))!;
  const generationConfig = await readJson(files, 'generation_config.json', true);
  const tokenizerJson = await readJson(files, 'tokenizer.json', true);
  let tokenizerConfig = await readJson(files, 'tokenizer_config.json', true);
  // The current transformers layout keeps the template in its own file, which wins over the config's.
  if (await files.has(CHAT_TEMPLATE_FILE)) {
    tokenizerConfig = { ...(tokenizerConfig ?? {}), chat_template: await files.readText(CHAT_TEMPLATE_FILE) };
  }

  const opened: SafetensorsFile[] = [];
  const closeAll = async () => {
    const sources = opened.splice(0).map((f) => f.source);
    await Promise.all(sources.map((s) => s.close?.()));
  };

  let weights: Map<string, WeightEntry>;
  try {
    weights = await loadWeights(files, opened);
  } catch (err) {
    await closeAll().catch(() => {});
    throw err;
  }

  let weightBytes = 0;
  for (const w of weights.values()) weightBytes += w.byteLength;
  return {
    location: loc,
    config,
    generationConfig,
    tokenizerJson,
    tokenizerConfig,
    weights,
    weightBytes,
    close: closeAll,
  };
}

async function loadWeights(files: ModelFiles, opened: SafetensorsFile[]): Promise<Map<string, WeightEntry>> {
  const openShard = async (name: string) => {
    const source = await files.open(name);
    try {
      const file = await parseSafetensors(source);
      opened.push(file);
      return file;
    } catch (err) {
      await source.close?.().catch(() => {});
      throw err;
    }
  };

  if (await files.has(SINGLE_WEIGHTS)) {
    const file = await openShard(SINGLE_WEIGHTS);
    return new Map([...file.tensors].map(([name, t]) => [name, { ...t, file }]));
  }
  if (!(await files.has(WEIGHTS_INDEX))) {
    throw new Error(
      `${files.location}: no weights found: expected ${SINGLE_WEIGHTS} or ${WEIGHTS_INDEX} ` +
        `(other formats such as pytorch_model.bin or GGUF are not supported; convert to safetensors)`,
    );
  }

  const indexName = `${files.location}/${WEIGHTS_INDEX}`;
  const weightMap = parseWeightMap((await readJson(files, WEIGHTS_INDEX))!, indexName);
  const shardNames = [...new Set(weightMap.values())];
  for (const shard of shardNames) {
    if (!(await files.has(shard))) {
      const example = [...weightMap].find(([, s]) => s === shard)![0];
      throw new Error(
        `${indexName}: weight_map names shard '${shard}' (e.g. for tensor '${example}'), ` +
          `but ${files.location}/${shard} does not exist; is the download incomplete?`,
      );
    }
  }

  const weights = new Map<string, WeightEntry>();
  const shardOf = new Map<string, string>(); // tensor name -> shard it was found in
  for (const shard of shardNames) {
    const file = await openShard(shard);
    for (const [name, t] of file.tensors) {
      const other = shardOf.get(name);
      if (other !== undefined) {
        throw new Error(`${indexName}: tensor '${name}' is stored in two shards, '${other}' and '${shard}'`);
      }
      shardOf.set(name, shard);
      weights.set(name, { ...t, file });
    }
  }
  for (const [name, shard] of weightMap) {
    if (shardOf.get(name) !== shard) {
      throw new Error(
        `${indexName}: weight_map says tensor '${name}' is in '${shard}', but that shard does not contain it`,
      );
    }
  }
  return weights;
}

/** Validates `weight_map`: tensor name -> shard file name, shard names confined to the directory. */
function parseWeightMap(index: Record<string, unknown>, indexName: string): Map<string, string> {
  const raw = index.weight_map;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${indexName}: expected a "weight_map" object mapping tensor names to shard file names`);
  }
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(raw)) {
    if (typeof shard !== 'string') {
      throw new Error(
        `${indexName}: weight_map entry for '${tensor}' must be a file name string, got ${JSON.stringify(shard)}`,
      );
    }
    if (!isPlainFileName(shard)) {
      throw new Error(
        `${indexName}: weight_map entry for '${tensor}' names shard '${shard}', which is not a plain file name; ` +
          `shards must sit next to the index (no '/', '\\', '..' or absolute paths)`,
      );
    }
    map.set(tensor, shard);
  }
  if (map.size === 0) throw new Error(`${indexName}: weight_map is empty`);
  return map;
}

/** Rejects anything that could resolve outside the model directory. ':' covers Windows drives. */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !/[/\\:\0]/.test(name)
  );
}

async function readJson(
  files: ModelFiles,
  name: string,
  optional = false,
): Promise<Record<string, unknown> | null> {
  if (optional && !(await files.has(name))) return null;
  const where = `${files.location}/${name}`;
  const text = await files.readText(name);
  if (jsonTooDeep(text)) throw new Error(`${where}: invalid JSON: it nests deeper than ${MAX_JSON_DEPTH} levels; the file is corrupt`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: invalid JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new Error(`${where}: expected a JSON object, got ${got}`);
  }
  return value as Record<string, unknown>;
}

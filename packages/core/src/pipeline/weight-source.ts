import type { HFModelDir } from '../io/hf-dir.js';
import type { WeightSource } from '../model/weights.js';

/** The weights of an HF directory as the model loader reads them. */
export function hfWeightSource(dir: HFModelDir): WeightSource {
  return {
    totalBytes: dir.weightBytes,
    names: () => dir.weights.keys(),
    info: (name) => dir.weights.get(name),
    read: (name) => {
      const entry = dir.weights.get(name);
      if (!entry) throw new Error(`${dir.location}: tensor '${name}' is not in the model files`);
      return entry.file.read(name);
    },
  };
}

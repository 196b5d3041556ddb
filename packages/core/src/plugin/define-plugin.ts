import type { LithePlugin } from './types.js';

/**
 * Declares a plugin factory: `const kvQuant = definePlugin((o: { bits: 8 | 4 }) => ({ name: 'kv-quant', ... }))`
 * and later `plugins: [kvQuant({ bits: 8 })]`. The factory is typed by its options.
 */
export function definePlugin<O = void>(factory: (options: O) => LithePlugin): (options: O) => LithePlugin {
  return (options: O) => {
    const plugin = factory(options);
    if (!plugin || typeof plugin.name !== 'string' || plugin.name.trim() === '') {
      throw new Error('a plugin needs a non-empty string `name`');
    }
    return plugin;
  };
}

export { lckv, lckvSettingsOf, type LckvOptions } from './lckv.js';
export { readLckvConfig, lckvSettings, type LckvSettings } from './lckv-config.js';
export { parseLayerTypes, kvLayerMapOf, type LayerType } from './layer-types.js';
export { iterationPlan, lckvSchedule, type PrefillMode } from './iteration-plan.js';

/**
 * AutoAWQ's GEMM layout (`WQLinear_GEMM`), read and written. For a linear `P` with G groups of
 * `group_size` inputs, 4 bits:
 *
 * | tensor | dtype, shape | what |
 * |---|---|---|
 * | `P.qweight` | I32 [in, out / 8] | word (i, c) holds the codes of outputs 8c + [0, 2, 4, 6, 1, 3, 5, 7] (AWQ's interleaved order), 4 bits each from bit 0 |
 * | `P.qzeros` | I32 [G, out / 8] | zero points, packed the same way (no offset) |
 * | `P.scales` | F16 [G, out] | group scales |
 *
 * W[o, i] = scale[g, o] · (code[i, o] − zero[g, o]) with g = floor(i / group_size).
 * `config.json` carries `quantization_config: { quant_method: "awq", bits: 4, group_size,
 * zero_point: true, version: "gemm" }`. Loading repacks into core's grouped int format
 * (quant/grouped-int.ts), the one GPTQ checkpoints use too.
 */
import { packGroupedCodes, type GroupedIntData } from '@lithe/core';

export interface AutoAwqTensors {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Uint16Array;
}

/** Nibble k of a packed word holds output 8c + AWQ_ORDER[k]. */
export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

/** The 4-bit values [rows, out] of words [rows, out / 8] in AWQ's interleaved order. */
function unpackInterleaved(words: Int32Array, rows: number, outF: number): Uint8Array {
  const per = outF / 8;
  const out = new Uint8Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < per; c++) {
      const v = words[r * per + c];
      for (let k = 0; k < 8; k++) out[r * outF + 8 * c + AWQ_ORDER[k]] = (v >>> (4 * k)) & 15;
    }
  }
  return out;
}

function packInterleaved(values: Uint8Array, rows: number, outF: number): Int32Array {
  const per = outF / 8;
  const out = new Int32Array(rows * per);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < per; c++) {
      let v = 0;
      for (let k = 0; k < 8; k++) v |= (values[r * outF + 8 * c + AWQ_ORDER[k]] & 15) << (4 * k);
      out[r * per + c] = v;
    }
  }
  return out;
}

/** Repacks AutoAWQ GEMM tensors of a [out, in] linear into core's grouped int format. */
export function fromAutoAwq(t: AutoAwqTensors, outF: number, inF: number, groupSize: number, what = 'awq'): GroupedIntData {
  const G = groupSize === -1 ? inF : groupSize;
  if (outF % 8 !== 0) throw new Error(`${what}: AWQ's GEMM layout packs 8 outputs per word; ${outF} outputs are not a multiple of 8`);
  if (!(Number.isInteger(G) && G > 0) || inF % G !== 0) throw new Error(`${what}: group size ${groupSize} does not divide the ${inF} inputs; check group_size in quantization_config`);
  const groups = inF / G;
  const expect = (name: string, got: number, want: number) => {
    if (got !== want) throw new Error(`${what}: ${name} has ${got} values, expected ${want} for a [${outF}, ${inF}] 4-bit weight in groups of ${G}`);
  };
  expect('qweight', t.qweight.length, (inF * outF) / 8);
  expect('qzeros', t.qzeros.length, (groups * outF) / 8);
  expect('scales', t.scales.length, groups * outF);
  const codesT = unpackInterleaved(t.qweight, inF, outF); // [in, out]
  const zerosT = unpackInterleaved(t.qzeros, groups, outF); // [groups, out]
  const codes = new Uint8Array(outF * inF);
  for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) codes[o * inF + i] = codesT[i * outF + o];
  const zeros = new Uint8Array(outF * groups);
  const scales = new Uint16Array(outF * groups);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < outF; o++) {
      zeros[o * groups + g] = zerosT[g * outF + o];
      scales[o * groups + g] = t.scales[g * outF + o];
    }
  }
  return { bits: 4, outFeatures: outF, inFeatures: inF, groupSize: G, codes: packGroupedCodes(codes, outF, inF, 4), scales, zeros, perm: null };
}

/**
 * Packs codes [out, in], zero points and f16 scales ([groups, out], AutoAWQ's orientation) as
 * `WQLinear_GEMM.from_linear` does.
 */
export function toAutoAwq(codes: Uint8Array, zeros: Uint8Array, scales: Uint16Array, outF: number, inF: number): AutoAwqTensors {
  if (outF % 8 !== 0) throw new Error(`awq: AWQ's GEMM layout packs 8 outputs per word; ${outF} outputs are not a multiple of 8`);
  const codesT = new Uint8Array(inF * outF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) codesT[i * outF + o] = codes[o * inF + i];
  return { qweight: packInterleaved(codesT, inF, outF), qzeros: packInterleaved(zeros, zeros.length / outF, outF), scales: scales.slice() };
}

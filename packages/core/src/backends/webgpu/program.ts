/// <reference types="@webgpu/types" />
import type { GpuBuffer } from './buffer-pool.js';

export type WgslType = 'f32' | 'i32' | 'u32' | 'f16';

/** A tensor (its GPU buffer) as a kernel's shader sees it: read with `ld_<name>(i)`, written with `st_<name>(i, v)`. */
export interface TensorBinding {
  name: string;
  buf: GpuBuffer;
  type: WgslType;
  write?: boolean;
}

/**
 * One compute dispatch. The shader source is the kernel's WGSL (it declares `struct Params` and
 * `fn main`); the backend prepends the bindings: `p` (the params uniform), `data` (a small per-call
 * array, e.g. token ids), and one accessor pair per tensor. Tensors that share a GPU buffer (in-place
 * ops, views of one tensor) share one binding, so the same kernel works aliased or not.
 */
export interface DispatchSpec {
  /** Identifies the kernel source: the same key must always give the same `code`. */
  key: string;
  code: string | (() => string);
  bindings: TensorBinding[];
  /** The Params struct's raw 32-bit words (use `f32Bits` for f32 fields). */
  params: ArrayLike<number>;
  /** A per-call array bound as `data` (read-only), copied with this submission's uniforms. */
  data?: { type: 'f32' | 'i32' | 'u32'; array: Float32Array | Int32Array | Uint32Array };
  /** Workgroup counts; use `grid()` for 1-D work larger than 65535 workgroups. */
  workgroups: readonly [number, number?, number?];
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
/** The bits of an f32, for a Params field declared `f32`. */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}

/**
 * Workgroup counts for `n` invocations in groups of `size`, split over x and y when more than
 * 65535 groups are needed. Shaders compute their flat index with `flatId(wid, nwg, lid, size)`.
 */
export function grid(n: number, size = 64): [number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL helper every shader gets: the flat invocation index of a 1-D `grid()` dispatch. */
const PRELUDE = `
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, size: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * size + lid.x;
}
`;

interface Signature {
  /** Binding slot (0-based among tensor bindings) of each tensor. */
  slots: number[];
  /** Per slot: type and whether it is written. */
  unique: { type: WgslType; write: boolean; buf: GpuBuffer }[];
  text: string;
}

function signature(bindings: TensorBinding[]): Signature {
  const slots: number[] = [];
  const unique: Signature['unique'] = [];
  const byBuffer = new Map<number, number>();
  for (const b of bindings) {
    let slot = byBuffer.get(b.buf.id);
    if (slot === undefined) {
      slot = unique.length;
      byBuffer.set(b.buf.id, slot);
      unique.push({ type: b.type, write: !!b.write, buf: b.buf });
    } else {
      if (unique[slot].type !== b.type) throw new Error(`webgpu: '${b.name}' shares a buffer with another binding of a different type`);
      unique[slot].write ||= !!b.write;
    }
    slots.push(slot);
  }
  const text = `${slots.join(',')}/${unique.map((u) => `${u.type}${u.write ? 'w' : 'r'}`).join(',')}`;
  return { slots, unique, text };
}

interface Program {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/**
 * Compute pipelines cached by shader key (kernel key plus binding layout), and bind groups cached by
 * the buffers they bind. Uniform params and per-call data live in one arena per submission and are
 * bound with dynamic offsets, so a bind group does not change from one decoded token to the next.
 */
export class ProgramCache {
  private readonly programs = new Map<string, Program>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly maxBindGroups = 8192;
  compiled = 0;

  constructor(private readonly device: GPUDevice) {}

  get size(): { pipelines: number; bindGroups: number } {
    return { pipelines: this.programs.size, bindGroups: this.bindGroups.size };
  }

  prepare(spec: DispatchSpec, dataType: string | null, arena: GpuBuffer, paramsWindow: number, dataWindow: number): { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } {
    const sig = signature(spec.bindings);
    const pkey = `${spec.key}|${sig.text}|${dataType ?? ''}`;
    let program = this.programs.get(pkey);
    if (!program) {
      program = this.compile(spec, sig, dataType, pkey);
      this.programs.set(pkey, program);
    }
    const gkey = `${pkey}|${arena.id}:${paramsWindow}:${dataWindow}|${sig.unique.map((u) => u.buf.id).join(',')}`;
    let bindGroup = this.bindGroups.get(gkey);
    if (!bindGroup) {
      if (this.bindGroups.size >= this.maxBindGroups) this.bindGroups.clear();
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: arena.buffer, offset: 0, size: paramsWindow } }];
      if (dataType) entries.push({ binding: 1, resource: { buffer: arena.buffer, offset: 0, size: dataWindow } });
      sig.unique.forEach((u, i) => entries.push({ binding: 2 + i, resource: { buffer: u.buf.buffer } }));
      bindGroup = this.device.createBindGroup({ layout: program.layout, entries });
      this.bindGroups.set(gkey, bindGroup);
    }
    return { pipeline: program.pipeline, bindGroup };
  }

  /** Drops bind groups that bind a buffer about to be destroyed (or all of them). */
  forgetBindGroups(): void {
    this.bindGroups.clear();
  }

  private compile(spec: DispatchSpec, sig: Signature, dataType: string | null, label: string): Program {
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStageCompute, buffer: { type: 'uniform', hasDynamicOffset: true } }];
    if (dataType) entries.push({ binding: 1, visibility: GPUShaderStageCompute, buffer: { type: 'read-only-storage', hasDynamicOffset: true } });
    sig.unique.forEach((u, i) => entries.push({ binding: 2 + i, visibility: GPUShaderStageCompute, buffer: { type: u.write ? 'storage' : 'read-only-storage' } }));
    const layout = this.device.createBindGroupLayout({ entries, label });

    const lines: string[] = [];
    if (sig.unique.some((u) => u.type === 'f16')) lines.push('enable f16;');
    lines.push('@group(0) @binding(0) var<uniform> p: Params;');
    if (dataType) lines.push(`@group(0) @binding(1) var<storage, read> data: array<${dataType}>;`);
    sig.unique.forEach((u, i) => lines.push(`@group(0) @binding(${2 + i}) var<storage, ${u.write ? 'read_write' : 'read'}> buf${i}: array<${u.type}>;`));
    spec.bindings.forEach((b, k) => {
      const slot = sig.slots[k];
      lines.push(`fn ld_${b.name}(i: u32) -> ${b.type} { return buf${slot}[i]; }`);
      if (b.write) lines.push(`fn st_${b.name}(i: u32, v: ${b.type}) { buf${slot}[i] = v; }`);
    });
    const code = `${lines.join('\n')}\n${PRELUDE}\n${typeof spec.code === 'function' ? spec.code() : spec.code}`;
    const module = this.device.createShaderModule({ code, label });
    const pipeline = this.device.createComputePipeline({
      label,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.compiled++;
    return { pipeline, layout };
  }
}

/** GPUShaderStage.COMPUTE without relying on the global. */
const GPUShaderStageCompute = 0x4;

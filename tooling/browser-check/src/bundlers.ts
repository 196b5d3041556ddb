import { builtinModules } from 'node:module';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { build as viteBuild, type Rollup } from 'vite';
import webpack from 'webpack';

/**
 * Bundles entry modules for the browser with esbuild, Vite and webpack and reports every Node
 * built-in that reaches a bundle: an import the bundler refused (esbuild, webpack), a module Vite
 * replaced by its empty `__vite-browser-external` stub, or an import/require of a built-in left in
 * the output.
 */

export type Bundler = 'esbuild' | 'vite' | 'webpack';
export const BUNDLERS: readonly Bundler[] = ['esbuild', 'vite', 'webpack'];

export interface BundleReport {
  /** Entry name -> what each found: 'fs (imported by ...)', ... Empty arrays mean clean. */
  findings: Map<string, string[]>;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (spec: string): boolean => BUILTINS.has(spec) || spec.startsWith('node:');

/** Imports and requires of built-ins left in bundled code. */
export function builtinReferences(code: string): string[] {
  const found = new Set<string>();
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;
  for (const m of code.matchAll(re)) if (isBuiltin(m[1])) found.add(m[1]);
  if (code.includes('__vite-browser-external')) found.add('__vite-browser-external');
  return [...found];
}

/** Writes one entry file per package (`import * as m from pkg`, kept alive) under `dir`. */
export async function writeEntries(dir: string, entries: Record<string, string>): Promise<Record<string, string>> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files: Record<string, string> = {};
  for (const [name, source] of Object.entries(entries)) {
    files[name] = join(dir, `${name}.js`);
    await writeFile(files[name], source);
  }
  return files;
}

/** The usual entry: everything a package exports, so tree-shaking cannot hide a built-in. */
export const importAll = (pkg: string): string => `import * as m from '${pkg}';\nglobalThis.__bundled = m;\n`;

async function withEsbuild(entries: Record<string, string>, out: string): Promise<Map<string, string[]>> {
  const findings = new Map<string, string[]>();
  for (const [name, file] of Object.entries(entries)) {
    const r = await esbuild.build({ entryPoints: [file], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', outdir: out, metafile: true }).catch((e: esbuild.BuildFailure) => e);
    const found: string[] = [];
    if ('errors' in r && r.errors.length && !('outputFiles' in r)) {
      for (const e of r.errors) found.push(`${e.text}${e.location ? ` (${e.location.file})` : ''}`);
    } else {
      const ok = r as esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] };
      for (const f of ok.outputFiles) found.push(...builtinReferences(f.text));
      for (const input of Object.keys(ok.metafile!.inputs)) if (isBuiltin(input)) found.push(input);
    }
    findings.set(name, found);
  }
  return findings;
}

async function withVite(entries: Record<string, string>, out: string): Promise<Map<string, string[]>> {
  const findings = new Map(Object.keys(entries).map((n) => [n, [] as string[]]));
  const warnings: string[] = [];
  const result = await viteBuild({
    configFile: false,
    logLevel: 'silent',
    root: out,
    build: {
      write: false,
      minify: false,
      modulePreload: false,
      rollupOptions: {
        input: entries,
        preserveEntrySignatures: 'strict',
        onwarn: (w) => void warnings.push(w.message),
      },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  // Vite externalizes built-ins with a warning naming the module and its importer.
  const viteExternal = warnings.filter((w) => /externalized for browser compatibility/.test(w));
  for (const o of outputs) {
    for (const chunk of o.output) {
      if (chunk.type !== 'chunk') continue;
      const refs = builtinReferences(chunk.code);
      // A shared chunk's built-ins belong to every entry that imports it.
      const owners = chunk.isEntry ? [chunk.name] : o.output.filter((c) => c.type === 'chunk' && c.isEntry && c.imports.includes(chunk.fileName)).map((c) => (c as Rollup.OutputChunk).name);
      for (const n of owners) findings.get(n)?.push(...refs);
    }
  }
  if (viteExternal.length) for (const list of findings.values()) if (list.length) list.push(...viteExternal);
  return findings;
}

async function withWebpack(entries: Record<string, string>, out: string): Promise<Map<string, string[]>> {
  const compiler = webpack({
    mode: 'development',
    devtool: false,
    target: 'web',
    context: out,
    entry: Object.fromEntries(Object.entries(entries).map(([n, f]) => [n, { import: f }])),
    output: { path: join(out, 'webpack'), filename: '[name].js', module: true, chunkFormat: 'module' },
    experiments: { outputModule: true },
    optimization: { splitChunks: false },
    infrastructureLogging: { level: 'none' },
  });
  const stats = await new Promise<webpack.Stats>((resolve, reject) => compiler.run((err, s) => (err ? reject(err) : resolve(s!))));
  await new Promise<void>((resolve) => compiler.close(() => resolve()));
  const json = stats.toJson({ all: false, errors: true, chunks: false });
  const findings = new Map(Object.keys(entries).map((n) => [n, [] as string[]]));
  for (const e of json.errors ?? []) {
    const msg = `${e.message.split('\n')[0]}${e.moduleName ? ` (${e.moduleName})` : ''}`;
    // webpack's errors name the importing module, not the entry: each entry's list gets them all.
    for (const list of findings.values()) list.push(msg);
  }
  if (!json.errors?.length) {
    for (const name of Object.keys(entries)) {
      const code = await readFile(join(out, 'webpack', `${name}.js`), 'utf8');
      findings.get(name)!.push(...builtinReferences(code));
    }
  }
  return findings;
}

/** Bundles every entry with `bundler` into `out`, and what each bundle holds of Node. */
export async function bundleForBrowser(bundler: Bundler, entries: Record<string, string>, out: string): Promise<Map<string, string[]>> {
  await mkdir(out, { recursive: true });
  if (bundler === 'esbuild') return withEsbuild(entries, out);
  if (bundler === 'vite') return withVite(entries, out);
  return withWebpack(entries, out);
}

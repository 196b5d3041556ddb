import { createWorkerPipeline, type ChatMessage, type MemorySnapshot, type WorkerPipeline, type WorkerPluginSpec } from '@lithe/core';

// The playground page: it owns the controls and the transcript; the model runs in ./worker.ts.

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  url: $<HTMLInputElement>('model-url'),
  hub: $<HTMLInputElement>('model-hub'),
  files: $<HTMLInputElement>('model-files'),
  backend: $<HTMLSelectElement>('backend'),
  threads: $<HTMLInputElement>('threads'),
  kvQuant: $<HTMLInputElement>('kv-quant'),
  kvBits: $<HTMLSelectElement>('kv-bits'),
  streaming: $<HTMLInputElement>('streaming'),
  window: $<HTMLInputElement>('window'),
  nf4: $<HTMLInputElement>('nf4'),
  flashAttn: $<HTMLInputElement>('flash-attn'),
  promptLookup: $<HTMLInputElement>('prompt-lookup'),
  load: $<HTMLButtonElement>('load'),
  bar: $<HTMLDivElement>('progress-bar'),
  status: $<HTMLParagraphElement>('load-status'),
  ttft: $<HTMLSpanElement>('stat-ttft'),
  speed: $<HTMLSpanElement>('stat-speed'),
  tokens: $<HTMLSpanElement>('stat-tokens'),
  membar: $<HTMLDivElement>('membar'),
  memTotal: $<HTMLElement>('mem-total'),
  chart: $<HTMLCanvasElement>('mem-chart'),
  messages: $<HTMLDivElement>('messages'),
  composer: $<HTMLFormElement>('composer'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  send: $<HTMLButtonElement>('send'),
  stop: $<HTMLButtonElement>('stop'),
};

let source: 'url' | 'hub' | 'files' = 'url';
let pipeline: WorkerPipeline | null = null;
let running: AbortController | null = null;
const history: ChatMessage[] = [];

for (const tab of document.querySelectorAll<HTMLButtonElement>('.tabs button')) {
  tab.addEventListener('click', () => {
    source = tab.dataset.source as typeof source;
    for (const t of document.querySelectorAll('.tabs button')) t.classList.toggle('active', t === tab);
    for (const input of document.querySelectorAll<HTMLElement>('.source')) input.hidden = !input.classList.contains(source);
  });
}

function model() {
  if (source === 'hub') return ui.hub.value.trim();
  if (source === 'files') {
    if (!ui.files.files?.length) throw new Error('pick the model directory\'s files (config.json, tokenizer.json, *.safetensors) or one .gguf');
    return ui.files.files;
  }
  return ui.url.value.trim();
}

function plugins(): WorkerPluginSpec[] {
  const out: WorkerPluginSpec[] = [];
  if (ui.kvQuant.checked) out.push({ name: 'kvQuant', options: { bits: Number(ui.kvBits.value) } });
  if (ui.streaming.checked) out.push({ name: 'streaming', options: { sinks: 4, window: Number(ui.window.value) } });
  if (ui.nf4.checked) out.push({ name: 'nf4' });
  if (ui.flashAttn.checked) out.push({ name: 'flashAttention' });
  if (ui.promptLookup.checked) out.push({ name: 'speculative', options: { draft: 'prompt-lookup' } });
  return out;
}

const mib = (b: number) => (b >= 1 << 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

// Memory by use: a stacked bar now, and a stacked area of the recent past.
const USES = ['weights', 'kv', 'activations', 'other'] as const;
const COLORS: Record<(typeof USES)[number], string> = { weights: '#6366f1', kv: '#14b8a6', activations: '#f59e0b', other: '#94a3b8' };
const samples: Record<(typeof USES)[number], number>[] = [];

function showMemory(m: MemorySnapshot): void {
  const cur = m.current as unknown as Record<string, number>;
  const sample = Object.fromEntries(USES.map((u) => [u, u === 'other' ? Object.entries(cur).filter(([k]) => !USES.includes(k as never)).reduce((a, [, v]) => a + v, cur.other ?? 0) : (cur[u] ?? 0)])) as (typeof samples)[number];
  const total = USES.reduce((a, u) => a + sample[u], 0);
  ui.memTotal.textContent = `${mib(total)} now · ${mib(m.peakTotal)} peak`;
  ui.membar.replaceChildren(
    ...USES.filter((u) => sample[u] > 0).map((u) => {
      const seg = document.createElement('div');
      seg.style.flexGrow = String(sample[u]);
      seg.style.background = COLORS[u];
      seg.title = `${u}: ${mib(sample[u])}`;
      return seg;
    }),
  );
  samples.push(sample);
  if (samples.length > 240) samples.shift();
  drawChart();
}

function drawChart(): void {
  const ctx = ui.chart.getContext('2d')!;
  const { width: w, height: h } = ui.chart;
  ctx.clearRect(0, 0, w, h);
  const peak = Math.max(1, ...samples.map((s) => USES.reduce((a, u) => a + s[u], 0)));
  const x = (i: number) => (samples.length < 2 ? w : (i / (samples.length - 1)) * w);
  const base = samples.map(() => 0);
  for (const u of USES) {
    const top = samples.map((s, i) => base[i] + s[u]);
    ctx.beginPath();
    top.forEach((v, i) => ctx.lineTo(x(i), h - (v / peak) * h));
    for (let i = samples.length - 1; i >= 0; i--) ctx.lineTo(x(i), h - (base[i] / peak) * h);
    ctx.closePath();
    ctx.fillStyle = COLORS[u];
    ctx.fill();
    top.forEach((v, i) => (base[i] = v));
  }
}

async function load(): Promise<void> {
  ui.load.disabled = true;
  ui.bar.style.width = '0';
  try {
    const chosen = model();
    await pipeline?.dispose();
    pipeline = null;
    history.length = 0;
    ui.messages.replaceChildren();
    ui.status.textContent = 'Loading…';
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
    const threads = ui.threads.value ? Number(ui.threads.value) : undefined;
    pipeline = await createWorkerPipeline(worker, {
      model: chosen,
      backend: ui.backend.value as 'auto',
      threads,
      plugins: plugins(),
      onProgress: (loaded, total, what) => {
        ui.bar.style.width = `${((100 * loaded) / Math.max(1, total)).toFixed(1)}%`;
        ui.status.textContent = `${what === 'download' ? 'Downloading' : 'Loading weights'}: ${mib(loaded)} of ${mib(total)}`;
      },
    });
    pipeline.on('memory', showMemory);
    showMemory(pipeline.memory);
    const c = pipeline.config;
    ui.status.textContent = `Ready: ${c.nLayers} layers, ${c.hiddenSize} wide, on ${pipeline.backendDescription}.`;
    ui.prompt.disabled = ui.send.disabled = false;
    ui.prompt.focus();
  } catch (e) {
    ui.status.textContent = `Could not load: ${(e as Error).message}`;
    ui.status.classList.add('error');
  } finally {
    ui.load.disabled = false;
  }
}

function bubble(role: 'user' | 'assistant', text: string): HTMLDivElement {
  ui.messages.querySelector('.empty')?.remove();
  const div = document.createElement('div');
  div.className = `message ${role}`;
  div.textContent = text;
  ui.messages.append(div);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return div;
}

async function send(text: string): Promise<void> {
  if (!pipeline || running) return;
  history.push({ role: 'user', content: text });
  bubble('user', text);
  const answer = bubble('assistant', '');
  answer.classList.add('streaming');
  running = new AbortController();
  ui.send.hidden = true;
  ui.stop.hidden = false;
  const started = performance.now();
  let first = 0;
  let tokens = 0;
  ui.ttft.textContent = ui.speed.textContent = '–';
  ui.tokens.textContent = '0';
  try {
    const gen = pipeline.chat(history, { maxTokens: 256, signal: running.signal });
    for await (const ev of gen) {
      if (ev.id !== null) {
        tokens++;
        first ||= performance.now();
        ui.ttft.textContent = `${(first - started).toFixed(0)} ms`;
        ui.tokens.textContent = String(tokens);
        if (tokens > 1) ui.speed.textContent = ((1000 * (tokens - 1)) / (performance.now() - first)).toFixed(1);
      }
      answer.textContent += ev.text;
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }
    const r = await gen.result;
    if (r.completionTokens > 1) ui.speed.textContent = r.timings.decodeTokensPerSecond.toFixed(1);
    ui.ttft.textContent = `${r.timings.ttftMs.toFixed(0)} ms`;
    history.push({ role: 'assistant', content: r.text });
    answer.dataset.finish = r.finishReason;
  } catch (e) {
    answer.textContent = `(error: ${(e as Error).message})`;
    answer.classList.add('error');
    history.pop();
  } finally {
    answer.classList.remove('streaming');
    running = null;
    ui.send.hidden = false;
    ui.stop.hidden = true;
  }
}

ui.load.addEventListener('click', () => void load());
ui.stop.addEventListener('click', () => running?.abort());
ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text) return;
  ui.prompt.value = '';
  void send(text);
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});
if (!crossOriginIsolated) ui.status.textContent = 'This page is not cross-origin isolated: the wasm backend will use 1 thread.';

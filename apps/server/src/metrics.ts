/** The server's metrics, rendered in Prometheus' text exposition format (version 0.0.4). */

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const QUEUE_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const STEP_TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const STEP_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const E2E_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function fmt(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }

  render(labels: Record<string, string>): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket${labelText({ ...labels, le: fmt(le) })} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${this.count}`);
    lines.push(`${this.name}_sum${labelText(labels)} ${fmt(this.sum)}`, `${this.name}_count${labelText(labels)} ${this.count}`);
    return lines.join('\n');
  }
}

/** The KV memory, read when /metrics is scraped. */
export interface KvMemory {
  /** Bytes of the caches running generations hold. */
  inUse: number;
  /** Bytes of every cache held, idle ones kept for prefix caching included. */
  held: number;
  budget: number;
  /** Generations whose caches the budget holds. */
  sessions: number;
}

export type RequestOutcome = 'stop' | 'length' | 'abort' | 'error';

export class ServerMetrics {
  running = 0;
  waiting = 0;
  promptTokens = 0;
  /** Of the prompt tokens, those whose KV came from the prefix cache. */
  cachedPromptTokens = 0;
  generationTokens = 0;
  /** Set once the model is loaded. */
  kv: (() => KvMemory) | null = null;
  /** Finished requests by endpoint and outcome. */
  private readonly finished = new Map<string, number>();
  /** Refused requests (4xx/5xx before generating) by HTTP status. */
  private readonly refused = new Map<number, number>();
  /** Requests whose client went away while they waited for a slot, by endpoint. */
  private readonly abortedWaiting = new Map<string, number>();
  readonly ttft = new Histogram('lithe_time_to_first_token_seconds', 'Time from request arrival to the first generated token.', TTFT_BUCKETS);
  readonly itl = new Histogram('lithe_inter_token_latency_seconds', 'Time between consecutive generated tokens.', ITL_BUCKETS);
  readonly queueTime = new Histogram('lithe_request_queue_time_seconds', 'Time a request waited for a generation slot (admission).', QUEUE_BUCKETS);
  readonly batchSize = new Histogram('lithe_batch_size', 'Generations in each batched model step (decode rows and prefill chunks together).', BATCH_BUCKETS);
  readonly stepTokens = new Histogram('lithe_batch_step_tokens', 'New tokens in each batched model step.', STEP_TOKEN_BUCKETS);
  readonly stepTime = new Histogram('lithe_batch_step_seconds', 'Model time of each batched step: the forward over every row and reading its logits back.', STEP_SECONDS_BUCKETS);
  readonly stepGap = new Histogram(
    'lithe_batch_step_gap_seconds',
    'Time the model sat idle before each batched step while generations were running: sampling, streaming and scheduling between steps.',
    STEP_SECONDS_BUCKETS,
  );
  readonly e2e = new Histogram('lithe_e2e_request_latency_seconds', 'Time from request arrival to the end of its generation.', E2E_BUCKETS);

  constructor(private readonly modelId: string) {}

  requestFinished(endpoint: 'chat' | 'completion', outcome: RequestOutcome): void {
    const key = `${endpoint}\u0000${outcome}`;
    this.finished.set(key, (this.finished.get(key) ?? 0) + 1);
  }

  requestAbortedWaiting(endpoint: 'chat' | 'completion'): void {
    this.abortedWaiting.set(endpoint, (this.abortedWaiting.get(endpoint) ?? 0) + 1);
  }

  requestRefused(status: number): void {
    this.refused.set(status, (this.refused.get(status) ?? 0) + 1);
  }

  render(): string {
    const model = { model_name: this.modelId };
    const scalar = (name: string, type: 'gauge' | 'counter', help: string, value: number) =>
      `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name}${labelText(model)} ${fmt(value)}`;
    const blocks = [
      scalar('lithe_num_requests_running', 'gauge', 'Requests generating now.', this.running),
      scalar('lithe_num_requests_waiting', 'gauge', 'Requests waiting for a generation slot.', this.waiting),
      scalar('lithe_prompt_tokens_total', 'counter', 'Prompt tokens processed.', this.promptTokens),
      scalar('lithe_prompt_tokens_cached_total', 'counter', 'Prompt tokens whose keys and values came from the prefix cache instead of the prefill.', this.cachedPromptTokens),
      scalar('lithe_generation_tokens_total', 'counter', 'Tokens generated.', this.generationTokens),
    ];
    const kv = this.kv?.();
    if (kv) {
      blocks.push(
        scalar('lithe_kv_cache_bytes_in_use', 'gauge', 'Bytes of KV cache held by running generations.', kv.inUse),
        scalar('lithe_kv_cache_bytes', 'gauge', 'Bytes of KV cache held, idle caches kept for prefix caching included.', kv.held),
        scalar('lithe_kv_cache_budget_bytes', 'gauge', 'The KV memory budget (--kv-budget).', kv.budget),
        scalar('lithe_kv_cache_sessions', 'gauge', 'Generations whose KV caches fit in the budget.', kv.sessions),
      );
    }
    const finished = ['# HELP lithe_requests_total Requests that ran a generation, by endpoint and how it ended.', '# TYPE lithe_requests_total counter'];
    for (const [key, n] of this.finished) {
      const [endpoint, outcome] = key.split('\u0000');
      finished.push(`lithe_requests_total${labelText({ ...model, endpoint, outcome })} ${n}`);
    }
    const refused = ['# HELP lithe_requests_refused_total Requests answered with an error before generating, by HTTP status.', '# TYPE lithe_requests_refused_total counter'];
    for (const [status, n] of this.refused) refused.push(`lithe_requests_refused_total${labelText({ ...model, status: String(status) })} ${n}`);
    const aborted = ['# HELP lithe_requests_aborted_waiting_total Requests whose client went away while they waited for a slot, by endpoint.', '# TYPE lithe_requests_aborted_waiting_total counter'];
    for (const [endpoint, n] of this.abortedWaiting) aborted.push(`lithe_requests_aborted_waiting_total${labelText({ ...model, endpoint })} ${n}`);
    blocks.push(finished.join('\n'), refused.join('\n'), aborted.join('\n'), this.ttft.render(model), this.itl.render(model), this.queueTime.render(model), this.batchSize.render(model), this.stepTokens.render(model), this.stepTime.render(model), this.stepGap.render(model), this.e2e.render(model));
    return blocks.join('\n') + '\n';
  }
}

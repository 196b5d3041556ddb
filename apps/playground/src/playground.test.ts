import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, preview, type PreviewServer } from 'vite';
import type { Page } from 'playwright-core';
import { hasChromium, launchChromium, type Chromium } from '@lithe/browser-check/chromium';

// The built playground in headless Chromium: load the fixture, type, send, watch the answer stream
// in, stop it. CI installs Chromium; without it this skips.
const root = fileURLToPath(new URL('..', import.meta.url));
const artifacts = fileURLToPath(new URL('../../../tooling/browser-check/artifacts/', import.meta.url));

describe.skipIf(!hasChromium())('playground', () => {
  let server: PreviewServer;
  let browser: Chromium;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    await build({ root, logLevel: 'silent' });
    server = await preview({ root, logLevel: 'silent', preview: { port: 0, host: '127.0.0.1' } });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.resolvedUrls!.local[0]);
  });

  afterAll(async () => {
    if (page) {
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: `${artifacts}playground.png` });
    }
    await browser?.close();
    await new Promise<void>((resolve) => server?.httpServer.close(() => resolve()));
  });

  it('loads the fixture on wasm threads with techniques, with the memory by use', async () => {
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await page.selectOption('#backend', 'wasm');
    await page.fill('#threads', '2');
    // Every technique the page offers, together: NF4 weights, kv-quant's cache read by flash-attn's
    // kernels, and speculative decoding by prompt lookup.
    await page.check('#nf4');
    await page.check('#kv-quant');
    await page.check('#flash-attn');
    await page.check('#prompt-lookup');
    await page.click('#load');
    await page.waitForSelector('#load-status:has-text("Ready")');
    expect(await page.textContent('#load-status')).toMatch(/Ready: 4 layers, .* on wasm \(2 threads\)\./);
    expect(await page.textContent('#mem-total')).toMatch(/MiB now/);
    expect(await page.$$eval('#membar div', (d) => d.length)).toBeGreaterThan(0);
  });

  it('type, send: the answer streams in, with TTFT and tok/s; Stop ends a long one', async () => {
    await page.fill('#prompt', 'Tell me about the jury.');
    await page.click('#send');
    await page.waitForSelector('.message.assistant:not(.streaming)');
    expect(await page.textContent('.message.user')).toBe('Tell me about the jury.');
    expect((await page.textContent('.message.assistant'))!.length).toBeGreaterThan(0);
    expect(await page.textContent('#stat-ttft')).toMatch(/^\d+ ms$/);
    expect(Number(await page.textContent('#stat-speed'))).toBeGreaterThan(0);

    await page.fill('#prompt', 'And then?');
    await page.click('#send');
    // Stop as soon as a few tokens have streamed in.
    await page.waitForFunction(() => Number(document.querySelector('#stat-tokens')?.textContent) >= 3 && !!document.querySelector('.message.assistant.streaming'));
    await page.click('#stop');
    await page.waitForSelector('.message.assistant:nth-of-type(4):not(.streaming)');
    expect(await page.getAttribute('.message.assistant:nth-of-type(4)', 'data-finish')).toBe('abort');
    expect(errors).toEqual([]);
  });
});

/** Messages between the server and its prompt worker thread (prompt-worker.ts, prompt-worker-thread.ts). */
import type { ChatMessage, CreateTokenizerOptions, RenderChatTemplateOptions } from '@lithe/core';

export interface ThreadData {
  /** The model to take the tokenizer files from (a directory or a .gguf file); none: render only. */
  model: string | null;
  /** What the pipeline's tokenizer was made with beyond its files. */
  tokenizer: CreateTokenizerOptions;
}

export type Job =
  /** Render a template over messages given as they are. */
  | { id: number; kind: 'render'; template: string; messages: ChatMessage[]; options: RenderChatTemplateOptions }
  /** Break special literals in the messages, render, bound the length, tokenize. */
  | { id: number; kind: 'chat'; template: string; messages: ChatMessage[]; options: RenderChatTemplateOptions; maxChars: number }
  /** Tokenize a raw prompt as Pipeline.encode does (with the tokenizer's special tokens). */
  | { id: number; kind: 'encode'; text: string };

export type Reply =
  | { ready: true; encodes: boolean }
  | { startupError: string }
  /** The template starts / has finished rendering: the time budget covers just that. */
  | { id: number; phase: 'render' | 'rendered' }
  | { id: number; text: string }
  | { id: number; ids: Int32Array }
  | { id: number; tooLong: number }
  | { id: number; error: string };

/**
 * Real local model backend: runs GGUF models in-process through node-llama-cpp's prebuilt llama.cpp
 * binaries (CPU only). It never downloads or compiles anything: `build: "never"` + `skipDownload`
 * make node-llama-cpp throw instead of falling back to a source build when no prebuilt binary fits.
 *
 * Per model: one LlamaModel, one LlamaContext with `sequences` context sequences (default 1), and a
 * FIFO pool so each sequence runs one generation at a time. On a 2-core machine one sequence and one
 * thread per model is the right default (see docs/farm-llama.md).
 *
 * Prompting: when the GGUF carries `tokenizer.chat_template`, that Jinja template is rendered as
 * written (node-llama-cpp's JinjaTemplateChatWrapper; its built-in resolution only if it fails to parse);
 * otherwise a plain "### System / ### Human / ### Assistant" template (GeneralChatWrapper) is used.
 * Token pieces, per-token logprobs (the sampler's probability of the chosen token, from llama.cpp),
 * optional top logprobs, and token counts all come from the model's own tokenizer.
 */
import { open, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import {
  getLlama,
  resolveChatWrapper,
  GeneralChatWrapper,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  SpecialToken,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type LlamaText,
  type Token,
} from 'node-llama-cpp';
import type { Backend, GenerateRequest, GeneratedAnswer, GeneratedToken, ChatMessage } from './types.js';

export interface LlamaModelConfig {
  /** Model name the farm serves (the request's `model`). */
  name: string;
  /** Path to the GGUF file (relative paths resolve against the working directory). */
  gguf: string;
  /** Threads for evaluation. Default 1 (on 2 cores, 1 per model beats the library default by far). */
  threads?: number;
  /** Context size in tokens. Default min(the model's training context, 4096). */
  contextSize?: number;
  /** Default and upper bound for generated tokens per request. Default 256. */
  maxTokens?: number;
  /** Parallel context sequences (a small pool). Default 1: requests for this model run one at a time. */
  sequences?: number;
  /** Temperature when the request has none. Default 0 (greedy, deterministic). */
  temperature?: number;
  /** Sampling seed used when temperature > 0. Default 0, so equal requests give equal answers. */
  seed?: number;
}

export interface LlamaBackendOptions {
  models: LlamaModelConfig[];
  /** llama.cpp log level. Default 'warn'. */
  logLevel?: 'disabled' | 'fatal' | 'error' | 'warn' | 'info' | 'log' | 'debug';
}

export interface LlamaModelInfo {
  name: string;
  gguf: string;
  threads: number;
  contextSize: number;
  sequences: number;
  /** Name of the chat wrapper in use: "JinjaTemplate" (the GGUF's template) or "General" (plain). */
  chatTemplate: string;
  /** True when the template came from the GGUF's tokenizer.chat_template. */
  templateFromGguf: boolean;
  trainContextSize: number;
  /** Size of the model's weights in memory, as node-llama-cpp reports it. */
  modelBytes: number;
  /** Wall time of model + context load. */
  loadMs: number;
  /** How llama.cpp was obtained: always "prebuilt" here (building is disabled). */
  binary: 'prebuilt' | 'localBuild';
}

export interface LlamaBackend extends Backend {
  readonly kind: 'llama';
  /** Load-time facts about each model (for logs, the model list and docs). */
  info(): LlamaModelInfo[];
  /** The prompt exactly as the model sees it (special tokens rendered), or null for an unknown model. */
  renderPrompt(model: string, messages: ChatMessage[]): string | null;
  /** Disposes contexts, models and (when no other llama backend is live) the llama.cpp instance. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MAX_TOKENS = 256;
const DEFAULT_CONTEXT_CAP = 4096;
const MAX_TOP_LOGPROBS = 20;

const LOG_LEVELS: Record<NonNullable<LlamaBackendOptions['logLevel']>, LlamaLogLevel> = {
  disabled: LlamaLogLevel.disabled,
  fatal: LlamaLogLevel.fatal,
  error: LlamaLogLevel.error,
  warn: LlamaLogLevel.warn,
  info: LlamaLogLevel.info,
  log: LlamaLogLevel.log,
  debug: LlamaLogLevel.debug,
};

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('llama backend: generation aborted');
  err.name = 'AbortError';
  return err;
}

/** FIFO pool of context sequences: a request waits for a free sequence, honouring its AbortSignal. */
class SequencePool {
  private readonly free: LlamaContextSequence[];
  private readonly waiters: {
    resolve: (s: LlamaContextSequence) => void;
    reject: (e: Error) => void;
    signal?: AbortSignal;
    onAbort?: () => void;
  }[] = [];
  private closed = false;

  constructor(sequences: LlamaContextSequence[]) {
    this.free = [...sequences];
  }

  acquire(signal?: AbortSignal): Promise<LlamaContextSequence> {
    if (this.closed) return Promise.reject(new Error('llama backend: closed'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const seq = this.free.shift();
    if (seq) return Promise.resolve(seq);
    return new Promise((resolve, reject) => {
      const waiter: (typeof this.waiters)[number] = { resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(abortError(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  release(seq: LlamaContextSequence): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.signal && next.onAbort) next.signal.removeEventListener('abort', next.onAbort);
      next.resolve(seq);
    } else this.free.push(seq);
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.reject(new Error('llama backend: closed'));
    }
  }
}

interface StopTriggers {
  /** Plain-text triggers, matched on the generated text. */
  texts: string[];
  /** Triggers containing special tokens, matched on the generated token ids. */
  tokens: Token[][];
}

interface LoadedModel {
  cfg: Required<Omit<LlamaModelConfig, 'contextSize'>> & { gguf: string };
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool;
  wrapper: ChatWrapper;
  info: LlamaModelInfo;
  /** Set by close(): running generations stop at their next token. */
  closing: boolean;
}

function validateConfig(cfg: LlamaModelConfig, index: number): void {
  const where = `llama backend: models[${index}]`;
  if (typeof cfg.name !== 'string' || cfg.name.trim() === '') throw new Error(`${where}: name must be a non-empty string`);
  if (typeof cfg.gguf !== 'string' || cfg.gguf.trim() === '') throw new Error(`${where} (${cfg.name}): gguf must be a path to a GGUF file`);
  const positiveInt = (key: 'threads' | 'contextSize' | 'maxTokens' | 'sequences') => {
    const v = cfg[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`${where} (${cfg.name}): ${key} must be a positive integer, got ${v}`);
  };
  positiveInt('threads');
  positiveInt('contextSize');
  positiveInt('maxTokens');
  positiveInt('sequences');
  if (cfg.temperature !== undefined && !(cfg.temperature >= 0)) throw new Error(`${where} (${cfg.name}): temperature must be >= 0`);
}

/** Checks the file exists and starts with the GGUF magic, so the common mistakes get a clear reason. */
async function checkGgufFile(path: string): Promise<void> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error('not a regular file');
    size = s.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'file not found' : errorMessage(err), { cause: err });
  }
  if (size < 24) throw new Error(`not a GGUF file (only ${size} bytes)`);
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (head.toString('latin1') !== 'GGUF') throw new Error(`not a GGUF file (magic ${JSON.stringify(head.toString('latin1'))}, expected "GGUF")`);
  } finally {
    await fh.close();
  }
}

function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  for (const m of messages) {
    switch (m.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text: m.content });
        break;
      case 'user':
        history.push({ type: 'user', text: m.content });
        break;
      case 'tool':
        history.push({ type: 'user', text: `Tool result:\n${m.content}` });
        break;
      case 'assistant':
        history.push({ type: 'model', response: [m.content] });
        break;
    }
  }
  // The model answers next: an open, empty model turn at the end (as node-llama-cpp's LlamaChat does).
  history.push({ type: 'model', response: [] });
  return history;
}

function resolveStopTriggers(triggers: readonly LlamaText[], model: LlamaModel): StopTriggers {
  const out: StopTriggers = { texts: [], tokens: [] };
  for (const t of triggers) {
    if (t.values.every((v) => typeof v === 'string')) {
      const s = (t.values as readonly string[]).join('');
      if (s !== '') out.texts.push(s);
    } else {
      const toks = t.tokenize(model.tokenizer, 'trimLeadingSpace');
      if (toks.length > 0) out.tokens.push(toks);
    }
  }
  return out;
}

function endsWithTokens(hay: readonly Token[], needle: readonly Token[]): boolean {
  if (needle.length > hay.length) return false;
  const off = hay.length - needle.length;
  for (let i = 0; i < needle.length; i++) if (hay[off + i] !== needle[i]) return false;
  return true;
}

function promptTokensFor(m: LoadedModel, messages: ChatMessage[]) {
  const state = m.wrapper.generateContextState({ chatHistory: toChatHistory(messages) });
  const promptTokens = state.contextText.tokenize(m.model.tokenizer);
  // node-llama-cpp's built-in wrappers always open with BOS; honour the GGUF's add_bos_token = false
  // (e.g. SmolLM2, whose BOS is <|im_start|> and would otherwise appear twice).
  const first = state.contextText.values[0];
  if (!m.model.tokens.shouldPrependBosToken && first instanceof SpecialToken && first.value === 'BOS' && promptTokens[0] === m.model.tokens.bos) {
    promptTokens.shift();
  }
  return { state, promptTokens };
}

/**
 * Keeps the last few llama.cpp error lines so load failures can say why ("Failed to load model" alone
 * does not), and prints llama.cpp logs to stderr down to the most verbose level any live backend asked for.
 */
class LlamaLogTail {
  private lines: string[] = [];
  /** One entry per live backend. */
  readonly printLevels: LlamaLogLevel[] = [];

  get printLevel(): LlamaLogLevel {
    let best: LlamaLogLevel = LlamaLogLevel.disabled;
    for (const l of this.printLevels) if (LOG_ORDER.indexOf(l) > LOG_ORDER.indexOf(best)) best = l;
    return best;
  }

  /** The level llama.cpp must forward at: the print level, but never quieter than errors. */
  get receiveLevel(): LlamaLogLevel {
    const p = this.printLevel;
    return LOG_ORDER.indexOf(p) < LOG_ORDER.indexOf(LlamaLogLevel.error) ? LlamaLogLevel.error : p;
  }

  readonly logger = (level: LlamaLogLevel, message: string): void => {
    const text = message.trim();
    if (text === '') return;
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) {
      this.lines.push(text);
      if (this.lines.length > 8) this.lines.shift();
    }
    if (LOG_ORDER.indexOf(level) <= LOG_ORDER.indexOf(this.printLevel)) process.stderr.write(`[node-llama-cpp] ${text}\n`);
  };

  mark(): number {
    return this.lines.length;
  }

  /** Error lines logged since `mark` (native logs arrive asynchronously, so wait a moment first). */
  async since(mark: number): Promise<string> {
    await new Promise((r) => setTimeout(r, 20));
    return this.lines.slice(Math.min(mark, this.lines.length)).join('; ');
  }
}

/**
 * One Llama per process, shared by all llama backends: the native addon and its log callback are
 * process-wide anyway, and getLlama() costs ~0.5 s. Disposed when the last backend closes.
 */
let shared: { llama: Promise<Llama>; logs: LlamaLogTail; users: number } | undefined;

async function acquireLlama(printLevel: LlamaLogLevel): Promise<{ llama: Llama; logs: LlamaLogTail }> {
  if (!shared) {
    const logs = new LlamaLogTail();
    const llama = getLlama({
      gpu: false,
      build: 'never',
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      // Threads are set per context; no global cap, so each model's `threads` is what it really uses.
      maxThreads: 0,
      logLevel: LlamaLogLevel.error,
      logger: logs.logger,
    });
    const entry = { llama, logs, users: 0 };
    shared = entry;
    llama.catch(() => {
      if (shared === entry) shared = undefined;
    });
  }
  const entry = shared;
  entry.users++;
  entry.logs.printLevels.push(printLevel);
  try {
    const llama = await entry.llama;
    llama.logLevel = entry.logs.receiveLevel;
    return { llama, logs: entry.logs };
  } catch (err) {
    await releaseLlama(entry.logs, printLevel);
    throw new Error(
      `llama backend: cannot load node-llama-cpp's prebuilt CPU binaries (@node-llama-cpp/<platform>); building from source is disabled: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

async function releaseLlama(logs: LlamaLogTail, printLevel: LlamaLogLevel): Promise<void> {
  const entry = shared;
  if (!entry || entry.logs !== logs) return;
  const i = logs.printLevels.indexOf(printLevel);
  if (i >= 0) logs.printLevels.splice(i, 1);
  entry.users--;
  if (entry.users > 0) {
    const llama = await entry.llama.catch(() => undefined);
    if (llama && !llama.disposed) llama.logLevel = logs.receiveLevel;
    return;
  }
  shared = undefined;
  const llama = await entry.llama.catch(() => undefined);
  await llama?.dispose().catch(() => undefined);
}

const LOG_ORDER: LlamaLogLevel[] = [
  LlamaLogLevel.disabled,
  LlamaLogLevel.fatal,
  LlamaLogLevel.error,
  LlamaLogLevel.warn,
  LlamaLogLevel.info,
  LlamaLogLevel.log,
  LlamaLogLevel.debug,
];

async function loadOne(llama: Llama, logs: LlamaLogTail, raw: LlamaModelConfig): Promise<LoadedModel> {
  const gguf = resolvePath(raw.gguf);
  const threads = raw.threads ?? 1;
  const sequences = raw.sequences ?? 1;
  const fail = (reason: string, cause?: unknown): Error =>
    new Error(`llama backend: cannot load model "${raw.name}" from GGUF ${gguf}: ${reason}`, cause === undefined ? undefined : { cause });

  const t0 = performance.now();
  try {
    await checkGgufFile(gguf);
  } catch (err) {
    throw fail(errorMessage(err), err);
  }
  let model: LlamaModel;
  const mark = logs.mark();
  try {
    model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: true });
  } catch (err) {
    const detail = await logs.since(mark);
    throw fail(detail === '' ? errorMessage(err) : `${errorMessage(err)} (llama.cpp: ${detail})`, err);
  }
  try {
    const trainContextSize = model.trainContextSize;
    const contextSize = raw.contextSize ?? Math.min(trainContextSize > 0 ? trainContextSize : DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
    let context: LlamaContext;
    try {
      context = await model.createContext({
        contextSize,
        sequences,
        threads,
        batchSize: Math.min(512, contextSize),
        failedCreationRemedy: false,
      });
    } catch (err) {
      throw fail(`cannot create a context of ${contextSize} tokens: ${errorMessage(err)}`, err);
    }
    const seqs: LlamaContextSequence[] = [];
    for (let i = 0; i < sequences; i++) seqs.push(context.getSequence());

    const template = model.fileInfo.metadata.tokenizer?.chat_template;
    const templateFromGguf = typeof template === 'string' && template.trim() !== '';
    const wrapper: ChatWrapper = templateFromGguf
      ? // The GGUF's own Jinja template, rendered as written; falls back to node-llama-cpp's resolution if it cannot be parsed.
        resolveChatWrapper(model, { type: 'jinjaTemplate', warningLogs: false })
      : new GeneralChatWrapper();

    const info: LlamaModelInfo = {
      name: raw.name,
      gguf,
      threads,
      contextSize: context.contextSize,
      sequences,
      chatTemplate: wrapper.wrapperName,
      templateFromGguf,
      trainContextSize,
      modelBytes: model.size,
      loadMs: Math.round(performance.now() - t0),
      binary: llama.buildType,
    };
    return {
      cfg: {
        name: raw.name,
        gguf,
        threads,
        maxTokens: raw.maxTokens ?? DEFAULT_MAX_TOKENS,
        sequences,
        temperature: raw.temperature ?? 0,
        seed: raw.seed ?? 0,
      },
      llama,
      model,
      context,
      pool: new SequencePool(seqs),
      wrapper,
      info,
      closing: false,
    };
  } catch (err) {
    await model.dispose().catch(() => undefined);
    throw err;
  }
}

/** Compiled JSON-schema grammars per llama.cpp instance, bounded: an app sends few distinct schemas. */
const grammarCache = new WeakMap<Llama, Map<string, Promise<LlamaGrammar | null>>>();

/**
 * A grammar that makes the model's output match `response_format: json_schema`, as llama.cpp's own
 * server does. null for a schema node-llama-cpp cannot turn into a grammar: the model then answers
 * unconstrained and the caller's schema check decides.
 */
function grammarFor(llama: Llama, schema: unknown): Promise<LlamaGrammar | null> {
  const key = JSON.stringify(schema);
  let grammars = grammarCache.get(llama);
  if (!grammars) grammarCache.set(llama, (grammars = new Map()));
  let grammar = grammars.get(key);
  if (!grammar) {
    grammar = llama.createGrammarForJsonSchema(schema as Parameters<Llama['createGrammarForJsonSchema']>[0]).catch(() => null);
    if (grammars.size >= 64) grammars.delete(grammars.keys().next().value!);
    grammars.set(key, grammar);
  }
  return grammar;
}

async function generateWith(m: LoadedModel, req: GenerateRequest): Promise<GeneratedAnswer> {
  const { model } = m;
  const { state, promptTokens } = promptTokensFor(m, req.messages);
  const contextSize = m.context.contextSize;
  if (promptTokens.length >= contextSize) {
    throw new Error(
      `llama backend: prompt for model "${m.cfg.name}" has ${promptTokens.length} tokens, which does not fit its context of ${contextSize} tokens`,
    );
  }
  const requested = Math.min(req.maxTokens ?? m.cfg.maxTokens, m.cfg.maxTokens);
  const budget = Math.max(0, Math.min(requested, contextSize - promptTokens.length));
  const grammar = req.jsonSchema === undefined ? null : await grammarFor(m.llama, req.jsonSchema);
  // A JSON grammar lets whitespace follow the value; its own trigger (blank lines) ends the answer.
  const grammarStops = (grammar?.stopGenerationTriggers ?? []).filter((t): t is LlamaText => typeof t === 'object' && 'values' in t);
  const stops = resolveStopTriggers([...state.stopGenerationTriggers, ...grammarStops], model);
  const longestTextStop = stops.texts.reduce((n, s) => Math.max(n, s.length), 0);
  const temperature = req.temperature ?? m.cfg.temperature;
  const topN = req.wantLogprobs ? Math.max(0, Math.min(MAX_TOP_LOGPROBS, Math.floor(req.topLogprobs))) : 0;
  const lastPromptTokens = promptTokens.slice(-8);

  const out = new PieceBuilder(model, lastPromptTokens);
  const logprobs: (number | undefined)[] = [];
  const tops: ({ token: string; logprob: number }[] | undefined)[] = [];
  let finishReason: 'stop' | 'length' = 'stop';
  const tokenAt = (i: number): GeneratedToken => {
    const t: GeneratedToken = { text: out.pieces[i]! };
    const lp = logprobs[i];
    if (lp !== undefined) t.logprob = lp;
    const top = tops[i];
    if (top !== undefined) t.topLogprobs = top;
    return t;
  };
  /**
   * Hands tokens to `req.onToken` once nothing can change them any more: a stop trigger may still
   * remove the last tokens (as many as the longest token trigger, as many characters as the longest
   * text trigger), and a grammar's trailing whitespace is trimmed at the end.
   */
  let emitted = 0;
  const holdTokens = stops.tokens.reduce((n, t) => Math.max(n, t.length), 0);
  const emit = (final: boolean) => {
    if (!req.onToken) return;
    let safe = out.tokens.length;
    if (!final) {
      safe -= holdTokens;
      for (let chars = 0; safe > emitted && chars < longestTextStop;) chars += out.pieces[--safe]!.length;
      if (grammar?.trimWhitespaceSuffix) while (safe > emitted && out.pieces[safe - 1]!.trim() === '') safe--;
    }
    for (; emitted < safe; emitted++) req.onToken(tokenAt(emitted));
  };

  if (budget > 0) {
    const seq = await m.pool.acquire(req.signal);
    try {
      // Reuse the cached prefix (e.g. a shared system prompt); evaluate at least one token to get logits.
      const { firstDifferentIndex } = seq.compareContextTokens(promptTokens);
      const keep = Math.min(firstDifferentIndex, promptTokens.length - 1);
      if (seq.nextTokenIndex > keep) await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);

      const iterator = seq.evaluateWithMetadata(
        promptTokens.slice(keep),
        { confidence: true, probabilities: topN > 0 },
        {
          temperature,
          ...(temperature > 0 ? { seed: m.cfg.seed } : {}),
          ...(grammar ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model, grammar }) } : {}),
        },
      );
      for await (const next of iterator) {
        if (req.signal?.aborted || m.closing) break;
        const textBefore = out.text.length;
        out.push(next.token);
        logprobs.push(next.confidence > 0 ? Math.log(next.confidence) : undefined);
        if (topN > 0) {
          const probs = (next as { probabilities?: Map<Token, number> }).probabilities;
          const list: { token: string; logprob: number }[] = [];
          for (const [tok, p] of probs ?? []) {
            if (list.length >= topN || p <= 0) break;
            list.push({ token: model.detokenize([tok], false, lastPromptTokens), logprob: Math.log(p) });
          }
          tops.push(list);
        } else tops.push(undefined);

        const tokenStop = stops.tokens.find((t) => endsWithTokens(out.tokens, t));
        if (tokenStop) {
          out.truncateTokens(out.tokens.length - tokenStop.length);
          break;
        }
        if (longestTextStop > 0 && out.text.length > textBefore) {
          const from = Math.max(0, textBefore - longestTextStop + 1);
          let at = -1;
          for (const s of stops.texts) {
            const i = out.text.indexOf(s, from);
            if (i >= 0 && (at < 0 || i < at)) at = i;
          }
          if (at >= 0) {
            out.truncateText(at);
            break;
          }
        }
        if (out.tokens.length >= budget) {
          finishReason = 'length';
          break;
        }
        emit(false);
      }
    } finally {
      m.pool.release(seq);
    }
    if (req.signal?.aborted) throw abortError(req.signal);
    if (m.closing) throw new Error('llama backend: closed during generation');
  } else finishReason = 'length';

  out.finish();
  if (grammar?.trimWhitespaceSuffix) out.truncateText(out.text.trimEnd().length);
  emit(true);
  const tokens: GeneratedToken[] = out.pieces.map((_, i) => tokenAt(i));
  return {
    text: out.text,
    tokens,
    inputTokens: promptTokens.length,
    outputTokens: tokens.length,
    finishReason,
    simulated: false,
  };
}

/**
 * Incremental detokenizer: one text piece per generated token, the pieces joined are `text`.
 * Tokens are detokenized with the preceding tokens as context (so SentencePiece word-start spaces
 * come out right). A token that ends inside a multi-byte UTF-8 character gets an empty piece; the
 * character goes to the token that completes it. Linear in the number of tokens.
 * Exported for tests only.
 */
export class PieceBuilder {
  readonly tokens: Token[] = [];
  readonly pieces: string[] = [];
  text = '';
  /** First token whose text is not emitted yet (an incomplete UTF-8 sequence). */
  private pendingStart = 0;

  constructor(
    private readonly model: Pick<LlamaModel, 'detokenize'>,
    private readonly promptTail: Token[],
  ) {}

  private contextFor(start: number): Token[] {
    return start === 0 ? this.promptTail : this.tokens.slice(Math.max(0, start - 8), start);
  }

  push(token: Token): void {
    this.tokens.push(token);
    const start = this.pendingStart;
    const chunk = this.model.detokenize(this.tokens.slice(start), false, this.contextFor(start));
    // A UTF-8 character spans at most 4 byte tokens; past that, emit whatever the bytes decode to.
    if (chunk.endsWith('\uFFFD') && this.tokens.length - start < 4) {
      this.pieces.push('');
      return;
    }
    this.pieces.push(chunk);
    this.text += chunk;
    this.pendingStart = this.tokens.length;
  }

  /**
   * Ends the answer. Bytes of a character that never completed (the budget ran out inside it) are
   * dropped, as llama.cpp's server does, rather than emitted as U+FFFD: their tokens keep empty pieces.
   */
  finish(): void {
    this.pendingStart = this.tokens.length;
  }

  /** Keeps the first `count` tokens (a token stop trigger matched after them). */
  truncateTokens(count: number): void {
    this.tokens.length = count;
    this.pieces.length = count;
    this.pendingStart = Math.min(this.pendingStart, count);
    this.text = this.pieces.join('');
  }

  /** Cuts the text at `at` (a text stop trigger starts there): tokens starting at or after it go. */
  truncateText(at: number): void {
    let offset = 0;
    let keep = 0;
    for (; keep < this.pieces.length; keep++) {
      const piece = this.pieces[keep]!;
      if (offset + piece.length > at || (piece.length === 0 && offset >= at)) break;
      offset += piece.length;
    }
    // Token `keep` straddles the stop (or starts at it): keep its part before the stop, if any.
    if (keep < this.pieces.length && offset < at) {
      this.pieces[keep] = this.pieces[keep]!.slice(0, at - offset);
      keep++;
    }
    this.tokens.length = keep;
    this.pieces.length = keep;
    this.pendingStart = keep;
    this.text = this.pieces.join('');
  }
}

/**
 * Loads every configured GGUF with node-llama-cpp's prebuilt CPU binaries (never builds, never downloads).
 * Rejects with an error naming the GGUF path and the reason when a model cannot be loaded;
 * models loaded before the failure are disposed.
 */
export async function createLlamaBackend(options: LlamaBackendOptions): Promise<LlamaBackend> {
  if (!options || !Array.isArray(options.models) || options.models.length === 0) {
    throw new Error('llama backend: options.models must list at least one {name, gguf} model');
  }
  const names = new Set<string>();
  options.models.forEach((cfg, i) => {
    validateConfig(cfg, i);
    if (names.has(cfg.name)) throw new Error(`llama backend: model name "${cfg.name}" is configured twice`);
    names.add(cfg.name);
  });

  const printLevel = LOG_LEVELS[options.logLevel ?? 'warn'];
  const { llama, logs } = await acquireLlama(printLevel);

  const loaded = new Map<string, LoadedModel>();
  try {
    // Sequentially: loading is I/O + memory bound, and errors then name the first bad model.
    for (const cfg of options.models) loaded.set(cfg.name, await loadOne(llama, logs, cfg));
  } catch (err) {
    for (const m of loaded.values()) await disposeModel(m);
    await releaseLlama(logs, printLevel);
    throw err;
  }

  let closed = false;
  let closing: Promise<void> | undefined;
  const inflight = new Set<Promise<unknown>>();
  return {
    kind: 'llama',
    models: () => [...loaded.keys()],
    info: () => [...loaded.values()].map((m) => ({ ...m.info })),
    renderPrompt(model: string, messages: ChatMessage[]): string | null {
      const m = loaded.get(model);
      if (!m) return null;
      return m.model.detokenize(promptTokensFor(m, messages).promptTokens, true);
    },
    async generate(req: GenerateRequest): Promise<GeneratedAnswer | null> {
      if (closed) throw new Error('llama backend: closed');
      const m = loaded.get(req.model);
      if (!m) return null;
      if (req.signal?.aborted) throw abortError(req.signal);
      const run = generateWith(m, req);
      inflight.add(run);
      try {
        return await run;
      } finally {
        inflight.delete(run);
      }
    },
    close(): Promise<void> {
      closed = true;
      closing ??= (async () => {
        // Stop queued and running generations (they end at their next token), then free native memory.
        for (const m of loaded.values()) {
          m.closing = true;
          m.pool.close();
        }
        await Promise.allSettled([...inflight]);
        for (const m of loaded.values()) await disposeModel(m);
        await releaseLlama(logs, printLevel);
      })();
      return closing;
    },
  };
}

async function disposeModel(m: LoadedModel): Promise<void> {
  m.pool.close();
  await m.context.dispose().catch(() => undefined);
  await m.model.dispose().catch(() => undefined);
}

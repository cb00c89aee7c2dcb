/**
 * The overhead benchmark's peer column: LiteLLM proxy with 1 and 2 worker processes in front of
 * the same farm pool, each asked non-streaming and streaming, with the same checks as the other
 * paths (a whole answer that ended with `stop`).
 */
import OpenAI from 'openai';
import type { CallResult } from './overhead-load.js';
import { ensureLiteLLM, LITELLM_VERSION, startLiteLLM, type Peer } from './peer-litellm.js';

const WORKERS = [1, 2] as const;

export interface PeerPath {
  id: string;
  label: string;
  workers: number;
  stream: boolean;
}

export const PEER_PATHS: PeerPath[] = WORKERS.flatMap((workers) =>
  [false, true].map((stream) => ({
    id: `litellm-${workers}w${stream ? '-stream' : ''}`,
    label: `peer: LiteLLM proxy ${LITELLM_VERSION}, ${workers} worker${workers === 1 ? '' : 's'}, ${stream ? 'streaming' : 'non-streaming'}`,
    workers,
    stream,
  })),
);

export const PEER_DESCRIPTION = `LiteLLM proxy ${LITELLM_VERSION}, ${WORKERS.join(' and ')} workers`;

export class PeerGateways {
  private constructor(
    private readonly proxies: Map<number, { peer: Peer; client: OpenAI }>,
    private readonly model: string,
    private readonly messages: OpenAI.ChatCompletionMessageParam[],
  ) {}

  /** Installs LiteLLM if needed and starts one proxy per worker count; `dir` holds their configs. */
  static async start(opts: {
    upstreamBaseUrl: string;
    model: string;
    messages: OpenAI.ChatCompletionMessageParam[];
    dir: string;
    say(s: string): void;
  }): Promise<PeerGateways> {
    await ensureLiteLLM(opts.say);
    opts.say(`starting ${PEER_DESCRIPTION} ...`);
    const proxies = new Map<number, { peer: Peer; client: OpenAI }>();
    const gateways = new PeerGateways(proxies, opts.model, opts.messages);
    try {
      for (const workers of WORKERS) {
        const peer = await startLiteLLM({ workers, model: opts.model, upstreamBaseUrl: opts.upstreamBaseUrl, dir: opts.dir });
        proxies.set(workers, { peer, client: new OpenAI({ baseURL: peer.baseUrl, apiKey: peer.apiKey, maxRetries: 0, timeout: 30_000 }) });
      }
    } catch (err) {
      await gateways.stop();
      throw err;
    }
    return gateways;
  }

  /** Pid of each proxy (its workers are its children), by name, for the CPU table. */
  pids(): Map<string, number> {
    return new Map([...this.proxies].map(([workers, { peer }]) => [`litellm:${workers}w`, peer.pid]));
  }

  call(path: PeerPath): () => Promise<CallResult> {
    const { client } = this.proxies.get(path.workers)!;
    const { model, messages } = this;
    return async () => {
      if (!path.stream) {
        const data = await client.chat.completions.create({ model, messages });
        if (data.choices[0]?.finish_reason !== 'stop') throw new Error(`answer ended with ${data.choices[0]?.finish_reason}`);
        return { workflowId: null };
      }
      const chunks = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } });
      let finish: string | null = null;
      for await (const chunk of chunks) finish = chunk.choices[0]?.finish_reason ?? finish;
      if (finish !== 'stop') throw new Error(`stream ended with ${finish}`);
      return { workflowId: null };
    };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.proxies.values()].map(({ peer }) => peer.stop()));
  }
}

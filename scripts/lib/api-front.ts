/**
 * The API port of `npm start`: a TCP pass-through in the npm start process to the API processes,
 * each listening on a private port of its own. It is what keeps the API available while API
 * processes crash and restart: a new connection goes to a live API process, and while none is up
 * (every one restarting at once) it waits here, up to HOLD_MS, instead of being refused. A
 * connection whose API process dies under it is closed, and the client's retry (the OpenAI SDK
 * retries twice by default) lands on a live one. Bytes are passed through untouched (HTTP,
 * SSE, keep-alive): no parsing, no second HTTP stack.
 *
 * Each API process having its own port also keeps the live-answer side channel right: model-call
 * workers post deltas back to the port the client's request came in on, which is that process's.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** How long a connection may wait for an API process to be up before it is closed. */
const HOLD_MS = 30_000;

export class ApiFront {
  private readonly backends = new Map<string, number>();
  private readonly waiting = new Set<() => void>();
  private next = 0;
  private server: Server | null = null;

  constructor(private readonly host: string) {}

  /** Listens on the public API port. */
  listen(port: number): Promise<void> {
    const server = (this.server = createServer((client) => this.accept(client)));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => resolve());
    });
  }

  /** An API process is ready on this port (a restarted one replaces its predecessor's entry). */
  up(name: string, port: number): void {
    this.backends.set(name, port);
    for (const wake of [...this.waiting]) wake();
  }

  down(name: string): void {
    this.backends.delete(name);
  }

  close(): Promise<void> {
    for (const wake of [...this.waiting]) wake();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private pick(): [string, number] | null {
    const live = [...this.backends];
    if (live.length === 0) return null;
    return live[this.next++ % live.length]!;
  }

  private accept(client: Socket): void {
    client.pause(); // what the client sends waits in the socket until a backend is connected
    client.on('error', () => client.destroy());
    const deadline = Date.now() + HOLD_MS;
    const attempt = () => {
      if (client.destroyed) return;
      const target = this.pick();
      if (!target) return this.wait(client, deadline, attempt);
      const [name, port] = target;
      const upstream = connect({ host: this.host, port });
      upstream.setNoDelay(true);
      client.setNoDelay(true);
      upstream.once('connect', () => {
        upstream.off('error', refused);
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      // Refused before any byte was passed on: that process is gone; another one (or a wait) is safe.
      const refused = () => {
        if (this.backends.get(name) === port) this.backends.delete(name);
        attempt();
      };
      upstream.once('error', refused);
    };
    attempt();
  }

  private wait(client: Socket, deadline: number, retry: () => void): void {
    const left = deadline - Date.now();
    if (left <= 0 || !this.server?.listening) {
      client.destroy();
      return;
    }
    const wake = () => {
      clearTimeout(timer);
      this.waiting.delete(wake);
      retry();
    };
    const timer = setTimeout(wake, left);
    this.waiting.add(wake);
  }
}

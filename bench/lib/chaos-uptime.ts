/**
 * Uptime of each process of the stack during a chaos run, from what the supervisor prints: a
 * process is down from "<name> (pid N) was killed" until "<name> pid M ready (restarted)". A role
 * (`api`, `router`, `pool:cpu`, ...) is up while at least one of its processes is.
 */
const KILLED = /^cascade\s+\| (\S+) \(pid \d+\) (was killed|exited)/;
const READY = /^cascade\s+\| (\S+) pid \d+ ready \(restarted\)/;

export class UptimeTracker {
  private readonly up = new Set<string>();
  private names: string[] = [];
  private readonly downMs = new Map<string, number>();
  private readonly downSince = new Map<string, number>();
  private readonly roleDownMs = new Map<string, number>();
  private readonly roleDownSince = new Map<string, number>();
  private startedAt: number | null = null;

  startWith(names: string[]): void {
    this.names = names;
    for (const n of names) this.up.add(n);
  }

  begin(): void {
    this.startedAt = Date.now();
  }

  isUp(name: string): boolean {
    return this.up.has(name);
  }

  allUp(): boolean {
    return this.names.every((n) => this.up.has(n));
  }

  onLine(line: string): void {
    const killed = KILLED.exec(line);
    const ready = READY.exec(line);
    const now = Date.now();
    if (killed && this.up.delete(killed[1]!)) {
      this.downSince.set(killed[1]!, now);
      const role = roleOf(killed[1]!);
      if (!this.roleUp(role)) this.roleDownSince.set(role, now);
    }
    if (ready && !this.up.has(ready[1]!)) {
      const role = roleOf(ready[1]!);
      if (!this.roleUp(role)) this.closeDown(this.roleDownSince, this.roleDownMs, role, now);
      this.up.add(ready[1]!);
      this.closeDown(this.downSince, this.downMs, ready[1]!, now);
    }
  }

  /** Share of the run each process and each role was up, keyed `api#1`, ..., `role api`, .... */
  end(): Record<string, number> {
    const now = Date.now();
    const total = Math.max(1, now - (this.startedAt ?? now));
    for (const name of [...this.downSince.keys()]) this.closeDown(this.downSince, this.downMs, name, now);
    for (const role of [...this.roleDownSince.keys()]) this.closeDown(this.roleDownSince, this.roleDownMs, role, now);
    const out: Record<string, number> = {};
    for (const name of this.names) out[name] = 1 - (this.downMs.get(name) ?? 0) / total;
    for (const role of new Set(this.names.map(roleOf))) out[`role ${role}`] = 1 - (this.roleDownMs.get(role) ?? 0) / total;
    return out;
  }

  private roleUp(role: string): boolean {
    return this.names.some((n) => roleOf(n) === role && this.up.has(n));
  }

  private closeDown(since: Map<string, number>, sum: Map<string, number>, key: string, now: number): void {
    const t = since.get(key);
    if (t === undefined) return;
    // Downtime before the run began (the calm run has no kills) does not count.
    sum.set(key, (sum.get(key) ?? 0) + now - Math.max(t, this.startedAt ?? t));
    since.delete(key);
  }
}

const roleOf = (name: string) => name.replace(/#\d+$/, '');

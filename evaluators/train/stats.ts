/** Small statistics shared by training, calibration and the routing benchmark. */

/** Area under the ROC curve (ties count half); null when only one class is present. */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number | null {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let pos = 0;
  let neg = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]) pos++;
    else neg++;
  }
  if (pos === 0 || neg === 0) return null;
  // Mann-Whitney U with average ranks for ties.
  let rankSumPos = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]!] === scores[idx[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[idx[k]!]) rankSumPos += avgRank;
    i = j + 1;
  }
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

export function logLoss(p: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const q = Math.min(1 - 1e-7, Math.max(1e-7, p[i]!));
    s -= y[i]! ? Math.log(q) : Math.log(1 - q);
  }
  return s / Math.max(1, p.length);
}

/** Deterministic fold of an id (FNV-1a): the same row lands in the same fold on every run. */
export function foldOf(id: string, folds: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % folds;
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

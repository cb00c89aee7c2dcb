/**
 * One long-lived workflow per API key (id `key-<keyId>`): its spend this UTC day and month, the
 * reservations of its requests in flight, and its per-minute rate window. The API reserves a
 * request's worst-case cost with an Update before the cascade starts; the cascade signals its real
 * cost when it ends. Temporal runs one message at a time per workflow, so check-and-reserve is
 * atomic however many API processes ask; the state is durable, so it survives any crash. The
 * decisions are in budget.ts.
 */
import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BudgetActivities } from '../activities/budget.js';
import { RESERVATION_REFUSED, reserveUpdate, settleSignal, statusQuery, type KeyBudgetLimits, type ReserveRequest } from '../common/budget-messages.js';
import { expired, initialState, nextExpiry, periodsOf, refusal, reserve, reservedUsd, roll, settle, type KeyBudgetState } from './budget.js';

const activities = proxyLocalActivities<BudgetActivities>({ startToCloseTimeout: '10s', retry: { maximumAttempts: 5, initialInterval: '1s' } });

/** History events after which the workflow continues as new (keeps every replay short). */
const HISTORY_LIMIT = 2000;
/** An expired reservation whose cascade still runs is looked at again after this long. */
const RECHECK_MS = 60_000;

export interface KeyBudgetInput {
  keyId: string;
  limits: KeyBudgetLimits;
  /** Carried over by continue-as-new. */
  state?: KeyBudgetState;
}

export async function keyBudgetWorkflow(input: KeyBudgetInput): Promise<void> {
  const s = input.state ?? initialState(input.keyId, input.limits, Date.now());
  const refuse = (req: ReserveRequest) => {
    const refused = refusal(s, req, Date.now());
    if (refused) throw ApplicationFailure.create({ type: RESERVATION_REFUSED, message: refused.message, details: [refused], nonRetryable: true });
  };
  setHandler(
    reserveUpdate,
    (req) => {
      roll(s, Date.now());
      refuse(req); // again: another reservation may have been granted since the validator ran
      reserve(s, req, Date.now());
      return { reservedUsd: s.reservations[req.id]?.usd ?? 0 };
    },
    // A refusal in the validator leaves no trace in history: a key hammered past its limit costs little.
    { validator: refuse },
  );
  setHandler(settleSignal, ({ id, usd, tokens }) => {
    roll(s, Date.now());
    settle(s, id, usd, tokens, Date.now());
  });
  setHandler(statusQuery, () => {
    const now = Date.now();
    const { day, month } = periodsOf(now);
    const live = s.window.filter(([t]) => t > Math.floor(now / 1000) - 60);
    return {
      key_id: s.keyId,
      day,
      spent_today_usd: s.day === day ? s.dayUsd : 0,
      month,
      spent_this_month_usd: s.month === month ? s.monthUsd : 0,
      reserved_usd: reservedUsd(s),
      in_flight: Object.keys(s.reservations).length,
      requests_last_minute: live.reduce((a, b) => a + b[1], 0),
      tokens_last_minute: live.reduce((a, b) => a + b[2], 0),
      limits: s.limits,
    };
  });

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > HISTORY_LIMIT;
  for (;;) {
    const next = nextExpiry(s);
    await condition(historyFull, next === null ? '1 hour' : Math.max(1, next - Date.now()));
    for (const [id, r] of expired(s, Date.now())) {
      // The cascade never settled: it was never started (the API died first), or it was
      // terminated or timed out. Temporal knows which, and what it cost.
      const outcome = await activities.cascadeOutcome({ workflowId: id, reservedAt: r.reservedAt });
      if (outcome.kind === 'running') {
        if (s.reservations[id]) s.reservations[id].expiresAt = Date.now() + RECHECK_MS;
      } else settle(s, id, outcome.kind === 'closed' ? (outcome.costUsd ?? r.usd) : 0, null, Date.now());
    }
    roll(s, Date.now());
    if (historyFull()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof keyBudgetWorkflow>({ keyId: s.keyId, limits: s.limits, state: s });
    }
  }
}

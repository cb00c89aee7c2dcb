/**
 * The key budget workflow's messages, shared by the API (which reserves), the cascade workflow
 * (which settles) and the key workflow itself. Pure module: imported by workflow code.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/** One long-lived workflow per API key holds its spend, reservations and rate window. */
export const keyBudgetWorkflowId = (keyId: string): string => `key-${keyId}`;

/** A key's limits as the key workflow applies them (sent with every reservation, so config edits apply at once). */
export interface KeyBudgetLimits {
  dayUsd?: number;
  monthUsd?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

/** A key with a budget or rate limit, as whatever reserves for it needs it (the key workflow starts with its limits). */
export interface BudgetKey {
  keyId: string;
  tier: string;
  limits: KeyBudgetLimits;
}

export interface ReserveRequest {
  /** The cascade workflow's id: a retried request (same Idempotency-Key) reserves once. */
  id: string;
  usd: number;
  tokens: number;
  /** The reservation is checked against Temporal after this long without a settle (a cascade that was never started or was terminated). */
  ttlMs: number;
  limits: KeyBudgetLimits;
}

export type ReserveRefusal =
  | {
      code: 'budget_exceeded';
      message: string;
      period: 'day' | 'month';
      /** It would fit but for other requests' reservations (they settle within seconds). */
      heldByInFlight: boolean;
      /** When that period's budget is whole again (epoch ms). */
      resetsAtMs: number;
    }
  | { code: 'rate_limit_exceeded'; kind: 'requests' | 'tokens'; message: string; retryAfterS: number };

/** Why a document chunk cannot reserve: the key's budget or rate limit, or the key is gone. */
export type KeyRefusal = ReserveRefusal | { code: 'key_revoked'; message: string };

/** A reservation not settled this long after its request's deadline is checked against Temporal. */
export const RESERVATION_GRACE_MS = 60_000;

/** Failure type of a refused reservation (its details hold the ReserveRefusal). */
export const RESERVATION_REFUSED = 'reservation_refused';

export interface SettleMessage {
  id: string;
  /** The cascade's cost as its trace (and the ledger) has it. */
  usd: number;
  /** Tokens its model calls used, when known (corrects the rate window's estimate). */
  tokens: number | null;
}

export interface KeyBudgetStatus {
  key_id: string;
  day: string;
  spent_today_usd: number;
  month: string;
  spent_this_month_usd: number;
  reserved_usd: number;
  in_flight: number;
  requests_last_minute: number;
  tokens_last_minute: number;
  limits: KeyBudgetLimits;
}

/** Atomic check-and-reserve; rejected (nothing written to history) when the key cannot take the request. */
export const reserveUpdate = defineUpdate<{ reservedUsd: number }, [ReserveRequest]>('reserve');
export const settleSignal = defineSignal<[SettleMessage]>('settle');
export const statusQuery = defineQuery<KeyBudgetStatus>('status');

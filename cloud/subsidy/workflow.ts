// The statement's workflow as a pure step: draft → reviewed → approved (two different approvers, 村两委) →
// published (the notice is up for the policy's noticeDays; objections are recorded) → paid → closed. A line may be
// adjusted only while the statement is a draft, and review needs every flagged line resolved (accepted or adjusted,
// with a reason). From `approved` on, the lines are frozen; from `published` on nothing but the status moves, and a
// mistake is fixed by a correcting statement that references the published one (invariant 5). Pure: the clock comes
// in as nowMs, and the shell (store.ts) writes the returned state and the step in one transaction.

import { SUBSIDY_ERROR_CODES as C, SubsidyError } from "./errors.js";

export const STATEMENT_STATUSES = ["draft", "reviewed", "approved", "published", "paid", "closed"] as const;
export type StatementStatus = (typeof STATEMENT_STATUSES)[number];

export const STEP_ACTIONS = ["draft", "adjust", "review", "approve", "return", "publish", "object", "pay", "close"] as const;
export type StepAction = (typeof STEP_ACTIONS)[number];

export interface WorkflowState {
  readonly status: StatementStatus;
  /** Approvers so far (reviewed → approved needs two distinct ones). */
  readonly approvedBy: readonly string[];
  readonly noticeUntilMs?: number;
  /** Lines still flagged and unresolved. */
  readonly unresolvedLines: number;
}

export type WorkflowAction =
  | { readonly action: "adjust" }
  | { readonly action: "review" }
  | { readonly action: "approve" }
  | { readonly action: "return" }
  | { readonly action: "publish"; readonly noticeDays: number }
  | { readonly action: "object" }
  | { readonly action: "pay" }
  | { readonly action: "close" };

const DAY_MS = 86_400_000;

function need(state: WorkflowState, wanted: StatementStatus, what: string): void {
  if (state.status !== wanted) {
    const code = ["published", "paid", "closed"].includes(state.status) && (what === "adjust a line" || what === "return it") ? C.IMMUTABLE : C.WRONG_STATE;
    throw new SubsidyError(code, `cannot ${what}: the statement is ${state.status}, not ${wanted}`);
  }
}

/** The state after `actor` does `a` at nowMs, or a SubsidyError saying why not. */
export function workflowStep(state: WorkflowState, a: WorkflowAction, actor: string, nowMs: number): WorkflowState {
  switch (a.action) {
    case "adjust":
      need(state, "draft", "adjust a line");
      return state;
    case "review":
      need(state, "draft", "review");
      if (state.unresolvedLines > 0) throw new SubsidyError(C.UNRESOLVED, `${state.unresolvedLines} flagged line(s) need a decision (accept or adjust, with a reason) before review`);
      return { ...state, status: "reviewed" };
    case "approve": {
      need(state, "reviewed", "approve");
      if (state.approvedBy.includes(actor)) throw new SubsidyError(C.SAME_APPROVER, `${actor} has approved this statement already; a second, different approver must`);
      const approvedBy = [...state.approvedBy, actor];
      return { ...state, approvedBy, status: approvedBy.length >= 2 ? "approved" : "reviewed" };
    }
    case "return":
      if (state.status !== "reviewed" && state.status !== "approved") need(state, "reviewed", "return it");
      return { ...state, status: "draft", approvedBy: [] };
    case "publish":
      need(state, "approved", "publish");
      return { ...state, status: "published", noticeUntilMs: nowMs + a.noticeDays * DAY_MS };
    case "object":
      need(state, "published", "object");
      return state;
    case "pay":
      need(state, "published", "pay");
      if (state.noticeUntilMs !== undefined && nowMs < state.noticeUntilMs) {
        throw new SubsidyError(C.NOTICE_RUNNING, `the public notice runs until ${new Date(state.noticeUntilMs).toISOString()}; pay after it ends`);
      }
      return { ...state, status: "paid" };
    case "close":
      need(state, "paid", "close");
      return { ...state, status: "closed" };
  }
}

// The village page's decisions, pure: the order households are listed in (the ones about to be cut first), and an
// idempotency key for a top-up that a retry of the same confirmation reuses.

/**
 * Low-credit stage first (2, then 1, then 0), then the lowest balance, then the id: an officer scanning the list
 * from the top finds whom to call before the pumps stop.
 * @template {{ householdId: string, balanceFen: number, stage: number }} T
 * @param {readonly T[]} households
 * @returns {T[]}
 */
export function lowCreditFirst(households) {
  return [...households].sort((a, b) => b.stage - a.stage || a.balanceFen - b.balanceFen || (a.householdId < b.householdId ? -1 : a.householdId > b.householdId ? 1 : 0));
}

/**
 * 32 hex chars from the platform's CSPRNG. Not crypto.randomUUID: that needs a secure context, and a village office
 * may reach its cloud box over plain http on the LAN.
 * @param {Pick<Crypto, "getRandomValues">} random
 */
export function newIdempotencyKey(random) {
  const bytes = random.getRandomValues(new Uint8Array(16));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

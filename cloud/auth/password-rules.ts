// What a password must be (issue #4): at least 10 characters, counted as Unicode code points so a Chinese
// passphrase is measured as typed, and at most 256 so one login cannot feed scrypt megabytes. No composition rules
// (NIST SP 800-63B §5.1.1.2: length, not character classes). Pure.

export const PASSWORD_MIN_CHARS = 10;
export const PASSWORD_MAX_CHARS = 256;

/** undefined when acceptable; otherwise why not (shown to the person choosing it). */
export function passwordProblem(password: string, userId?: string): string | undefined {
  const chars = [...password].length;
  if (chars < PASSWORD_MIN_CHARS) return `a password needs at least ${PASSWORD_MIN_CHARS} characters`;
  if (chars > PASSWORD_MAX_CHARS) return `a password may have at most ${PASSWORD_MAX_CHARS} characters`;
  if (password.trim().length === 0) return "a password cannot be only spaces";
  if (userId !== undefined && password.toLowerCase().includes(userId.toLowerCase())) return "a password must not contain the user id";
  return undefined;
}

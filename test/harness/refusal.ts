// What a refused call failed with, for tests that compare typed error codes: the error's `code` (AgriError and its
// subclasses), or the error as text when it has none; undefined when the call succeeded.

export async function refusal(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/**
 * Runs a test's clean-up steps in order, each even when an earlier one failed (so nothing is left running),
 * and then fails naming every step that failed: a failed `after` hook otherwise says only which suite.
 */
export async function teardown(steps: ReadonlyArray<readonly [name: string, step: () => Promise<unknown>]>): Promise<void> {
  const failures: string[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(`${name}: ${(error as Error)?.stack ?? String(error)}`);
    }
  }
  if (failures.length > 0) throw new Error(`clean-up failed:\n${failures.join("\n")}`);
}

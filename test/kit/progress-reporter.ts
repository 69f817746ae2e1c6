/**
 * A node:test reporter for the runner: one line per test started and finished, written as it
 * happens, so a file killed for running past its budget can be reported with the tests still running.
 */
async function* progressReporter(source: AsyncIterable<{ type: string; data: { name?: string; nesting?: number } }>): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type === "test:start") yield `start\t${event.data.nesting}\t${event.data.name}\n`;
    else if (event.type === "test:pass" || event.type === "test:fail") yield `end\t${event.data.nesting}\t${event.data.name}\n`;
  }
}

export = progressReporter;

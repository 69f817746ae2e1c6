/** Sum of a metric's samples on the gateway's /metrics whose labels include `labels` (0 when absent). */
export async function readMetric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleSum(await (await fetch(`${baseUrl}/metrics`)).text(), name, labels);
}

/** The sums of several metrics' samples from one read of /metrics (a read resets the event-loop lag's figures). */
export async function readMetrics(baseUrl: string, names: string[]): Promise<number[]> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return names.map((name) => sampleSum(text, name, {}));
}

function sampleSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const sampleLabels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => sampleLabels[k] === v)) sum += Number(match[3]);
  }
  return sum;
}

/** Polls until the metric, summed over the gateways at `baseUrls`, reaches `atLeast`. */
export async function waitForMetric(
  baseUrls: string | string[],
  name: string,
  atLeast: number,
  labels: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<number> {
  const urls = Array.isArray(baseUrls) ? baseUrls : [baseUrls];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const values = await Promise.all(urls.map((url) => readMetric(url, name, labels)));
    const total = values.reduce((a, b) => a + b, 0);
    if (total >= atLeast) return total;
    if (Date.now() > deadline) throw new Error(`${name}${JSON.stringify(labels)} is ${total}, not ${atLeast}, after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

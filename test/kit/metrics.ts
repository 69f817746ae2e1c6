/** Reads one sample of a Prometheus counter from the gateway's /metrics (0 when not yet present). */
export async function metricValue(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = /\{(.*)\}/.exec(line)?.[1] ?? "";
    if (wanted.every((pair) => labelText.split(",").includes(pair))) return Number(line.split(" ").at(-1));
  }
  return 0;
}

/** Polls until the counter reaches `atLeast`; returns its value. */
export async function waitForMetric(baseUrl: string, name: string, labels: Record<string, string>, atLeast: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await metricValue(baseUrl, name, labels);
    if (value >= atLeast) return value;
    if (Date.now() > deadline) throw new Error(`${name}${JSON.stringify(labels)} is ${value}, expected at least ${atLeast}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

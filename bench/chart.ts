/** One line of the chart: a point per concurrency level. */
export interface ChartSeries {
  label: string;
  color: string;
  dashed?: boolean;
  points: Array<{ x: number; y: number; note?: string }>;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const MARGIN = { top: 48, right: 180, bottom: 56, left: 72 };

/** A self-contained SVG line chart (no fonts or scripts beyond SVG 1.1), e.g. latency against throughput. */
export function renderLineChart(series: readonly ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 820;
  const height = options.height ?? 480;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const points = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xTicks = niceTicks(0, Math.max(1, ...points.map((p) => p.x)));
  const yTicks = niceTicks(0, Math.max(1, ...points.map((p) => p.y)));
  const xMax = xTicks[xTicks.length - 1]!;
  const yMax = yTicks[yTicks.length - 1]!;
  const sx = (x: number) => MARGIN.left + (x / xMax) * plotW;
  const sy = (y: number) => MARGIN.top + plotH - (y / yMax) * plotH;

  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(text(width / 2 - MARGIN.right / 2 + MARGIN.left / 2, 28, options.title, { size: 16, anchor: "middle", weight: "bold" }));
  for (const t of yTicks) {
    parts.push(`<line x1="${MARGIN.left}" y1="${f(sy(t))}" x2="${MARGIN.left + plotW}" y2="${f(sy(t))}" stroke="#e5e5e5"/>`);
    parts.push(text(MARGIN.left - 8, sy(t) + 4, formatTick(t), { anchor: "end" }));
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${f(sx(t))}" y1="${MARGIN.top}" x2="${f(sx(t))}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    parts.push(text(sx(t), MARGIN.top + plotH + 18, formatTick(t), { anchor: "middle" }));
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  parts.push(text(MARGIN.left + plotW / 2, height - 14, options.xLabel, { anchor: "middle" }));
  parts.push(text(18, MARGIN.top + plotH / 2, options.yLabel, { anchor: "middle", rotate: true }));

  series.forEach((s, i) => {
    const valid = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    if (valid.length > 1) {
      const d = valid.map((p, j) => `${j === 0 ? "M" : "L"}${f(sx(p.x))},${f(sy(p.y))}`).join(" ");
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    }
    for (const p of valid) {
      parts.push(`<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3.5" fill="${s.color}"/>`);
      if (p.note) parts.push(text(sx(p.x) + 5, sy(p.y) - 6, p.note, { size: 10, color: s.color }));
    }
    const ly = MARGIN.top + 12 + i * 22;
    const lx = MARGIN.left + plotW + 16;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(text(lx + 34, ly + 4, s.label, {}));
  });

  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n${parts.join("\n")}\n</svg>\n`;
}

/** Round tick values from 0 to at least `max` (1, 2 or 5 times a power of ten apart). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  const span = max - min || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.floor(min / step) * step; t < max + step - 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function formatTick(value: number): string {
  return Math.abs(value) >= 1000 ? `${value / 1000}k` : String(value);
}

function text(x: number, y: number, content: string, o: { size?: number; anchor?: string; weight?: string; rotate?: boolean; color?: string }): string {
  const transform = o.rotate ? ` transform="rotate(-90 ${f(x)} ${f(y)})"` : "";
  return `<text x="${f(x)}" y="${f(y)}" font-size="${o.size ?? 12}" text-anchor="${o.anchor ?? "start"}" fill="${o.color ?? "#222222"}"${o.weight ? ` font-weight="${o.weight}"` : ""}${transform}>${escapeXml(content)}</text>`;
}

function f(n: number): string {
  return n.toFixed(1);
}

export function escapeXml(value: string): string {
  return value.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

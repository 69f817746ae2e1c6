/**
 * A one-line progress bar on stderr (redrawn in place on a terminal, a line per phase otherwise),
 * so stdout keeps only the final table.
 */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastPhase = "";
  private readonly started = Date.now();

  constructor(private readonly totalSteps: number) {}

  /** `step` of `totalSteps` done, now in `phase`. */
  update(step: number, phase: string): void {
    const width = 24;
    const done = Math.min(width, Math.round((step / this.totalSteps) * width));
    const line = `[${"#".repeat(done)}${"-".repeat(width - done)}] ${String(Math.round((step / this.totalSteps) * 100)).padStart(3)}% ${((Date.now() - this.started) / 1000).toFixed(0).padStart(3)}s ${phase}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}`);
    else if (phase !== this.lastPhase) process.stderr.write(`${line}\n`);
    this.lastPhase = phase;
  }

  done(): void {
    if (this.tty) process.stderr.write("\n");
  }
}

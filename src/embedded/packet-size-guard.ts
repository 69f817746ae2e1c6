import { Duplex } from "node:stream";
import type { Socket } from "node:net";

export interface PacketSizeLimits {
  /** Largest first packet (the CONNECT, sent before any credentials are checked). */
  firstPacketBytes: number;
  /** Largest packet after it. */
  packetBytes: number;
}

/**
 * The socket as aedes should see it: the same bytes both ways, but a packet whose fixed header announces
 * more than the limit ends the connection as soon as its remaining-length field is read, before any of it
 * is buffered. aedes and mqtt-packet have no such limit (aedes#831): their parser holds a packet until its
 * announced length (up to 256 MB) has arrived.
 */
export function guardPacketSizes(socket: Socket, limits: PacketSizeLimits, onOversized: (announcedBytes: number) => void): Duplex {
  const scanner = new PacketScanner(limits);
  const guarded = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.destroyed) return callback(new Error("socket closed"));
      socket.write(chunk, (error) => callback(error ?? null));
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    const oversized = scanner.scan(chunk);
    if (oversized !== undefined) {
      onOversized(oversized);
      socket.destroy();
      return;
    }
    if (!guarded.push(chunk)) socket.pause();
  });
  socket.on("end", () => guarded.push(null));
  socket.on("error", (error) => guarded.destroy(error));
  socket.on("close", () => guarded.destroy());
  return guarded;
}

/**
 * Follows MQTT packet boundaries through the byte stream: a type byte, a remaining length of 1-4 bytes
 * (7 bits each, the high bit meaning "more"), then that many bytes, which are skipped without looking.
 */
export class PacketScanner {
  private state: "type" | "length" | "body" = "type";
  private length = 0;
  private lengthBytes = 0;
  private bodyLeft = 0;
  private packets = 0;

  constructor(private readonly limits: PacketSizeLimits) {}

  /** The announced size of the first packet over its limit in `chunk`, or undefined when all fit. */
  scan(chunk: Buffer): number | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === "body") {
        const skipped = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= skipped;
        i += skipped;
        if (this.bodyLeft === 0) this.state = "type";
        continue;
      }
      const byte = chunk[i++]!;
      if (this.state === "type") {
        this.state = "length";
        this.length = 0;
        this.lengthBytes = 0;
        continue;
      }
      this.length += (byte & 0x7f) * 128 ** this.lengthBytes++;
      const more = (byte & 0x80) !== 0;
      // A fifth length byte is malformed MQTT; refuse it as oversized rather than pass it on.
      if (more && this.lengthBytes === 4) return Number.MAX_SAFE_INTEGER;
      if (more) continue;
      const total = 1 + this.lengthBytes + this.length;
      const limit = this.packets === 0 ? this.limits.firstPacketBytes : this.limits.packetBytes;
      if (total > limit) return total;
      this.packets++;
      this.bodyLeft = this.length;
      this.state = this.length === 0 ? "type" : "body";
    }
    return undefined;
  }
}

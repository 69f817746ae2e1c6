import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PacketScanner } from "../../src/embedded/packet-size-guard";
import { fixedHeader } from "../kit/mqtt-wire";

const limits = { firstPacketBytes: 100, packetBytes: 1000 };
const header = fixedHeader;
const packet = (type: number, length: number) => Buffer.concat([header(type, length), Buffer.alloc(length)]);

describe("MQTT packet scanner (embedded broker's size limit)", () => {
  it("passes packets within the limits, however the stream is cut", () => {
    const stream = Buffer.concat([packet(0x10, 90), packet(0x30, 900), packet(0xc0, 0), packet(0x30, 500)]);
    for (const cut of [1, 2, 3, 7, 64, stream.length]) {
      const scanner = new PacketScanner(limits);
      for (let i = 0; i < stream.length; i += cut) assert.equal(scanner.scan(stream.subarray(i, i + cut)), undefined, `cut ${cut}`);
    }
  });

  it("refuses a first packet over its own limit from the header alone", () => {
    assert.equal(new PacketScanner(limits).scan(header(0x10, 200 * 1024 * 1024)), 1 + 4 + 200 * 1024 * 1024);
    assert.equal(new PacketScanner(limits).scan(header(0x10, 98)), undefined);
    assert.equal(new PacketScanner(limits).scan(header(0x10, 99)), 101);
  });

  it("refuses a later packet over the limit, even when its length bytes arrive one at a time", () => {
    const scanner = new PacketScanner(limits);
    assert.equal(scanner.scan(packet(0x10, 10)), undefined);
    const big = header(0x30, 5000);
    assert.equal(scanner.scan(big.subarray(0, 2)), undefined);
    assert.equal(scanner.scan(big.subarray(2)), 1 + 2 + 5000);
  });

  it("refuses a remaining length of more than four bytes (malformed)", () => {
    assert.ok(new PacketScanner(limits).scan(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01])) !== undefined);
  });
});

/** An MQTT fixed header: the packet type byte, then the remaining length (7 bits a byte, high bit "more"). */
export function fixedHeader(typeByte: number, remainingLength: number): Buffer {
  const bytes = [typeByte];
  do {
    let byte = remainingLength % 128;
    remainingLength = Math.floor(remainingLength / 128);
    if (remainingLength > 0) byte |= 0x80;
    bytes.push(byte);
  } while (remainingLength > 0);
  return Buffer.from(bytes);
}

/** One reference token of a JSON pointer (RFC 6901): `~` and `/` escaped. */
export const pointerSegment = (segment: string | number): string => String(segment).replace(/~/g, "~0").replace(/\//g, "~1");

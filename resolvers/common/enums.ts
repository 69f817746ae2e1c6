/** A GraphQL enum object (`{ A: "A", … }`) from the domain's list of values. */
export const asEnum = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

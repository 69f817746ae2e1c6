import type { ApolloServerPlugin } from "@apollo/server";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import { GraphQLError, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ParseOptions, type ValidationContext, type ValidationRule } from "graphql";
import { getComplexity, type ComplexityEstimator } from "graphql-query-complexity";

/**
 * What one GraphQL document may ask for. Legitimate operations stay far below: the deepest is 5
 * levels, and a full page of 200 commands with every field and its device costs about 8,200.
 */
export const QUERY_LIMITS = {
  /** Nested selections; the schema has no cycles today, this keeps future ones harmless. */
  maxDepth: 10,
  /** Aliased fields per operation: each alias is a field resolved again (and a mutation run again). */
  maxAliases: 15,
  /** Fields weighted by list sizes (`first`), see `connectionCost`. */
  maxCost: 20_000,
  /** Lexer tokens: refuses huge documents before they are parsed into memory. */
  maxTokens: 5_000,
} as const;

export const PARSE_OPTIONS: ParseOptions = { maxTokens: QUERY_LIMITS.maxTokens };

/** graphql-armor reports through callbacks; reporting on the context makes these ordinary validation errors. */
const reportOn = (ctx: ValidationContext | null, error: GraphQLError) =>
  ctx?.reportError(new GraphQLError(error.message.replace(/^Syntax Error: /, "")));

/** Validation rules for depth and aliases, for Apollo and graphql-ws alike. */
export const LIMIT_RULES: ValidationRule[] = [
  maxDepthRule({ n: QUERY_LIMITS.maxDepth, onReject: [reportOn], propagateOnRejection: false }),
  maxAliasesRule({ n: QUERY_LIMITS.maxAliases, onReject: [reportOn], propagateOnRejection: false }),
];

/** A field costs 1 plus its selections, times `first` on paginated fields (their default applies when absent). */
const connectionCost: ComplexityEstimator = ({ args, childComplexity }) =>
  1 + childComplexity * (typeof args.first === "number" && args.first > 0 ? args.first : 1);

/**
 * The cost check needs the request's variables (`first: $n`), so it runs after validation; undefined
 * when within limits. Variables that do not coerce are left to execution, which refuses them.
 */
export function costLimitError(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | undefined, operationName?: string | null): GraphQLError | undefined {
  let cost: number;
  try {
    cost = getComplexity({ schema, query: document, variables, operationName: operationName ?? undefined, estimators: [connectionCost] });
  } catch {
    return undefined;
  }
  if (cost <= QUERY_LIMITS.maxCost) return undefined;
  return new GraphQLError(`Query cost limit of ${QUERY_LIMITS.maxCost} exceeded, found ${cost}; ask for fewer items or fields`, {
    extensions: { code: "GRAPHQL_VALIDATION_FAILED", http: { status: 400 } },
  });
}

/** Apollo: the cost check once the operation is known, before anything executes. */
export function costLimitPlugin<T extends object>(): ApolloServerPlugin<T> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, request }) {
          const error = costLimitError(schema, document, request.variables, request.operationName);
          if (error) throw error;
        },
      };
    },
  };
}

/**
 * graphql-ws: parse, validate and cost-check an operation as Apollo does for HTTP, so the WebSocket
 * is no way around the limits. Errors are answered on the operation; the connection stays open.
 */
export function prepareOperation(
  schema: GraphQLSchema,
  payload: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null },
): readonly GraphQLError[] | { schema: GraphQLSchema; document: DocumentNode; variableValues?: Record<string, unknown>; operationName?: string } {
  let document: DocumentNode;
  try {
    document = parse(payload.query, PARSE_OPTIONS);
  } catch (error) {
    return [withCode(error instanceof GraphQLError ? error : new GraphQLError("Query could not be parsed"), "GRAPHQL_PARSE_FAILED")];
  }
  const errors = validate(schema, document, [...specifiedRules, ...LIMIT_RULES]);
  if (errors.length) return errors.map((error) => withCode(error, "GRAPHQL_VALIDATION_FAILED"));
  const variables = payload.variables ?? undefined;
  const costError = costLimitError(schema, document, variables, payload.operationName);
  if (costError) return [costError];
  return { schema, document, variableValues: variables, operationName: payload.operationName ?? undefined };
}

/** The code Apollo gives the same failure over HTTP, so that the shared error formatting keeps the message. */
function withCode(error: GraphQLError, code: string): GraphQLError {
  if (error.extensions.code) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}

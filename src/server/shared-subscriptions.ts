import { print, subscribe, type ExecutionArgs, type ExecutionResult } from "graphql";

type Result = ExecutionResult;
type Source = AsyncIterableIterator<Result>;

/** One execution of a subscription, its results handed to every subscriber that asked the same thing as the same principal. */
interface Group {
  members: Set<Member>;
  /** The shared source once `subscribe` made it; until then, its promise. */
  source: Promise<Source | Result>;
}

/**
 * graphql-ws's `subscribe`, executing each distinct subscription once however many connections asked for
 * it: subscribers whose key (document, variables and whatever the results depend on besides them, i.e.
 * the principal) is the same share one event-stream subscription, one filter call per event and one
 * execution per event; each still gets every result, in order, from its own queue (a slow socket delays
 * only itself). Each key's results are what any one of its subscribers would have got on its own, so
 * `keyOf` must cover everything the filters and resolvers read from the context; undefined: not shared.
 */
export function sharedSubscribe(keyOf: (args: ExecutionArgs) => string | undefined): (args: ExecutionArgs) => Promise<Source | Result> {
  const groups = new Map<string, Group>();

  const pump = async (key: string, group: Group, source: Source) => {
    try {
      for await (const result of source) for (const member of group.members) member.push(result);
      for (const member of group.members) member.end();
    } catch (error) {
      for (const member of group.members) member.fail(error);
    } finally {
      if (groups.get(key) === group) groups.delete(key);
    }
  };

  return async (args) => {
    const id = keyOf(args);
    if (id === undefined) return subscribe(args);
    const key = `${id}\u0000${args.operationName ?? ""}\u0000${args.document.loc?.source.body ?? print(args.document)}\u0000${JSON.stringify(args.variableValues ?? {})}`;
    let group = groups.get(key);
    if (!group) {
      const created: Group = { members: new Set(), source: Promise.resolve(subscribe(args)) };
      group = created;
      groups.set(key, created);
      void created.source.then(
        (source) => {
          if (isAsyncIterator(source)) {
            // Everyone left before it was made: nothing to feed.
            if (created.members.size === 0) {
              groups.delete(key);
              void source.return?.();
            } else void pump(key, created, source);
          } else groups.delete(key);
        },
        () => groups.delete(key),
      );
    }
    const joined = group;
    const member = new Member(() => {
      joined.members.delete(member);
      if (joined.members.size > 0) return;
      if (groups.get(key) === joined) groups.delete(key);
      void joined.source.then((source) => (isAsyncIterator(source) ? source.return?.() : undefined)).catch(() => undefined);
    });
    joined.members.add(member);
    const source = await joined.source;
    // Not a stream (e.g. variables that do not coerce): every subscriber gets the same errors alone.
    if (!isAsyncIterator(source)) {
      joined.members.delete(member);
      return source;
    }
    return member;
  };
}

const isAsyncIterator = (value: Source | Result): value is Source => typeof (value as Source)[Symbol.asyncIterator] === "function";

/** One subscriber's queue of the shared results. */
class Member implements AsyncIterableIterator<Result> {
  private readonly queue: Result[] = [];
  private waiting: { resolve: (step: IteratorResult<Result>) => void; reject: (error: unknown) => void } | undefined;
  private done = false;
  private error: { value: unknown } | undefined;

  constructor(private readonly leave: () => void) {}

  push(result: Result): void {
    if (this.done) return;
    if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = undefined;
      resolve({ value: result, done: false });
    } else this.queue.push(result);
  }

  end(): void {
    this.done = true;
    this.wake();
  }

  fail(error: unknown): void {
    this.error = { value: error };
    this.done = true;
    this.wake();
  }

  next(): Promise<IteratorResult<Result>> {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift()!, done: false });
    if (this.error) {
      const { value } = this.error;
      this.error = undefined;
      return Promise.reject(value);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  return(): Promise<IteratorResult<Result>> {
    if (!this.done) {
      this.done = true;
      this.leave();
    }
    this.queue.length = 0;
    this.error = undefined;
    this.wake();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<Result>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private wake(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    if (this.error) {
      const { value } = this.error;
      this.error = undefined;
      waiting.reject(value);
    } else if (this.queue.length) waiting.resolve({ value: this.queue.shift()!, done: false });
    else waiting.resolve({ value: undefined, done: true });
  }
}

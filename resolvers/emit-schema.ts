import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { printSchema } from "graphql";
import { createGatewayPubSub } from "../src/events/pubsub";
import { buildGatewaySchema } from "./schema";

/** The SDL clients and codegen use, emitted from the resolvers: `npm run schema:emit`. */
export async function emittedSdl(): Promise<string> {
  const schema = await buildGatewaySchema({ pubSub: createGatewayPubSub() });
  return `${printSchema(schema)}\n`;
}

export const SCHEMA_FILE = resolve(__dirname, "../../schema/schema.graphql");

if (require.main === module) {
  emittedSdl()
    .then((sdl) => {
      writeFileSync(SCHEMA_FILE, sdl);
      console.log(`wrote ${SCHEMA_FILE}`);
    })
    .catch((error) => {
      console.error(error);
      process.exit(1);
    });
}

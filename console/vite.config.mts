import react from "@vitejs/plugin-react";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The console and GraphiQL, built into dist/console and served by the gateway under /console
 * (GraphiQL's page at GET /graphql for browsers). Everything is bundled: nothing is fetched from another host.
 */
const here = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root: here,
  base: "/console/",
  plugins: [react()],
  logLevel: "warn",
  build: {
    outDir: resolve(here, "../dist/console"),
    emptyOutDir: true,
    chunkSizeWarningLimit: 4000,
    rollupOptions: {
      input: { console: resolve(here, "index.html"), graphiql: resolve(here, "graphiql.html") },
      // A dependency's "use no memo" directive is meaningless once bundled.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});

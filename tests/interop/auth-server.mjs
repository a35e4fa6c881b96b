// A real Better Auth server, as a Next.js app would embed it, on plain Node: email and password
// sign-in, and the JWT plugin (EdDSA tokens from GET /api/auth/token, keys at /api/auth/jwks).
// Its tables live in the PostgreSQL database DATABASE_URL names; it creates them at start.
import http from "node:http";
import pg from "pg";
import { betterAuth } from "better-auth";
import { jwt } from "better-auth/plugins";
import { toNodeHandler } from "better-auth/node";
import { getMigrations } from "better-auth/db/migration";

const port = Number(process.env.PORT);
const baseURL = `http://127.0.0.1:${port}`;
const auth = betterAuth({
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET,
  database: new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 3 }),
  emailAndPassword: { enabled: true },
  // The tokens' iss and aud are the base URL: the API checks both (AUTH_JWT_ISSUER/AUDIENCE).
  // JWKS_ROTATION_S (seconds) turns on key rotation; retired keys stay served for an hour.
  plugins: [
    jwt({
      jwks: process.env.JWKS_ROTATION_S
        ? { rotationInterval: Number(process.env.JWKS_ROTATION_S), gracePeriod: 3600 }
        : {},
    }),
  ],
});
const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
const server = http.createServer(toNodeHandler(auth));
server.listen(port, "127.0.0.1", () => console.log(`ready ${baseURL}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

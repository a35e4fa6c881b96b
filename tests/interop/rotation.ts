// Better Auth rotates its signing key (jwks.rotationInterval): a token signed with the new key
// must be accepted on first use, without restarting the API, and one signed with the old key
// must still verify within Better Auth's grace period. Run against an auth server started with
// JWKS_ROTATION_S set; prints one line per step, throws on any surprise.
import { setTimeout as sleep } from "node:timers/promises";

const AUTH_URL = process.env.AUTH_URL!;
const API_URL = process.env.API_URL!;
const ROTATION_S = Number(process.env.JWKS_ROTATION_S);

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`failed: ${what}`);
}

const email = `carol-${Date.now()}@example.com`;
const signedUp = await fetch(`${AUTH_URL}/api/auth/sign-up/email`, {
  method: "POST",
  headers: { "Content-Type": "application/json", Origin: AUTH_URL },
  body: JSON.stringify({ email, password: "a long enough password", name: "carol" }),
});
check(signedUp.ok, `sign-up ${signedUp.status}`);
const cookie = signedUp.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
const userId = ((await signedUp.json()) as { user: { id: string } }).user.id;

async function token(): Promise<string> {
  const issued = await fetch(`${AUTH_URL}/api/auth/token`, { headers: { Cookie: cookie } });
  check(issued.ok, `token ${issued.status}`);
  return ((await issued.json()) as { token: string }).token;
}

function kid(jwt: string): string {
  return JSON.parse(Buffer.from(jwt.split(".")[0], "base64url").toString()).kid;
}

async function status(jwt: string): Promise<number> {
  const response = await fetch(`${API_URL}/api/${encodeURIComponent(userId)}/tasks`, {
    headers: { Authorization: `Bearer ${jwt}` },
  });
  return response.status;
}

const before = await token();
console.log(`first key ${await status(before)}`); // the API fetches and caches the JWKS
await sleep((ROTATION_S + 1) * 1000);
const after = await token();
check(kid(after) !== kid(before), "the key rotated");
console.log(`rotated key, first use ${await status(after)}`);
console.log(`first key, within the grace period ${await status(before)}`);

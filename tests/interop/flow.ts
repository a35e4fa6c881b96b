// What a Next.js front end does, without the browser: sign a user up with Better Auth, get a JWT
// the way a server component does (GET /api/auth/token with the session cookie), and drive the
// API through the client generated from its OpenAPI document. Prints one line per step; any
// surprise throws (exit 1). AUTH_URL is the Better Auth server, API_URL the Todo API.
import createClient from "openapi-fetch";
import type { paths } from "./src/api.js";

const AUTH_URL = process.env.AUTH_URL!;
const API_URL = process.env.API_URL!;

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`failed: ${what}`);
}

async function signUp(name: string): Promise<{ userId: string; token: string }> {
  const email = `${name}-${Date.now()}@example.com`;
  const signedUp = await fetch(`${AUTH_URL}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Origin: AUTH_URL },
    body: JSON.stringify({ email, password: "a long enough password", name }),
  });
  check(signedUp.ok, `sign-up ${signedUp.status}`);
  const cookie = signedUp.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const body = (await signedUp.json()) as { user: { id: string } };
  const issued = await fetch(`${AUTH_URL}/api/auth/token`, { headers: { Cookie: cookie } });
  check(issued.ok, `token ${issued.status}`);
  const { token } = (await issued.json()) as { token: string };
  return { userId: body.user.id, token };
}

const alice = await signUp("alice");
const bob = await signUp("bob");
const api = createClient<paths>({
  baseUrl: API_URL,
  headers: { Authorization: `Bearer ${alice.token}` },
});
const path = { user_id: alice.userId };

// A create with only a title type-checks: every other field is optional.
const created = await api.POST("/api/{user_id}/tasks", {
  params: { path },
  body: { title: "Buy milk" },
});
check(created.response.status === 201 && created.data, "create");
const task = created.data;
console.log(`created ${task.title} priority=${task.priority}`);

await api.POST("/api/{user_id}/tasks", {
  params: { path },
  body: { title: "File taxes", priority: "high" },
});
const high = await api.GET("/api/{user_id}/tasks", {
  params: { path, query: { priority: ["high"] } },
});
check(high.data, "list");
// A listing may hold tombstones (for sync); the generated union says so.
console.log(`listed high: ${high.data.map((t) => ("title" in t ? t.title : "(deleted)")).join(", ")}`);

const one = { ...path, task_id: task.id };
const read = await api.GET("/api/{user_id}/tasks/{task_id}", { params: { path: one } });
const etag = read.response.headers.get("etag");
check(etag, "etag");
const updated = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { path: one, header: { "If-Match": etag } },
  body: { title: "Buy oat milk" },
});
check(updated.response.status === 200, "conditional update");
const stale = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { path: one, header: { "If-Match": etag } },
  body: { title: "Lost update" },
});
console.log(`update ${updated.response.status}, stale update ${stale.response.status}`);

const key = crypto.randomUUID();
const toggle = () =>
  api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
    params: { path: one, header: { "Idempotency-Key": key } },
  });
const first = await toggle();
const again = await toggle();
check(first.data && again.data, "toggle");
console.log(
  `toggled completed=${first.data.completed}, retried completed=${again.data.completed} ` +
    `replayed=${again.response.headers.get("idempotent-replayed")}`,
);

const asBob = createClient<paths>({
  baseUrl: API_URL,
  headers: { Authorization: `Bearer ${bob.token}` },
});
const trespass = await asBob.GET("/api/{user_id}/tasks", { params: { path } });
console.log(`bob on alice's tasks ${trespass.response.status}`);

const deleted = await api.DELETE("/api/{user_id}/tasks/{task_id}", { params: { path: one } });
console.log(`deleted ${deleted.response.status}`);

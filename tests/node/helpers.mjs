// Shared helpers for the matrix-js-sdk tests against a running Schulhof school.
//
// tests/e2e/test_matrix_js_sdk.py starts the school, makes the accounts and runs
// `node --test` here with:
//   SCHULHOF_MATRIX_URL   the homeserver's base URL (http://127.0.0.1:port)
//   SCHULHOF_TEST_USERS   JSON list of {"user_id", "password"}; each test file takes
//                         the users it needs by index (see README in this folder).
import { createClient, ClientEvent, RoomEvent } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

// matrix-js-sdk 37 targets node 22; node 20 lacks Promise.withResolvers (ES2024).
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

export const baseUrl = process.env.SCHULHOF_MATRIX_URL;
export const users = JSON.parse(process.env.SCHULHOF_TEST_USERS ?? "[]");

if (!baseUrl || users.length === 0) {
  throw new Error("run through tests/e2e/test_matrix_js_sdk.py (SCHULHOF_MATRIX_URL unset)");
}

/** A MatrixClient logged in with m.login.password as users[index]. */
export async function login(index, deviceName = "js-sdk test") {
  const { user_id: userId, password } = users[index];
  const anonymous = createClient({ baseUrl });
  const session = await anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: userId },
    password,
    initial_device_display_name: deviceName,
  });
  return createClient({
    baseUrl,
    userId: session.user_id,
    accessToken: session.access_token,
    deviceId: session.device_id,
  });
}

/** Resolve once ``predicate()`` is true, re-checking on every client event. */
export function waitFor(client, predicate, what, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (err) {
        return finish(err);
      }
      if (value) finish(null, value);
    };
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)),
      timeoutMs);
    const finish = (err, value) => {
      clearTimeout(timer);
      client.off(RoomEvent.Timeline, check);
      client.off(ClientEvent.Room, check);
      client.off(ClientEvent.Sync, check);
      if (err) reject(err);
      else resolve(value);
    };
    client.on(RoomEvent.Timeline, check);
    client.on(ClientEvent.Room, check);
    client.on(ClientEvent.Sync, check);
    check();
  });
}

/** Start /v3/sync and resolve when the first sync is through. */
export async function started(client) {
  await client.startClient({ initialSyncLimit: 20 });
  await waitFor(client, () => client.isInitialSyncComplete(), "the initial sync");
  return client;
}

/** The bodies of a room's m.room.message events as the client holds them. */
export function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return room.getLiveTimeline().getEvents()
    .filter((e) => e.getType() === "m.room.message")
    .map((e) => e.getContent().body);
}
